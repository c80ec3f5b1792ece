#include "service/server.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "prometheus/exposer.h"
#include "service/authz_watcher.h"
#include "service/curl_transport.h"
#include "service/gateway.h"
#include "service/grpc_service.h"
#include "service/log.h"
#include "service/redis_admission.h"
#include "service/redis_client.h"
#include "service/redis_idempotency_store.h"
#include "service/sandbox_transport.h"
#include "service/telemetry.h"
#include "service/timer.h"
#include "service/token_watcher.h"

namespace campaign_gateway {
namespace {

constexpr absl::string_view kServiceName = "campaigns.v1.CampaignService";

absl::string_view ModeOf(const Config& config) {
  return config.sandbox() ? "sandbox" : "connyline";
}

std::unique_ptr<HttpTransport> TransportFor(const Config& config) {
  if (config.sandbox()) {
    return std::make_unique<SandboxTransport>(config.time_zone);
  }
  // HTTP/1.1 needs a connection per request in flight, HTTP/2 only as many
  // as its streams need; never more than the calls the gateway admits.
  const int connections =
      config.upstream_max_connections > 0
          ? std::min(config.upstream_max_connections, config.max_inflight)
          : config.max_inflight;
  return std::make_unique<CurlTransport>(CurlTransportOptions{
      .shards = config.upstream_shards,
      .max_connections_per_shard =
          (connections + config.upstream_shards - 1) / config.upstream_shards,
      .http2 = config.upstream_http2 == "off" ? UpstreamHttp2::kOff
               : config.upstream_http2 == "prior_knowledge"
                   ? UpstreamHttp2::kPriorKnowledge
                   : UpstreamHttp2::kAuto,
      .max_response_bytes =
          static_cast<size_t>(config.upstream_max_response_bytes),
      .ca_file = config.upstream_ca_file,
  });
}

UpstreamTarget TargetFor(const Config& config) {
  UpstreamTarget target;
  target.user_agent =
      absl::StrCat("campaign-gateway/", CAMPAIGN_GATEWAY_VERSION);
  if (config.sandbox()) {
    target.base_url = "http://sandbox.invalid";
    target.token = std::string(kSandboxToken);
  } else {
    target.base_url = config.upstream_url;
    target.token = config.token;
  }
  return target;
}

UpstreamOptions GuardsFor(const Config& config) {
  return {.max_inflight = config.max_inflight,
          .retry = {.max_attempts = config.retry_max_attempts},
          .retry_budget_ratio = config.retry_budget_ratio,
          .breaker = {.failure_threshold = config.breaker_failure_threshold,
                      .open_duration = config.breaker_open_duration},
          .breaker_min_timeout = config.default_timeout};
}

int Millis(absl::Duration d) {
  return static_cast<int>(absl::ToInt64Milliseconds(d));
}

// How often gRPC re-reads the TLS files: a rotated certificate (cert-manager,
// SPIFFE) is served to new connections within this long.
constexpr unsigned int kCertificateRefreshSeconds = 2;

// TLS when a certificate is configured, with client certificates required
// and verified when a client CA is.
std::shared_ptr<grpc::ServerCredentials> CredentialsFor(const Config& config) {
  if (!config.tls()) return grpc::InsecureServerCredentials();
  namespace ex = grpc::experimental;
  auto provider = std::make_shared<ex::FileWatcherCertificateProvider>(
      config.tls_key_file, config.tls_cert_file, config.tls_client_ca_file,
      kCertificateRefreshSeconds);
  ex::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (config.tls_client_ca_file.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return ex::TlsServerCredentials(options);
}

// Reflection per builder, on or off. Linking libgrpc++_reflection registers
// its plugin for every server of the process at static initialisation; this
// option removes it, or adds it where it is missing.
class ReflectionOption final : public grpc::ServerBuilderOption {
 public:
  explicit ReflectionOption(bool enabled) : enabled_(enabled) {}
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    const std::string name =
        grpc::reflection::ProtoServerReflectionPlugin().name();
    auto is_reflection = [&name](const auto& p) { return p->name() == name; };
    const bool present =
        std::any_of(plugins->begin(), plugins->end(), is_reflection);
    if (!enabled_) {
      plugins->erase(
          std::remove_if(plugins->begin(), plugins->end(), is_reflection),
          plugins->end());
    } else if (!present) {
      plugins->push_back(
          std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>());
    }
  }

 private:
  const bool enabled_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const Config& config, ServerOverrides overrides) {
  std::unique_ptr<Server> s(new Server());
  s->transport_ = overrides.transport ? std::move(overrides.transport)
                                      : TransportFor(config);
  s->telemetry_ = std::make_unique<Telemetry>(
      Telemetry::Options{.version = CAMPAIGN_GATEWAY_VERSION,
                         .mode = std::string(ModeOf(config)),
                         .log_rpcs = overrides.log_rpcs});
  s->instrumented_ =
      std::make_unique<InstrumentedTransport>(*s->transport_, *s->telemetry_);
  s->timers_ = std::make_unique<TimerQueue>();
  if (absl::Status redis = s->StartRedis(config); !redis.ok()) return redis;
  s->BuildGuards(config, overrides.upstream);
  s->BuildStore(config, std::move(overrides.idempotency));
  GatewayOptions gateway{
      .account_code = config.account_code,
      .time_zone = config.time_zone,
      .upstream = TargetFor(config),
      .keyed_upstream_timeout = config.keyed_upstream_timeout,
      .start_past_tolerance = config.start_past_tolerance,
      .start_max_ahead = config.start_max_ahead};
  if (!config.sandbox() && !config.token_file.empty()) {
    // A rotated Secret is picked up without a restart.
    s->token_watcher_ = std::make_unique<TokenWatcher>(
        TokenWatcher::Options{.path = config.token_file}, config.token);
    gateway.token = [watcher = s->token_watcher_.get()] {
      return watcher->token();
    };
  }
  s->gateway_ = std::make_unique<Gateway>(std::move(gateway), *s->upstream_,
                                          *s->idempotency_, *s->timers_);
  if (!config.authz_policy_file.empty()) {
    absl::StatusOr<std::unique_ptr<AuthzWatcher>> authz =
        AuthzWatcher::Start(config.authz_policy_file);
    if (!authz.ok()) return authz.status();
    s->authz_ = *std::move(authz);
  }
  s->service_ = std::make_unique<CampaignServiceImpl>(
      *s->gateway_, *s->telemetry_, config.default_timeout,
      CallerChecks{.authz = s->authz_.get(), .audit = overrides.log_audit});
  if (absl::Status admin = s->StartAdmin(config); !admin.ok()) return admin;
  if (absl::Status grpc = s->StartGrpc(config); !grpc.ok()) return grpc;
  if (absl::Status health = s->StartHealth(config); !health.ok()) {
    return health;
  }
  return s;
}

void Server::BuildGuards(const Config& config,
                         const std::optional<UpstreamOptions>& overridden) {
  Telemetry* telemetry = telemetry_.get();
  if (redis_ != nullptr) {
    admission_ = std::make_unique<RedisAdmission>(
        RedisAdmission::Options{.account = config.account_code,
                                .rate_limit = config.upstream_rate_limit,
                                .on_fallback =
                                    [telemetry] {
                                      telemetry->GuardEvent(
                                          "admission_local_fallback");
                                    }},
        *redis_);
  } else {
    admission_ = std::make_unique<LocalAdmission>(
        LocalAdmission::Options{.rate_limit = config.upstream_rate_limit});
  }
  UpstreamOptions guards = overridden.value_or(GuardsFor(config));
  if (guards.admission == nullptr) guards.admission = admission_.get();
  if (!guards.on_event) {
    guards.on_event = [telemetry](absl::string_view event) {
      telemetry->GuardEvent(event);
    };
  }
  if (!guards.on_breaker_state) {
    guards.on_breaker_state = [telemetry](bool open) {
      telemetry->SetBreakerOpen(open);
    };
  }
  upstream_ = std::make_unique<UpstreamClient>(std::move(guards),
                                               *instrumented_, *timers_);
}

void Server::BuildStore(const Config& config,
                        std::unique_ptr<IdempotencyStore> overridden) {
  if (overridden != nullptr) {
    idempotency_ = std::move(overridden);
  } else if (redis_ != nullptr) {
    idempotency_ = std::make_unique<RedisIdempotencyStore>(
        RedisIdempotencyStore::Options{.account = config.account_code,
                                       .ttl = config.idempotency_ttl},
        *redis_, *timers_);
  } else {
    idempotency_ = std::make_unique<InMemoryIdempotencyStore>(
        InMemoryIdempotencyStore::Options{
            .ttl = config.idempotency_ttl,
            .max_bytes = static_cast<size_t>(config.idempotency_max_bytes)});
  }
}

absl::Status Server::StartAdmin(const Config& config) {
  if (config.admin_listen.empty()) return absl::OkStatus();
  try {
    // civetweb gives each connection a worker thread until its request has
    // arrived: enough threads, and a short wait for the request, so a few
    // slow or silent clients cannot block a scrape.
    admin_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", config.admin_listen, "num_threads",
        std::to_string(config.admin_threads), "request_timeout_ms",
        std::to_string(Millis(config.admin_request_timeout))});
  } catch (const std::exception&) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on --admin_listen '", config.admin_listen,
                     "' (address in use, or not an address of this host)"));
  }
  admin_->RegisterCollectable(telemetry_->registry());
  return absl::OkStatus();
}

