// Runs callbacks after a delay on one thread of its own, so that backoff
// between retries never blocks a gRPC or transport thread.
#ifndef CAMPAIGN_GATEWAY_SERVICE_TIMER_H_
#define CAMPAIGN_GATEWAY_SERVICE_TIMER_H_

#include <cstdint>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace campaign_gateway {

class TimerQueue {
 public:
  TimerQueue();
  // Runs every pending callback at once (callers see their retries end),
  // then joins the thread.
  ~TimerQueue();

  // Runs `callback` at `when` (or soon after), on the timer thread. Returns
  // an id for Cancel().
  uint64_t RunAt(absl::Time when, absl::AnyInvocable<void() &&> callback);
  // Drops the callback of `id` unless it already ran or is running; returns
  // whether it was dropped. Cancelled timers cost no memory.
  bool Cancel(uint64_t id);

 private:
  void Run();

  absl::Mutex mu_;
  // Keyed by (time, sequence) so equal times keep their order.
  std::map<std::pair<absl::Time, uint64_t>, absl::AnyInvocable<void() &&>>
      pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, absl::Time> due_times_ ABSL_GUARDED_BY(mu_);
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Counts every RunAt and Cancel, so the thread notices any change while it
  // waits (a cancel plus an earlier timer leave the size as it was).
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_TIMER_H_
