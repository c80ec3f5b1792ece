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

class RedisServer;

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
  // A new store of `kind` for `account`. Redis stores made by one fixture
  // share one redis-server (as replicas do), each with its own connection.
  // Stores must be destroyed before the fixture.
  std::unique_ptr<IdempotencyStore> Make(StoreKind kind,
                                         const std::string& account);
  // The fixture's redis-server once a Redis store was made, else null.
  RedisServer* redis_server();

 private:
  struct Redis;
  std::unique_ptr<Redis> redis_;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_STORE_FIXTURE_H_