absl::Status Server::StartGrpc(const Config& config) {
  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's default health service is built on upb and registers no
  // descriptor, yet reflection lists it: without health.proto in the
  // generated pool, tools (buf curl, grpcurl) get "Symbol not found". This
  // reference links the generated messages, which register the file.
  grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<ReflectionOption>(config.reflection));
  builder.AddListeningPort(config.listen, CredentialsFor(config), &port_);
  builder.RegisterService(service_.get());
  // Services balance connections, not RPCs: age connections out so clients
  // reconnect and spread over replicas, with grace for RPCs in flight.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                             Millis(config.max_connection_age));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                             Millis(config.max_connection_age_grace));
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      Millis(config.keepalive_min_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Bounded inputs: nothing a caller sends can grow without limit.
  builder.SetMaxReceiveMessageSize(config.max_request_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE,
                             config.max_header_bytes);
  // HTTP/2 and connection hardening (SECURITY.md): few streams per
  // connection, connections that never finish their handshake or stay idle
  // are closed, and gRPC's own memory is capped below the pod's limit.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             config.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             Millis(config.handshake_timeout));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             Millis(config.max_connection_idle));
  grpc::ResourceQuota quota("campaign-gateway");
  quota.Resize(static_cast<size_t>(config.grpc_memory_limit_bytes));
  builder.SetResourceQuota(quota);
  // gRPC enables SO_REUSEPORT by default: a second gateway on the same port
  // would then start and silently take half the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on --listen '", config.listen,
        "' (port in use, e.g. by another gateway, or not an address of this "
        "host)"));
  }
  grpc::HealthCheckServiceInterface* health =
      grpc_server_->GetHealthCheckService();
  health->SetServingStatus(std::string(kServiceName), true);
  health->SetServingStatus(true);
  return absl::OkStatus();
}

