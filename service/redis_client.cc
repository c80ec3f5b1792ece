#include "service/redis_client.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace campaign_gateway {
namespace {

// Bounds the loop's sleep when nothing is due; wakeups end it early.
constexpr int kIdlePollMs = 1000;
// epoll_event.data.u64 of the wake eventfd; connections use their serial
// number, from 1.
constexpr uint64_t kWakeTag = 0;

// A copy of `status` sharing no state with it. absl::Status copies share a
// reference-counted message; statuses handed to other threads (callbacks,
// last_error(), Start()) get their own, so no count is shared across threads
// (Debian's Abseil is not built with TSan, which would then see no order).
absl::Status Detach(const absl::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(status.code(), status.message());
}

absl::Status UrlError(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--redis_url: ", why));
}

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

bool IsHostNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '.' || c == '_';
}

// The first word of a Redis error ("WRONGTYPE Operation against ...").
absl::string_view ErrorPrefix(absl::string_view message) {
  return message.substr(0, message.find(' '));
}

// A top-level error reply as a status (see the table in redis_client.h).
absl::Status RedisErrorStatus(absl::string_view message) {
  const absl::string_view prefix = ErrorPrefix(message);
  const std::string text = absl::StrCat("Redis error: ", message);
  if (prefix == "NOAUTH" || prefix == "WRONGPASS") {
    return absl::UnauthenticatedError(text);
  }
  if (prefix == "NOPERM") return absl::PermissionDeniedError(text);
  if (prefix == "OOM") return absl::ResourceExhaustedError(text);
  if (prefix == "LOADING" || prefix == "BUSY" || prefix == "READONLY" ||
      prefix == "MASTERDOWN" || prefix == "TRYAGAIN" ||
      prefix == "CLUSTERDOWN") {
    return absl::UnavailableError(text);
  }
  return absl::FailedPreconditionError(text);
}

RedisReply ConvertReply(const redisReply& reply) {
  switch (reply.type) {
    case REDIS_REPLY_STRING:
      return RedisReply::String(std::string(reply.str, reply.len));
    case REDIS_REPLY_STATUS:
      return RedisReply::Status(std::string(reply.str, reply.len));
    case REDIS_REPLY_ERROR:
      return RedisReply::Error(std::string(reply.str, reply.len));
    case REDIS_REPLY_INTEGER:
      return RedisReply::Integer(reply.integer);
    case REDIS_REPLY_ARRAY: {
      std::vector<RedisReply> elements;
      elements.reserve(reply.elements);
      for (size_t i = 0; i < reply.elements; ++i) {
        elements.push_back(ConvertReply(*reply.element[i]));
      }
      return RedisReply::Array(std::move(elements));
    }
    default:
      return RedisReply::Nil();
  }
}

// Commands that would turn the connection into a push channel or switch it
// to RESP3 (which hiredis 0.14 cannot read), breaking the one-answer-per-
// command order the client relies on.
bool ChangesProtocol(absl::string_view command) {
  static constexpr absl::string_view kRefused[] = {
      "SUBSCRIBE",    "PSUBSCRIBE",   "SSUBSCRIBE", "UNSUBSCRIBE",
      "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR",    "HELLO"};
  for (absl::string_view refused : kRefused) {
    if (absl::EqualsIgnoreCase(command, refused)) return true;
  }
  return false;
}

// ParseRedisUrl()'s parts.
constexpr absl::string_view kRedisUrlForm = "expected redis://HOST[:PORT][/DB]";

// What follows "redis://".
absl::StatusOr<absl::string_view> StripRedisScheme(absl::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) return UrlError(kRedisUrlForm);
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  if (scheme == "rediss") {
    return UrlError("TLS (rediss://) is not supported yet; use redis://");
  }
  if (scheme != "redis") {
    return UrlError(
        absl::StrCat("only redis:// is supported; ", kRedisUrlForm));
  }
  return url.substr(scheme_end + 3);
}

// An authority's host (maybe empty) and port, if it has one.
struct HostPort {
  absl::string_view host;
  std::optional<absl::string_view> port;
};

// "[IPv6]" or "[IPv6]:PORT".
absl::StatusOr<HostPort> SplitBracketedHost(absl::string_view authority) {
  const size_t close = authority.find(']');
  if (close == absl::string_view::npos) {
    return UrlError("unterminated [IPv6] address");
  }
  HostPort result;
  result.host = authority.substr(1, close - 1);
  in6_addr address;
  if (inet_pton(AF_INET6, std::string(result.host).c_str(), &address) != 1) {
    return UrlError("invalid IPv6 address in brackets");
  }
  const absl::string_view after = authority.substr(close + 1);
  if (!after.empty()) {
    if (after[0] != ':') return UrlError(kRedisUrlForm);
    result.port = after.substr(1);
  }
  return result;
}

