// An asynchronous Redis client for state shared by several gateway replicas
// (idempotency keys, cool-downs, rate limits).
//
// One RedisClient owns one connection and one event-loop thread (epoll, woken
// through an eventfd) that alone touches hiredis. Command() and Eval() only
// queue work and wake the loop, so gRPC and curl threads never block on the
// network. Commands are pipelined on the single connection; Redis answers
// them in order.
//
//   RedisOptions options = *ParseRedisUrl("redis://cache:6379/2");
//   options.password = ReadSecret(password_file);
//   RedisClient redis(options);
//   if (absl::Status s = redis.Start(absl::Seconds(2)); !s.ok()) {
//     // UNAVAILABLE: keeps reconnecting in the background, warn and go on.
//     // UNAUTHENTICATED / PERMISSION_DENIED / INVALID_ARGUMENT: bad config.
//   }
//   redis.Command({"SET", key, value, "NX", "PX", "60000"},
//                 absl::Now() + absl::Milliseconds(200),
//                 [](absl::StatusOr<RedisReply> reply) { ... });
//
// Failures a callback can see:
//   OK                 Redis answered; RedisReply holds the answer.
//   Redis error reply  The command reached Redis and was refused (it did not
//                      run, or a script failed part way): the status carries
//                      Redis's message, e.g. "Redis error: WRONGTYPE ...".
//                      The code depends on the error's prefix:
//                        NOAUTH, WRONGPASS        UNAUTHENTICATED
//                        NOPERM                   PERMISSION_DENIED
//                        OOM                      RESOURCE_EXHAUSTED
//                        LOADING, BUSY, READONLY,
//                        MASTERDOWN, TRYAGAIN,
//                        CLUSTERDOWN              UNAVAILABLE
//                        anything else (ERR, ...) FAILED_PRECONDITION
//   UNAVAILABLE        Not connected ("Redis is unreachable ..."): failed at
//                      once, nothing was sent. Or the connection was lost
//                      while the command was in flight: it may have run.
//   DEADLINE_EXCEEDED  No answer by min(deadline, submission +
//                      command_timeout): the command may have run. A late
//                      answer is discarded. When the command_timeout passes
//                      without any answer on the connection, it is deemed
//                      stuck (e.g. Redis SIGSTOPped): it is dropped, the
//                      other commands on it fail with UNAVAILABLE, and the
//                      client reconnects.
//   CANCELLED          The client is stopping or stopped.
//   INVALID_ARGUMENT   An empty argv, or a command that would change the
//                      connection's protocol (SUBSCRIBE, MONITOR, HELLO...).
//
// Not for blocking commands (BLPOP, WAIT, ...) or pub/sub: an answer slower
// than command_timeout counts as a stuck connection. Nor for commands that
// change the connection's state (SELECT, AUTH, CLIENT REPLY): a reconnect
// would silently undo them; the db and password belong in RedisOptions.
// A stuck connection is noticed by a command's timeout, not while idle.
//
// Host names are resolved (getaddrinfo, blocking) on the loop thread at each
// connection attempt.
#ifndef CAMPAIGN_GATEWAY_SERVICE_REDIS_CLIENT_H_
#define CAMPAIGN_GATEWAY_SERVICE_REDIS_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace campaign_gateway {

struct RedisOptions {
  // A name, an IPv4 or an IPv6 address (without brackets).
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;  // SELECTed after connecting when not 0.
  // Sent with AUTH when not empty. Never logged, printed, or put in a status.
  std::string password;
  // For each connection attempt: TCP connect, AUTH, SELECT and a PING.
  absl::Duration connect_timeout = absl::Seconds(1);
  // Upper bound on any command's wait for its answer (see above).
  absl::Duration command_timeout = absl::Milliseconds(500);
  // Between connection attempts: doubles from min to max after each failed
  // attempt, with jitter (each wait is 50-100% of the current step).
  absl::Duration reconnect_backoff_min = absl::Milliseconds(50);
  absl::Duration reconnect_backoff_max = absl::Seconds(2);
  // Called on the loop thread whenever the connection becomes usable (true)
  // or stops being usable (false), for metrics and logs; last_error() tells
  // why. Must not block, nor call Stop() or destroy the client.
  std::function<void(bool connected)> on_state;
};

