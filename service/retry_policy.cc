#include "service/retry_policy.h"

#include <algorithm>
#include <cmath>

namespace campaign_gateway {

bool IsRetryable(const HttpResult& result, bool idempotent) {
  if (const auto* error = std::get_if<TransportError>(&result)) {
    switch (error->kind) {
      case TransportError::Kind::kTimeout:  // the deadline is spent
      case TransportError::Kind::kCancelled:
      case TransportError::Kind::kResponseTooLarge:  // would fail again
      case TransportError::Kind::kTls:  // a certificate does not heal in ms
        return false;
      default:
        // Refused, unresolved, lost: safe again when nothing was sent,
        // and for a GET in any case.
        return idempotent || !error->request_may_have_been_sent;
    }
  }
  const auto& response = std::get<HttpResponse>(result);
  if (!idempotent) return false;
  // A Retry-After asks for more patience than a short backoff has.
  const bool transient = response.status == 502 || response.status == 503 ||
                         response.status == 504;
  return transient && !response.Header("retry-after").has_value();
}

absl::Duration Backoff(const RetryOptions& options, int retry,
                       absl::BitGenRef random) {
  const double cap =
      std::min(absl::ToDoubleSeconds(options.max_backoff),
               absl::ToDoubleSeconds(options.initial_backoff) *
                   std::pow(options.multiplier, std::max(0, retry)));
  if (cap <= 0) return absl::ZeroDuration();
  return absl::Seconds(absl::Uniform(random, 0.0, cap));
}

void RetryBudget::RecordRequest() {
  double current = tokens_.load();
  while (current < max_tokens_ &&
         !tokens_.compare_exchange_weak(
             current, std::min(max_tokens_, current + ratio_))) {
  }
}

bool RetryBudget::TryRetry() {
  double current = tokens_.load();
  while (current >= 1.0) {
    if (tokens_.compare_exchange_weak(current, current - 1.0)) return true;
  }
  return false;
}

}  // namespace campaign_gateway