// "HOST" or "HOST:PORT": a host name or an IPv4 address.
absl::StatusOr<HostPort> SplitHostName(absl::string_view authority) {
  const size_t colon = authority.find(':');
  if (colon != absl::string_view::npos &&
      authority.find(':', colon + 1) != absl::string_view::npos) {
    return UrlError(
        "an IPv6 address must be in brackets, e.g. redis://[::1]:6379");
  }
  HostPort result;
  result.host = authority.substr(0, colon);
  if (colon != absl::string_view::npos)
    result.port = authority.substr(colon + 1);
  const absl::string_view host = result.host;
  if (!host.empty() && !std::all_of(host.begin(), host.end(), IsHostNameChar)) {
    return UrlError("invalid host name");
  }
  const bool looks_ipv4 =
      !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.';
      });
  in_addr address;
  if (looks_ipv4 &&
      inet_pton(AF_INET, std::string(host).c_str(), &address) != 1) {
    return UrlError("invalid IPv4 address");
  }
  return result;
}

absl::StatusOr<int> ParseUrlPort(absl::string_view port) {
  int value = 0;
  if (!AllDigits(port) || port.size() > 5 || !absl::SimpleAtoi(port, &value) ||
      value < 1 || value > 65535) {
    return UrlError("the port must be a number from 1 to 65535");
  }
  return value;
}

absl::StatusOr<int> ParseUrlDb(absl::string_view db) {
  int value = 0;
  if (!AllDigits(db) || !absl::SimpleAtoi(db, &value)) {
    return UrlError(
        "the DB must be a non-negative integer, e.g. redis://host:6379/0");
  }
  return value;
}

}  // namespace

absl::StatusOr<RedisOptions> ParseRedisUrl(absl::string_view url) {
  // Nothing of `url` is echoed: a misplaced password could be anywhere.
  absl::StatusOr<absl::string_view> rest = StripRedisScheme(url);
  if (!rest.ok()) return rest.status();
  const size_t slash = rest->find('/');
  const absl::string_view authority = rest->substr(0, slash);
  if (authority.find('@') != absl::string_view::npos) {
    return UrlError(
        "must not contain a user or password; put the password in a file and "
        "pass --redis_password_file");
  }
  if (rest->find_first_of("?#") != absl::string_view::npos) {
    return UrlError(
        absl::StrCat("must not have a query or fragment (for a password use "
                     "--redis_password_file); ",
                     kRedisUrlForm));
  }
  absl::StatusOr<HostPort> host_port = absl::StartsWith(authority, "[")
                                           ? SplitBracketedHost(authority)
                                           : SplitHostName(authority);
  if (!host_port.ok()) return host_port.status();
  if (host_port->host.empty()) {
    return UrlError(absl::StrCat("missing host; ", kRedisUrlForm));
  }

  RedisOptions options;
  options.host = std::string(host_port->host);
  if (host_port->port.has_value()) {
    absl::StatusOr<int> port = ParseUrlPort(*host_port->port);
    if (!port.ok()) return port.status();
    options.port = *port;
  }
  if (slash != absl::string_view::npos) {
    const absl::string_view db = rest->substr(slash + 1);
    if (!db.empty()) {
      absl::StatusOr<int> value = ParseUrlDb(db);
      if (!value.ok()) return value.status();
      options.db = *value;
    }
  }
  return options;
}

std::string RedisScriptSha1(absl::string_view script) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(script.data(), script.size(), digest, &size, EVP_sha1(),
                 nullptr) != 1) {
    std::fputs("EVP_Digest(SHA1) failed\n", stderr);
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), size));
}

// ---------------------------------------------------------------------------
// RedisReply

RedisReply RedisReply::Integer(int64_t value) {
  RedisReply reply;
  reply.type_ = Type::kInteger;
  reply.integer_ = value;
  return reply;
}

RedisReply RedisReply::String(std::string value) {
  RedisReply reply;
  reply.type_ = Type::kString;
  reply.str_ = std::move(value);
  return reply;
}

RedisReply RedisReply::Status(std::string value) {
  RedisReply reply;
  reply.type_ = Type::kStatus;
  reply.str_ = std::move(value);
  return reply;
}

RedisReply RedisReply::Error(std::string message) {
  RedisReply reply;
  reply.type_ = Type::kError;
  reply.str_ = std::move(message);
  return reply;
}

RedisReply RedisReply::Array(std::vector<RedisReply> elements) {
  RedisReply reply;
  reply.type_ = Type::kArray;
  reply.elements_ = std::move(elements);
  return reply;
}

