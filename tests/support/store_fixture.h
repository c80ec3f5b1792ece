// Builds each kind of IdempotencyStore for tests that run against all of
// them (the contract suite). The Redis kind starts its own redis-server.
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_STORE_FIXTURE_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_STORE_FIXTURE_H_

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "service/idempotency_store.h"

namespace campaign_gateway::testing_util {

enum class StoreKind { kInMemory, kRedis };

std::vector<StoreKind> AllStoreKinds();
std::string StoreKindName(StoreKind kind);
inline void PrintTo(StoreKind kind, std::ostream* os) {
  *os << StoreKindName(kind);
}

class StoreFixture {
 public:
  StoreFixture();
  ~StoreFixture();
  // A new store of `kind` for `account`; stores made for one account by one
  // fixture share their state (as replicas on one Redis do).
  std::unique_ptr<IdempotencyStore> Make(StoreKind kind,
                                         const std::string& account);

 private:
  struct Redis;
  std::unique_ptr<Redis> redis_;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_STORE_FIXTURE_H_
