#include "service/upstream_admission.h"

#include <optional>

#include "gtest/gtest.h"
#include "service/errors.h"

namespace campaign_gateway {
namespace {

class LocalAdmissionTest : public ::testing::Test {
 protected:
  LocalAdmission::Options Options(int64_t rate_limit) {
    return {.rate_limit = rate_limit, .now = [this] { return now_; }};
  }
  static absl::Status Admit(UpstreamAdmission& admission) {
    std::optional<absl::Status> out;
    admission.Admit(absl::InfiniteFuture(),
                    [&out](absl::Status s) { out = std::move(s); });
    EXPECT_TRUE(out.has_value());  // the local one answers inline
    return out.value_or(absl::InternalError("no answer"));
  }

  absl::Time now_ = absl::FromUnixSeconds(1000) + absl::Milliseconds(250);
};

TEST_F(LocalAdmissionTest, WithoutLimitsEverythingGoes) {
  LocalAdmission admission(Options(0));
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(Admit(admission).ok());
}

TEST_F(LocalAdmissionTest, AtMostNPerSecondThenTheNextWindow) {
  LocalAdmission admission(Options(3));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Admit(admission).ok());
  const absl::Status refused = Admit(admission);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(GetErrorInfo(refused).has_value());
  EXPECT_EQ(GetErrorInfo(refused)->reason(), "RATE_LIMITED");
  EXPECT_EQ(GetErrorInfo(refused)->metadata().at("request_sent"), "false");
  ASSERT_TRUE(GetRetryInfo(refused).has_value());
  // 750 ms remain of this second.
  EXPECT_EQ(GetRetryInfo(refused)->retry_delay().nanos(), 750'000'000);
  now_ += absl::Milliseconds(750);
  EXPECT_TRUE(Admit(admission).ok());
}

TEST_F(LocalAdmissionTest, ACoolDownHoldsEverythingBackUntilItEnds) {
  LocalAdmission admission(Options(0));
  bool recorded = false;
  admission.CoolDown(absl::Seconds(10), [&recorded] { recorded = true; });
  EXPECT_TRUE(recorded);
  now_ += absl::Seconds(4);
  const absl::Status held = Admit(admission);
  EXPECT_EQ(held.code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(GetErrorInfo(held).has_value());
  EXPECT_EQ(GetErrorInfo(held)->reason(), "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(GetErrorInfo(held)->metadata().at("request_sent"), "false");
  ASSERT_TRUE(GetRetryInfo(held).has_value());
  EXPECT_EQ(GetRetryInfo(held)->retry_delay().seconds(), 6);
  // A shorter cool-down does not shorten it.
  admission.CoolDown(absl::Seconds(1), [] {});
  now_ += absl::Seconds(5);
  EXPECT_FALSE(Admit(admission).ok());
  now_ += absl::Seconds(1);
  EXPECT_TRUE(Admit(admission).ok());
}

}  // namespace
}  // namespace campaign_gateway