std::string RedisReply::DebugString() const {
  switch (type_) {
    case Type::kNil:
      return "nil";
    case Type::kInteger:
      return absl::StrCat(integer_);
    case Type::kString:
      return absl::StrCat("\"", absl::CEscape(str_), "\"");
    case Type::kStatus:
      return absl::StrCat("+", absl::CEscape(str_));
    case Type::kError:
      return absl::StrCat("-", absl::CEscape(str_));
    case Type::kArray:
      return absl::StrCat(
          "[",
          absl::StrJoin(elements_, ", ",
                        [](std::string* out, const RedisReply& element) {
                          out->append(element.DebugString());
                        }),
          "]");
  }
  return "?";
}

bool operator==(const RedisReply& a, const RedisReply& b) {
  return a.type_ == b.type_ && a.integer_ == b.integer_ && a.str_ == b.str_ &&
         a.elements_ == b.elements_;
}

// ---------------------------------------------------------------------------
// RedisClient::Impl
//
// Threads: callers touch only the queue and lifecycle state under mu_ (and
// the atomic connected_); everything else, hiredis included, belongs to the
// loop thread. hiredis calls back into the loop from inside
// redisAsyncHandleRead/Write and redisAsyncFree. Those callbacks only record
// what happened: freeing the context, calling user callbacks and on_state
// all happen afterwards, from the loop's own code, so no user code ever runs
// inside hiredis and the context is never freed inside its own callback.

class RedisClient::Impl {
 public:
  explicit Impl(RedisOptions options);
  ~Impl();

  absl::Status Start(absl::Duration wait);
  void Stop();

  // A command as the caller gave it.
  struct Request {
    std::vector<std::string> argv;
    // Already capped by command_timeout.
    absl::Time deadline;
    Callback done;
    // Not OK: fail with this instead of sending.
    absl::Status invalid;
    // Eval(): argv is EVALSHA; on NOSCRIPT it is sent again as EVAL.
    bool eval_fallback = false;
    std::string script;
    // Set by the loop.
    uint64_t id = 0;
  };
  void Submit(std::unique_ptr<Request> request);

  absl::Duration command_timeout() const { return options_.command_timeout; }
  bool connected() const { return connected_.load(std::memory_order_acquire); }
  absl::Status last_error() const {
    absl::MutexLock lock(&mu_);
    return Detach(last_error_);
  }

 private:
  enum class State { kNew, kRunning, kStopping, kStopped };
  enum class Step { kCommand, kAuth, kSelect, kPing };

  // One command written to a connection and not yet answered.
  struct InFlight {
    Step step;
    uint64_t id;  // kCommand: the request; 0 otherwise
    absl::Time sent_at;
  };

  // One redisAsyncContext, from redisAsyncConnect until hiredis frees it.
  struct Connection {
    Impl* impl;
    uint64_t serial;
    redisAsyncContext* ac;  // null once freed
    int fd;
    // What hiredis wants watched (its ev hooks), and what epoll watches:
    // -1 while the fd is not in the epoll set.
    bool want_read = false;
    bool want_write = false;
    int64_t registered = -1;
    bool tcp_connected = false;
    bool ready = false;  // AUTH, SELECT and PING answered
    absl::Time connect_deadline;
    // Redis answers in order, so the front is what the next reply answers.
    std::deque<InFlight> in_flight;
    // Why the connection ends: set when the loop decided to drop it (it is
    // then freed as soon as no hiredis call is on the stack) or hiredis lost
    // it. In-flight commands fail with this status.
    std::optional<absl::Status> drop;
    // hiredis's error text when it freed the context itself.
    std::string hiredis_error;
    bool gone = false;  // hiredis has freed (is freeing) the context
  };

  struct Completion {
    Callback done;
    absl::StatusOr<RedisReply> result;
  };

  void Wake();
  void Run();
  // Drains a wakeup, or lets hiredis read or write the connection.
  void HandleEvent(const epoll_event& event);
  void Shutdown(std::vector<std::unique_ptr<Request>>& incoming);
  void Connect(absl::Time now);
  void SendHandshake(Step step, const std::vector<std::string>& argv);
  void Accept(std::unique_ptr<Request> request, absl::Time now);
  void Send(uint64_t id);
  void Expire(absl::Time now);
  // Frees a connection marked for dropping, notices one hiredis freed, and
  // resends what NOSCRIPT answered. Call after every call into hiredis.
  void Settle();
  // The connection (or attempt) ended with `why`: schedules the next one.
  void Disconnected(bool was_ready, const absl::Status& why);
  void Finish(uint64_t id, absl::StatusOr<RedisReply> result);
  // Runs on_state and the finished commands' callbacks.
  void Flush();
  void SyncEpoll();
  int PollTimeoutMs(absl::Time now) const;
  absl::Duration Backoff();
  std::string Scrub(absl::string_view redis_message) const;
  absl::Status NotConnected() const;
  // Why hiredis gave `conn` up (`error`: its error text, may be empty).
  absl::Status LostStatus(const Connection& conn,
                          absl::string_view error) const;

  void OnReply(Connection& conn, redisReply* reply);
  void OnHandshakeReply(Connection& conn, Step step, const redisReply& reply);