absl::Status Server::StartHealth(const Config& config) {
  if (config.health_listen.empty()) return absl::OkStatus();
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<ReflectionOption>(false));
  // Only the default health service: nothing here spends money or reveals
  // more than SERVING / NOT_SERVING, so it needs no TLS.
  builder.AddListeningPort(config.health_listen,
                           grpc::InsecureServerCredentials(), &health_port_);
  // gRPC builds no server without a service of its own (the default health
  // service comes later); other methods answer UNIMPLEMENTED through it.
  health_fallback_ = std::make_unique<grpc::CallbackGenericService>();
  builder.RegisterCallbackGenericService(health_fallback_.get());
  builder.SetMaxReceiveMessageSize(4 << 10);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 4 << 10);
  health_server_ = builder.BuildAndStart();
  if (health_server_ == nullptr || health_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on --health_listen '", config.health_listen,
                     "' (address in use, or not an address of this host)"));
  }
  grpc::HealthCheckServiceInterface* health =
      health_server_->GetHealthCheckService();
  health->SetServingStatus(std::string(kServiceName), true);
  health->SetServingStatus(true);
  return absl::OkStatus();
}

absl::Status Server::StartRedis(const Config& config) {
  if (!config.redis.has_value()) return absl::OkStatus();
  RedisOptions options = *config.redis;
  Telemetry* telemetry = telemetry_.get();
  const std::string url = config.redis_url;
  // Transitions only. At most one "down" line per 10 s when Redis flaps,
  // and a "connected" line only at start or after a logged "down": the
  // allowance belongs to outages, so a connect never hides the outage that
  // follows it (only the metric shows a repeat within the 10 s).
  struct LogState {
    absl::Time last_down = absl::InfinitePast();
    bool announce_connect = true;
  };
  auto log_state = std::make_shared<LogState>();
  options.on_state = [this, telemetry, url, log_state](bool connected) {
    telemetry->SetStoreUp(connected);
    if (connected) {
      if (!log_state->announce_connect) return;
      log_state->announce_connect = false;
      LogJson("info", "idempotency store (Redis) connected", {{"redis", url}});
      return;
    }
    const absl::Time now = absl::Now();
    if (now - log_state->last_down < absl::Seconds(10)) return;
    log_state->last_down = now;
    log_state->announce_connect = true;
    LogJson("warning",
            "idempotency store (Redis) is down: creates with a request_id "
            "fail (UNAVAILABLE) until it is back",
            {{"redis", url},
             {"error", std::string(redis_->last_error().message())}});
  };
  redis_ = std::make_unique<RedisClient>(std::move(options));
  const absl::Status started = redis_->Start(absl::Seconds(2));
  if (started.ok() || absl::IsUnavailable(started)) {
    // Unreachable at start: serve, failing keyed creates closed until
    // Redis is reachable (the client keeps reconnecting).
    telemetry->SetStoreUp(redis_->connected());
    if (!started.ok()) {
      LogJson("warning",
              "idempotency store (Redis) is unreachable at start: creates "
              "with a request_id fail (UNAVAILABLE) until it is reachable",
              {{"redis", url}, {"error", std::string(started.message())}});
    }
    return absl::OkStatus();
  }
  // The client would keep trying; a refused password is a configuration
  // error, so the gateway does not start.
  return absl::FailedPreconditionError(
      absl::StrCat("--redis_url '", url, "': ",
                   absl::StripSuffix(started.message(),
                                     "; still trying in the background")));
}

