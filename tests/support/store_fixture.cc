#include "tests/support/store_fixture.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/redis_client.h"
#include "service/redis_idempotency_store.h"
#include "service/timer.h"
#include "tests/support/redis_server.h"

namespace campaign_gateway::testing_util {

// Destroyed in reverse: the clients stop (failing what is pending) before
// the timers their callbacks use, and the server goes last.
struct StoreFixture::Redis {
  RedisServer server;
  TimerQueue timers;
  std::vector<std::unique_ptr<RedisClient>> clients;
};

std::vector<StoreKind> AllStoreKinds() {
  return {StoreKind::kInMemory, StoreKind::kRedis};
}

std::string StoreKindName(StoreKind kind) {
  return kind == StoreKind::kInMemory ? "InMemory" : "Redis";
}

StoreFixture::StoreFixture() = default;

StoreFixture::~StoreFixture() {
  if (redis_ == nullptr) return;
  for (auto& client : redis_->clients) client->Stop();
}

std::unique_ptr<IdempotencyStore> StoreFixture::Make(
    StoreKind kind, const std::string& account) {
  if (kind == StoreKind::kInMemory) {
    return std::make_unique<InMemoryIdempotencyStore>(
        InMemoryIdempotencyStore::Options{});
  }
  if (redis_ == nullptr) {
    redis_ = std::make_unique<Redis>();
    if (!redis_->server.status().ok()) {
      ADD_FAILURE() << "redis-server: " << redis_->server.status();
      return nullptr;
    }
  }
  // One client per store, as each replica has its own connection.
  RedisOptions options;
  options.port = redis_->server.port();
  options.password = redis_->server.password();
  auto client = std::make_unique<RedisClient>(options);
  if (absl::Status s = client->Start(absl::Seconds(5)); !s.ok()) {
    ADD_FAILURE() << "Redis client: " << s;
    return nullptr;
  }
  RedisClient& redis = *client;
  redis_->clients.push_back(std::move(client));
  return std::make_unique<RedisIdempotencyStore>(
      RedisIdempotencyStore::Options{.account = account, .ttl = absl::Hours(1)},
      redis, redis_->timers);
}

RedisServer* StoreFixture::redis_server() {
  return redis_ != nullptr ? &redis_->server : nullptr;
}

}  // namespace campaign_gateway::testing_util
