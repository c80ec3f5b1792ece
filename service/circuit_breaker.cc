#include "service/circuit_breaker.h"

namespace campaign_gateway {

CircuitBreaker::Admission CircuitBreaker::Admit(absl::Time now) {
  absl::MutexLock lock(&mu_);
  switch (state_) {
    case State::kClosed:
      return {};
    case State::kOpen:
      if (now < open_until_) {
        return {.allowed = false, .retry_after = open_until_ - now};
      }
      state_ = State::kHalfOpen;
      [[fallthrough]];
    case State::kHalfOpen:
      if (probe_in_flight_) {
        // Everyone else waits for the probe's verdict.
        return {.allowed = false, .retry_after = options_.open_duration};
      }
      probe_in_flight_ = true;
      return {.allowed = true, .probe = true};
  }
  return {};
}

void CircuitBreaker::Record(bool success, bool probe, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (probe) probe_in_flight_ = false;
  if (success) {
    consecutive_failures_ = 0;
    // Only the probe closes the breaker: a straggler admitted before it
    // opened says nothing about now.
    if (state_ == State::kClosed || probe) state_ = State::kClosed;
    return;
  }
  ++consecutive_failures_;
  if (probe || (state_ == State::kClosed &&
                consecutive_failures_ >= options_.failure_threshold)) {
    state_ = State::kOpen;
    open_until_ = now + options_.open_duration;
  }
}

void CircuitBreaker::Release(bool probe) {
  absl::MutexLock lock(&mu_);
  if (probe) probe_in_flight_ = false;
}

CircuitBreaker::State CircuitBreaker::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

}  // namespace campaign_gateway
