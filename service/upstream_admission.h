// Account-wide limits on what reaches Connyline, asked before every attempt
// leaves: Connyline's own cool-down (a 429 with Retry-After) and the
// gateway's --upstream_rate_limit. LocalAdmission keeps them per process;
// RedisAdmission (redis_admission.h) shares them between every replica that
// serves the account.
#ifndef CAMPAIGN_GATEWAY_SERVICE_UPSTREAM_ADMISSION_H_
#define CAMPAIGN_GATEWAY_SERVICE_UPSTREAM_ADMISSION_H_

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace campaign_gateway {

class UpstreamAdmission {
 public:
  using Callback = absl::AnyInvocable<void(absl::Status) &&>;
  virtual ~UpstreamAdmission() = default;

  // OK: the request may leave now (and counts against the rate limit).
  // Else RESOURCE_EXHAUSTED with RetryInfo and request_sent=false. Runs
  // `done` exactly once, inline or on another thread, by `deadline`.
  virtual void Admit(absl::Time deadline, Callback done) = 0;
  // Connyline answered 429 with Retry-After: hold every request back that
  // long (a shorter cool-down never shortens a longer one). Runs `done`
  // once it is recorded (or could not be), inline or on another thread.
  virtual void CoolDown(absl::Duration retry_after,
                        absl::AnyInvocable<void() &&> done) = 0;
};

// The refusals, shared by every implementation.
absl::Status CoolingDownError(absl::Duration left);
absl::Status RateLimitedError(int64_t per_second, absl::Duration retry_after);

// Per process: the cool-down and fixed one-second windows of at most
// `rate_limit` requests (0: no limit).
class LocalAdmission final : public UpstreamAdmission {
 public:
  struct Options {
    int64_t rate_limit = 0;
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };
  explicit LocalAdmission(Options options) : options_(std::move(options)) {}

  void Admit(absl::Time deadline, Callback done) override;
  void CoolDown(absl::Duration retry_after,
                absl::AnyInvocable<void() &&> done) override;
  // The cool-down alone: CoolingDownError() while one lasts, else OK.
  absl::Status CheckCoolDown();

 private:
  const Options options_;
  absl::Mutex mu_;
  absl::Time cool_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t window_ ABSL_GUARDED_BY(mu_) = 0;  // Unix second
  int64_t sent_in_window_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_UPSTREAM_ADMISSION_H_
