#include "service/curl_transport.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace campaign_gateway {
namespace {

using Kind = TransportError::Kind;

// Bounds the loop's sleep when curl has no timer pending; wakeups end it
// early, so this only sets how often an idle shard looks around.
constexpr int kIdlePollMs = 1000;
// How much of a non-2xx body is kept: enough for Connyline's JSON message
// or a readable excerpt of a proxy's page.
constexpr size_t kMaxErrorBody = 64 << 10;
constexpr long kReceiveBufferBytes = 4 << 10;

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      std::fputs("curl_global_init failed\n", stderr);
      std::abort();
    }
  });
}

// Milliseconds for a curl timeout option: rounded up, at least 1 (0 would
// mean "no timeout"), and within range.
long TimeoutMs(absl::Duration duration) {
  const int64_t ms =
      absl::ToInt64Milliseconds(absl::Ceil(duration, absl::Milliseconds(1)));
  return static_cast<long>(
      std::clamp<int64_t>(ms, 1, std::numeric_limits<long>::max()));
}

// RFC 9110 idempotent methods: curl may resend these on a fresh connection.
bool IsIdempotent(absl::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" ||
         method == "PUT" || method == "DELETE";
}

bool IsTlsError(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

long CurlHttpVersion(UpstreamHttp2 http2) {
  switch (http2) {
    case UpstreamHttp2::kAuto:
      return CURL_HTTP_VERSION_2TLS;
    case UpstreamHttp2::kOff:
      return CURL_HTTP_VERSION_1_1;
    case UpstreamHttp2::kPriorKnowledge:
      return CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
  }
  return CURL_HTTP_VERSION_1_1;
}

// Streams a shard opens on one HTTP/2 connection, and so hands curl per
// connection: 100, the least RFC 9113 asks servers to allow (nginx allows
// 128). A server allowing fewer would make curl queue the excess itself,
// where libcurl 8 counts the wait against the connect timeout.
constexpr long kMaxStreamsPerConnection = 100;

}  // namespace

// A curl share handle for TLS sessions and the DNS cache. Shards run on
// their own threads, so each kind of shared data has a real mutex.
class CurlTransport::Share {
 public:
  Share() : share_(curl_share_init()) {
    if (share_ == nullptr) {
      std::fputs("curl_share_init failed\n", stderr);
      std::abort();
    }
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &Share::Lock);
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &Share::Unlock);
    curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  }
  // Every easy handle using it must be cleaned up first.
  ~Share() { curl_share_cleanup(share_); }

  Share(const Share&) = delete;
  Share& operator=(const Share&) = delete;

  CURLSH* get() const { return share_; }

 private:
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Share*>(user)->MutexFor(data).lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<Share*>(user)->MutexFor(data).unlock();
  }
  std::mutex& MutexFor(curl_lock_data data) {
    const size_t index = static_cast<size_t>(data);
    return mutexes_[index < mutexes_.size() ? index : 0];
  }

  CURLSH* const share_;
  // Room for lock data newer libcurls add (8.x has more than 7.88).
  std::array<std::mutex, 16> mutexes_;
};

// One request, from Start() until its callback. Owned by its shard.
struct CurlTransport::Call {
  Call(uint64_t id, HttpRequest request, absl::Time deadline, Callback done)
      : id(id),
        request(std::move(request)),
        deadline(deadline),
        done(std::move(done)) {}

  const uint64_t id;
  // Owns the POST body curl sends from (CURLOPT_POSTFIELDS does not copy).
  const HttpRequest request;
  const absl::Time deadline;
  Callback done;

  CURL* easy = nullptr;
  // Added to the multi handle; false while the call waits in the shard.
  bool in_curl = false;
  curl_slist* headers = nullptr;
  HttpResponse response;
  size_t max_body = 0;
  bool body_too_large = false;
  // An error page beyond kMaxErrorBody was cut there: the answer still
  // counts, by its status, with the start of its body.
  bool error_body_cut = false;
  // Times curl was about to write the request on a connection. Zero proves
  // that no byte of the request left the process.
  int attempts = 0;
  // The connect timeout is shorter than the time left, so a timeout before
  // connecting means "unreachable", not "deadline passed".
  bool connect_limited = false;
  char error[CURL_ERROR_SIZE] = {};

  bool MayHaveBeenSent() const { return attempts > 0; }
  // The error for a transfer that ended with `code`.
  TransportError Error(CURLcode code) const;
};

