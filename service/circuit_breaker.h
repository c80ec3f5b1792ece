// A circuit breaker for the upstream: after `failure_threshold` failures in
// a row it opens and callers fail fast for `open_duration`; then one probe
// request is let through (half-open), and its outcome closes the breaker or
// opens it again. Time is passed in, so it is tested without sleeping.
#ifndef CAMPAIGN_GATEWAY_SERVICE_CIRCUIT_BREAKER_H_
#define CAMPAIGN_GATEWAY_SERVICE_CIRCUIT_BREAKER_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace campaign_gateway {

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };
  struct Options {
    int failure_threshold = 5;
    absl::Duration open_duration = absl::Seconds(5);
  };
  // The answer to "may I call the upstream now?".
  struct Admission {
    bool allowed = true;
    bool probe = false;          // this call is the half-open probe
    absl::Duration retry_after;  // when refused: until the next probe
  };

  explicit CircuitBreaker(Options options) : options_(options) {}

  Admission Admit(absl::Time now);
  // The outcome of an admitted call (`probe` as Admit said).
  void Record(bool success, bool probe, absl::Time now);
  // An admitted call that ended without telling anything (e.g. cancelled).
  void Release(bool probe);

  State state() const;

 private:
  const Options options_;
  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kClosed;
  int consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time open_until_ ABSL_GUARDED_BY(mu_);
  bool probe_in_flight_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_CIRCUIT_BREAKER_H_
