// Between translation and transport: the guards every upstream request
// passes. A cap on requests in flight (beyond it callers are refused at once,
// nothing queues), the account's admission (Connyline's 429 cool-down and
// the rate limit, shared by replicas), a circuit breaker, and retries with
// backoff inside the caller's deadline, paid for from a shared retry budget.
#ifndef CAMPAIGN_GATEWAY_SERVICE_UPSTREAM_CLIENT_H_
#define CAMPAIGN_GATEWAY_SERVICE_UPSTREAM_CLIENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "service/call_context.h"
#include "service/circuit_breaker.h"
#include "service/http_types.h"
#include "service/retry_policy.h"
#include "service/timer.h"
#include "service/upstream_admission.h"

namespace campaign_gateway {

struct UpstreamOptions {
  int max_inflight = 4096;
  RetryOptions retry;
  double retry_budget_ratio = 0.2;  // retries ≤ 20% of requests
  double retry_budget_max_tokens = 100;
  CircuitBreaker::Options breaker;
  // A timeout counts against Connyline in the breaker only when the request
  // had at least this long (the gateway's --default_timeout) or ran under a
  // gateway-owned deadline: a caller's own short deadline says nothing
  // about Connyline's health, and must not open the breaker for everybody.
  absl::Duration breaker_min_timeout = absl::Seconds(10);
  // Asked before every attempt (the 429 cool-down and the rate limit);
  // null: none. Must outlive the client.
  UpstreamAdmission* admission = nullptr;
  // Optional observers (metrics): refusals and retries ("overloaded",
  // "circuit_open", "retry"), and the breaker's state after each answer.
  std::function<void(absl::string_view event)> on_event;
  std::function<void(bool open)> on_breaker_state;
};

// The outcome of Send(): Connyline's answer, or an error, and whether any
// byte of the request may have reached Connyline (false: safe to send again).
struct UpstreamResult {
  absl::StatusOr<HttpResponse> response;
  bool request_may_have_been_sent = true;
};

class UpstreamClient {
 public:
  using Callback = absl::AnyInvocable<void(UpstreamResult) &&>;
  struct SendOptions {
    // Idempotent requests are retried on any UNAVAILABLE-class failure;
    // others only when nothing was sent.
    bool idempotent = false;
    // Whether the call's cancellation aborts the request. A create with an
    // idempotency key runs on, so that a retry learns its outcome.
    bool abort_on_cancel = true;
    // A gateway-owned deadline replacing the caller's (a keyed create that
    // runs on after its caller left); its timeouts count in the breaker.
    std::optional<absl::Time> deadline;
  };

  // `transport` and `timers` must outlive the client.
  UpstreamClient(UpstreamOptions options, HttpTransport& transport,
                 TimerQueue& timers);

  // Runs `done` exactly once: inline when refused at once (overload, open
  // breaker), else on a transport or timer thread.
  void Send(HttpRequest request, std::shared_ptr<CallContext> context,
            SendOptions options, Callback done);

  int inflight() const { return inflight_.load(); }
  CircuitBreaker::State breaker_state() const { return breaker_.state(); }
  uint64_t retries() const { return retries_.load(); }

 private:
  struct Call;
  void Attempt(std::shared_ptr<Call> call);
  void Dispatch(std::shared_ptr<Call> call);
  void Refuse(std::shared_ptr<Call> call, absl::Status status);
  void OnResult(std::shared_ptr<Call> call, bool probe, absl::Time started,
                HttpResult result);
  // Whether `result` says something about Connyline's health.
  bool CountsInBreaker(const Call& call, absl::Time started,
                       const HttpResult& result) const;
  void Finish(std::shared_ptr<Call> call, HttpResult result);
  void Notify(absl::string_view event);

  const UpstreamOptions options_;
  HttpTransport& transport_;
  TimerQueue& timers_;
  CircuitBreaker breaker_;
  RetryBudget budget_;
  std::atomic<int> inflight_{0};
  std::atomic<uint64_t> retries_{0};
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_UPSTREAM_CLIENT_H_
