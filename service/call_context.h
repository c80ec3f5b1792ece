// What the gRPC layer knows about one call and hands down the flow: its
// deadline, its cancellation, headers to propagate upstream; and what the
// flow reports back up for logs and metrics. Shared by the reactor and the
// upstream callback, which may run on different threads.
#ifndef CAMPAIGN_GATEWAY_SERVICE_CALL_CONTEXT_H_
#define CAMPAIGN_GATEWAY_SERVICE_CALL_CONTEXT_H_

#include <atomic>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/http_types.h"

namespace campaign_gateway {

// A one-shot cancellation signal with a replaceable hook.
class Cancellation {
 public:
  // Runs `hook` at once if already cancelled, else on Cancel().
  void SetHook(absl::AnyInvocable<void()> hook) {
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        hook_ = std::move(hook);
        return;
      }
    }
    hook();
  }
  void ClearHook() {
    absl::MutexLock lock(&mu_);
    hook_ = nullptr;
  }
  void Cancel() {
    absl::AnyInvocable<void()> hook;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
      cancelled_ = true;
      hook = std::move(hook_);
    }
    if (hook) hook();
  }
  bool cancelled() const {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::AnyInvocable<void()> hook_ ABSL_GUARDED_BY(mu_);
};

// What happened upstream, for the RPC's log line and metrics.
struct UpstreamOutcome {
  int http_status = 0;  // 0: no HTTP answer (or no upstream call)
  int attempts = 0;
  absl::Duration latency;  // all attempts together
};

struct CallContext {
  absl::Time deadline = absl::InfiniteFuture();
  // Sent on every upstream request of this call (x-request-id, traceparent).
  HttpHeaders propagated_headers;
  Cancellation cancellation;
  // The authenticated caller's principal (its client certificate's first URI
  // SAN, else DNS SAN); empty without client certificates. Scopes
  // idempotency keys.
  std::string caller;

  void RecordUpstream(int http_status, absl::Duration latency) {
    absl::MutexLock lock(&mu);
    upstream.http_status = http_status;
    upstream.latency += latency;
    ++upstream.attempts;
  }
  UpstreamOutcome upstream_outcome() const {
    absl::MutexLock lock(&mu);
    return upstream;
  }
  // The answer is a remembered one (a repeated request_id), not the result
  // of a request this call sent.
  void MarkReplayed() { replayed_.store(true); }
  bool replayed() const { return replayed_.load(); }

 private:
  mutable absl::Mutex mu;
  UpstreamOutcome upstream ABSL_GUARDED_BY(mu);
  std::atomic<bool> replayed_{false};
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_CALL_CONTEXT_H_