TransportError CurlTransport::Call::Error(CURLcode code) const {
  TransportError result;
  result.request_may_have_been_sent = MayHaveBeenSent();
  // Curl's error buffer names hosts and causes, never request headers.
  result.detail = curl_easy_strerror(code);
  if (error[0] != '\0') {
    absl::StrAppend(&result.detail, ": ",
                    absl::StripTrailingAsciiWhitespace(error));
  }
  switch (code) {
    case CURLE_COULDNT_CONNECT:
      result.kind = Kind::kConnectFailed;
      break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      result.kind = Kind::kNameResolution;
      break;
    case CURLE_OPERATION_TIMEDOUT:
      result.kind = !MayHaveBeenSent() && connect_limited ? Kind::kConnectFailed
                                                          : Kind::kTimeout;
      break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      result.kind = Kind::kConnectionLost;
      break;
    case CURLE_ABORTED_BY_CALLBACK:
      // Only OnPrerequest aborts: curl wanted to resend a non-idempotent
      // request after its reused connection died without an answer.
      result.kind = Kind::kConnectionLost;
      result.detail =
          "connection closed without an answer; the request is not resent";
      break;
    case CURLE_FILESIZE_EXCEEDED:
      result.kind = Kind::kResponseTooLarge;
      break;
    case CURLE_WRITE_ERROR:
      if (body_too_large) {
        result.kind = Kind::kResponseTooLarge;
        result.detail =
            absl::StrCat("response body exceeds ", max_body, " bytes");
      }
      break;
    default:
      if (IsTlsError(code)) result.kind = Kind::kTls;
      break;
  }
  return result;
}

// An event loop thread owning one multi handle. Other threads only touch the
// command queues under mu_ and wake the loop.
class CurlTransport::Shard {
 public:
  Shard(CurlTransport* transport, const CurlTransportOptions& options,
        CURLSH* share);
  // Leaves the loop and joins it; call BeginStop() and let every call finish
  // first.
  ~Shard();

  void Submit(std::unique_ptr<Call> call);
  void Cancel(uint64_t id);
  // Cancels everything in flight, and from now on every new call at once.
  void BeginStop();

 private:
  enum class State { kRunning, kStopping, kExiting };

  // Whoever queues into empty queues wakes the loop; until the loop drains
  // them, that wakeup is pending for later commands too.
  bool QueuesEmpty() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return submitted_.empty() && cancelled_.empty();
  }
  void Run();
  // Runs curl's timeout if it is due; returns how long the loop may then
  // wait for its sockets (until curl's next timeout, at most kIdlePollMs).
  int RunDueTimer();
  // Drains a wakeup, or tells curl what happened on one of its sockets.
  void HandleEvent(const epoll_event& event);
  // Takes a new call: into curl if a connection (or stream) is free for it,
  // else into the shard's own queue.
  void Add(std::unique_ptr<Call> call);
  // Moves waiting calls into curl while there is room, oldest first.
  void StartWaiting();
  // Fails waiting calls whose deadline has passed; returns how long until
  // the next one's, at most kIdlePollMs.
  int ExpireWaiting();
  // Hands `call` to curl, or fails it if its deadline has passed.
  void StartTransfer(std::unique_ptr<Call> call);
  // Transfers curl may hold at once without queueing any of them itself.
  size_t TransferCap() const;
  // Sets the options of `call`'s freshly reset easy handle.
  CURLcode Configure(Call& call, absl::Duration remaining);
  void CancelActive(uint64_t id);
  void CancelEverything(std::vector<std::unique_ptr<Call>>& submitted);
  void ReadCompletions();
  // Detaches `call`'s easy handle, recycles it and runs the callback.
  void Finish(std::unique_ptr<Call> call, HttpResult result);

  // curl tells which sockets to watch and when its next timeout is due.
  static int OnSocket(CURL* easy, curl_socket_t fd, int what, void* user,
                      void* socket_user);
  static int OnTimer(CURLM* multi, long timeout_ms, void* user);
  void Wake();

  const int epoll_fd_;
  const int wake_fd_;
  // Loop thread only: when curl wants CURL_SOCKET_TIMEOUT; InfiniteFuture()
  // when it has no timer.
  absl::Time timer_due_ = absl::InfiniteFuture();
  static size_t OnHeader(char* data, size_t size, size_t count, void* user);
  static size_t OnBody(char* data, size_t size, size_t count, void* user);
  static int OnPrerequest(void* user, char* remote_ip, char* local_ip,
                          int remote_port, int local_port);

  CurlTransport* const transport_;
  const CurlTransportOptions options_;
  CURLSH* const share_;
  CURLM* const multi_;

  absl::Mutex mu_;
  std::vector<std::unique_ptr<Call>> submitted_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> cancelled_ ABSL_GUARDED_BY(mu_);
  State state_ ABSL_GUARDED_BY(mu_) = State::kRunning;

  // Loop thread only. Every call of the shard, in curl or waiting.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Call>> active_;
  // Calls beyond TransferCap(), oldest first, and by deadline. Both may hold
  // ids that have since left active_ or entered curl; those are skipped.
  std::deque<uint64_t> waiting_;
  std::priority_queue<std::pair<absl::Time, uint64_t>,
                      std::vector<std::pair<absl::Time, uint64_t>>,
                      std::greater<>>
      waiting_deadlines_;
  size_t in_curl_ = 0;
  // Whether the upstream's last answer came over a multiplexed (HTTP/2)
  // connection: then a connection carries many transfers, else one.
  bool multiplexing_ = false;
  std::vector<CURL*> idle_handles_;

  std::thread thread_;
};

