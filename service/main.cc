// campaign-gateway: reads the configuration, starts the Server, and on
// SIGTERM/SIGINT drains and stops it. Flags, signals and exit codes only;
// service/server.cc assembles everything else.
#include <malloc.h>
#include <sys/prctl.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "service/config.h"
#include "service/flags_help.h"
#include "service/log.h"
#include "service/server.h"

namespace campaign_gateway {
namespace {

// A refusal to start: one line on stderr, exit code 2.
[[noreturn]] void Die(absl::string_view message) {
  std::fprintf(stderr, "campaign-gateway: %.*s\n",
               static_cast<int>(message.size()), message.data());
  std::exit(2);
}

// The start line operators look for, and what this configuration risks.
void LogStarted(const Config& config, const Server& server) {
  const std::string host = config.listen.substr(0, config.listen.rfind(':'));
  LogJson("info", "listening",
          {{"address", absl::StrCat(host, ":", server.port())},
           {"port", server.port()},
           {"admin_port", server.admin_port()},
           {"health_port", server.health_port()},
           {"tls", config.tls()},
           {"client_certificates", !config.tls_client_ca_file.empty()},
           {"authz_policy", config.authz_policy_file},
           {"reflection", config.reflection},
           {"version", CAMPAIGN_GATEWAY_VERSION},
           {"mode", config.sandbox() ? "sandbox" : "connyline"},
           {"account_code", config.account_code},
           {"time_zone", config.time_zone_name}});
  if (!config.tls()) {
    LogJson("warning",
            "plaintext gRPC: no --tls_cert_file, so callers are neither "
            "encrypted nor authenticated; use TLS with --tls_client_ca_file "
            "outside local development");
  }
  if (config.sandbox()) {
    LogJson("warning",
            "sandbox mode: Connyline is simulated in process; no SMS is ever "
            "sent. Set --upstream_url to talk to Connyline.");
  }
}

int Run(const Config& config) {
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

  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(config);
  if (!server.ok()) Die(server.status().message());
  LogStarted(config, **server);

  int signal = 0;
  sigwait(&stop_signals, &signal);
  (*server)->Drain();
  LogJson("info", "stopping: health is NOT_SERVING, draining",
          {{"signal", signal},
           {"drain_seconds", absl::ToDoubleSeconds(config.shutdown_drain)}});
  // Keep serving while endpoints update, so no caller sees a refusal.
  absl::SleepFor(config.shutdown_drain);
  if (int left = (*server)->Stop(absl::Now() + config.shutdown_timeout)) {
    LogJson("warning", "stopped with upstream requests still in flight",
            {{"in_flight", left}});
    std::fflush(stdout);
    std::_Exit(0);  // their callbacks would outlive the objects they use
  }
  server->reset();
  LogJson("info", "stopped");
  return 0;
}

}  // namespace
}  // namespace campaign_gateway

int main(int argc, char** argv) {
  using campaign_gateway::Die;
  // No core dump may carry the token (or the Redis password), and no
  // same-uid process may ptrace us or read /proc/<pid>/mem and environ.
  // Before anything reads a secret.
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    Die("cannot disable core dumps (prctl PR_SET_DUMPABLE)");
  }
  absl::SetProgramUsageMessage(
      "gRPC gateway to Connyline's SMS campaign API.\n"
      "Every flag may also be set as CAMPAIGN_GATEWAY_<FLAG> in the "
      "environment.");
  // Plain --help: the gateway's flags (config.cc) and exit 0.
  const std::vector<std::string> flag_files = {"service/config.cc"};
  campaign_gateway::SetHelpFiles(flag_files);
  if (campaign_gateway::AsksForHelp(argc, argv)) {
    std::fputs(
        campaign_gateway::FlagsHelp(
            absl::StrCat("campaign-gateway: ", absl::ProgramUsageMessage()),
            flag_files)
            .c_str(),
        stdout);
    return 0;
  }
  // The environment first, so that the command line wins.
  if (absl::Status s = campaign_gateway::ApplyEnvironmentToFlags(); !s.ok()) {
    Die(s.message());
  }
  absl::ParseCommandLine(argc, argv);
#ifndef CAMPAIGN_GATEWAY_TCMALLOC
  // glibc gives every busy thread its own heap arena; with the event loops
  // and gRPC's threads that fragmentation cost ~25% of peak memory at 4,096
  // calls in flight (bench/). Two arenas are enough for this workload.
  mallopt(M_ARENA_MAX, 2);
#endif
  // Debian's abseil is built with deadlock detection on: it costs a graph
  // update on every Mutex lock and destruction.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  campaign_gateway::SendLibraryLogsToJson();
  absl::StatusOr<campaign_gateway::Config> config =
      campaign_gateway::LoadConfig();
  if (!config.ok()) Die(config.status().message());
  return campaign_gateway::Run(*config);
}