  // hiredis hooks.
  static void ReplyThunk(redisAsyncContext* ac, void* reply, void* privdata);
  static void ConnectThunk(const redisAsyncContext* ac, int status);
  static void AddRead(void* data);
  static void DelRead(void* data);
  static void AddWrite(void* data);
  static void DelWrite(void* data);
  static void Cleanup(void* data);

  const RedisOptions options_;
  // "host:port" (or "[v6]:port") for messages.
  const std::string address_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kNew;
  // Whether Submit() queues for the loop (else fails the command inline).
  bool accepting_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Request>> queue_ ABSL_GUARDED_BY(mu_);
  // The first connection attempt's outcome, for Start().
  std::optional<absl::Status> first_outcome_ ABSL_GUARDED_BY(mu_);
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  std::thread thread_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> connected_{false};

  // Loop thread only.
  std::unique_ptr<Connection> conn_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Request>> requests_;
  std::set<std::pair<absl::Time, uint64_t>> deadlines_;
  std::vector<Completion> ready_;
  std::vector<bool> state_changes_;
  std::vector<uint64_t> resubmit_;
  absl::Status loop_last_error_;
  uint64_t next_id_ = 1;
  uint64_t next_serial_ = 1;
  int failures_ = 0;
  absl::Time reconnect_at_ = absl::InfinitePast();
  bool shutting_down_ = false;
  absl::BitGen bitgen_;
};

RedisClient::Impl::Impl(RedisOptions options)
    : options_(std::move(options)),
      address_(absl::StrContains(options_.host, ':')
                   ? absl::StrCat("[", options_.host, "]:", options_.port)
                   : absl::StrCat(options_.host, ":", options_.port)) {}

RedisClient::Impl::~Impl() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

absl::Status RedisClient::Impl::Start(absl::Duration wait) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kNew) {
      return absl::FailedPreconditionError(
          "RedisClient::Start() called twice or after Stop()");
    }
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0) {
      return absl::InternalError("cannot create the Redis client's epoll set");
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kWakeTag;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event);
    state_ = State::kRunning;
    accepting_ = true;
    thread_ = std::thread(&Impl::Run, this);
  }
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](std::optional<absl::Status>* outcome) {
                             return outcome->has_value();
                           },
                           &first_outcome_),
                       wait);
  if (!first_outcome_.has_value()) {
    return absl::UnavailableError(absl::StrCat(
        "Redis at ", address_, " did not answer within ",
        absl::FormatDuration(wait), "; still trying in the background"));
  }
  const absl::Status& outcome = *first_outcome_;
  if (outcome.ok() || outcome.code() == absl::StatusCode::kCancelled) {
    return Detach(outcome);
  }
  return absl::Status(
      outcome.code(),
      absl::StrCat(outcome.message(), "; still trying in the background"));
}

void RedisClient::Impl::Stop() {
  {
    absl::MutexLock lock(&mu_);
    switch (state_) {
      case State::kNew:
        state_ = State::kStopped;
        return;
      case State::kStopped:
        return;
      case State::kRunning:
      case State::kStopping:
        if (std::this_thread::get_id() == thread_.get_id()) {
          std::fputs("RedisClient stopped from its own callback\n", stderr);
          std::abort();
        }
        if (state_ == State::kStopping) {
          // Another thread is stopping it; wait for that to end.
          mu_.Await(absl::Condition(
              +[](State* state) { return *state == State::kStopped; },
              &state_));
          return;
        }
        state_ = State::kStopping;
        break;
    }
  }
  Wake();
  std::thread thread;
  {
    absl::MutexLock lock(&mu_);
    thread = std::move(thread_);
  }
  thread.join();
  absl::MutexLock lock(&mu_);
  state_ = State::kStopped;
}

void RedisClient::Impl::Submit(std::unique_ptr<Request> request) {
  bool wake = false;
  // The request if it is refused: it then fails here, outside mu_.
  std::unique_ptr<Request> refused_request;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (accepting_) {
      wake = queue_.empty();
      queue_.push_back(std::move(request));
    } else {
      refused_request = std::move(request);
      if (state_ == State::kNew) {
        refused = absl::UnavailableError(
            "Redis is unreachable: the Redis client is not started");
      } else {
        refused = absl::CancelledError("the Redis client is stopped");
      }
    }
  }
  if (refused_request != nullptr) {
    std::move(refused_request->done)(std::move(refused));
    return;
  }
  if (wake) Wake();
}