CurlTransport::Shard::Shard(CurlTransport* transport,
                            const CurlTransportOptions& options, CURLSH* share)
    : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
      wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      transport_(transport),
      options_(options),
      share_(share),
      multi_(curl_multi_init()),
      multiplexing_(options.http2 == UpstreamHttp2::kPriorKnowledge) {
  if (multi_ == nullptr || epoll_fd_ < 0 || wake_fd_ < 0) {
    std::fputs("curl_multi_init failed\n", stderr);
    std::abort();
  }
  // The cap holds open connections, not only idle ones: without it a burst
  // opens one connection (and TLS handshake) per request in flight.
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                    options_.max_connections_per_shard);
  curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    options_.max_connections_per_shard);
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(multi_, CURLMOPT_MAX_CONCURRENT_STREAMS,
                    kMaxStreamsPerConnection);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Shard::OnSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Shard::OnTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event);
  thread_ = std::thread(&Shard::Run, this);
}

CurlTransport::Shard::~Shard() {
  {
    absl::MutexLock lock(&mu_);
    state_ = State::kExiting;
  }
  Wake();
  thread_.join();
  for (CURL* easy : idle_handles_) curl_easy_cleanup(easy);
  curl_multi_cleanup(multi_);
  close(wake_fd_);
  close(epoll_fd_);
}

void CurlTransport::Shard::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

