// What only the in-memory store does: its TTL on an injected clock and its
// memory budget; plus the result encoding every shared store uses. The
// behaviour every store shares is in idempotency_store_contract_test.cc.
#include "service/idempotency_store.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "service/errors.h"

namespace campaign_gateway {
namespace {

using Role = IdempotencyStore::Role;
using Result = IdempotencyStore::Result;

campaigns::v1::CreateSmsCampaignResponse Response(const std::string& message) {
  campaigns::v1::CreateSmsCampaignResponse response;
  response.set_message(message);
  return response;
}

class InMemoryIdempotencyStoreTest : public ::testing::Test {
 protected:
  InMemoryIdempotencyStore::Options Options() {
    return {.ttl = absl::Minutes(10), .max_bytes = 1 << 20, .now = [this] {
              return now_;
            }};
  }
  // The in-memory store answers leaders, conflicts and known results inline.
  static Role JoinNow(IdempotencyStore& store, const std::string& key) {
    std::optional<Role> role;
    store.Join({.key = key, .fingerprint = "f"},
               [&role](IdempotencyStore::Outcome o) { role = o.role; });
    EXPECT_TRUE(role.has_value());
    return role.value_or(Role::kUnavailable);
  }

  absl::Time now_ = absl::FromUnixSeconds(1000);
};

TEST_F(InMemoryIdempotencyStoreTest, KeysExpireAfterTheTtl) {
  InMemoryIdempotencyStore store(Options());
  ASSERT_EQ(JoinNow(store, "k"), Role::kLeader);
  store.Finish("k", "", Response("x"), true);
  now_ += absl::Minutes(9);
  EXPECT_EQ(JoinNow(store, "k"), Role::kReplay);
  now_ += absl::Minutes(2);
  EXPECT_EQ(JoinNow(store, "k"), Role::kLeader);
}

TEST_F(InMemoryIdempotencyStoreTest, StaysWithinItsMemoryBudgetOldestFirst) {
  auto options = Options();
  options.max_bytes = 20000;
  InMemoryIdempotencyStore store(options);
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "key-" + std::to_string(i);
    ASSERT_EQ(JoinNow(store, key), Role::kLeader);
    store.Finish(key, "", Response(std::string(100, 'x')), true);
    ASSERT_LE(store.bytes(), options.max_bytes);
  }
  EXPECT_LT(store.size(), 1000u);
  // The newest is remembered, the oldest is not.
  EXPECT_EQ(JoinNow(store, "key-999"), Role::kReplay);
  EXPECT_EQ(JoinNow(store, "key-0"), Role::kLeader);
}

TEST(ContentFingerprintTest, IsStableAndSeparatesAccountFromBody) {
  EXPECT_EQ(ContentFingerprint("acme", "{}"), ContentFingerprint("acme", "{}"));
  EXPECT_EQ(ContentFingerprint("acme", "{}").size(), 64u);
  EXPECT_NE(ContentFingerprint("acme", "{}"),
            ContentFingerprint("acme", "{ }"));
  EXPECT_NE(ContentFingerprint("ab", "c{}"), ContentFingerprint("a", "bc{}"));
}

TEST(SerializeResultTest, ResponsesRoundTrip) {
  campaigns::v1::CreateSmsCampaignResponse response = Response("created");
  response.mutable_campaign()->set_list_id(42);
  const Result back = ParseResult(SerializeResult(response));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->message(), "created");
  EXPECT_EQ(back->campaign().list_id(), 42);
}

TEST(SerializeResultTest, ErrorsKeepCodeMessageAndDetails) {
  absl::Status error =
      MakeError(absl::StatusCode::kFailedPrecondition, "no credit",
                reason::kUpstreamPaymentRequired, {{"http_status", "402"}});
  const Result back = ParseResult(SerializeResult(error));
  EXPECT_EQ(back.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(back.status().message(), "no credit");
  ASSERT_TRUE(GetErrorInfo(back.status()).has_value());
  EXPECT_EQ(GetErrorInfo(back.status())->reason(), "UPSTREAM_PAYMENT_REQUIRED");
  EXPECT_EQ(GetErrorInfo(back.status())->metadata().at("http_status"), "402");
}

TEST(SerializeResultTest, GarbageIsDataLossNotACrash) {
  EXPECT_EQ(ParseResult("\xff\xff\xff").status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace campaign_gateway