void RedisClient::Impl::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void RedisClient::Impl::Run() {
  // hiredis write()s without MSG_NOSIGNAL: a connection Redis closed must
  // give EPIPE, not kill the process. A blocked SIGPIPE caused by this
  // thread's own write stays pending on this thread and is never delivered.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);

  std::vector<std::unique_ptr<Request>> incoming;
  std::vector<epoll_event> events(16);
  while (true) {
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      incoming.swap(queue_);
      stopping = state_ == State::kStopping;
      if (stopping) accepting_ = false;
    }
    if (stopping) {
      Shutdown(incoming);
      return;
    }
    absl::Time now = absl::Now();
    if (conn_ == nullptr && now >= reconnect_at_) Connect(now);
    for (std::unique_ptr<Request>& request : incoming) {
      Accept(std::move(request), now);
    }
    incoming.clear();
    Expire(absl::Now());
    Flush();
    SyncEpoll();

    const int n =
        epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                   PollTimeoutMs(absl::Now()));
    for (int i = 0; i < n; ++i) HandleEvent(events[i]);
    Flush();
  }
}

void RedisClient::Impl::HandleEvent(const epoll_event& event) {
  const uint64_t tag = event.data.u64;
  if (tag == kWakeTag) {
    uint64_t count;
    [[maybe_unused]] ssize_t r = read(wake_fd_, &count, sizeof(count));
    return;
  }
  // An event of a connection freed earlier in this batch is stale.
  if (conn_ == nullptr || conn_->serial != tag || conn_->gone) return;
  const uint32_t what = event.events;
  if (what & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    redisAsyncHandleRead(conn_->ac);
  }
  if ((what & EPOLLOUT) && !conn_->gone && !conn_->drop.has_value()) {
    redisAsyncHandleWrite(conn_->ac);
  }
  Settle();
}

void RedisClient::Impl::Shutdown(
    std::vector<std::unique_ptr<Request>>& incoming) {
  shutting_down_ = true;
  const absl::Status cancelled =
      absl::CancelledError("the Redis client is shutting down");
  for (std::unique_ptr<Request>& request : incoming) {
    ready_.push_back({std::move(request->done), cancelled});
  }
  incoming.clear();
  resubmit_.clear();
  if (conn_ != nullptr) {
    if (!conn_->gone) conn_->drop = cancelled;
    Settle();
  }
  {
    absl::MutexLock lock(&mu_);
    if (!first_outcome_.has_value()) first_outcome_ = cancelled;
  }
  std::vector<uint64_t> left;
  for (const auto& [id, request] : requests_) left.push_back(id);
  for (uint64_t id : left) Finish(id, cancelled);
  Flush();
}

void RedisClient::Impl::Connect(absl::Time now) {
  redisAsyncContext* ac =
      redisAsyncConnect(options_.host.c_str(), options_.port);
  if (ac == nullptr) {
    Disconnected(false, absl::UnavailableError(
                            absl::StrCat("cannot connect to Redis at ",
                                         address_, ": out of memory")));
    return;
  }
  if (ac->err) {
    const absl::Status why = absl::UnavailableError(
        absl::StrCat("Redis at ", address_, " is unreachable: ", ac->errstr));
    redisAsyncFree(ac);  // No hooks attached yet; not inside a callback.
    Disconnected(false, why);
    return;
  }
  auto conn = std::make_unique<Connection>();
  conn->impl = this;
  conn->serial = next_serial_++;
  conn->ac = ac;
  conn->fd = ac->c.fd;
  conn->connect_deadline = now + options_.connect_timeout;
  ac->data = conn.get();
  ac->ev.data = conn.get();
  ac->ev.addRead = &Impl::AddRead;
  ac->ev.delRead = &Impl::DelRead;
  ac->ev.addWrite = &Impl::AddWrite;
  ac->ev.delWrite = &Impl::DelWrite;
  ac->ev.cleanup = &Impl::Cleanup;
  conn_ = std::move(conn);
  // Also asks for the write event that tells the connect finished.
  redisAsyncSetConnectCallback(ac, &Impl::ConnectThunk);
  // Pipelined; the PING proves Redis itself answers (a SIGSTOPped Redis
  // still completes TCP connects from its listen backlog).
  if (!options_.password.empty()) {
    SendHandshake(Step::kAuth, {"AUTH", options_.password});
  }
  if (options_.db != 0) {
    SendHandshake(Step::kSelect, {"SELECT", absl::StrCat(options_.db)});
  }
  SendHandshake(Step::kPing, {"PING"});
  Settle();
}