int CurlTransport::Shard::OnSocket(CURL*, curl_socket_t fd, int what,
                                   void* user, void* socket_user) {
  Shard& shard = *static_cast<Shard*>(user);
  if (what == CURL_POLL_REMOVE) {
    // The socket may be closed already; then the kernel dropped it itself.
    epoll_ctl(shard.epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    curl_multi_assign(shard.multi_, fd, nullptr);
    return 0;
  }
  epoll_event event{};
  event.data.fd = fd;
  if (what & CURL_POLL_IN) event.events |= EPOLLIN;
  if (what & CURL_POLL_OUT) event.events |= EPOLLOUT;
  if (socket_user == nullptr) {
    if (epoll_ctl(shard.epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0 &&
        errno == EEXIST) {
      epoll_ctl(shard.epoll_fd_, EPOLL_CTL_MOD, fd, &event);
    }
    curl_multi_assign(shard.multi_, fd, &shard);  // Any non-null marker.
  } else {
    epoll_ctl(shard.epoll_fd_, EPOLL_CTL_MOD, fd, &event);
  }
  return 0;
}

int CurlTransport::Shard::OnTimer(CURLM*, long timeout_ms, void* user) {
  Shard& shard = *static_cast<Shard*>(user);
  shard.timer_due_ = timeout_ms < 0
                         ? absl::InfiniteFuture()
                         : absl::Now() + absl::Milliseconds(timeout_ms);
  return 0;
}

void CurlTransport::Shard::Submit(std::unique_ptr<Call> call) {
  bool wake;
  {
    absl::MutexLock lock(&mu_);
    wake = QueuesEmpty();
    submitted_.push_back(std::move(call));
  }
  if (wake) Wake();
}

void CurlTransport::Shard::Cancel(uint64_t id) {
  bool wake;
  {
    absl::MutexLock lock(&mu_);
    wake = QueuesEmpty();
    cancelled_.push_back(id);
  }
  if (wake) Wake();
}

void CurlTransport::Shard::BeginStop() {
  {
    absl::MutexLock lock(&mu_);
    state_ = State::kStopping;
  }
  Wake();
}

void CurlTransport::Shard::Run() {
  // Swapped with the queues each turn, so their capacity is reused.
  std::vector<std::unique_ptr<Call>> submitted;
  std::vector<uint64_t> cancelled;
  std::vector<epoll_event> events(256);
  while (true) {
    State state;
    {
      absl::MutexLock lock(&mu_);
      submitted.swap(submitted_);
      cancelled.swap(cancelled_);
      state = state_;
    }
    if (state == State::kExiting) return;

    int timeout_ms = kIdlePollMs;
    if (state == State::kStopping) {
      CancelEverything(submitted);
    } else {
      // Adds before cancels: a Cancel() is always queued after its Start().
      for (std::unique_ptr<Call>& call : submitted) Add(std::move(call));
      for (uint64_t id : cancelled) CancelActive(id);
      StartWaiting();
      timeout_ms = std::min(RunDueTimer(), ExpireWaiting());
      // Curl's timer may have finished transfers: their slots are free for
      // waiting calls now, not after the next wakeup.
      if (!waiting_.empty() && in_curl_ < TransferCap()) timeout_ms = 0;
    }
    submitted.clear();
    cancelled.clear();
    const int n = epoll_wait(epoll_fd_, events.data(),
                             static_cast<int>(events.size()), timeout_ms);
    for (int i = 0; i < n; ++i) HandleEvent(events[i]);
    if (n > 0) ReadCompletions();
  }
}

int CurlTransport::Shard::RunDueTimer() {
  if (timer_due_ <= absl::Now()) {
    timer_due_ = absl::InfiniteFuture();
    int running = 0;
    curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    ReadCompletions();
  }
  if (timer_due_ == absl::InfiniteFuture()) return kIdlePollMs;
  return static_cast<int>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(
                              timer_due_ - absl::Now(), absl::Milliseconds(1))),
                          0, kIdlePollMs));
}

void CurlTransport::Shard::HandleEvent(const epoll_event& event) {
  const int fd = event.data.fd;
  if (fd == wake_fd_) {
    uint64_t count;
    [[maybe_unused]] ssize_t r = read(wake_fd_, &count, sizeof(count));
    return;
  }
  int flags = 0;
  if (event.events & (EPOLLIN | EPOLLHUP)) flags |= CURL_CSELECT_IN;
  if (event.events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
  if (event.events & EPOLLERR) flags |= CURL_CSELECT_ERR;
  int running = 0;
  curl_multi_socket_action(multi_, fd, flags, &running);
}

size_t CurlTransport::Shard::TransferCap() const {
  const auto connections =
      static_cast<size_t>(std::max(1L, options_.max_connections_per_shard));
  return multiplexing_ ? connections * kMaxStreamsPerConnection : connections;
}

void CurlTransport::Shard::Add(std::unique_ptr<Call> call) {
  // Curl would queue the excess itself, but libcurl 8 counts that wait
  // against the connect timeout: a burst beyond the cap would fail as
  // "unreachable" although every connection is up.
  if (in_curl_ >= TransferCap() || !waiting_.empty()) {
    const uint64_t id = call->id;
    waiting_.push_back(id);
    waiting_deadlines_.emplace(call->deadline, id);
    active_.emplace(id, std::move(call));
    return;
  }
  StartTransfer(std::move(call));
}

void CurlTransport::Shard::StartWaiting() {
  while (!waiting_.empty() && in_curl_ < TransferCap()) {
    const uint64_t id = waiting_.front();
    waiting_.pop_front();
    auto it = active_.find(id);
    if (it == active_.end() || it->second->in_curl) continue;
    std::unique_ptr<Call> call = std::move(it->second);
    active_.erase(it);
    StartTransfer(std::move(call));
  }
}

int CurlTransport::Shard::ExpireWaiting() {
  const absl::Time now = absl::Now();
  while (!waiting_deadlines_.empty()) {
    const auto [deadline, id] = waiting_deadlines_.top();
    auto it = active_.find(id);
    if (it == active_.end() || it->second->in_curl) {
      waiting_deadlines_.pop();  // Started or finished since.
      continue;
    }
    if (deadline > now) {
      return static_cast<int>(
          std::clamp<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(
                                  deadline - now, absl::Milliseconds(1))),
                              0, kIdlePollMs));
    }
    waiting_deadlines_.pop();
    std::unique_ptr<Call> call = std::move(it->second);
    active_.erase(it);
    Finish(std::move(call),
           TransportError{Kind::kTimeout,
                          "deadline passed while waiting for a connection",
                          /*request_may_have_been_sent=*/false});
  }
  return kIdlePollMs;
}

