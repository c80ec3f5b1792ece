// Configuration: Abseil flags, each also settable through the environment
// (CAMPAIGN_GATEWAY_<FLAG>, the flag wins), checked before anything starts.
#ifndef CAMPAIGN_GATEWAY_SERVICE_CONFIG_H_
#define CAMPAIGN_GATEWAY_SERVICE_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/redis_client.h"

ABSL_DECLARE_FLAG(std::string, listen);
ABSL_DECLARE_FLAG(std::string, admin_listen);
ABSL_DECLARE_FLAG(std::string, upstream_url);
ABSL_DECLARE_FLAG(bool, sandbox);
ABSL_DECLARE_FLAG(bool, allow_insecure_upstream);
ABSL_DECLARE_FLAG(std::string, account_code);
ABSL_DECLARE_FLAG(std::string, token_file);
ABSL_DECLARE_FLAG(std::string, time_zone);
ABSL_DECLARE_FLAG(absl::Duration, default_timeout);
ABSL_DECLARE_FLAG(absl::Duration, start_past_tolerance);
ABSL_DECLARE_FLAG(absl::Duration, start_max_ahead);
ABSL_DECLARE_FLAG(absl::Duration, shutdown_drain);
ABSL_DECLARE_FLAG(absl::Duration, shutdown_timeout);
ABSL_DECLARE_FLAG(absl::Duration, max_connection_age);
ABSL_DECLARE_FLAG(absl::Duration, max_connection_age_grace);
ABSL_DECLARE_FLAG(absl::Duration, keepalive_min_time);
ABSL_DECLARE_FLAG(absl::Duration, max_connection_idle);
ABSL_DECLARE_FLAG(absl::Duration, handshake_timeout);
ABSL_DECLARE_FLAG(int, max_concurrent_streams);
ABSL_DECLARE_FLAG(int64_t, grpc_memory_limit_bytes);
ABSL_DECLARE_FLAG(absl::Duration, keyed_upstream_timeout);
ABSL_DECLARE_FLAG(int, admin_threads);
ABSL_DECLARE_FLAG(absl::Duration, admin_request_timeout);
ABSL_DECLARE_FLAG(int, upstream_shards);
ABSL_DECLARE_FLAG(std::string, upstream_ca_file);
ABSL_DECLARE_FLAG(std::string, upstream_http2);
ABSL_DECLARE_FLAG(int, upstream_max_connections);
ABSL_DECLARE_FLAG(int, max_inflight);
ABSL_DECLARE_FLAG(int64_t, upstream_max_response_bytes);
ABSL_DECLARE_FLAG(int, max_request_bytes);
ABSL_DECLARE_FLAG(int, max_header_bytes);
ABSL_DECLARE_FLAG(absl::Duration, idempotency_ttl);
ABSL_DECLARE_FLAG(int64_t, idempotency_max_bytes);
ABSL_DECLARE_FLAG(std::string, redis_url);
ABSL_DECLARE_FLAG(std::string, redis_password_file);
ABSL_DECLARE_FLAG(int64_t, upstream_rate_limit);
ABSL_DECLARE_FLAG(int, retry_max_attempts);
ABSL_DECLARE_FLAG(double, retry_budget_ratio);
ABSL_DECLARE_FLAG(int, breaker_failure_threshold);
ABSL_DECLARE_FLAG(absl::Duration, breaker_open_duration);
ABSL_DECLARE_FLAG(std::string, tls_cert_file);
ABSL_DECLARE_FLAG(std::string, tls_key_file);
ABSL_DECLARE_FLAG(std::string, tls_client_ca_file);
ABSL_DECLARE_FLAG(std::string, authz_policy_file);
ABSL_DECLARE_FLAG(std::string, health_listen);
ABSL_DECLARE_FLAG(bool, reflection);