void RedisClient::Impl::SendHandshake(Step step,
                                      const std::vector<std::string>& argv) {
  if (conn_->drop.has_value()) return;
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  for (const std::string& arg : argv) {
    args.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  if (redisAsyncCommandArgv(conn_->ac, &Impl::ReplyThunk, conn_.get(),
                            static_cast<int>(args.size()), args.data(),
                            lengths.data()) != REDIS_OK) {
    conn_->drop = absl::UnavailableError(
        absl::StrCat("cannot send the handshake to Redis at ", address_));
    return;
  }
  conn_->in_flight.push_back({step, 0, absl::Now()});
}

void RedisClient::Impl::Accept(std::unique_ptr<Request> request,
                               absl::Time now) {
  if (!request->invalid.ok()) {
    ready_.push_back({std::move(request->done), std::move(request->invalid)});
    return;
  }
  if (request->deadline <= now) {
    ready_.push_back(
        {std::move(request->done),
         absl::DeadlineExceededError(
             "the deadline passed before the command was sent to Redis")});
    return;
  }
  if (conn_ == nullptr || !conn_->ready || conn_->drop.has_value()) {
    ready_.push_back({std::move(request->done), NotConnected()});
    return;
  }
  const uint64_t id = next_id_++;
  request->id = id;
  deadlines_.emplace(request->deadline, id);
  requests_.emplace(id, std::move(request));
  Send(id);
}

void RedisClient::Impl::Send(uint64_t id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  Request& request = *it->second;
  if (conn_ == nullptr || !conn_->ready || conn_->drop.has_value()) {
    Finish(id, NotConnected());
    return;
  }
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  args.reserve(request.argv.size());
  lengths.reserve(request.argv.size());
  for (const std::string& arg : request.argv) {
    args.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  if (redisAsyncCommandArgv(conn_->ac, &Impl::ReplyThunk, conn_.get(),
                            static_cast<int>(args.size()), args.data(),
                            lengths.data()) != REDIS_OK) {
    Finish(id, absl::UnavailableError(absl::StrCat(
                   "cannot send the command to Redis at ", address_)));
    return;
  }
  conn_->in_flight.push_back({Step::kCommand, id, absl::Now()});
  // hiredis copied the command; only a script may need its argv again.
  if (!request.eval_fallback) std::vector<std::string>().swap(request.argv);
}

void RedisClient::Impl::Expire(absl::Time now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const uint64_t id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    // A late answer finds no request and is dropped (OnReply).
    Finish(id, absl::DeadlineExceededError(
                   absl::StrCat("no answer from Redis at ", address_,
                                " by the deadline; the command may have run")));
  }
  if (conn_ == nullptr || conn_->gone || conn_->drop.has_value()) return;
  if (!conn_->ready) {
    if (now >= conn_->connect_deadline) {
      const std::string limit = absl::FormatDuration(options_.connect_timeout);
      conn_->drop = absl::UnavailableError(
          conn_->tcp_connected
              ? absl::StrCat("Redis at ", address_, " did not answer within ",
                             limit, " (connect timeout)")
              : absl::StrCat("could not connect to Redis at ", address_,
                             " within ", limit, " (connect timeout)"));
    }
  } else if (!conn_->in_flight.empty() &&
             now >=
                 conn_->in_flight.front().sent_at + options_.command_timeout) {
    // Even an answer its caller stopped waiting for is overdue: Redis is
    // stuck (paused, or the network dropped the connection silently).
    conn_->drop = absl::UnavailableError(
        absl::StrCat("Redis at ", address_, " did not answer within ",
                     absl::FormatDuration(options_.command_timeout),
                     " (command timeout); reconnecting"));
  }
  Settle();
}

void RedisClient::Impl::Settle() {
  if (conn_ != nullptr) {
    if (!conn_->gone && conn_->drop.has_value()) {
      // Runs ReplyThunk with a null reply for each command in flight, then
      // Cleanup. Never called while hiredis is on the stack.
      redisAsyncFree(conn_->ac);
    }
    if (conn_->gone) {
      const bool was_ready = conn_->ready;
      const absl::Status why = conn_->drop.has_value()
                                   ? *conn_->drop
                                   : LostStatus(*conn_, conn_->hiredis_error);
      conn_.reset();
      Disconnected(was_ready, why);
    }
  }
  if (!resubmit_.empty()) {
    std::vector<uint64_t> ids;
    ids.swap(resubmit_);
    for (uint64_t id : ids) Send(id);
  }
}

void RedisClient::Impl::Disconnected(bool was_ready, const absl::Status& why) {
  if (was_ready) {
    connected_.store(false, std::memory_order_release);
    state_changes_.push_back(false);
  }
  loop_last_error_ = why;
  {
    absl::MutexLock lock(&mu_);
    last_error_ = why;
    if (!first_outcome_.has_value()) first_outcome_ = why;
  }
  if (shutting_down_) return;
  ++failures_;
  reconnect_at_ = absl::Now() + Backoff();
}

absl::Duration RedisClient::Impl::Backoff() {
  // At least 1ms, so a zero minimum cannot spin.
  absl::Duration step =
      std::max(options_.reconnect_backoff_min, absl::Milliseconds(1));
  for (int i = 1; i < failures_ && step < options_.reconnect_backoff_max; ++i) {
    step *= 2;
  }
  step = std::min(step, options_.reconnect_backoff_max);
  return step * absl::Uniform(bitgen_, 0.5, 1.0);
}

void RedisClient::Impl::Finish(uint64_t id, absl::StatusOr<RedisReply> result) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  std::unique_ptr<Request> request = std::move(it->second);
  requests_.erase(it);
  deadlines_.erase({request->deadline, id});
  ready_.push_back({std::move(request->done), std::move(result)});
}

