#include "service/config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "openssl/err.h"
#include "openssl/pem.h"
#include "openssl/x509.h"
#include "service/authz_watcher.h"

extern char** environ;

namespace {
// The flags' defaults.
const campaign_gateway::Config kDefaults;
}  // namespace

ABSL_FLAG(std::string, listen, kDefaults.listen,
          "host:port for the gRPC server ([::]:PORT for IPv6; port 0 picks a "
          "free port).");
ABSL_FLAG(std::string, admin_listen, kDefaults.admin_listen,
          "host:port for the admin HTTP server (Prometheus /metrics); empty "
          "disables it.");
ABSL_FLAG(std::string, upstream_url, "",
          "Connyline's base URL, e.g. https://connyline.net (a path prefix is "
          "allowed). Required unless --sandbox.");
ABSL_FLAG(bool, sandbox, false,
          "Run sandbox mode: Connyline simulated in process, no SMS is ever "
          "sent. Only when asked: without it --upstream_url is required, and "
          "the two exclude each other.");
ABSL_FLAG(bool, allow_insecure_upstream, false,
          "Accept an http:// --upstream_url, over which the token travels in "
          "clear text. For local test fakes only.");
ABSL_FLAG(std::string, account_code, "",
          "The Connyline account code ({account_code} in every API path). "
          "Required with --upstream_url; sandbox mode defaults to 'sandbox'.");
ABSL_FLAG(std::string, token_file, "",
          "File holding the 56-character API token (e.g. a mounted Kubernetes "
          "Secret). Without it the token is read from CONNYLINE_TOKEN.");
ABSL_FLAG(std::string, time_zone, kDefaults.time_zone_name,
          "IANA time zone in which Connyline reads and writes local times "
          "(e.g. Europe/Athens).");
ABSL_FLAG(absl::Duration, default_timeout, kDefaults.default_timeout,
          "Deadline for calls that arrive without one.");
ABSL_FLAG(absl::Duration, start_past_tolerance, kDefaults.start_past_tolerance,
          "How far in the past a create's start may be (clock skew, a call "
          "that took a while); earlier ones are INVALID_ARGUMENT.");
ABSL_FLAG(absl::Duration, start_max_ahead, kDefaults.start_max_ahead,
          "How far ahead a create's start may be (default 730 days); later "
          "ones are INVALID_ARGUMENT.");
ABSL_FLAG(absl::Duration, shutdown_drain, kDefaults.shutdown_drain,
          "After SIGTERM: how long health reports NOT_SERVING while new RPCs "
          "are still served, so load balancers stop sending traffic.");
ABSL_FLAG(absl::Duration, shutdown_timeout, kDefaults.shutdown_timeout,
          "After the drain: how long in-flight RPCs, and upstream requests "
          "that outlive their RPC, get to finish.");
ABSL_FLAG(absl::Duration, max_connection_age, kDefaults.max_connection_age,
          "Clients are asked to reconnect (GOAWAY) after this long, so "
          "long-lived HTTP/2 connections rebalance across replicas.");
ABSL_FLAG(absl::Duration, max_connection_age_grace,
          kDefaults.max_connection_age_grace,
          "How long RPCs on an aged connection may still run after GOAWAY.");
ABSL_FLAG(absl::Duration, keepalive_min_time, kDefaults.keepalive_min_time,
          "The shortest client keepalive ping interval the server permits.");
ABSL_FLAG(absl::Duration, max_connection_idle, kDefaults.max_connection_idle,
          "A connection without any RPC for this long is closed (GOAWAY); "
          "clients reconnect when they need to.");
ABSL_FLAG(absl::Duration, handshake_timeout, kDefaults.handshake_timeout,
          "A connection that has not completed its handshake (TLS, HTTP/2 "
          "preface and SETTINGS) by then is closed.");
ABSL_FLAG(int, max_concurrent_streams, kDefaults.max_concurrent_streams,
          "Streams (RPCs) one HTTP/2 connection may have open at once "
          "(SETTINGS_MAX_CONCURRENT_STREAMS).");
