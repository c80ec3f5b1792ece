#include "service/idempotency_store.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"

namespace campaign_gateway {
namespace {

using Role = IdempotencyStore::Role;
using Result = IdempotencyStore::Result;

campaigns::v1::CreateSmsCampaignResponse Response(const std::string& message) {
  campaigns::v1::CreateSmsCampaignResponse response;
  response.set_message(message);
  return response;
}

class IdempotencyStoreTest : public ::testing::Test {
 protected:
  InMemoryIdempotencyStore::Options Options() {
    return {.ttl = absl::Minutes(10), .max_bytes = 1 << 20, .now = [this] {
              return now_;
            }};
  }
  static IdempotencyStore::Waiter Into(std::optional<Result>& out) {
    return [&out](const Result& r) { out = r; };
  }

  absl::Time now_ = absl::FromUnixSeconds(1000);
};

TEST_F(IdempotencyStoreTest, TheFirstLeadsAndRepeatsGetItsResult) {
  InMemoryIdempotencyStore store(Options());
  std::optional<Result> leader, concurrent, later;
  EXPECT_EQ(store.Join("k", "f", Into(leader)), Role::kLeader);
  EXPECT_EQ(store.Join("k", "f", Into(concurrent)), Role::kFollower);
  EXPECT_FALSE(concurrent.has_value());  // waits for the leader
  store.Finish("k", Response("created"), /*remember=*/true);
  ASSERT_TRUE(concurrent.has_value());
  EXPECT_EQ((*concurrent)->message(), "created");
  EXPECT_FALSE(leader.has_value());  // the leader answers its own caller
  EXPECT_EQ(store.Join("k", "f", Into(later)), Role::kFollower);
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ((*later)->message(), "created");
}

TEST_F(IdempotencyStoreTest, OtherContentUnderTheSameKeyConflicts) {
  InMemoryIdempotencyStore store(Options());
  std::optional<Result> ignored;
  EXPECT_EQ(store.Join("k", "f1", Into(ignored)), Role::kLeader);
  EXPECT_EQ(store.Join("k", "f2", Into(ignored)), Role::kConflict);
  store.Finish("k", Response("x"), true);
  EXPECT_EQ(store.Join("k", "f2", Into(ignored)), Role::kConflict);
}

TEST_F(IdempotencyStoreTest, FinalErrorsAreRememberedToo) {
  InMemoryIdempotencyStore store(Options());
  std::optional<Result> ignored, repeat;
  store.Join("k", "f", Into(ignored));
  store.Finish("k", absl::InvalidArgumentError("rejected"), true);
  store.Join("k", "f", Into(repeat));
  ASSERT_TRUE(repeat.has_value());
  EXPECT_EQ(repeat->status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(IdempotencyStoreTest, AForgottenKeyLeadsAgainButWaitersAreAnswered) {
  InMemoryIdempotencyStore store(Options());
  std::optional<Result> ignored, waiter;
  store.Join("k", "f", Into(ignored));
  store.Join("k", "f", Into(waiter));
  store.Finish("k", absl::UnavailableError("refused"), /*remember=*/false);
  ASSERT_TRUE(waiter.has_value());
  EXPECT_EQ(waiter->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Join("k", "f", Into(ignored)), Role::kLeader);
}

TEST_F(IdempotencyStoreTest, KeysExpireAfterTheTtl) {
  InMemoryIdempotencyStore store(Options());
  std::optional<Result> ignored;
  store.Join("k", "f", Into(ignored));
  store.Finish("k", Response("x"), true);
  now_ += absl::Minutes(9);
  EXPECT_EQ(store.Join("k", "f", Into(ignored)), Role::kFollower);
  now_ += absl::Minutes(2);
  EXPECT_EQ(store.Join("k", "f", Into(ignored)), Role::kLeader);
}

TEST_F(IdempotencyStoreTest, StaysWithinItsMemoryBudgetOldestFirst) {
  auto options = Options();
  options.max_bytes = 20000;
  InMemoryIdempotencyStore store(options);
  std::optional<Result> ignored;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "key-" + std::to_string(i);
    store.Join(key, "f", Into(ignored));
    store.Finish(key, Response(std::string(100, 'x')), true);
    ASSERT_LE(store.bytes(), options.max_bytes);
  }
  EXPECT_LT(store.size(), 1000u);
  // The newest is remembered, the oldest is not.
  EXPECT_EQ(store.Join("key-999", "f", Into(ignored)), Role::kFollower);
  EXPECT_EQ(store.Join("key-0", "f", Into(ignored)), Role::kLeader);
}

TEST(ContentFingerprintTest, IsStableAndSeparatesAccountFromBody) {
  EXPECT_EQ(ContentFingerprint("acme", "{}"), ContentFingerprint("acme", "{}"));
  EXPECT_EQ(ContentFingerprint("acme", "{}").size(), 64u);
  EXPECT_NE(ContentFingerprint("acme", "{}"),
            ContentFingerprint("acme", "{ }"));
  EXPECT_NE(ContentFingerprint("ab", "c{}"), ContentFingerprint("a", "bc{}"));
}

}  // namespace
}  // namespace campaign_gateway