namespace campaign_gateway {

// The account sandbox mode serves when --account_code is not given.
inline constexpr absl::string_view kSandboxAccount = "sandbox";
// Connyline's documented token length; other lengths only warn.
inline constexpr size_t kExpectedTokenLength = 56;

// The defaults here are the flags' defaults (config.cc reads them from a
// default Config), so tests that build a Config get what production gets.
struct Config {
  std::string listen = "0.0.0.0:50051";
  std::string admin_listen = "0.0.0.0:9090";
  std::string upstream_url;  // normalised: no trailing '/'; empty: sandbox
  std::string account_code = std::string(kSandboxAccount);
  std::string token;  // never logged
  // Where `token` came from, re-read while serving; empty: CONNYLINE_TOKEN.
  std::string token_file;
  std::string time_zone_name = "UTC";
  absl::TimeZone time_zone = absl::UTCTimeZone();
  absl::Duration default_timeout = absl::Seconds(10);
  // A create's start must fall within [now - past tolerance, now + ahead].
  absl::Duration start_past_tolerance = absl::Minutes(5);
  absl::Duration start_max_ahead = absl::Hours(730 * 24);
  absl::Duration shutdown_drain = absl::Seconds(5);
  absl::Duration shutdown_timeout = absl::Seconds(15);
  absl::Duration max_connection_age = absl::Minutes(5);
  absl::Duration max_connection_age_grace = absl::Seconds(30);
  absl::Duration keepalive_min_time = absl::Seconds(20);
  // HTTP/2 and connection hardening (SECURITY.md): a connection without an
  // RPC for this long is closed (GOAWAY).
  absl::Duration max_connection_idle = absl::Minutes(2);
  // A connection that has not completed its handshake (TLS, and the HTTP/2
  // preface and SETTINGS) by then is closed.
  absl::Duration handshake_timeout = absl::Seconds(5);
  // Advertised in SETTINGS: streams one connection may hold open at once.
  int max_concurrent_streams = 100;
  // gRPC's own memory (connections, streams, buffers): a ResourceQuota, so
  // gRPC sheds load (GOAWAY, RST_STREAM) before the pod's 256 Mi limit.
  int64_t grpc_memory_limit_bytes = 96 << 20;
  // The upstream timeout of a create with a request_id: it runs on after
  // its caller leaves (so a repeat learns its outcome), bounded by this
  // gateway-owned deadline rather than the caller's.
  absl::Duration keyed_upstream_timeout = absl::Seconds(10);
  // The /metrics server (civetweb): worker threads, and how long one
  // request may take to arrive, so slow clients cannot hold every thread.
  int admin_threads = 4;
  absl::Duration admin_request_timeout = absl::Seconds(5);
  int upstream_shards = 8;
  std::string upstream_ca_file;
  // "auto" (HTTP/2 by ALPN over https), "off", or "prior_knowledge" (h2c).
  std::string upstream_http2 = "auto";
  // Most connections to Connyline over all shards; 0: one per call the
  // gateway admits (--max_inflight). HTTP/1.1 over TLS with one connection
  // per call in flight opens thousands of handshakes at once in a burst,
  // which time out on the way (measured in bench/README.md). Over HTTP/1.1
  // the cap bounds throughput to cap / latency: 2,048 / 100 ms ≈ 20k/s.
  int upstream_max_connections = 2048;
  int max_inflight = 4096;
  int64_t upstream_max_response_bytes = 1 << 20;
  int max_request_bytes = 64 << 10;
  int max_header_bytes = 16 << 10;
  absl::Duration idempotency_ttl = absl::Hours(24);
  int64_t idempotency_max_bytes = 64 << 20;
  // The shared store; nullopt: per process. The password inside is a
  // secret like the token.
  std::optional<RedisOptions> redis;
  std::string redis_url;  // as given, for logs (it holds no password)
  int64_t upstream_rate_limit = 0;
  int retry_max_attempts = 3;
  double retry_budget_ratio = 0.2;
  int breaker_failure_threshold = 5;
  absl::Duration breaker_open_duration = absl::Seconds(5);
  // Inbound TLS: PEM files, re-read while serving (rotation without a
  // restart). No certificate: plaintext. With the client CA, callers must
  // present a certificate it signed (mTLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // gRPC authorization-policy JSON, re-read while serving; empty: every
  // caller may call every method.
  std::string authz_policy_file;
  // host:port of a plaintext listener serving only grpc.health.v1.Health
  // (for kubelet probes, which speak no TLS); empty: none.
  std::string health_listen;
  bool reflection = true;  // gRPC server reflection on --listen
  // Non-fatal findings to print at startup (never containing the token).
  std::vector<std::string> warnings;

  bool sandbox() const { return upstream_url.empty(); }
  bool tls() const { return !tls_cert_file.empty(); }
};

// Sets every flag from CAMPAIGN_GATEWAY_<FLAG NAME IN UPPER CASE> when that
// variable is set. Call it before absl::ParseCommandLine() so that flags on
// the command line win. Returns an error naming the variable when a value
// does not parse, or when a CAMPAIGN_GATEWAY_* variable names no flag (a
// misspelt UPSTREAM_URL must not go unnoticed).
absl::Status ApplyEnvironmentToFlags();

// Levenshtein distance (insertions, deletions, substitutions of bytes).
size_t EditDistance(absl::string_view a, absl::string_view b);
// The candidate closest to `name` by EditDistance (the first on a tie);
// empty when there are no candidates.
std::string ClosestName(absl::string_view name,
                        const std::vector<std::string>& candidates);
// An error for the first of `variables` (full names, e.g.
// "CAMPAIGN_GATEWAY_UPSTREM_URL") with the CAMPAIGN_GATEWAY_ prefix whose
// rest, in lower case, is none of `flags`; it names the closest flag.
// Variables without the prefix are ignored.
absl::Status CheckEnvironmentNames(const std::vector<std::string>& variables,
                                   const std::vector<std::string>& flags);

// Reads the flags (and the token from --token_file or CONNYLINE_TOKEN) and
// checks them; the error is one line naming the problem.
absl::StatusOr<Config> LoadConfig();

// The checks of LoadConfig(), on explicit inputs (for tests).
absl::StatusOr<std::string> NormaliseUpstreamUrl(absl::string_view url);
absl::Status CheckAccountCode(absl::string_view account_code);
// `raw` is the file's or variable's content; one trailing newline (LF or
// CRLF) is dropped, as Secrets made from files often end with one.
absl::StatusOr<std::string> CheckToken(absl::string_view raw,
                                       absl::string_view source,
                                       std::vector<std::string>* warnings);
absl::Status CheckListenAddress(absl::string_view address,
                                absl::string_view flag);
// The server certificate's key matches it (both PEM files).
absl::Status CheckKeyPair(const std::string& cert_file,
                          const std::string& key_file);
// The file holds at least one PEM certificate.
absl::Status CheckCaBundle(const std::string& ca_file);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_CONFIG_H_
