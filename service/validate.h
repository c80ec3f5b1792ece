// Step 2 of the flow: check a gRPC request completely before anything is
// sent upstream. Pure functions; every failure carries ErrorInfo and, for
// field errors, a BadRequest naming each bad field.
#ifndef CAMPAIGN_GATEWAY_SERVICE_VALIDATE_H_
#define CAMPAIGN_GATEWAY_SERVICE_VALIDATE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.pb.h"

namespace campaign_gateway {

// Documented upper bounds (in UTF-8 code points unless noted).
inline constexpr int kMaxCampaignNameChars = 200;
inline constexpr int kMaxSmsTextChars = 1600;
inline constexpr int kMaxShortlinkBytes = 2048;
inline constexpr int kMaxAlphanumericSenderChars = 11;
inline constexpr int kMaxNumericSenderDigits = 16;
inline constexpr int kMaxRequestIdChars = 128;

// A create request that passed validation, in Connyline's terms.
struct CampaignDraft {
  std::string campaign_name;
  std::string sender;
  int64_t list_id = 0;
  std::string sms_text;
  std::string start;       // "YYYY-MM-DD HH:MM", account local time
  std::string shortlink1;  // "" when not given
};

// The account a request acts on: `requested` when it equals `configured`
// or is empty; otherwise PERMISSION_DENIED (ACCOUNT_NOT_ALLOWED).
absl::StatusOr<std::string> ResolveAccount(absl::string_view requested,
                                           absl::string_view configured);

// When a campaign may start: within [now - past_tolerance, now +
// max_ahead]. `now` is the call's time (injected, so the rule is pure).
struct StartWindow {
  absl::Time now;
  absl::Duration past_tolerance = absl::Minutes(5);
  absl::Duration max_ahead = absl::Hours(730 * 24);
};

// Validates every field of `request` (all violations reported at once, as
// INVALID_ARGUMENT with reason INVALID_REQUEST and a BadRequest) and
// converts `start_time` to local time in `zone`. A start outside `window`,
// or at a local time that a DST change skips or repeats in `zone` (Connyline
// reads local times without an offset), is a violation.
absl::StatusOr<CampaignDraft> ValidateCreateRequest(
    const campaigns::v1::CreateSmsCampaignRequest& request,
    const absl::TimeZone& zone, const StartWindow& window);

// Parses Connyline's "YYYY-MM-DD HH:MM" strictly: exactly that shape, a
// real calendar minute (no 2026-02-30, no 24:00).
absl::StatusOr<absl::CivilMinute> ParseStartMinute(absl::string_view text);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_VALIDATE_H_
