// The behaviour every IdempotencyStore shares, run against each store: the
// in-memory one and the Redis one (on a real redis-server on loopback).
#include <atomic>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "service/errors.h"
#include "service/idempotency_store.h"
#include "tests/support/store_fixture.h"

namespace campaign_gateway {
namespace {

using Outcome = IdempotencyStore::Outcome;
using Result = IdempotencyStore::Result;
using Role = IdempotencyStore::Role;
using testing_util::StoreKind;

campaigns::v1::CreateSmsCampaignResponse Response(const std::string& message) {
  campaigns::v1::CreateSmsCampaignResponse response;
  response.set_message(message);
  return response;
}

// One Join whose outcome may come later (a follower's does).
class PendingJoin {
 public:
  PendingJoin(IdempotencyStore& store, IdempotencyStore::Claim claim) {
    store.Join(std::move(claim), [this](Outcome outcome) {
      outcome_ = std::move(outcome);
      done_.Notify();
    });
  }
  bool Done(absl::Duration wait) {
    return done_.WaitForNotificationWithTimeout(wait);
  }
  const Outcome& outcome() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return outcome_;
  }

 private:
  absl::Notification done_;
  Outcome outcome_;
};

class IdempotencyStoreContractTest
    : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    store_ = fixture_.Make(GetParam(), "acme");
    ASSERT_NE(store_, nullptr);
  }

  IdempotencyStore::Claim Claim(const std::string& key,
                                const std::string& fingerprint = "f") {
    return {.key = key,
            .fingerprint = fingerprint,
            .deadline = absl::Now() + absl::Seconds(10),
            .lease_until = absl::Now() + absl::Seconds(10)};
  }
  Outcome JoinNow(const std::string& key, const std::string& fp = "f") {
    PendingJoin join(*store_, Claim(key, fp));
    return join.outcome();
  }

  // The fixture goes first: its Redis clients stop, answering what is still
  // pending, while the store those answers reach is alive.
  std::unique_ptr<IdempotencyStore> store_;
  testing_util::StoreFixture fixture_;
};

TEST_P(IdempotencyStoreContractTest, TheFirstLeadsAndRepeatsGetItsResult) {
  const Outcome leader = JoinNow("k");
  ASSERT_EQ(leader.role, Role::kLeader);
  PendingJoin concurrent(*store_, Claim("k"));
  EXPECT_FALSE(concurrent.Done(absl::Milliseconds(100)));  // waits
  store_->Finish("k", leader.lease, Response("created"), /*remember=*/true);
  ASSERT_EQ(concurrent.outcome().role, Role::kReplay);
  ASSERT_TRUE(concurrent.outcome().result.ok());
  EXPECT_EQ(concurrent.outcome().result->message(), "created");

  const Outcome later = JoinNow("k");
  ASSERT_EQ(later.role, Role::kReplay);
  ASSERT_TRUE(later.result.ok());
  EXPECT_EQ(later.result->message(), "created");
}

TEST_P(IdempotencyStoreContractTest, OtherContentUnderTheSameKeyConflicts) {
  const Outcome leader = JoinNow("k", "f1");
  ASSERT_EQ(leader.role, Role::kLeader);
  EXPECT_EQ(JoinNow("k", "f2").role, Role::kConflict);
  store_->Finish("k", leader.lease, Response("x"), true);
  EXPECT_EQ(JoinNow("k", "f2").role, Role::kConflict);
  EXPECT_EQ(JoinNow("k", "f1").role, Role::kReplay);
}

TEST_P(IdempotencyStoreContractTest, FinalErrorsAreRememberedWithDetails) {
  const Outcome leader = JoinNow("k");
  ASSERT_EQ(leader.role, Role::kLeader);
  store_->Finish("k", leader.lease,
                 MakeError(absl::StatusCode::kInvalidArgument, "rejected",
                           reason::kUpstreamRejectedRequest),
                 true);
  const Outcome repeat = JoinNow("k");
  ASSERT_EQ(repeat.role, Role::kReplay);
  EXPECT_EQ(repeat.result.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(GetErrorInfo(repeat.result.status()).has_value());
  EXPECT_EQ(GetErrorInfo(repeat.result.status())->reason(),
            "UPSTREAM_REJECTED_REQUEST");
}

TEST_P(IdempotencyStoreContractTest, AForgottenKeyLeadsAgainWaitersAnswered) {
  const Outcome leader = JoinNow("k");
  ASSERT_EQ(leader.role, Role::kLeader);
  PendingJoin waiter(*store_, Claim("k"));
  EXPECT_FALSE(waiter.Done(absl::Milliseconds(100)));
  store_->Finish("k", leader.lease, absl::UnavailableError("refused"),
                 /*remember=*/false);
  ASSERT_EQ(waiter.outcome().role, Role::kReplay);
  EXPECT_EQ(waiter.outcome().result.status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(JoinNow("k").role, Role::kLeader);
}

TEST_P(IdempotencyStoreContractTest, KeysAreIndependent) {
  const Outcome a = JoinNow("a");
  const Outcome b = JoinNow("b");
  EXPECT_EQ(a.role, Role::kLeader);
  EXPECT_EQ(b.role, Role::kLeader);
  store_->Finish("a", a.lease, Response("A"), true);
  store_->Finish("b", b.lease, Response("B"), true);
  EXPECT_EQ(JoinNow("a").result->message(), "A");
  EXPECT_EQ(JoinNow("b").result->message(), "B");
}

TEST_P(IdempotencyStoreContractTest, ALeaderFinishesOnlyItsOwnClaimOnce) {
  const Outcome leader = JoinNow("k");
  ASSERT_EQ(leader.role, Role::kLeader);
  store_->Finish("k", leader.lease, Response("first"), true);
  // A second Finish (a bug, or a late duplicate) changes nothing.
  store_->Finish("k", leader.lease, Response("second"), true);
  EXPECT_EQ(JoinNow("k").result->message(), "first");
}

TEST_P(IdempotencyStoreContractTest, AFollowerThatIsNoLongerWantedStops) {
  const Outcome leader = JoinNow("k");
  ASSERT_EQ(leader.role, Role::kLeader);
  IdempotencyStore::Claim claim = Claim("k");
  auto wanted = std::make_shared<std::atomic<bool>>(true);
  claim.wanted = [wanted] { return wanted->load(); };
  PendingJoin follower(*store_, claim);
  wanted->store(false);
  if (GetParam() == StoreKind::kRedis) {
    // It polls no more and says so, well before its 10 s deadline.
    EXPECT_TRUE(follower.Done(absl::Seconds(2)));
    EXPECT_NE(follower.outcome().role, Role::kLeader);
  }
  store_->Finish("k", leader.lease, Response("x"), true);
  EXPECT_TRUE(follower.Done(absl::Seconds(10)));
}

INSTANTIATE_TEST_SUITE_P(Stores, IdempotencyStoreContractTest,
                         ::testing::ValuesIn(testing_util::AllStoreKinds()),
                         [](const ::testing::TestParamInfo<StoreKind>& info) {
                           return testing_util::StoreKindName(info.param);
                         });

}  // namespace
}  // namespace campaign_gateway