ABSL_FLAG(int64_t, grpc_memory_limit_bytes, kDefaults.grpc_memory_limit_bytes,
          "Memory gRPC itself may use for connections, streams and buffers "
          "(a grpc::ResourceQuota); beyond it gRPC closes streams and "
          "connections. Keep it well below the pod's memory limit.");
ABSL_FLAG(absl::Duration, keyed_upstream_timeout,
          kDefaults.keyed_upstream_timeout,
          "Upstream timeout of a create with a request_id, which runs on "
          "after its caller leaves (gateway-owned, not the caller's "
          "deadline).");
ABSL_FLAG(int, admin_threads, kDefaults.admin_threads,
          "Worker threads of the admin HTTP server (/metrics).");
ABSL_FLAG(absl::Duration, admin_request_timeout,
          kDefaults.admin_request_timeout,
          "How long the admin HTTP server waits for a request to arrive "
          "before closing the connection, so slow clients cannot block "
          "scrapes.");
ABSL_FLAG(int, upstream_shards, kDefaults.upstream_shards,
          "Event-loop threads for upstream HTTP, each with its own connection "
          "pool.");
ABSL_FLAG(std::string, upstream_ca_file, "",
          "PEM file of CAs to trust for --upstream_url instead of the "
          "system's.");
ABSL_FLAG(std::string, upstream_http2, kDefaults.upstream_http2,
          "HTTP/2 to Connyline: 'auto' (offered by ALPN over https, many "
          "requests on one connection), 'off' (HTTP/1.1), 'prior_knowledge' "
          "(HTTP/2 without asking, also over http://).");
ABSL_FLAG(int, upstream_max_connections, kDefaults.upstream_max_connections,
          "Most connections to Connyline at once, over all shards; requests "
          "beyond them wait for a free one (with HTTP/2, for a free stream). "
          "0: one per call in flight (--max_inflight).");

ABSL_FLAG(int, max_inflight, kDefaults.max_inflight,
          "Most requests to Connyline under way at once; calls beyond it get "
          "RESOURCE_EXHAUSTED (OVERLOADED) at once instead of queueing.");
ABSL_FLAG(int64_t, upstream_max_response_bytes,
          kDefaults.upstream_max_response_bytes,
          "Largest answer read from Connyline; a larger one fails the call "
          "(INTERNAL, UPSTREAM_BAD_RESPONSE) without being buffered.");
ABSL_FLAG(int, max_request_bytes, kDefaults.max_request_bytes,
          "Largest gRPC request message accepted (RESOURCE_EXHAUSTED beyond).");
ABSL_FLAG(int, max_header_bytes, kDefaults.max_header_bytes,
          "Largest gRPC request metadata (headers) accepted.");
ABSL_FLAG(absl::Duration, idempotency_ttl, kDefaults.idempotency_ttl,
          "How long a create's result is remembered by its request_id.");
ABSL_FLAG(int64_t, idempotency_max_bytes, kDefaults.idempotency_max_bytes,
          "Memory for remembered request_id results (per-process store); "
          "when it is full of unexpired results, creates with a new "
          "request_id are refused (RESOURCE_EXHAUSTED, "
          "IDEMPOTENCY_STORE_FULL) rather than forgetting a live one.");
ABSL_FLAG(
    std::string, redis_url, "",
    "redis://HOST:PORT[/DB] of the Redis every replica shares: request_id "
    "keys, Connyline's 429 cool-down and --upstream_rate_limit live "
    "there. Empty: a per-process store (one replica only).");
ABSL_FLAG(std::string, redis_password_file, "",
          "File holding the Redis AUTH password (e.g. a mounted Secret); one "
          "trailing newline is ignored.");
ABSL_FLAG(int64_t, upstream_rate_limit, kDefaults.upstream_rate_limit,
          "Most requests per second to Connyline for this account, summed "
          "over every replica sharing --redis_url (per process without it); "
          "0: no limit. Beyond it calls get RESOURCE_EXHAUSTED (RATE_LIMITED) "
          "and nothing is sent.");
