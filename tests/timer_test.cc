#include "service/timer.h"

#include <memory>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace campaign_gateway {
namespace {

TEST(TimerQueueTest, RunsCallbacksInTimeOrderNotBefore) {
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification done;
  const absl::Time start = absl::Now();
  absl::Time ran_at[3];
  // Last, so it is destroyed (and its thread joined) first.
  TimerQueue timers;
  for (int i : {2, 0, 1}) {
    timers.RunAt(start + absl::Milliseconds(20 * (i + 1)), [&, i] {
      absl::MutexLock lock(&mu);
      ran_at[i] = absl::Now();
      order.push_back(i);
      if (order.size() == 3) done.Notify();
    });
  }
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_GE(ran_at[i], start + absl::Milliseconds(20 * (i + 1)));
  }
}

TEST(TimerQueueTest, DestructionRunsWhatIsPending) {
  int ran = 0;
  {
    TimerQueue timers;
    timers.RunAt(absl::Now() + absl::Hours(1), [&] { ++ran; });
  }
  EXPECT_EQ(ran, 1);
}

TEST(TimerQueueTest, CancelledCallbacksNeverRunAndAreFreed) {
  auto owned = std::make_shared<int>(0);
  int ran = 0;
  {
    TimerQueue timers;
    const uint64_t id =
        timers.RunAt(absl::Now() + absl::Hours(1), [&ran, owned] { ++ran; });
    EXPECT_EQ(owned.use_count(), 2);
    EXPECT_TRUE(timers.Cancel(id));
    EXPECT_EQ(owned.use_count(), 1);  // the capture is gone at once
    EXPECT_FALSE(timers.Cancel(id));  // a second cancel is a no-op
  }
  EXPECT_EQ(ran, 0);  // not even at destruction
}

TEST(TimerQueueTest, CancelAfterRunningReturnsFalse) {
  TimerQueue timers;
  absl::Notification ran;
  const uint64_t id = timers.RunAt(absl::Now(), [&ran] { ran.Notify(); });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(timers.Cancel(id));
}

// A cancel followed at once by an earlier timer leaves as many timers
// pending as before: the waiting thread must still wake for the new one
// (it once slept on to the cancelled timer's time, holding a retry for
// seconds).
TEST(TimerQueueTest, AnEarlierTimerAfterACancelIsNotMissed) {
  TimerQueue timers;
  for (int i = 0; i < 200; ++i) {
    const uint64_t far = timers.RunAt(absl::Now() + absl::Hours(1), [] {});
    absl::SleepFor(absl::Microseconds(500));  // the thread waits for `far`
    absl::Notification ran;
    ASSERT_TRUE(timers.Cancel(far));
    timers.RunAt(absl::Now() + absl::Milliseconds(1), [&ran] { ran.Notify(); });
    ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(5)))
        << "iteration " << i;
  }
}

}  // namespace
}  // namespace campaign_gateway