// Parses --redis_url: redis://HOST[:PORT][/DB], with HOST a name, an IPv4
// address or an [IPv6] address in brackets; PORT 1..65535 (default 6379);
// DB a non-negative integer (default 0). A user or password in the URL, a
// query, other schemes (rediss://: TLS is not supported yet) and anything
// else are INVALID_ARGUMENT errors naming --redis_url. Errors never echo
// what could be a password. Returns the other options at their defaults.
absl::StatusOr<RedisOptions> ParseRedisUrl(absl::string_view url);

// One answer from Redis (RESP2). A top-level error reply is not a
// RedisReply but a non-OK status; kError appears only as an element of an
// array (e.g. in EXEC's answer or a script's returned table).
class RedisReply {
 public:
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };

  RedisReply() = default;  // nil
  static RedisReply Nil() { return RedisReply(); }
  static RedisReply Integer(int64_t value);
  // A bulk string: binary-safe.
  static RedisReply String(std::string value);
  // A simple string such as "OK" or "PONG".
  static RedisReply Status(std::string value);
  static RedisReply Error(std::string message);
  static RedisReply Array(std::vector<RedisReply> elements);

  Type type() const { return type_; }
  bool is_nil() const { return type_ == Type::kNil; }
  bool is_integer() const { return type_ == Type::kInteger; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_status() const { return type_ == Type::kStatus; }
  bool is_error() const { return type_ == Type::kError; }
  bool is_array() const { return type_ == Type::kArray; }

  // 0 unless is_integer().
  int64_t integer() const { return integer_; }
  // The bytes of a string, status or error; empty for the other types.
  const std::string& str() const { return str_; }
  // The elements of an array; empty for the other types.
  const std::vector<RedisReply>& elements() const { return elements_; }

  // E.g. `nil`, `42`, `"bytes"`, `+OK`, `-ERR x`, `["a", nil]`, with
  // non-printable bytes escaped. For tests and debugging.
  std::string DebugString() const;

  friend bool operator==(const RedisReply& a, const RedisReply& b);
  friend void PrintTo(const RedisReply& reply, std::ostream* os) {
    *os << reply.DebugString();
  }

 private:
  Type type_ = Type::kNil;
  int64_t integer_ = 0;
  std::string str_;
  std::vector<RedisReply> elements_;
};

class RedisClient {
 public:
  // Runs exactly once: on the loop thread, or inline on the calling thread
  // when the client is not running (before Start(), after Stop()). Never
  // while the client holds a lock, so it may call Command() again.
  using Callback = absl::AnyInvocable<void(absl::StatusOr<RedisReply>) &&>;

  explicit RedisClient(RedisOptions options);
  // Stop().
  ~RedisClient();

  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Starts the loop thread and the first connection attempt, and waits up to
  // `wait` for its outcome:
  //   OK                 connected (authenticated, db selected);
  //   UNAVAILABLE        unreachable, not answering within connect_timeout
  //                      or `wait`, or not ready (e.g. LOADING);
  //   UNAUTHENTICATED    AUTH refused, or a password needed and not given;
  //   PERMISSION_DENIED  the ACL user may not SELECT or PING;
  //   INVALID_ARGUMENT   SELECT refused (no such db);
  //   FAILED_PRECONDITION Start() called twice or after Stop().
  // Whatever the outcome, the client keeps (re)connecting in the background
  // until Stop(). Messages name Redis and its address, never the password.
  absl::Status Start(absl::Duration wait);

  // Fails what is queued and in flight with CANCELLED (on the loop thread),
  // closes the connection and joins the loop thread. Later commands fail
  // inline with CANCELLED. Idempotent. Must not be called from a callback.
  void Stop();

  // Sends `argv` (binary-safe: any bytes, including NUL) and calls `done`
  // with the answer. `deadline` is capped at now + command_timeout. See the
  // top of this file for what `done` may get.
  void Command(std::vector<std::string> argv, absl::Time deadline,
               Callback done);

  // Runs a Lua script: EVALSHA with the script's SHA1, and on NOSCRIPT (the
  // script not yet, or no longer, cached by Redis) once more with EVAL, in
  // the same `deadline`.
  void Eval(const std::string& script, std::vector<std::string> keys,
            std::vector<std::string> args, absl::Time deadline, Callback done);

  // Whether commands are being sent (the last attempt connected and the
  // connection has not been lost since).
  bool connected() const;
  // Why the client is not connected, or was not last time (OK while
  // connected and before the first attempt). Never contains the password.
  absl::Status last_error() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// The lower-case hex SHA1 of `script`, as EVALSHA and SCRIPT LOAD use.
std::string RedisScriptSha1(absl::string_view script);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_REDIS_CLIENT_H_
