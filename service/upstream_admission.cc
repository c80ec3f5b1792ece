#include "service/upstream_admission.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "service/errors.h"

namespace campaign_gateway {

absl::Status CoolingDownError(absl::Duration left) {
  absl::Status status = MakeError(
      absl::StatusCode::kResourceExhausted,
      absl::StrCat(
          "Connyline asked to slow down (HTTP 429); no request is "
          "sent to it for another ",
          absl::FormatDuration(absl::Ceil(left, absl::Milliseconds(1)))),
      reason::kUpstreamRateLimited,
      {{std::string(metadata_key::kRequestSent), "false"}});
  AttachRetryInfo(status, left);
  return status;
}

absl::Status RateLimitedError(int64_t per_second, absl::Duration retry_after) {
  absl::Status status = MakeError(
      absl::StatusCode::kResourceExhausted,
      absl::StrCat("the gateway's limit of ", per_second,
                   " requests per second to Connyline for this account is "
                   "reached; retry shortly"),
      reason::kRateLimited,
      {{std::string(metadata_key::kRequestSent), "false"}});
  AttachRetryInfo(status, retry_after);
  return status;
}

void LocalAdmission::Admit(absl::Time /*deadline*/, Callback done) {
  absl::Status status;
  {
    const absl::Time now = options_.now();
    absl::MutexLock lock(&mu_);
    if (now < cool_until_) {
      status = CoolingDownError(cool_until_ - now);
    } else if (options_.rate_limit > 0) {
      const int64_t second = absl::ToUnixSeconds(now);
      if (second != window_) {
        window_ = second;
        sent_in_window_ = 0;
      }
      if (sent_in_window_ >= options_.rate_limit) {
        status = RateLimitedError(options_.rate_limit,
                                  absl::FromUnixSeconds(second + 1) - now);
      } else {
        ++sent_in_window_;
      }
    }
  }
  std::move(done)(std::move(status));
}

absl::Status LocalAdmission::CheckCoolDown() {
  const absl::Time now = options_.now();
  absl::MutexLock lock(&mu_);
  if (now < cool_until_) return CoolingDownError(cool_until_ - now);
  return absl::OkStatus();
}

void LocalAdmission::CoolDown(absl::Duration retry_after,
                              absl::AnyInvocable<void() &&> done) {
  const absl::Time until = options_.now() + retry_after;
  {
    absl::MutexLock lock(&mu_);
    if (until > cool_until_) cool_until_ = until;
  }
  std::move(done)();
}

}  // namespace campaign_gateway