Server::~Server() {
  for (grpc::Server* server : {grpc_server_.get(), health_server_.get()}) {
    if (server == nullptr) continue;
    server->Shutdown(absl::ToChronoTime(absl::Now()));
    server->Wait();
  }
  // Work may outlive its RPC (a keyed create runs on; a store write). End it
  // while everything its callbacks touch is still alive: Redis first (its
  // callbacks may arm timers), then pending retries and polls, then the
  // transport, which cancels what is left.
  if (redis_ != nullptr) redis_->Stop();
  timers_.reset();
  transport_.reset();
}

int Server::admin_port() const {
  return admin_ != nullptr ? admin_->GetListeningPorts().front() : 0;
}

void Server::Drain() {
  grpc_server_->GetHealthCheckService()->SetServingStatus(false);
  if (health_server_ != nullptr) {
    health_server_->GetHealthCheckService()->SetServingStatus(false);
  }
}

int Server::Stop(absl::Time deadline) {
  grpc_server_->Shutdown(absl::ToChronoTime(deadline));
  grpc_server_->Wait();
  if (health_server_ != nullptr) {
    health_server_->Shutdown(absl::ToChronoTime(absl::Now()));
    health_server_->Wait();
  }
  // Then the store's writes of those requests' outcomes.
  auto busy = [this] {
    return upstream_->inflight() + idempotency_->writes_in_flight();
  };
  while (busy() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  return busy();
}

}  // namespace campaign_gateway
