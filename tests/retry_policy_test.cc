#include "service/retry_policy.h"

#include "gtest/gtest.h"

namespace campaign_gateway {
namespace {

HttpResult Status(int status, bool retry_after = false) {
  HttpResponse response;
  response.status = status;
  if (retry_after) response.headers.emplace_back("retry-after", "5");
  return response;
}

HttpResult Failure(TransportError::Kind kind, bool sent) {
  return TransportError{kind, "x", sent};
}

using Kind = TransportError::Kind;

TEST(IsRetryableTest, GetsRetryUnavailableClassFailures) {
  EXPECT_TRUE(IsRetryable(Status(502), true));
  EXPECT_TRUE(IsRetryable(Status(503), true));
  EXPECT_TRUE(IsRetryable(Status(504), true));
  EXPECT_TRUE(IsRetryable(Failure(Kind::kConnectFailed, false), true));
  EXPECT_TRUE(IsRetryable(Failure(Kind::kConnectionLost, true), true));
}

TEST(IsRetryableTest, GetsDoNotRetryAnswersOrSpentDeadlines) {
  for (int status : {200, 201, 400, 401, 404, 429, 500}) {
    EXPECT_FALSE(IsRetryable(Status(status), true)) << status;
  }
  // Retry-After asks for more patience than a backoff has.
  EXPECT_FALSE(IsRetryable(Status(503, /*retry_after=*/true), true));
  EXPECT_FALSE(IsRetryable(Failure(Kind::kTimeout, true), true));
  EXPECT_FALSE(IsRetryable(Failure(Kind::kCancelled, false), true));
  EXPECT_FALSE(IsRetryable(Failure(Kind::kResponseTooLarge, true), true));
  // A certificate problem does not heal between retries.
  EXPECT_FALSE(IsRetryable(Failure(Kind::kTls, false), true));
  EXPECT_FALSE(IsRetryable(Failure(Kind::kTls, false), false));
}

TEST(IsRetryableTest, CreatesAreRetriedOnlyWhenNothingWasSent) {
  EXPECT_TRUE(IsRetryable(Failure(Kind::kConnectFailed, false), false));
  EXPECT_TRUE(IsRetryable(Failure(Kind::kNameResolution, false), false));
  EXPECT_FALSE(IsRetryable(Failure(Kind::kConnectionLost, true), false));
  EXPECT_FALSE(IsRetryable(Failure(Kind::kOther, true), false));
  EXPECT_FALSE(IsRetryable(Status(503), false));
  EXPECT_FALSE(IsRetryable(Status(502), false));
}

TEST(BackoffTest, IsFullJitterUnderAGrowingCap) {
  RetryOptions options{.initial_backoff = absl::Milliseconds(100),
                       .max_backoff = absl::Milliseconds(350),
                       .multiplier = 2};
  absl::BitGen random;
  absl::Duration longest[4];
  for (int retry = 0; retry < 4; ++retry) {
    longest[retry] = absl::ZeroDuration();
    for (int i = 0; i < 2000; ++i) {
      const absl::Duration d = Backoff(options, retry, random);
      ASSERT_GE(d, absl::ZeroDuration());
      longest[retry] = std::max(longest[retry], d);
    }
  }
  // Caps: 100, 200, 350 (max), 350 ms; with 2000 draws the longest comes
  // within 5% of the cap.
  EXPECT_LE(longest[0], absl::Milliseconds(100));
  EXPECT_GT(longest[0], absl::Milliseconds(95));
  EXPECT_LE(longest[1], absl::Milliseconds(200));
  EXPECT_GT(longest[1], absl::Milliseconds(190));
  EXPECT_LE(longest[3], absl::Milliseconds(350));
  EXPECT_GT(longest[3], absl::Milliseconds(330));
}

TEST(RetryBudgetTest, LimitsRetriesToARatioOfRequests) {
  RetryBudget budget(/*ratio=*/0.1, /*max_tokens=*/5);
  int retries = 0;
  // The initial tokens first...
  while (budget.TryRetry()) ++retries;
  EXPECT_EQ(retries, 5);
  // ...then one retry per ten requests.
  for (int i = 0; i < 100; ++i) {
    budget.RecordRequest();
    if (budget.TryRetry()) ++retries;
  }
  EXPECT_GE(retries, 5 + 9);
  EXPECT_LE(retries, 5 + 10);
}

TEST(RetryBudgetTest, NeverHoldsMoreThanItsMaximum) {
  RetryBudget budget(1.0, 3);
  for (int i = 0; i < 100; ++i) budget.RecordRequest();
  EXPECT_DOUBLE_EQ(budget.tokens(), 3);
}

}  // namespace
}  // namespace campaign_gateway
