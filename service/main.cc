// campaign-gateway: wires configuration, the upstream transport, the Gateway
// and the gRPC server, then waits for SIGTERM/SIGINT to drain and stop.
#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpc/support/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/exposer.h"
#include "service/config.h"
#include "service/curl_transport.h"
#include "service/gateway.h"
#include "service/grpc_service.h"
#include "service/idempotency_store.h"
#include "service/log.h"
#include "service/sandbox_transport.h"
#include "service/telemetry.h"
#include "service/timer.h"
#include "service/upstream_client.h"

namespace campaign_gateway {
namespace {

constexpr absl::string_view kServiceName = "campaigns.v1.CampaignService";

}  // namespace

[[noreturn]] void Die(absl::string_view message) {
  std::fprintf(stderr, "campaign-gateway: %.*s\n",
               static_cast<int>(message.size()), message.data());
  std::exit(2);
}

namespace {

// gRPC's own log lines go to the structured log too (stdout), so stderr
// carries only the one-line reason of a refusal to start.
void LogGrpc(gpr_log_func_args* args) {
  const char* level = args->severity == GPR_LOG_SEVERITY_ERROR  ? "error"
                      : args->severity == GPR_LOG_SEVERITY_INFO ? "info"
                                                                : "debug";
  LogJson(level, args->message,
          {{"source", "grpc"}, {"file", args->file}, {"line", args->line}});
}

int Run() {
  // glibc gives every busy thread its own heap arena; with the event loops
  // and gRPC's threads that fragmentation cost ~25% of peak memory at 4,096
  // calls in flight (bench/). Two arenas are enough for this workload.
  mallopt(M_ARENA_MAX, 2);
  // Debian's abseil is built with deadlock detection on: it costs a graph
  // update on every Mutex lock and destruction.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  gpr_set_log_function(LogGrpc);
  absl::StatusOr<Config> loaded = LoadConfig();
  if (!loaded.ok()) Die(loaded.status().message());
  const Config& config = *loaded;
  for (const std::string& warning : config.warnings) {
    LogJson("warning", warning);
  }

  // Block the stop signals before any thread starts, so they all inherit the
  // mask and sigwait() below is the one place that receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::unique_ptr<HttpTransport> transport;
  GatewayOptions options{.account_code = config.account_code,
                         .time_zone = config.time_zone,
                         .upstream = {}};
  options.upstream.user_agent =
      absl::StrCat("campaign-gateway/", CAMPAIGN_GATEWAY_VERSION);
  if (config.sandbox()) {
    transport = std::make_unique<SandboxTransport>(config.time_zone);
    options.upstream.base_url = "http://sandbox.invalid";
    options.upstream.token = std::string(kSandboxToken);
  } else {
    transport = std::make_unique<CurlTransport>(CurlTransportOptions{
        .shards = config.upstream_shards,
        // Every request in flight keeps its keep-alive connection: a smaller
        // cache closes and reopens connections under load.
        .max_connections_per_shard =
            (config.max_inflight + config.upstream_shards - 1) /
            config.upstream_shards,
        .max_response_bytes =
            static_cast<size_t>(config.upstream_max_response_bytes),
        .ca_file = config.upstream_ca_file,
    });
    options.upstream.base_url = config.upstream_url;
    options.upstream.token = config.token;
  }
  Telemetry telemetry({.version = CAMPAIGN_GATEWAY_VERSION,
                       .mode = config.sandbox() ? "sandbox" : "connyline"});
  InstrumentedTransport instrumented(*transport, telemetry);
  TimerQueue timers;
  UpstreamClient upstream(
      UpstreamOptions{
          .max_inflight = config.max_inflight,
          .retry = {.max_attempts = config.retry_max_attempts},
          .retry_budget_ratio = config.retry_budget_ratio,
          .breaker = {.failure_threshold = config.breaker_failure_threshold,
                      .open_duration = config.breaker_open_duration},
          .on_event =
              [&telemetry](absl::string_view event) {
                telemetry.GuardEvent(event);
              },
          .on_breaker_state =
              [&telemetry](bool open) { telemetry.SetBreakerOpen(open); }},
      instrumented, timers);
  InMemoryIdempotencyStore idempotency(
      {.ttl = config.idempotency_ttl,
       .max_bytes = static_cast<size_t>(config.idempotency_max_bytes)});
  Gateway gateway(std::move(options), upstream, idempotency, timers);
  CampaignServiceImpl service(gateway, telemetry, config.default_timeout);

  std::unique_ptr<prometheus::Exposer> admin;
  if (!config.admin_listen.empty()) {
    try {
      admin = std::make_unique<prometheus::Exposer>(config.admin_listen);
    } catch (const std::exception&) {
      Die(absl::StrCat("cannot listen on --admin_listen '", config.admin_listen,
                       "' (address in use, or not an address of this host)"));
    }
    admin->RegisterCollectable(telemetry.registry());
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  // Services balance connections, not RPCs: age connections out so clients
  // reconnect and spread over replicas, with grace for RPCs in flight.
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONNECTION_AGE_MS,
      static_cast<int>(absl::ToInt64Milliseconds(config.max_connection_age)));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(
                                 config.max_connection_age_grace)));
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      static_cast<int>(absl::ToInt64Milliseconds(config.keepalive_min_time)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Bounded inputs: nothing a caller sends can grow without limit.
  builder.SetMaxReceiveMessageSize(config.max_request_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE,
                             config.max_header_bytes);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    Die(absl::StrCat("cannot listen on --listen '", config.listen,
                     "' (address in use, or not an address of this host)"));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(std::string(kServiceName), true);
  health->SetServingStatus(true);

  const std::string host = config.listen.substr(0, config.listen.rfind(':'));
  LogJson("info", "listening",
          {{"address", absl::StrCat(host, ":", port)},
           {"port", port},
           {"admin_port", admin ? admin->GetListeningPorts().front() : 0},
           {"version", CAMPAIGN_GATEWAY_VERSION},
           {"mode", config.sandbox() ? "sandbox" : "connyline"},
           {"account_code", config.account_code},
           {"time_zone", config.time_zone_name}});
  if (config.sandbox()) {
    LogJson("warning",
            "sandbox mode: Connyline is simulated in process; no SMS is ever "
            "sent. Set --upstream_url to talk to Connyline.");
  }

  int signal = 0;
  sigwait(&stop_signals, &signal);
  health->SetServingStatus(false);
  LogJson("info", "stopping: health is NOT_SERVING, draining",
          {{"signal", signal},
           {"drain_seconds", absl::ToDoubleSeconds(config.shutdown_drain)}});
  // Keep serving while endpoints update, so no caller sees a refusal.
  absl::SleepFor(config.shutdown_drain);
  server->Shutdown(absl::ToChronoTime(absl::Now() + config.shutdown_timeout));
  server->Wait();
  // A keyed create outlives its RPC until Connyline answers (so a repeat
  // learns the outcome); let those finish before tearing the upstream down.
  const absl::Time give_up = absl::Now() + config.shutdown_timeout;
  while (upstream.inflight() > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (upstream.inflight() > 0) {
    LogJson("warning", "stopped with upstream requests still in flight",
            {{"in_flight", upstream.inflight()}});
    std::fflush(stdout);
    std::_Exit(0);  // their callbacks would outlive the objects they use
  }
  LogJson("info", "stopped");
  return 0;
}

}  // namespace
}  // namespace campaign_gateway

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "gRPC gateway to Connyline's SMS campaign API.\n"
      "Every flag may also be set as CAMPAIGN_GATEWAY_<FLAG> in the "
      "environment.");
  // The environment first, so that the command line wins.
  if (absl::Status s = campaign_gateway::ApplyEnvironmentToFlags(); !s.ok()) {
    campaign_gateway::Die(s.message());
  }
  absl::ParseCommandLine(argc, argv);
  return campaign_gateway::Run();
}