void CurlTransport::Shard::StartTransfer(std::unique_ptr<Call> call) {
  const absl::Duration remaining = call->deadline - absl::Now();
  if (remaining <= absl::ZeroDuration()) {
    Finish(std::move(call),
           TransportError{Kind::kTimeout,
                          "deadline passed before the request was sent",
                          /*request_may_have_been_sent=*/false});
    return;
  }
  if (!idle_handles_.empty()) {
    call->easy = idle_handles_.back();
    idle_handles_.pop_back();
  } else {
    call->easy = curl_easy_init();
  }
  CURLcode code = CURLE_OUT_OF_MEMORY;
  if (call->easy != nullptr) code = Configure(*call, remaining);
  if (code == CURLE_BAD_FUNCTION_ARGUMENT) {
    // libcurl 7.88 refuses CURLOPT_BUFFERSIZE on a handle that still holds
    // its receive buffer, as one does after some HTTP/2 transfers: start
    // over with a fresh handle.
    curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->headers);
    call->headers = nullptr;
    call->easy = curl_easy_init();
    code = call->easy != nullptr ? Configure(*call, remaining)
                                 : CURLE_OUT_OF_MEMORY;
  }
  if (code == CURLE_OK &&
      curl_multi_add_handle(multi_, call->easy) != CURLM_OK) {
    code = CURLE_OUT_OF_MEMORY;
  }
  if (code != CURLE_OK) {
    Finish(std::move(call),
           TransportError{Kind::kOther,
                          absl::StrCat("cannot set up the request: ",
                                       curl_easy_strerror(code)),
                          /*request_may_have_been_sent=*/false});
    return;
  }
  call->in_curl = true;
  ++in_curl_;
  const uint64_t id = call->id;
  active_.emplace(id, std::move(call));
}

