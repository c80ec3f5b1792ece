// The whole server side, assembled once from a Config: transport →
// telemetry → guards (UpstreamClient) → idempotency store → Gateway → gRPC
// service → grpc::Server, plus the admin (/metrics) listener. main.cc and the
// integration tests build the same graph through this class; main.cc keeps
// only flags, signals and exit codes.
#ifndef CAMPAIGN_GATEWAY_SERVICE_SERVER_H_
#define CAMPAIGN_GATEWAY_SERVICE_SERVER_H_

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/config.h"
#include "service/http_types.h"
#include "service/idempotency_store.h"
#include "service/upstream_admission.h"
#include "service/upstream_client.h"

namespace grpc {
class Server;
}  // namespace grpc
namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace campaign_gateway {

class CampaignServiceImpl;
class RedisClient;
class Gateway;
class InstrumentedTransport;
class Telemetry;
class TimerQueue;
class TokenWatcher;

// Seams for tests; production leaves every member empty.
struct ServerOverrides {
  // Replaces the transport the Config selects (CurlTransport, or
  // SandboxTransport in sandbox mode), e.g. to route to a loopback fake.
  std::unique_ptr<HttpTransport> transport;
  // Replaces the guards' options derived from the Config (e.g. a fast
  // backoff). The telemetry observers are filled in when empty.
  std::optional<UpstreamOptions> upstream;
  // Replaces the idempotency store the Config selects.
  std::unique_ptr<IdempotencyStore> idempotency;
  // One JSON log line per RPC (off in tests that make thousands of calls).
  bool log_rpcs = true;
};

class Server {
 public:
  // Builds everything and starts listening. Fails (one line naming the flag)
  // when --listen or --admin_listen cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const Config& config, ServerOverrides overrides = {});

  // Cancels what is still in flight upstream and tears down in dependency
  // order. Call Stop() first for a graceful end.
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound ports (the chosen one when the Config asked for port 0);
  // admin_port() is 0 without an admin listener.
  int port() const { return port_; }
  int admin_port() const;

  // Health turns NOT_SERVING, so load balancers stop sending new calls;
  // calls keep being served.
  void Drain();
  // Stops accepting calls, lets those in flight finish until `deadline`
  // (then cancels them), then waits, until the same deadline, for upstream
  // requests that outlive their call (keyed creates run on so that a repeat
  // learns the outcome) and the store's writes of their outcomes. Returns
  // the number of those still in flight: when
  // it is not 0, their callbacks may still run, and the caller should exit
  // the process rather than destroy the Server.
  int Stop(absl::Time deadline);

  Telemetry& telemetry() { return *telemetry_; }
  // Null without --redis_url.
  RedisClient* redis() { return redis_.get(); }
  UpstreamClient& upstream() { return *upstream_; }
  IdempotencyStore& idempotency() { return *idempotency_; }

 private:
  Server() = default;
  // The steps of Start(), in order.
  // With --redis_url: connects, or fails on a refused password.
  absl::Status StartRedis(const Config& config);
  void BuildGuards(const Config& config,
                   const std::optional<UpstreamOptions>& overridden);
  void BuildStore(const Config& config,
                  std::unique_ptr<IdempotencyStore> overridden);
  absl::Status StartAdmin(const Config& config);
  absl::Status StartGrpc(const Config& config);

  // Declared in dependency order: members are destroyed bottom-up, so the
  // gRPC server goes first and the transport last.
  std::unique_ptr<HttpTransport> transport_;
  std::unique_ptr<Telemetry> telemetry_;
  std::unique_ptr<InstrumentedTransport> instrumented_;
  std::unique_ptr<TimerQueue> timers_;
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<UpstreamAdmission> admission_;
  std::unique_ptr<UpstreamClient> upstream_;
  std::unique_ptr<IdempotencyStore> idempotency_;
  std::unique_ptr<TokenWatcher> token_watcher_;  // null without --token_file
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<CampaignServiceImpl> service_;
  std::unique_ptr<prometheus::Exposer> admin_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_SERVER_H_
