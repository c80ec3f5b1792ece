// What only the shared store does: leases that outlive a dead leader, the
// key layout, and failing closed when Redis cannot answer. The behaviour all
// stores share is in idempotency_store_contract_test.cc.
#include "service/redis_idempotency_store.h"

#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "service/errors.h"
#include "service/redis_client.h"
#include "service/timer.h"
#include "tests/support/redis_server.h"

namespace campaign_gateway {
namespace {

using Outcome = IdempotencyStore::Outcome;
using Role = IdempotencyStore::Role;
using testing_util::RedisServer;

class RedisIdempotencyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.status().ok()) << server_.status();
    RedisOptions options;
    options.port = server_.port();
    options.password = server_.password();
    options.command_timeout = absl::Milliseconds(300);
    redis_ = std::make_unique<RedisClient>(options);
    ASSERT_TRUE(redis_->Start(absl::Seconds(5)).ok());
    store_ = std::make_unique<RedisIdempotencyStore>(
        RedisIdempotencyStore::Options{.account = "acme",
                                       .ttl = absl::Minutes(5)},
        *redis_, timers_);
  }
  void TearDown() override { redis_->Stop(); }

  IdempotencyStore::Claim Claim(const std::string& key,
                                absl::Duration lease = absl::Seconds(10)) {
    return {.key = key,
            .fingerprint = "f",
            .deadline = absl::Now() + absl::Seconds(10),
            .lease_until = absl::Now() + lease};
  }
  Outcome Join(IdempotencyStore::Claim claim) {
    absl::Notification done;
    Outcome out;
    store_->Join(std::move(claim), [&](Outcome o) {
      out = std::move(o);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(15)));
    return out;
  }
  absl::StatusOr<RedisReply> Command(std::vector<std::string> argv) {
    absl::Notification done;
    absl::StatusOr<RedisReply> out;
    redis_->Command(std::move(argv), absl::Now() + absl::Seconds(5),
                    [&](absl::StatusOr<RedisReply> r) {
                      out = std::move(r);
                      done.Notify();
                    });
    done.WaitForNotification();
    return out;
  }

  RedisServer server_;
  TimerQueue timers_;
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<RedisIdempotencyStore> store_;
};

TEST_F(RedisIdempotencyStoreTest, AnExpiredLeaseMeansTheOutcomeIsUnknown) {
  ASSERT_EQ(Join(Claim("k", absl::Milliseconds(300))).role, Role::kLeader);
  // The leader never finishes (its process died). A repeat waits for the
  // lease, then gets OUTCOME_UNKNOWN, and so does every later repeat.
  const absl::Time started = absl::Now();
  const Outcome waited = Join(Claim("k"));
  EXPECT_GE(absl::Now() - started, absl::Milliseconds(200));
  ASSERT_EQ(waited.role, Role::kReplay);
  const absl::Status status = waited.result.status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(GetErrorInfo(status).has_value());
  EXPECT_EQ(GetErrorInfo(status)->reason(), "OUTCOME_UNKNOWN");
  EXPECT_EQ(GetErrorInfo(status)->metadata().at("request_sent"), "unknown");
  const Outcome later = Join(Claim("k"));
  EXPECT_EQ(later.role, Role::kReplay);
  EXPECT_EQ(later.result.status().code(), absl::StatusCode::kAborted);
}

TEST_F(RedisIdempotencyStoreTest, ALateLeaderDoesNotOverwriteTheVerdict) {
  const Outcome leader = Join(Claim("k", absl::Milliseconds(200)));
  ASSERT_EQ(leader.role, Role::kLeader);
  absl::SleepFor(absl::Milliseconds(400));
  ASSERT_EQ(Join(Claim("k")).result.status().code(),
            absl::StatusCode::kAborted);
  // Callers were told "unknown": a late success must not change the story.
  campaigns::v1::CreateSmsCampaignResponse late;
  late.set_message("late");
  store_->Finish("k", leader.lease, late, true);
  EXPECT_EQ(Join(Claim("k")).result.status().code(),
            absl::StatusCode::kAborted);
}

