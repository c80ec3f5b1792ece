// Step 5 of the flow: translate Connyline's answer back into the gRPC
// response, or into a precise error (via status_mapping.h). Pure; no I/O.
#ifndef CAMPAIGN_GATEWAY_SERVICE_REST_RESPONSE_H_
#define CAMPAIGN_GATEWAY_SERVICE_REST_RESPONSE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.pb.h"
#include "service/http_types.h"

namespace campaign_gateway {

// lists/get-all: 2xx with {"data": [{"list_id": int, "name": string}, ...]}
// (unknown fields tolerated; "success": false is treated as a 400).
absl::StatusOr<campaigns::v1::ListListsResponse> ParseListListsResponse(
    const HttpResponse& response);

// campaigns/sms/create: 2xx with {"success": true, "message": ...,
// "data": {...}}; the Y-m-d H:i:s times are read in `zone`, whose name the
// campaign's time_zone carries.
absl::StatusOr<campaigns::v1::CreateSmsCampaignResponse>
ParseCreateCampaignResponse(const HttpResponse& response,
                            const absl::TimeZone& zone);

// Connyline's answers are parsed only when their arrays and objects nest at
// most this deep: a hostile or broken upstream cannot make any later
// recursive walk of the document overflow the stack.
inline constexpr int kMaxJsonDepth = 64;

// True when `text`, read as JSON, nests arrays and objects at most
// `max_depth` deep (brackets inside strings do not count). Pure, O(n), no
// recursion; says nothing else about validity.
bool JsonDepthWithin(absl::string_view text, int max_depth);

// Reads Connyline's "YYYY-MM-DD HH:MM:SS" as local time in `zone`.
absl::StatusOr<absl::Time> ParseConnylineTime(absl::string_view text,
                                              const absl::TimeZone& zone);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_REST_RESPONSE_H_
