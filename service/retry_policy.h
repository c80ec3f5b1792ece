// When a failed upstream request may be sent again, how long to wait, and a
// budget so that retries cannot multiply the load on an unhealthy upstream.
// Pure, apart from the budget's atomic counter.
#ifndef CAMPAIGN_GATEWAY_SERVICE_RETRY_POLICY_H_
#define CAMPAIGN_GATEWAY_SERVICE_RETRY_POLICY_H_

#include <atomic>

#include "absl/random/bit_gen_ref.h"
#include "absl/random/random.h"
#include "absl/time/time.h"
#include "service/http_types.h"

namespace campaign_gateway {

struct RetryOptions {
  int max_attempts = 3;  // the first try included
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(1);
  double multiplier = 2.0;
};

// Whether `result` may be retried.
// - Idempotent requests (GET): on a transport failure, except a timeout (the
//   deadline is spent), a cancellation, a TLS failure (a certificate does not
//   heal in milliseconds) or an answer over the size cap (it would fail
//   again); and on HTTP 502, 503 or 504 without Retry-After (which asks for
//   more patience than a short backoff).
// - Other requests (a create): only on a transport failure where no byte of
//   the request can have left this process (connection refused, name not
//   resolved); never on an HTTP answer.
bool IsRetryable(const HttpResult& result, bool idempotent);

// "Full jitter" exponential backoff: uniform in [0, min(max, initial *
// multiplier^retry)], for the `retry`-th retry (0-based).
absl::Duration Backoff(const RetryOptions& options, int retry,
                       absl::BitGenRef random);

// A token bucket shared by all calls: every first attempt deposits `ratio`
// tokens (up to `max_tokens`), every retry withdraws one. With ratio 0.1,
// retries add at most 10% to the load, however unhealthy the upstream.
class RetryBudget {
 public:
  RetryBudget(double ratio, double max_tokens)
      : ratio_(ratio), max_tokens_(max_tokens), tokens_(max_tokens) {}

  void RecordRequest();
  // Takes a token for a retry; false when the budget is spent.
  bool TryRetry();
  double tokens() const { return tokens_.load(); }

 private:
  const double ratio_;
  const double max_tokens_;
  std::atomic<double> tokens_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_RETRY_POLICY_H_
