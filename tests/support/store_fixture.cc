#include "tests/support/store_fixture.h"

namespace campaign_gateway::testing_util {

struct StoreFixture::Redis {};

std::vector<StoreKind> AllStoreKinds() { return {StoreKind::kInMemory}; }

std::string StoreKindName(StoreKind kind) {
  return kind == StoreKind::kInMemory ? "InMemory" : "Redis";
}

StoreFixture::StoreFixture() = default;
StoreFixture::~StoreFixture() = default;

std::unique_ptr<IdempotencyStore> StoreFixture::Make(
    StoreKind kind, const std::string& /*account*/) {
  if (kind == StoreKind::kInMemory) {
    return std::make_unique<InMemoryIdempotencyStore>(
        InMemoryIdempotencyStore::Options{});
  }
  return nullptr;
}

}  // namespace campaign_gateway::testing_util
