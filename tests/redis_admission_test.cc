// The admission every replica shares through Redis: Connyline's cool-down
// and the rate limit, and the per-process fallback while Redis is away.
#include "service/redis_admission.h"

#include <atomic>
#include <memory>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "service/errors.h"
#include "service/redis_client.h"
#include "tests/support/redis_server.h"

namespace campaign_gateway {
namespace {

using testing_util::RedisServer;

class RedisAdmissionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.status().ok()) << server_.status();
  }
  void TearDown() override {
    for (auto& client : clients_) client->Stop();
  }
  // One "replica": its own connection and admission.
  std::unique_ptr<RedisAdmission> Replica(int64_t rate_limit,
                                          std::string account = "acme") {
    RedisOptions options;
    options.port = server_.port();
    options.password = server_.password();
    options.command_timeout = absl::Milliseconds(300);
    auto client = std::make_unique<RedisClient>(options);
    EXPECT_TRUE(client->Start(absl::Seconds(5)).ok());
    auto admission = std::make_unique<RedisAdmission>(
        RedisAdmission::Options{.account = std::move(account),
                                .rate_limit = rate_limit,
                                .on_fallback = [this] { ++fallbacks_; }},
        *client);
    clients_.push_back(std::move(client));
    return admission;
  }
  static absl::Status Admit(UpstreamAdmission& admission) {
    absl::Notification done;
    absl::Status out;
    admission.Admit(absl::Now() + absl::Seconds(5), [&](absl::Status s) {
      out = std::move(s);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return out;
  }

  RedisServer server_;
  std::vector<std::unique_ptr<RedisClient>> clients_;
  std::atomic<int> fallbacks_{0};
};

TEST_F(RedisAdmissionTest, ACoolDownSeenByOneHoldsEveryReplica) {
  auto a = Replica(0);
  auto b = Replica(0);
  auto other_account = Replica(0, "other");
  ASSERT_TRUE(Admit(*b).ok());
  absl::Notification recorded;
  a->CoolDown(absl::Seconds(20), [&recorded] { recorded.Notify(); });
  ASSERT_TRUE(recorded.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_FALSE(Admit(*a).ok());
  const absl::Status held = Admit(*b);
  EXPECT_EQ(held.code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(GetErrorInfo(held).has_value());
  EXPECT_EQ(GetErrorInfo(held)->reason(), "UPSTREAM_RATE_LIMITED");
  ASSERT_TRUE(GetRetryInfo(held).has_value());
  EXPECT_GE(GetRetryInfo(held)->retry_delay().seconds(), 18);
  // A shorter one does not shorten it; another account is not affected.
  absl::Notification shorter;
  a->CoolDown(absl::Seconds(1), [&shorter] { shorter.Notify(); });
  ASSERT_TRUE(shorter.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_GE(GetRetryInfo(Admit(*b))->retry_delay().seconds(), 18);
  EXPECT_TRUE(Admit(*other_account).ok());
  EXPECT_EQ(fallbacks_.load(), 0);
}

TEST_F(RedisAdmissionTest, TheRateLimitIsSummedOverReplicas) {
  constexpr int kLimit = 10;
  std::vector<std::unique_ptr<RedisAdmission>> replicas;
  replicas.reserve(3);
  for (int i = 0; i < 3; ++i) replicas.push_back(Replica(kLimit));
  // Start just after a second turns, so 30 checks fit in one window.
  const absl::Time next_second =
      absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 1);
  absl::SleepFor(next_second + absl::Milliseconds(20) - absl::Now());
  int admitted = 0;
  int limited = 0;
  const absl::Time started = absl::Now();
  for (int i = 0; i < 30; ++i) {
    const absl::Status s = Admit(*replicas[i % 3]);
    if (s.ok()) {
      ++admitted;
    } else {
      ++limited;
      EXPECT_EQ(GetErrorInfo(s)->reason(), "RATE_LIMITED");
      EXPECT_EQ(GetErrorInfo(s)->metadata().at("request_sent"), "false");
    }
  }
  if (absl::Now() - started < absl::Milliseconds(900)) {
    EXPECT_EQ(admitted, kLimit);  // one window, all replicas together
  } else {
    EXPECT_LE(admitted, 2 * kLimit);  // a very slow machine: two windows
  }
  EXPECT_EQ(admitted + limited, 30);
}

TEST_F(RedisAdmissionTest, WithoutRedisTheReplicaDecidesAlone) {
  auto a = Replica(2);
  server_.Stop();
  // Wait until the client notices.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (clients_[0]->connected() && absl::Now() < give_up) {
    (void)Admit(*a);
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_FALSE(clients_[0]->connected());
  fallbacks_ = 0;
  // The local limit still holds, and the answer comes at once.
  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += Admit(*a).ok() ? 1 : 0;
  EXPECT_LE(admitted, 4);  // 2 per second, within at most two windows
  EXPECT_GE(admitted, 1);
  EXPECT_EQ(fallbacks_.load(), 10);
}

}  // namespace
}  // namespace campaign_gateway