ABSL_FLAG(int, retry_max_attempts, kDefaults.retry_max_attempts,
          "Attempts per upstream request, the first included (creates are "
          "retried only when nothing was sent).");
ABSL_FLAG(double, retry_budget_ratio, kDefaults.retry_budget_ratio,
          "Retries may add at most this fraction to the upstream load.");
ABSL_FLAG(int, breaker_failure_threshold, kDefaults.breaker_failure_threshold,
          "Upstream failures in a row that open the circuit breaker.");
ABSL_FLAG(absl::Duration, breaker_open_duration,
          kDefaults.breaker_open_duration,
          "How long the open breaker fails calls fast before one probe.");

ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain the gRPC server presents (TLS); re-read "
          "while serving, so a rotated certificate needs no restart. Empty: "
          "plaintext.");
ABSL_FLAG(std::string, tls_key_file, "",
          "PEM private key of --tls_cert_file (required with it).");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle: callers must present a client certificate it "
          "signed (mTLS); re-read while serving. Needs --tls_cert_file.");
ABSL_FLAG(std::string, authz_policy_file, "",
          "gRPC authorization policy (JSON: allow_rules, deny_rules, "
          "source.principals, request.paths) deciding which client "
          "certificate identity may call which method; re-read within "
          "seconds of a change. Needs --tls_client_ca_file. Empty: every "
          "caller may call every method.");
ABSL_FLAG(std::string, health_listen, kDefaults.health_listen,
          "host:port of a plaintext listener serving only "
          "grpc.health.v1.Health (for kubelet gRPC probes, which speak no "
          "TLS); empty disables it.");
ABSL_FLAG(bool, reflection, kDefaults.reflection,
          "Serve gRPC server reflection on --listen (turn off in "
          "production).");