CURLcode CurlTransport::Shard::Configure(Call& call, absl::Duration remaining) {
  CURL* easy = call.easy;
  const HttpRequest& request = call.request;
  CURLcode code = CURLE_OK;
  // Keeps the first failure; later setopts are skipped.
  auto set = [&](CURLoption option, auto value) {
    if (code == CURLE_OK) code = curl_easy_setopt(easy, option, value);
  };

  for (const auto& [name, value] : request.headers) {
    // "Name;" is curl's way to send a header with an empty value.
    const std::string line = value.empty() ? absl::StrCat(name, ";")
                                           : absl::StrCat(name, ": ", value);
    curl_slist* appended = curl_slist_append(call.headers, line.c_str());
    if (appended == nullptr) return CURLE_OUT_OF_MEMORY;
    call.headers = appended;
  }
  // An empty Expect: stops curl from waiting for "100 Continue" on big POSTs.
  curl_slist* appended = curl_slist_append(call.headers, "Expect:");
  if (appended == nullptr) return CURLE_OUT_OF_MEMORY;
  call.headers = appended;

  call.max_body = options_.max_response_bytes;
  const long connect_ms = TimeoutMs(options_.connect_timeout);
  set(CURLOPT_PRIVATE, &call);
  set(CURLOPT_URL, request.url.c_str());
  set(CURLOPT_HTTPHEADER, call.headers);
  set(CURLOPT_NOSIGNAL, 1L);
  // Connyline's answers are small; curl's default 16 KiB receive buffer per
  // transfer would cost 64 MiB at 4,096 requests in flight.
  set(CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  set(CURLOPT_SHARE, share_);
  set(CURLOPT_HTTP_VERSION, CurlHttpVersion(options_.http2));
  // Where HTTP/2 may be spoken, wait for a connection that may multiplex
  // rather than open another. Not over http:// in auto mode: that is
  // HTTP/1.1, and waiting would only serialise a burst behind one connect.
  if (options_.http2 == UpstreamHttp2::kPriorKnowledge ||
      (options_.http2 == UpstreamHttp2::kAuto &&
       absl::StartsWithIgnoreCase(request.url, "https://"))) {
    set(CURLOPT_PIPEWAIT, 1L);
  }
  set(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  if (call.deadline != absl::InfiniteFuture()) {
    const long timeout_ms = TimeoutMs(remaining);
    set(CURLOPT_TIMEOUT_MS, timeout_ms);
    call.connect_limited = connect_ms < timeout_ms;
  } else {
    call.connect_limited = true;
  }
  set(CURLOPT_SSL_VERIFYPEER, 1L);
  set(CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) set(CURLOPT_CAINFO, options_.ca_file.c_str());
  set(CURLOPT_ERRORBUFFER, call.error);
  set(CURLOPT_HEADERFUNCTION, &Shard::OnHeader);
  set(CURLOPT_HEADERDATA, &call);
  set(CURLOPT_WRITEFUNCTION, &Shard::OnBody);
  set(CURLOPT_WRITEDATA, &call);
  set(CURLOPT_PREREQFUNCTION, &Shard::OnPrerequest);
  set(CURLOPT_PREREQDATA, &call);

  if (request.method == "GET") {
    set(CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    // A custom "HEAD" would make curl wait for a body that never comes.
    set(CURLOPT_NOBODY, 1L);
  } else {
    if (request.method == "POST") {
      set(CURLOPT_POST, 1L);
    } else {
      set(CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
    if (request.method == "POST" || !request.body.empty()) {
      set(CURLOPT_POSTFIELDSIZE_LARGE,
          static_cast<curl_off_t>(request.body.size()));
      set(CURLOPT_POSTFIELDS, request.body.data());
    }
  }
  return code;
}

void CurlTransport::Shard::CancelActive(uint64_t id) {
  auto it = active_.find(id);
  if (it == active_.end()) return;  // Finished already, or never ours.
  std::unique_ptr<Call> call = std::move(it->second);
  active_.erase(it);
  const bool sent = call->MayHaveBeenSent();
  Finish(std::move(call), TransportError{Kind::kCancelled, "cancelled", sent});
}

void CurlTransport::Shard::CancelEverything(
    std::vector<std::unique_ptr<Call>>& submitted) {
  std::vector<std::unique_ptr<Call>> calls;
  calls.reserve(active_.size() + submitted.size());
  for (auto& [id, call] : active_) calls.push_back(std::move(call));
  active_.clear();
  for (std::unique_ptr<Call>& call : submitted)
    calls.push_back(std::move(call));
  for (std::unique_ptr<Call>& call : calls) {
    const bool sent = call->MayHaveBeenSent();
    Finish(std::move(call),
           TransportError{Kind::kCancelled, "transport shutting down", sent});
  }
}

void CurlTransport::Shard::ReadCompletions() {
  int queued;
  while (CURLMsg* message = curl_multi_info_read(multi_, &queued)) {
    if (message->msg != CURLMSG_DONE) continue;
    // Read before Finish(): removing the handle invalidates `message`.
    const CURLcode code = message->data.result;
    char* user;
    curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &user);
    auto it = active_.find(reinterpret_cast<Call*>(user)->id);
    std::unique_ptr<Call> call = std::move(it->second);
    active_.erase(it);

    if (code != CURLE_OK &&
        !(code == CURLE_WRITE_ERROR && call->error_body_cut)) {
      TransportError error = call->Error(code);
      Finish(std::move(call), std::move(error));
      continue;
    }
    long status = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    if (options_.http2 != UpstreamHttp2::kOff) {
      long version = CURL_HTTP_VERSION_NONE;
      curl_easy_getinfo(call->easy, CURLINFO_HTTP_VERSION, &version);
      multiplexing_ = version >= CURL_HTTP_VERSION_2_0;
    }
    HttpResponse response = std::move(call->response);
    response.status = static_cast<int>(status);
    Finish(std::move(call), std::move(response));
  }
}

void CurlTransport::Shard::Finish(std::unique_ptr<Call> call,
                                  HttpResult result) {
  if (call->in_curl) --in_curl_;
  if (CURL* easy = call->easy; easy != nullptr) {
    // Removing an unfinished transfer makes curl close its connection
    // rather than reuse it, so the handle itself is safe to recycle.
    curl_multi_remove_handle(multi_, easy);
    curl_easy_reset(easy);
    if (idle_handles_.size() <
        static_cast<size_t>(options_.max_connections_per_shard)) {
      idle_handles_.push_back(easy);
    } else {
      curl_easy_cleanup(easy);
    }
  }
  curl_slist_free_all(call->headers);
  {
    // The callback and its captures die before the call stops counting.
    Callback done = std::move(call->done);
    call.reset();
    std::move(done)(std::move(result));
  }
  transport_->CallFinished();
}

size_t CurlTransport::Shard::OnHeader(char* data, size_t size, size_t count,
                                      void* user) {
  Call& call = *static_cast<Call*>(user);
  const size_t bytes = size * count;
  absl::string_view line(data, bytes);
  HttpHeaders& headers = call.response.headers;
  if (absl::StartsWith(line, "HTTP/")) {
    // A new status line: whatever came before was an interim (1xx) answer.
    headers.clear();
    return bytes;
  }
  line = absl::StripTrailingAsciiWhitespace(line);
  if (line.empty()) return bytes;
  if (line.front() == ' ' || line.front() == '\t') {
    // Obsolete line folding continues the previous value.
    if (!headers.empty()) {
      absl::StrAppend(&headers.back().second, " ",
                      absl::StripAsciiWhitespace(line));
    }
    return bytes;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return bytes;
  headers.emplace_back(
      absl::AsciiStrToLower(line.substr(0, colon)),
      std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  return bytes;
}

size_t CurlTransport::Shard::OnBody(char* data, size_t size, size_t count,
                                    void* user) {
  Call& call = *static_cast<Call*>(user);
  const size_t bytes = size * count;
  std::string& body = call.response.body;
  long status = 0;
  curl_easy_getinfo(call.easy, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) {
    // An error page matters only by its status and first words (a proxy's
    // may be megabytes): keep the start and end the transfer.
    const size_t keep = std::min(kMaxErrorBody, call.max_body);
    if (bytes > keep - std::min(keep, body.size())) {
      body.append(data, keep - std::min(keep, body.size()));
      call.error_body_cut = true;
      return 0;  // Ends the transfer with CURLE_WRITE_ERROR.
    }
    body.append(data, bytes);
    return bytes;
  }
  if (bytes > call.max_body - body.size()) {
    call.body_too_large = true;
    return 0;  // Fails the transfer with CURLE_WRITE_ERROR.
  }
  if (body.empty()) {
    curl_off_t length = -1;
    curl_easy_getinfo(call.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    if (length > 0 && static_cast<size_t>(length) > call.max_body) {
      call.body_too_large = true;  // refused before reading it
      return 0;
    }
    if (length > 0) body.reserve(static_cast<size_t>(length));
  }
  body.append(data, bytes);
  return bytes;
}

int CurlTransport::Shard::OnPrerequest(void* user, char*, char*, int, int) {
  Call& call = *static_cast<Call*>(user);
  // Curl silently resends a request whose reused connection closed without
  // an answer. The server may have acted on a non-idempotent one already
  // (a campaign created twice means every SMS sent twice), so refuse.
  if (++call.attempts > 1 && !IsIdempotent(call.request.method)) {
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

CurlTransport::CurlTransport(const CurlTransportOptions& options) {
  InitCurlOnce();
  share_ = std::make_unique<Share>();
  const int shards = std::max(1, options.shards);
  shards_.reserve(shards);
  for (int i = 0; i < shards; ++i) {
    shards_.push_back(std::make_unique<Shard>(this, options, share_->get()));
  }
}

CurlTransport::~CurlTransport() {
  for (const std::unique_ptr<Shard>& shard : shards_) shard->BeginStop();
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int64_t* outstanding) { return *outstanding == 0; },
        &outstanding_));
  }
  shards_.clear();
  share_.reset();
}

uint64_t CurlTransport::Start(HttpRequest request, absl::Time deadline,
                              Callback done) {
  const uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu_);
    ++outstanding_;
  }
  shards_[id % shards_.size()]->Submit(std::make_unique<Call>(
      id, std::move(request), deadline, std::move(done)));
  return id;
}

void CurlTransport::Cancel(uint64_t id) {
  shards_[id % shards_.size()]->Cancel(id);
}

void CurlTransport::CallFinished() {
  absl::MutexLock lock(&mu_);
  --outstanding_;
}

}  // namespace campaign_gateway