void RedisClient::Impl::Flush() {
  std::vector<bool> changes;
  changes.swap(state_changes_);
  if (options_.on_state) {
    for (bool connected : changes) options_.on_state(connected);
  }
  std::vector<Completion> ready;
  ready.swap(ready_);
  for (Completion& completion : ready) {
    if (!completion.result.ok()) {
      completion.result = Detach(completion.result.status());
    }
    std::move(completion.done)(std::move(completion.result));
  }
}

void RedisClient::Impl::SyncEpoll() {
  if (conn_ == nullptr || conn_->gone) return;
  const int64_t want = (conn_->want_read ? int64_t{EPOLLIN} : 0) |
                       (conn_->want_write ? int64_t{EPOLLOUT} : 0);
  if (want == conn_->registered) return;
  epoll_event event{};
  event.events = static_cast<uint32_t>(want);
  event.data.u64 = conn_->serial;
  epoll_ctl(epoll_fd_, conn_->registered < 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD,
            conn_->fd, &event);
  conn_->registered = want;
}

int RedisClient::Impl::PollTimeoutMs(absl::Time now) const {
  absl::Time next = absl::InfiniteFuture();
  if (!deadlines_.empty()) next = deadlines_.begin()->first;
  if (conn_ == nullptr) {
    next = std::min(next, reconnect_at_);
  } else if (!conn_->ready) {
    next = std::min(next, conn_->connect_deadline);
  } else if (!conn_->in_flight.empty()) {
    next = std::min(
        next, conn_->in_flight.front().sent_at + options_.command_timeout);
  }
  if (next == absl::InfiniteFuture()) return kIdlePollMs;
  return static_cast<int>(std::clamp<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(next - now, absl::Milliseconds(1))),
      0, kIdlePollMs));
}

std::string RedisClient::Impl::Scrub(absl::string_view redis_message) const {
  // Redis does not echo passwords, but make sure none ever reaches a log.
  if (options_.password.empty()) return std::string(redis_message);
  return absl::StrReplaceAll(redis_message,
                             {{options_.password, "<redacted>"}});
}

absl::Status RedisClient::Impl::LostStatus(const Connection& conn,
                                           absl::string_view error) const {
  if (error.empty()) error = "connection closed";
  return absl::UnavailableError(
      conn.ready
          ? absl::StrCat("lost the connection to Redis at ", address_, ": ",
                         error)
          : absl::StrCat("Redis at ", address_, " is unreachable: ", error));
}

absl::Status RedisClient::Impl::NotConnected() const {
  if (loop_last_error_.ok()) {
    return absl::UnavailableError(
        absl::StrCat("Redis is unreachable: still connecting to ", address_));
  }
  return absl::UnavailableError(
      absl::StrCat("Redis is unreachable: ", loop_last_error_.message()));
}

void RedisClient::Impl::ReplyThunk(redisAsyncContext* ac, void* reply,
                                   void* privdata) {
  Connection& conn = *static_cast<Connection*>(privdata);
  if (reply == nullptr && !conn.drop.has_value()) {
    // hiredis is freeing the context after an error of its own.
    conn.drop = conn.impl->LostStatus(conn, ac->err ? ac->errstr : "");
  }
  conn.impl->OnReply(conn, static_cast<redisReply*>(reply));
}

void RedisClient::Impl::OnReply(Connection& conn, redisReply* reply) {
  const InFlight entry = conn.in_flight.front();
  conn.in_flight.pop_front();
  if (entry.step != Step::kCommand) {
    if (reply != nullptr) OnHandshakeReply(conn, entry.step, *reply);
    return;
  }
  auto it = requests_.find(entry.id);
  if (it == requests_.end()) return;  // Its caller gave up already.
  Request& request = *it->second;
  if (reply == nullptr) {
    Finish(entry.id, *conn.drop);
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    const absl::string_view message(reply->str, reply->len);
    if (request.eval_fallback && ErrorPrefix(message) == "NOSCRIPT") {
      request.eval_fallback = false;
      request.argv[0] = "EVAL";
      request.argv[1] = std::move(request.script);
      resubmit_.push_back(entry.id);  // Sent by Settle(), outside hiredis.
      return;
    }
    Finish(entry.id, RedisErrorStatus(Scrub(message)));
    return;
  }
  Finish(entry.id, ConvertReply(*reply));
}