TEST_F(RedisIdempotencyStoreTest, KeysAreNamespacedAndExpire) {
  const Outcome leader = Join(Claim("id-1", absl::Seconds(3)));
  ASSERT_EQ(leader.role, Role::kLeader);
  EXPECT_EQ(store_->RecordKey("id-1"), "campaign-gateway:{acme}:idem:id-1");
  EXPECT_EQ(store_->LeaseKey("id-1"), "campaign-gateway:{acme}:lease:id-1");
  auto lease_ttl = Command({"PTTL", store_->LeaseKey("id-1")});
  ASSERT_TRUE(lease_ttl.ok());
  EXPECT_GT(lease_ttl->integer(), 0);
  EXPECT_LE(lease_ttl->integer(), 3000);

  campaigns::v1::CreateSmsCampaignResponse done;
  done.set_message("created");
  store_->Finish("id-1", leader.lease, done, true);
  auto record_ttl = Command({"PTTL", store_->RecordKey("id-1")});
  ASSERT_TRUE(record_ttl.ok());
  EXPECT_GT(record_ttl->integer(), absl::ToInt64Milliseconds(absl::Minutes(4)));
  EXPECT_LE(record_ttl->integer(), absl::ToInt64Milliseconds(absl::Minutes(5)));
  // The lease is released with the result.
  auto lease = Command({"EXISTS", store_->LeaseKey("id-1")});
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->integer(), 0);
  EXPECT_EQ(store_->writes_in_flight(), 0);
}

TEST_F(RedisIdempotencyStoreTest, ALocalLeaderWakesItsFollowersAtOnce) {
  // Polls so slow that only the wake-up can answer in time.
  RedisIdempotencyStore slow_polls({.account = "acme",
                                    .poll_min = absl::Seconds(30),
                                    .poll_max = absl::Seconds(30)},
                                   *redis_, timers_);
  store_.reset();
  absl::Notification leader_done;
  Outcome leader;
  slow_polls.Join(Claim("k"), [&](Outcome o) {
    leader = std::move(o);
    leader_done.Notify();
  });
  ASSERT_TRUE(leader_done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_EQ(leader.role, Role::kLeader);
  absl::Notification follower_done;
  Outcome follower;
  slow_polls.Join(Claim("k"), [&](Outcome o) {
    follower = std::move(o);
    follower_done.Notify();
  });
  EXPECT_FALSE(follower_done.WaitForNotificationWithTimeout(
      absl::Milliseconds(200)));  // it waits
  campaigns::v1::CreateSmsCampaignResponse created;
  created.set_message("created");
  const absl::Time finished = absl::Now();
  slow_polls.Finish("k", leader.lease, created, true);
  ASSERT_TRUE(follower_done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_LT(absl::Now() - finished, absl::Seconds(2));
  ASSERT_EQ(follower.role, Role::kReplay);
  EXPECT_EQ(follower.result->message(), "created");
  redis_->Stop();  // before `slow_polls` and the timers go
}

TEST_F(RedisIdempotencyStoreTest, AnUnreachableRedisFailsClaimsClosed) {
  server_.Stop();
  const absl::Time started = absl::Now();
  const Outcome outcome = Join(Claim("k"));
  EXPECT_LT(absl::Now() - started, absl::Seconds(2));
  EXPECT_EQ(outcome.role, Role::kUnavailable);
  const absl::Status status = outcome.result.status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(GetErrorInfo(status).has_value());
  EXPECT_EQ(GetErrorInfo(status)->reason(), "IDEMPOTENCY_STORE_UNAVAILABLE");
  EXPECT_EQ(GetErrorInfo(status)->metadata().at("request_sent"), "false");
  EXPECT_TRUE(GetRetryInfo(status).has_value());
}

}  // namespace
}  // namespace campaign_gateway