namespace campaign_gateway {
namespace {

constexpr absl::string_view kEnvPrefix = "CAMPAIGN_GATEWAY_";

absl::Status ConfigError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

bool IsTokenChar(unsigned char c) { return c > 0x20 && c < 0x7f; }

}  // namespace

size_t EditDistance(absl::string_view a, absl::string_view b) {
  // One row of the classic dynamic programme: row[j] = distance(a[0,i),
  // b[0,j)).
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string ClosestName(absl::string_view name,
                        const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_distance = 0;
  for (const std::string& candidate : candidates) {
    const size_t distance = EditDistance(name, candidate);
    if (best == nullptr || distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  return best != nullptr ? *best : std::string();
}

absl::Status CheckEnvironmentNames(const std::vector<std::string>& variables,
                                   const std::vector<std::string>& flags) {
  for (const std::string& variable : variables) {
    absl::string_view rest = variable;
    if (!absl::ConsumePrefix(&rest, kEnvPrefix)) continue;
    const std::string name = absl::AsciiStrToLower(rest);
    if (std::find(flags.begin(), flags.end(), name) != flags.end()) continue;
    const std::string closest = ClosestName(name, flags);
    return ConfigError(absl::StrCat("unknown environment variable ", variable,
                                    ": no flag has that name; did you mean --",
                                    closest, " (", kEnvPrefix,
                                    absl::AsciiStrToUpper(closest), ")?"));
  }
  return absl::OkStatus();
}

absl::Status ApplyEnvironmentToFlags() {
  std::vector<std::string> variables;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const absl::string_view text = *entry;
    variables.emplace_back(text.substr(0, text.find('=')));
  }
  std::vector<std::string> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    flags.emplace_back(name);
  }
  std::sort(flags.begin(), flags.end());  // a deterministic tie-break
  if (absl::Status s = CheckEnvironmentNames(variables, flags); !s.ok()) {
    return s;
  }
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    const std::string variable =
        absl::StrCat(kEnvPrefix, absl::AsciiStrToUpper(name));
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return ConfigError(absl::StrCat("invalid ", variable, ": ", error));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NormaliseUpstreamUrl(absl::string_view url) {
  std::string out(url);
  while (absl::EndsWith(out, "/")) out.pop_back();
  absl::string_view rest = out;
  const std::string lower = absl::AsciiStrToLower(out);
  if (absl::StartsWith(lower, "https://")) {
    rest.remove_prefix(8);
  } else if (absl::StartsWith(lower, "http://")) {
    rest.remove_prefix(7);
  } else {
    return ConfigError(absl::StrCat(
        "--upstream_url must start with https:// or http://, got '", url, "'"));
  }
  const absl::string_view host = rest.substr(0, rest.find('/'));
  if (host.empty()) {
    return ConfigError(absl::StrCat("--upstream_url has no host: '", url, "'"));
  }
  for (unsigned char c : out) {
    if (!IsTokenChar(c) || c == '?' || c == '#') {
      return ConfigError(absl::StrCat(
          "--upstream_url must be a plain base URL without spaces, query or "
          "fragment: '",
          url, "'"));
    }
  }
  return out;
}

absl::Status CheckAccountCode(absl::string_view account_code) {
  if (account_code.empty() || account_code.size() > 64) {
    return ConfigError("--account_code must be 1 to 64 characters");
  }
  for (char c : account_code) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') {
      return ConfigError(
          "--account_code may hold only letters, digits, '-', '_' and '.'");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CheckToken(absl::string_view raw,
                                       absl::string_view source,
                                       std::vector<std::string>* warnings) {
  absl::string_view token = raw;
  if (!absl::ConsumeSuffix(&token, "\r\n")) absl::ConsumeSuffix(&token, "\n");
  if (token.empty()) {
    return ConfigError(
        absl::StrCat("the API token from ", source, " is empty"));
  }
  for (unsigned char c : token) {
    if (!IsTokenChar(c)) {
      // Say where, never what: the value is a secret.
      return ConfigError(absl::StrCat(
          "the API token from ", source,
          " contains whitespace or control characters (only one trailing "
          "newline is ignored)"));
    }
  }
  if (token.size() != kExpectedTokenLength && warnings != nullptr) {
    warnings->push_back(absl::StrCat("the API token from ", source, " has ",
                                     token.size(),
                                     " characters; Connyline's "
                                     "tokens have ",
                                     kExpectedTokenLength));
  }
  return std::string(token);
}

absl::Status CheckListenAddress(absl::string_view address,
                                absl::string_view flag) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return ConfigError(absl::StrCat("--", flag,
                                    " must be host:port (e.g. 0.0.0.0:50051), "
                                    "got '",
                                    address, "'"));
  }
  return absl::OkStatus();
}

namespace {

absl::Status CheckPositive(absl::Duration value, absl::string_view flag) {
  if (value > absl::ZeroDuration()) return absl::OkStatus();
  return ConfigError(absl::StrCat("--", flag, " must be positive, got ",
                                  absl::FormatDuration(value)));
}

absl::Status CheckNotNegative(absl::Duration value, absl::string_view flag) {
  if (value >= absl::ZeroDuration()) return absl::OkStatus();
  return ConfigError(absl::StrCat("--", flag, " must not be negative, got ",
                                  absl::FormatDuration(value)));
}

absl::Status CheckRange(double value, double min, double max,
                        absl::string_view flag) {
  if (value >= min && value <= max) return absl::OkStatus();
  return ConfigError(absl::StrCat("--", flag, " must be between ", min, " and ",
                                  max, ", got ", value));
}

// The first error of `checks`, in order.
absl::Status FirstError(std::initializer_list<absl::Status> checks) {
  for (const absl::Status& s : checks) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status LoadListeners(Config& config) {
  config.listen = absl::GetFlag(FLAGS_listen);
  config.admin_listen = absl::GetFlag(FLAGS_admin_listen);
  return FirstError(
      {CheckListenAddress(config.listen, "listen"),
       config.admin_listen.empty()
           ? absl::OkStatus()
           : CheckListenAddress(config.admin_listen, "admin_listen")});
}

absl::Status LoadTimeZone(Config& config) {
  config.time_zone_name = absl::GetFlag(FLAGS_time_zone);
  if (absl::LoadTimeZone(config.time_zone_name, &config.time_zone)) {
    return absl::OkStatus();
  }
  return ConfigError(absl::StrCat("unknown --time_zone '",
                                  config.time_zone_name,
                                  "' (want an IANA name such as "
                                  "Europe/Athens; is tzdata installed?)"));
}

absl::Status LoadTimeouts(Config& config) {
  config.default_timeout = absl::GetFlag(FLAGS_default_timeout);
  config.shutdown_drain = absl::GetFlag(FLAGS_shutdown_drain);
  config.shutdown_timeout = absl::GetFlag(FLAGS_shutdown_timeout);
  config.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  config.max_connection_age_grace =
      absl::GetFlag(FLAGS_max_connection_age_grace);
  config.keepalive_min_time = absl::GetFlag(FLAGS_keepalive_min_time);
  config.start_past_tolerance = absl::GetFlag(FLAGS_start_past_tolerance);
  config.start_max_ahead = absl::GetFlag(FLAGS_start_max_ahead);
  config.max_connection_idle = absl::GetFlag(FLAGS_max_connection_idle);
  config.handshake_timeout = absl::GetFlag(FLAGS_handshake_timeout);
  config.keyed_upstream_timeout = absl::GetFlag(FLAGS_keyed_upstream_timeout);
  config.admin_request_timeout = absl::GetFlag(FLAGS_admin_request_timeout);
  // gRPC takes these as int milliseconds.
  constexpr absl::Duration kMaxMillis = absl::Hours(24 * 24);
  return FirstError(
      {CheckPositive(config.default_timeout, "default_timeout"),
       CheckNotNegative(config.start_past_tolerance, "start_past_tolerance"),
       CheckPositive(config.start_max_ahead, "start_max_ahead"),
       CheckNotNegative(config.shutdown_drain, "shutdown_drain"),
       CheckNotNegative(config.shutdown_timeout, "shutdown_timeout"),
       CheckPositive(config.max_connection_age, "max_connection_age"),
       CheckNotNegative(config.max_connection_age_grace,
                        "max_connection_age_grace"),
       CheckPositive(config.keepalive_min_time, "keepalive_min_time"),
       CheckRange(absl::ToDoubleSeconds(config.max_connection_idle), 0.001,
                  absl::ToDoubleSeconds(kMaxMillis), "max_connection_idle"),
       CheckRange(absl::ToDoubleSeconds(config.handshake_timeout), 0.001,
                  absl::ToDoubleSeconds(kMaxMillis), "handshake_timeout"),
       CheckPositive(config.keyed_upstream_timeout, "keyed_upstream_timeout"),
       CheckRange(absl::ToDoubleSeconds(config.admin_request_timeout), 0.001,
                  absl::ToDoubleSeconds(kMaxMillis), "admin_request_timeout")});
}

absl::Status LoadLimits(Config& config) {
  config.upstream_shards = absl::GetFlag(FLAGS_upstream_shards);
  config.upstream_max_connections =
      absl::GetFlag(FLAGS_upstream_max_connections);
  config.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  config.upstream_max_response_bytes =
      absl::GetFlag(FLAGS_upstream_max_response_bytes);
  config.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  config.max_header_bytes = absl::GetFlag(FLAGS_max_header_bytes);
  config.idempotency_ttl = absl::GetFlag(FLAGS_idempotency_ttl);
  config.idempotency_max_bytes = absl::GetFlag(FLAGS_idempotency_max_bytes);
  config.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  config.grpc_memory_limit_bytes = absl::GetFlag(FLAGS_grpc_memory_limit_bytes);
  config.admin_threads = absl::GetFlag(FLAGS_admin_threads);
  constexpr double kMaxBytes = 1LL << 40;
  return FirstError(
      {CheckRange(config.upstream_shards, 1, 64, "upstream_shards"),
       CheckRange(config.upstream_max_connections, 0, 1 << 20,
                  "upstream_max_connections"),
       CheckRange(config.max_inflight, 1, 1 << 20, "max_inflight"),
       CheckRange(static_cast<double>(config.upstream_max_response_bytes), 1024,
                  kMaxBytes, "upstream_max_response_bytes"),
       CheckRange(config.max_request_bytes, 1024, 1 << 30, "max_request_bytes"),
       CheckRange(config.max_header_bytes, 1024, 1 << 30, "max_header_bytes"),
       CheckPositive(config.idempotency_ttl, "idempotency_ttl"),
       CheckRange(static_cast<double>(config.idempotency_max_bytes), 0,
                  kMaxBytes, "idempotency_max_bytes"),
       CheckRange(config.max_concurrent_streams, 1, 1 << 20,
                  "max_concurrent_streams"),
       CheckRange(static_cast<double>(config.grpc_memory_limit_bytes), 4 << 20,
                  kMaxBytes, "grpc_memory_limit_bytes"),
       CheckRange(config.admin_threads, 2, 64, "admin_threads")});
}

absl::Status LoadGuards(Config& config) {
  config.retry_max_attempts = absl::GetFlag(FLAGS_retry_max_attempts);
  config.retry_budget_ratio = absl::GetFlag(FLAGS_retry_budget_ratio);
  config.breaker_failure_threshold =
      absl::GetFlag(FLAGS_breaker_failure_threshold);
  config.breaker_open_duration = absl::GetFlag(FLAGS_breaker_open_duration);
  return FirstError(
      {CheckRange(config.retry_max_attempts, 1, 100, "retry_max_attempts"),
       CheckRange(config.retry_budget_ratio, 0, 1000, "retry_budget_ratio"),
       CheckRange(config.breaker_failure_threshold, 1, 1 << 20,
                  "breaker_failure_threshold"),
       CheckPositive(config.breaker_open_duration, "breaker_open_duration")});
}

absl::Status CheckReadable(const std::string& path, absl::string_view flag) {
  if (std::ifstream(path).good()) return absl::OkStatus();
  return ConfigError(absl::StrCat("cannot read --", flag, " '", path,
                                  "' (missing or not readable)"));
}

// A secret file's content, one trailing newline (LF or CRLF) dropped.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path,
                                           absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return ConfigError(absl::StrCat("cannot read --", flag, " '", path,
                                    "' (missing or not readable)"));
  }
  std::ostringstream content;
  content << in.rdbuf();
  const std::string text = content.str();
  absl::string_view secret = text;
  if (!absl::ConsumeSuffix(&secret, "\r\n")) {
    absl::ConsumeSuffix(&secret, "\n");
  }
  if (secret.empty()) {
    return ConfigError(absl::StrCat("--", flag, " '", path, "' is empty"));
  }
  return std::string(secret);
}

// The shared store: Redis's address and password, and the rate limit.
absl::Status LoadRedis(Config& config) {
  config.upstream_rate_limit = absl::GetFlag(FLAGS_upstream_rate_limit);
  if (config.upstream_rate_limit < 0) {
    return ConfigError(
        absl::StrCat("--upstream_rate_limit must not be negative, got ",
                     config.upstream_rate_limit));
  }
  const std::string url = absl::GetFlag(FLAGS_redis_url);
  const std::string password_file = absl::GetFlag(FLAGS_redis_password_file);
  if (url.empty()) {
    if (!password_file.empty()) {
      return ConfigError("--redis_password_file is set but no Redis URL is");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<RedisOptions> redis = ParseRedisUrl(url);
  if (!redis.ok()) return ConfigError(redis.status().message());
  if (!password_file.empty()) {
    absl::StatusOr<std::string> password =
        ReadSecretFile(password_file, "redis_password_file");
    if (!password.ok()) return password.status();
    redis->password = *std::move(password);
  }
  config.redis_url = url;
  config.redis = *std::move(redis);
  return absl::OkStatus();
}

// The token from --token_file, else from CONNYLINE_TOKEN.
absl::Status LoadToken(Config& config) {
  const std::string token_file = absl::GetFlag(FLAGS_token_file);
  std::string raw;
  std::string source;
  if (!token_file.empty()) {
    std::ifstream in(token_file, std::ios::binary);
    if (!in) {
      return ConfigError(
          absl::StrCat("cannot read the API token: --token_file '", token_file,
                       "' does not exist or is not readable"));
    }
    std::ostringstream content;
    content << in.rdbuf();
    raw = content.str();
    source = absl::StrCat("--token_file '", token_file, "'");
  } else if (const char* env = std::getenv("CONNYLINE_TOKEN"); env) {
    raw = env;
    source = "CONNYLINE_TOKEN";
  } else {
    return ConfigError(
        "no API token: set --token_file (or CONNYLINE_TOKEN); an upstream "
        "URL is set, so the token is required");
  }
  absl::StatusOr<std::string> token = CheckToken(raw, source, &config.warnings);
  if (!token.ok()) return token.status();
  config.token = *std::move(token);
  config.token_file = token_file;
  return absl::OkStatus();
}

// Sandbox mode, only when asked: a token file or account code without an
// upstream URL most likely means the URL's variable is misspelt or missing,
// and sandbox mode would then answer "created" while sending nothing.
absl::Status LoadSandbox(Config& config) {
  const bool sandbox = absl::GetFlag(FLAGS_sandbox);
  const bool token_file = !absl::GetFlag(FLAGS_token_file).empty();
  if (!sandbox) {
    if (token_file) {
      return ConfigError(
          "--token_file is set but no upstream URL is (is "
          "CAMPAIGN_GATEWAY_UPSTREAM_URL missing or misspelt?): set "
          "Connyline's URL, or ask for sandbox mode explicitly");
    }
    if (!config.account_code.empty()) {
      return ConfigError(
          "--account_code is set but no upstream URL is (is "
          "CAMPAIGN_GATEWAY_UPSTREAM_URL missing or misspelt?): set "
          "Connyline's URL, or ask for sandbox mode explicitly");
    }
    return ConfigError(
        "--upstream_url is required: Connyline's base URL (https://...). "
        "Sandbox mode, which simulates Connyline and never sends an SMS, "
        "runs only when asked for explicitly (sandbox flag)");
  }
  // The base Deployment mounts a token for every overlay; sandbox mode
  // was asked for, so the token is simply not used.
  if (token_file) {
    config.warnings.emplace_back(
        "sandbox mode: the token file is not read (nothing is sent)");
  }
  if (config.account_code.empty()) {
    config.account_code = std::string(kSandboxAccount);
  }
  return CheckAccountCode(config.account_code);
}

// Connyline's URL, account, CA and token; sandbox mode only when asked.
absl::Status LoadUpstream(Config& config) {
  config.upstream_http2 = absl::GetFlag(FLAGS_upstream_http2);
  if (config.upstream_http2 != "auto" && config.upstream_http2 != "off" &&
      config.upstream_http2 != "prior_knowledge") {
    return ConfigError(absl::StrCat(
        "--upstream_http2 must be auto, off or prior_knowledge, got '",
        config.upstream_http2, "'"));
  }
  config.upstream_ca_file = absl::GetFlag(FLAGS_upstream_ca_file);
  if (!config.upstream_ca_file.empty()) {
    if (absl::Status s =
            CheckReadable(config.upstream_ca_file, "upstream_ca_file");
        !s.ok()) {
      return s;
    }
  }
  const std::string upstream_url = absl::GetFlag(FLAGS_upstream_url);
  config.account_code = absl::GetFlag(FLAGS_account_code);
  if (upstream_url.empty()) return LoadSandbox(config);
  if (absl::GetFlag(FLAGS_sandbox)) {
    return ConfigError(
        "--sandbox contradicts the upstream URL that is also set: drop one "
        "(sandbox mode never talks to Connyline)");
  }
  absl::StatusOr<std::string> url = NormaliseUpstreamUrl(upstream_url);
  if (!url.ok()) return url.status();
  if (absl::StartsWithIgnoreCase(*url, "http://") &&
      !absl::GetFlag(FLAGS_allow_insecure_upstream)) {
    return ConfigError(
        "--upstream_url is plain http://, over which the token would travel "
        "in clear text: use https:// (plain HTTP only for local test fakes, "
        "with allow_insecure_upstream set)");
  }
  config.upstream_url = *std::move(url);
  if (config.account_code.empty()) {
    return ConfigError(
        "--account_code is required when an upstream URL is set");
  }
  if (absl::Status s = CheckAccountCode(config.account_code); !s.ok()) {
    return s;
  }
  return LoadToken(config);
}

// Inbound TLS, the authorization policy, reflection and the health port.
absl::Status LoadSecurity(Config& config) {
  config.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  config.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  config.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  config.authz_policy_file = absl::GetFlag(FLAGS_authz_policy_file);
  config.health_listen = absl::GetFlag(FLAGS_health_listen);
  config.reflection = absl::GetFlag(FLAGS_reflection);
  if (!config.health_listen.empty()) {
    if (absl::Status s =
            CheckListenAddress(config.health_listen, "health_listen");
        !s.ok()) {
      return s;
    }
  }
  if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
    return ConfigError(config.tls_key_file.empty()
                           ? "--tls_key_file is required with a certificate"
                           : "--tls_cert_file is required with a key");
  }
  if (!config.tls() && !config.tls_client_ca_file.empty()) {
    return ConfigError(
        "--tls_client_ca_file needs a server certificate and key as well");
  }
  if (config.tls_client_ca_file.empty() && !config.authz_policy_file.empty()) {
    return ConfigError(
        "--authz_policy_file needs client certificates: set the client CA "
        "too (principals are client certificate names)");
  }
  if (config.tls()) {
    for (const auto& [path, flag] :
         {std::pair{&config.tls_cert_file, "tls_cert_file"},
          std::pair{&config.tls_key_file, "tls_key_file"}}) {
      if (absl::Status s = CheckReadable(*path, flag); !s.ok()) return s;
    }
    if (absl::Status s =
            CheckKeyPair(config.tls_cert_file, config.tls_key_file);
        !s.ok()) {
      return s;
    }
  }
  if (!config.tls_client_ca_file.empty()) {
    if (absl::Status s = CheckCaBundle(config.tls_client_ca_file); !s.ok()) {
      return s;
    }
  }
  if (!config.authz_policy_file.empty()) {
    absl::StatusOr<AuthzPolicy> policy =
        LoadAuthzPolicyFile(config.authz_policy_file, "authz_policy_file");
    if (!policy.ok()) return ConfigError(policy.status().message());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckKeyPair(const std::string& cert_file,
                          const std::string& key_file) {
  using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
  Bio cert_bio(BIO_new_file(cert_file.c_str(), "r"), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)
               : nullptr,
      &X509_free);
  if (cert == nullptr) {
    return ConfigError(absl::StrCat("--tls_cert_file '", cert_file,
                                    "' holds no PEM certificate"));
  }
  Bio key_bio(BIO_new_file(key_file.c_str(), "r"), &BIO_free);
  // Never printed: the content is a secret.
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      key_bio
          ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)
          : nullptr,
      &EVP_PKEY_free);
  ERR_clear_error();
  if (key == nullptr) {
    return ConfigError(absl::StrCat("--tls_key_file '", key_file,
                                    "' holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return ConfigError(absl::StrCat(
        "--tls_key_file '", key_file,
        "' is not the key of the certificate in the certificate file"));
  }
  return absl::OkStatus();
}

absl::Status CheckCaBundle(const std::string& ca_file) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_file(ca_file.c_str(), "r"), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr,
      &X509_free);
  ERR_clear_error();
  if (cert == nullptr) {
    return ConfigError(absl::StrCat("cannot read --tls_client_ca_file '",
                                    ca_file, "' as PEM certificates"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> LoadConfig() {
  Config config;
  for (auto load : {LoadListeners, LoadTimeZone, LoadTimeouts, LoadLimits,
                    LoadGuards, LoadRedis, LoadUpstream, LoadSecurity}) {
    if (absl::Status s = load(config); !s.ok()) return s;
  }
  return config;
}

}  // namespace campaign_gateway
