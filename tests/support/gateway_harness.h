// The whole server side of the gateway, built by the same Server as main.cc,
// in process on 127.0.0.1:0 with a real gRPC client. For integration tests
// against a loopback Connyline.
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_GATEWAY_HARNESS_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_GATEWAY_HARNESS_H_

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/config.h"
#include "service/curl_transport.h"
#include "service/idempotency_store.h"
#include "service/redis_client.h"
#include "service/server.h"
#include "service/telemetry.h"
#include "service/upstream_client.h"

namespace campaign_gateway::testing_util {

// A made-up token of the documented length; not a real credential.
inline constexpr char kHarnessToken[] =
    "testtokenCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC";

// Sends what the gateway addresses to `from` (its configured base URL) to
// wherever RouteTo() points: lets a test bring "Connyline" up on a new port
// while the gateway keeps its configuration, as after a restart.
class RoutingTransport final : public HttpTransport {
 public:
  RoutingTransport(std::unique_ptr<HttpTransport> inner, std::string from)
      : inner_(std::move(inner)), from_(from), to_(std::move(from)) {}

  void RouteTo(std::string to) {
    absl::MutexLock lock(&mu_);
    to_ = std::move(to);
  }
  uint64_t Start(HttpRequest request, absl::Time deadline,
                 Callback done) override {
    {
      absl::MutexLock lock(&mu_);
      if (absl::StartsWith(request.url, from_)) {
        request.url = absl::StrCat(to_, request.url.substr(from_.size()));
      }
    }
    return inner_->Start(std::move(request), deadline, std::move(done));
  }
  void Cancel(uint64_t id) override { inner_->Cancel(id); }

 private:
  const std::unique_ptr<HttpTransport> inner_;
  const std::string from_;
  absl::Mutex mu_;
  std::string to_ ABSL_GUARDED_BY(mu_);
};

struct HarnessOptions {
  HarnessOptions() { transport.shards = 2; }

  absl::Duration default_timeout = absl::Seconds(10);
  absl::Duration keyed_upstream_timeout = absl::Seconds(10);
  int max_concurrent_streams = Config{}.max_concurrent_streams;
  UpstreamOptions upstream;
  CurlTransportOptions transport;
  std::string account = "acme";
  // Shared state on this Redis (as with --redis_url); nullopt: in memory.
  std::optional<RedisOptions> redis;
  int64_t upstream_rate_limit = 0;
};

// The production Server (service/server.h) on 127.0.0.1:0 with a CurlTransport
// routed through a RoutingTransport, and a gRPC client connected to it.
class Harness {
 public:
  explicit Harness(const std::string& base_url, HarnessOptions options = {}) {
    Config config;
    config.listen = "127.0.0.1:0";
    config.admin_listen = "";
    config.upstream_url = base_url;
    config.account_code = options.account;
    config.token = kHarnessToken;
    config.default_timeout = options.default_timeout;
    config.keyed_upstream_timeout = options.keyed_upstream_timeout;
    config.max_concurrent_streams = options.max_concurrent_streams;
    config.redis = options.redis;
    config.upstream_rate_limit = options.upstream_rate_limit;
    auto routing = std::make_unique<RoutingTransport>(
        std::make_unique<CurlTransport>(options.transport), base_url);
    routing_ = routing.get();
    std::unique_ptr<InMemoryIdempotencyStore> store;
    if (!options.redis.has_value()) {
      store = std::make_unique<InMemoryIdempotencyStore>(
          InMemoryIdempotencyStore::Options{});
      store_ = store.get();
    }
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Start(config, {.transport = std::move(routing),
                               .upstream = std::move(options.upstream),
                               .idempotency = std::move(store),
                               .log_rpcs = false});
    if (!server.ok()) {
      ADD_FAILURE() << server.status();
      std::abort();
    }
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = campaigns::v1::CampaignService::NewStub(channel_);
  }

  campaigns::v1::CampaignService::Stub& stub() { return *stub_; }
  // For raw calls (grpc::GenericStub) of bytes no typed stub would send.
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  UpstreamClient& upstream() { return server_->upstream(); }
  Telemetry& telemetry() { return server_->telemetry(); }
  // The in-memory store (not with HarnessOptions::redis).
  InMemoryIdempotencyStore& store() {
    if (store_ == nullptr) std::abort();
    return *store_;
  }
  Server& server() { return *server_; }
  void RouteTo(std::string base_url) { routing_->RouteTo(std::move(base_url)); }

 private:
  std::unique_ptr<Server> server_;
  RoutingTransport* routing_ = nullptr;        // owned by server_
  InMemoryIdempotencyStore* store_ = nullptr;  // owned by server_
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<campaigns::v1::CampaignService::Stub> stub_;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_GATEWAY_HARNESS_H_
