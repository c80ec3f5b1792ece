// UpstreamAdmission shared through Redis by every replica of an account:
// one script per request checks Connyline's cool-down and counts the
// request in the current one-second window of --upstream_rate_limit (Redis's
// clock, so replicas' clocks do not matter). When Redis cannot answer, the
// per-process LocalAdmission decides instead (lists and unkeyed creates keep
// working; the limit is then per replica).
//
// Keys: campaign-gateway:{ACCOUNT}:cooldown (TTL: the cool-down) and
// campaign-gateway:{ACCOUNT}:rate:UNIX_SECOND (TTL 2 s).
#ifndef CAMPAIGN_GATEWAY_SERVICE_REDIS_ADMISSION_H_
#define CAMPAIGN_GATEWAY_SERVICE_REDIS_ADMISSION_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "service/redis_client.h"
#include "service/upstream_admission.h"

namespace campaign_gateway {

class RedisAdmission final : public UpstreamAdmission {
 public:
  struct Options {
    std::string account;
    int64_t rate_limit = 0;  // per second, all replicas together; 0: none
    // The longest the shared check may delay a request; then the local
    // fallback decides.
    absl::Duration timeout = absl::Milliseconds(100);
    // Observes a fallback to the local decision (metrics).
    std::function<void()> on_fallback;
  };
  // `redis` must outlive this.
  RedisAdmission(Options options, RedisClient& redis);

  void Admit(absl::Time deadline, Callback done) override;
  void CoolDown(absl::Duration retry_after,
                absl::AnyInvocable<void() &&> done) override;

 private:
  const Options options_;
  RedisClient& redis_;
  LocalAdmission local_;
  const std::string cooldown_key_;
  const std::string rate_key_prefix_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_REDIS_ADMISSION_H_
