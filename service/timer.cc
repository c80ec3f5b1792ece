#include "service/timer.h"

#include "absl/time/clock.h"

namespace campaign_gateway {

TimerQueue::TimerQueue() : thread_([this] { Run(); }) {}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

uint64_t TimerQueue::RunAt(absl::Time when,
                           absl::AnyInvocable<void() &&> callback) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = ++sequence_;
  ++changes_;
  pending_.emplace(std::make_pair(when, id), std::move(callback));
  due_times_.emplace(id, when);
  return id;
}

bool TimerQueue::Cancel(uint64_t id) {
  absl::AnyInvocable<void() &&> dropped;  // destroyed outside the lock
  absl::MutexLock lock(&mu_);
  auto it = due_times_.find(id);
  if (it == due_times_.end()) return false;
  auto node = pending_.find(std::make_pair(it->second, id));
  dropped = std::move(node->second);
  pending_.erase(node);
  due_times_.erase(it);
  ++changes_;
  return true;
}

void TimerQueue::Run() {
  while (true) {
    absl::AnyInvocable<void() &&> due;
    {
      absl::MutexLock lock(&mu_);
      while (due == nullptr) {
        if (stopping_ && pending_.empty()) return;
        const absl::Time now = absl::Now();
        if (!pending_.empty() &&
            (stopping_ || pending_.begin()->first.first <= now)) {
          due = std::move(pending_.begin()->second);
          due_times_.erase(pending_.begin()->first.second);
          pending_.erase(pending_.begin());
          break;
        }
        // Wake at the next due time, or when something new arrives.
        const absl::Time next = pending_.empty()
                                    ? absl::InfiniteFuture()
                                    : pending_.begin()->first.first;
        const uint64_t seen = changes_;
        auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || changes_ != seen;
        };
        mu_.AwaitWithDeadline(absl::Condition(&changed), next);
      }
    }
    std::move(due)();
  }
}

}  // namespace campaign_gateway
