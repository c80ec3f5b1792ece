#include "service/circuit_breaker.h"

#include "gtest/gtest.h"

namespace campaign_gateway {
namespace {

using State = CircuitBreaker::State;

class CircuitBreakerTest : public ::testing::Test {
 protected:
  void Fail(int times) {
    for (int i = 0; i < times; ++i) {
      auto admission = breaker_.Admit(now_);
      ASSERT_TRUE(admission.allowed);
      breaker_.Record(false, admission.probe, now_);
    }
  }

  absl::Time now_ = absl::FromUnixSeconds(1000);
  CircuitBreaker breaker_{
      {.failure_threshold = 3, .open_duration = absl::Seconds(5)}};
};

TEST_F(CircuitBreakerTest, OpensAfterThresholdFailuresInARow) {
  Fail(2);
  EXPECT_EQ(breaker_.state(), State::kClosed);
  Fail(1);
  EXPECT_EQ(breaker_.state(), State::kOpen);
  auto refused = breaker_.Admit(now_ + absl::Seconds(2));
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, absl::Seconds(3));
}

TEST_F(CircuitBreakerTest, ASuccessResetsTheCount) {
  Fail(2);
  breaker_.Record(true, false, now_);
  Fail(2);
  EXPECT_EQ(breaker_.state(), State::kClosed);
}

TEST_F(CircuitBreakerTest, LetsOneProbeThroughAndClosesOnItsSuccess) {
  Fail(3);
  now_ += absl::Seconds(5);
  auto probe = breaker_.Admit(now_);
  ASSERT_TRUE(probe.allowed);
  EXPECT_TRUE(probe.probe);
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
  // Others wait for the probe's verdict.
  EXPECT_FALSE(breaker_.Admit(now_).allowed);
  breaker_.Record(true, probe.probe, now_);
  EXPECT_EQ(breaker_.state(), State::kClosed);
  EXPECT_TRUE(breaker_.Admit(now_).allowed);
}

TEST_F(CircuitBreakerTest, AFailedProbeReopens) {
  Fail(3);
  now_ += absl::Seconds(6);
  auto probe = breaker_.Admit(now_);
  ASSERT_TRUE(probe.probe);
  breaker_.Record(false, true, now_);
  EXPECT_EQ(breaker_.state(), State::kOpen);
  EXPECT_FALSE(breaker_.Admit(now_ + absl::Seconds(4)).allowed);
  EXPECT_TRUE(breaker_.Admit(now_ + absl::Seconds(5)).allowed);
}

TEST_F(CircuitBreakerTest, AReleasedProbeLetsTheNextOneTry) {
  Fail(3);
  now_ += absl::Seconds(5);
  auto probe = breaker_.Admit(now_);
  breaker_.Release(probe.probe);  // e.g. the caller cancelled
  EXPECT_TRUE(breaker_.Admit(now_).probe);
}

TEST_F(CircuitBreakerTest, AStragglerSuccessDoesNotCloseAnOpenBreaker) {
  auto straggler = breaker_.Admit(now_);
  Fail(3);
  breaker_.Record(true, straggler.probe, now_);
  EXPECT_EQ(breaker_.state(), State::kOpen);
}

}  // namespace
}  // namespace campaign_gateway