void RedisClient::Impl::OnHandshakeReply(Connection& conn, Step step,
                                         const redisReply& reply) {
  if (conn.drop.has_value()) return;
  if (reply.type == REDIS_REPLY_ERROR) {
    const std::string message = Scrub(absl::string_view(reply.str, reply.len));
    const absl::string_view prefix = ErrorPrefix(message);
    if (step == Step::kAuth) {
      conn.drop = absl::UnauthenticatedError(absl::StrCat(
          "Redis at ", address_, " refused the password (AUTH): ", message));
    } else if (prefix == "NOAUTH") {
      conn.drop = absl::UnauthenticatedError(absl::StrCat(
          "Redis at ", address_,
          " requires a password (give it with --redis_password_file): ",
          message));
    } else if (prefix == "NOPERM") {
      conn.drop = absl::PermissionDeniedError(absl::StrCat(
          "Redis at ", address_, " denied ",
          step == Step::kSelect ? "SELECT" : "PING", ": ", message));
    } else if (step == Step::kSelect) {
      conn.drop = absl::InvalidArgumentError(
          absl::StrCat("Redis at ", address_, " refused SELECT ", options_.db,
                       " (the DB of --redis_url): ", message));
    } else {
      conn.drop = absl::UnavailableError(
          absl::StrCat("Redis at ", address_, " is not ready: ", message));
    }
    return;
  }
  if (step != Step::kPing) return;
  conn.ready = true;
  failures_ = 0;
  loop_last_error_ = absl::OkStatus();
  connected_.store(true, std::memory_order_release);
  state_changes_.push_back(true);
  absl::MutexLock lock(&mu_);
  last_error_ = absl::OkStatus();
  if (!first_outcome_.has_value()) first_outcome_ = absl::OkStatus();
}

void RedisClient::Impl::ConnectThunk(const redisAsyncContext* ac, int status) {
  // On failure hiredis frees the context next; Cleanup records why.
  if (status == REDIS_OK)
    static_cast<Connection*>(ac->data)->tcp_connected = true;
}

void RedisClient::Impl::AddRead(void* data) {
  static_cast<Connection*>(data)->want_read = true;
}
void RedisClient::Impl::DelRead(void* data) {
  static_cast<Connection*>(data)->want_read = false;
}
void RedisClient::Impl::AddWrite(void* data) {
  static_cast<Connection*>(data)->want_write = true;
}
void RedisClient::Impl::DelWrite(void* data) {
  static_cast<Connection*>(data)->want_write = false;
}

void RedisClient::Impl::Cleanup(void* data) {
  // hiredis closes the fd right after this returns.
  Connection& conn = *static_cast<Connection*>(data);
  if (conn.registered >= 0) {
    epoll_ctl(conn.impl->epoll_fd_, EPOLL_CTL_DEL, conn.fd, nullptr);
    conn.registered = -1;
  }
  if (conn.ac != nullptr && conn.ac->c.err) {
    conn.hiredis_error = conn.ac->c.errstr;
  }
  conn.ac = nullptr;
  conn.gone = true;
}

// ---------------------------------------------------------------------------
// RedisClient

RedisClient::RedisClient(RedisOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

RedisClient::~RedisClient() = default;

absl::Status RedisClient::Start(absl::Duration wait) {
  return impl_->Start(wait);
}

void RedisClient::Stop() { impl_->Stop(); }

bool RedisClient::connected() const { return impl_->connected(); }

absl::Status RedisClient::last_error() const { return impl_->last_error(); }

void RedisClient::Command(std::vector<std::string> argv, absl::Time deadline,
                          Callback done) {
  auto request = std::make_unique<Impl::Request>();
  if (argv.empty()) {
    request->invalid = absl::InvalidArgumentError("empty Redis command");
  } else if (ChangesProtocol(argv[0])) {
    request->invalid = absl::InvalidArgumentError(absl::StrCat(
        "RedisClient does not support ", absl::AsciiStrToUpper(argv[0]),
        " (pub/sub, MONITOR, HELLO)"));
  }
  request->argv = std::move(argv);
  request->deadline =
      std::min(deadline, absl::Now() + impl_->command_timeout());
  request->done = std::move(done);
  impl_->Submit(std::move(request));
}

void RedisClient::Eval(const std::string& script, std::vector<std::string> keys,
                       std::vector<std::string> args, absl::Time deadline,
                       Callback done) {
  auto request = std::make_unique<Impl::Request>();
  request->argv.reserve(3 + keys.size() + args.size());
  request->argv.push_back("EVALSHA");
  request->argv.push_back(RedisScriptSha1(script));
  request->argv.push_back(absl::StrCat(keys.size()));
  for (std::string& key : keys) request->argv.push_back(std::move(key));
  for (std::string& arg : args) request->argv.push_back(std::move(arg));
  request->eval_fallback = true;
  request->script = script;
  request->deadline =
      std::min(deadline, absl::Now() + impl_->command_timeout());
  request->done = std::move(done);
  impl_->Submit(std::move(request));
}

}  // namespace campaign_gateway
