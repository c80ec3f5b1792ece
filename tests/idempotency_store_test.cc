// What only the in-memory store does: its TTL on an injected clock and its
// memory budget; plus the result encoding every shared store uses. The
// behaviour every store shares is in idempotency_store_contract_test.cc.
#include "service/idempotency_store.h"

#include <malloc.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/errors.h"
#include "tests/support/status_matchers.h"

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

// A full store refuses new keys instead of evicting live ones: evicting
// one would let its repeat send a second create.
TEST_F(InMemoryIdempotencyStoreTest, RefusesNewKeysWhenFullNeverEvictsLive) {
  auto options = Options();
  options.max_bytes = 64 << 10;
  InMemoryIdempotencyStore store(options);
  int stored = 0;
  std::optional<IdempotencyStore::Outcome> refused;
  for (int i = 0; i < 10000 && !refused; ++i) {
    const std::string key = "key-" + std::to_string(i);
    store.Join({.key = key, .fingerprint = "f"},
               [&](IdempotencyStore::Outcome o) {
                 if (o.role == Role::kLeader) {
                   store.Finish(key, "", Response(std::string(100, 'x')), true);
                   ++stored;
                 } else {
                   refused = std::move(o);
                 }
               });
    ASSERT_LE(store.bytes(), options.max_bytes);
  }
  ASSERT_TRUE(refused.has_value());
  ASSERT_GT(stored, 50);
  EXPECT_EQ(refused->role, Role::kUnavailable);
  EXPECT_THAT(refused->result.status(),
              testing_util::HasErrorInfo(absl::StatusCode::kResourceExhausted,
                                         reason::kIdempotencyStoreFull));
  EXPECT_EQ(GetErrorInfo(refused->result.status())
                ->metadata()
                .at(std::string(metadata_key::kRequestSent)),
            "false");
  // Retry once the oldest key expires: about the TTL from now.
  const auto retry = GetRetryInfo(refused->result.status());
  ASSERT_TRUE(retry.has_value());
  EXPECT_GE(retry->retry_delay().seconds(), 9 * 60);
  // Every key stored is still remembered.
  EXPECT_EQ(JoinNow(store, "key-0"), Role::kReplay);
  EXPECT_EQ(JoinNow(store, "key-" + std::to_string(stored - 1)), Role::kReplay);
  // Expired keys make room again.
  now_ += absl::Minutes(11);
  EXPECT_EQ(JoinNow(store, "new-key"), Role::kLeader);
  EXPECT_EQ(JoinNow(store, "key-0"), Role::kLeader);
}

// Heap bytes in use by malloc (every arena).
size_t HeapInUse() { return mallinfo2().uordblks; }

// The process's resident memory (VmRSS), in bytes.
double RssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return 1024.0 * std::stod(line.substr(6));
  }
  return 0;
}

// The store's accounting matches what the heap really holds for it, so
// --idempotency_max_bytes bounds real memory. Measured with realistic keys
// (UUIDs) and results (a created campaign, or an error with details).
TEST(InMemoryIdempotencyStoreMemoryTest, AccountingMatchesTheHeap) {
  {
    // Sanitizers replace malloc, and their allocators report no mallinfo2.
    const size_t before = HeapInUse();
    auto probe = std::make_unique<char[]>(4096);  // below the mmap threshold
    probe[0] = 1;
    if (HeapInUse() == before) {
      GTEST_SKIP() << "this allocator reports no heap usage (a sanitizer's)";
    }
  }
  campaigns::v1::CreateSmsCampaignResponse created;
  created.set_message("SMS Campaign created successfully.");
  auto* campaign = created.mutable_campaign();
  campaign->set_campaign_name("February 2026 Promo for our best customers");
  campaign->set_sender("MYSHOP");
  campaign->set_list_id(123);
  campaign->set_start("2026-02-25 10:30:00");
  campaign->set_created_at("2026-02-20 12:55:43");
  campaign->mutable_start_time()->set_seconds(1771988400);
  campaign->mutable_create_time()->set_seconds(1771577743);
  // Each call's error is its own (statuses share their heap when copied).
  auto failed = [](int i) {
    absl::Status status = MakeError(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat("Connyline rejected the request (HTTP 400): The sender "
                     "is not approved #",
                     i),
        reason::kUpstreamRejectedRequest);
    SetErrorMetadata(status, metadata_key::kHttpStatus, "400");
    return status;
  };

  for (const bool ok : {true, false}) {
    SCOPED_TRACE(ok ? "created" : "error");
    constexpr int kKeys = 20000;
    const size_t before = HeapInUse();
    const double rss_before = RssBytes();
    InMemoryIdempotencyStore store({.max_bytes = size_t{1} << 30});
    for (int i = 0; i < kKeys; ++i) {
      const std::string key = absl::StrFormat("4f8e2c1a-9b7d-4e36-a5c2-%012d",
                                              i);  // a UUID's length
      store.Join({.key = key, .fingerprint = ContentFingerprint("acme", key)},
                 [](const IdempotencyStore::Outcome&) {});
      store.Finish(key, "", ok ? Result(created) : Result(failed(i)), true);
    }
    const double heap = static_cast<double>(HeapInUse() - before);
    const double rss = RssBytes() - rss_before;
    const double accounted = static_cast<double>(store.bytes());
    std::cout << (ok ? "created" : "error") << ": " << kKeys << " keys, "
              << store.size() << " held, heap " << heap / kKeys
              << " B/key, accounted " << accounted / kKeys
              << " B/key, heap/accounted " << heap / accounted
              << ", RSS growth/accounted " << rss / accounted << "\n";
    EXPECT_GT(heap / accounted, 0.85);
    EXPECT_LT(heap / accounted, 1.15);
  }
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
