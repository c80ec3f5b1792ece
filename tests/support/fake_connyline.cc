#include "tests/support/fake_connyline.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace campaign_gateway::testing_util {
namespace {

using Json = nlohmann::json;

// Limits that keep a misbehaving client from exhausting the test process.
constexpr size_t kMaxHeaderBytes = size_t{64} * 1024;
constexpr size_t kMaxBodyBytes = size_t{64} * 1024 * 1024;
constexpr size_t kChunkBytes = size_t{64} * 1024;
constexpr absl::string_view kBadRequest =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";

[[noreturn]] void Die(const char* what) {
  std::perror(what);
  std::abort();
}

enum class Io { kReady, kTimeout, kStopped, kPeerGone };

// Waits until `fd` reports one of `events` (or an error/hangup), the stop fd
// becomes readable, or `timeout` passes.
Io WaitFor(int fd, short events, int stop_fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int timeout_ms = -1;
    if (timeout != absl::InfiniteDuration()) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return Io::kTimeout;
      timeout_ms = static_cast<int>(std::min<int64_t>(
          absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))),
          60'000));
    }
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    const int n = poll(fds, 2, timeout_ms);
    if (n < 0 && errno != EINTR) Die("poll");
    if (n <= 0) continue;
    if (fds[1].revents != 0) return Io::kStopped;
    if (fds[0].revents != 0) return Io::kReady;
  }
}

// Waits until the client closes its end (kPeerGone), the server stops or
// `timeout` passes; data the client may send meanwhile is left unread.
Io WaitForHangup(int fd, int stop_fd, absl::Duration timeout) {
  const Io io = WaitFor(fd, POLLRDHUP, stop_fd, timeout);
  return io == Io::kReady ? Io::kPeerGone : io;
}

// Sends all of `data`.
Io SendAll(int fd, int stop_fd, absl::string_view data) {
  while (!data.empty()) {
    const Io io = WaitFor(fd, POLLOUT, stop_fd, absl::InfiniteDuration());
    if (io != Io::kReady) return io;
    const ssize_t n =
        send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      return Io::kPeerGone;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Io::kReady;
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

// The value of the first header called `name` (any case), or nullptr.
const std::string* FindHeader(
    const std::vector<std::pair<std::string, std::string>>& headers,
    absl::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

std::string StatusLineAndHeaders(
    int status,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out =
      absl::StrCat("HTTP/1.1 ", status, " ", ReasonPhrase(status), "\r\n");
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  return out;
}

// Whether `received` can be the start of an HTTP request: its request line
// (as far as received) holds only printable ASCII.
bool LooksLikeHttp(absl::string_view received) {
  const absl::string_view line = received.substr(0, received.find("\r\n"));
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c >= 0x20 && c < 0x7f; });
}

// Parses the request line and headers of `head` (without the blank line).
bool ParseHead(absl::string_view head, RecordedRequest* request) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  std::vector<absl::string_view> parts =
      absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    return false;
  }
  request->method = std::string(parts[0]);
  request->target = std::string(parts[1]);
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0) return false;
    request->headers.emplace_back(
        absl::AsciiStrToLower(lines[i].substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  return true;
}

// Appends what arrives on `fd` to `buffer`; false once the client closed or
// failed, or the server stops.
bool ReceiveMore(int fd, int stop_fd, std::string& buffer) {
  while (WaitFor(fd, POLLIN, stop_fd, absl::InfiniteDuration()) == Io::kReady) {
    char chunk[64 * 1024];
    const ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
    if (n > 0) {
      buffer.append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) return false;
  }
  return false;
}

// Reads the next request from `fd`, consuming it from `buffer`. Answers
// requests it cannot take itself; nullopt means the connection is done.
std::optional<RecordedRequest> ReadRequest(int fd, int stop_fd,
                                           std::string& buffer) {
  size_t head_end;
  while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    // Answer non-HTTP bytes (say, a TLS ClientHello) at once instead of
    // waiting for a blank line that never comes.
    if (buffer.size() > kMaxHeaderBytes || !LooksLikeHttp(buffer)) {
      SendAll(fd, stop_fd, kBadRequest);
      return std::nullopt;
    }
    if (!ReceiveMore(fd, stop_fd, buffer)) return std::nullopt;
  }
  RecordedRequest request;
  if (!ParseHead(absl::string_view(buffer).substr(0, head_end), &request)) {
    SendAll(fd, stop_fd, kBadRequest);
    return std::nullopt;
  }
  size_t body_size = 0;
  if (const std::optional<std::string> length =
          request.Header("content-length");
      length.has_value() &&
      (!absl::SimpleAtoi(*length, &body_size) || body_size > kMaxBodyBytes)) {
    SendAll(fd, stop_fd, kBadRequest);
    return std::nullopt;
  }
  if (request.Header("transfer-encoding").has_value()) {
    SendAll(fd, stop_fd,
            "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n");
    return std::nullopt;
  }
  buffer.erase(0, head_end + 4);
  if (buffer.size() < body_size &&
      absl::EqualsIgnoreCase(request.Header("expect").value_or(""),
                             "100-continue") &&
      SendAll(fd, stop_fd, "HTTP/1.1 100 Continue\r\n\r\n") != Io::kReady) {
    return std::nullopt;
  }
  while (buffer.size() < body_size) {
    if (!ReceiveMore(fd, stop_fd, buffer)) return std::nullopt;
  }
  request.body = buffer.substr(0, body_size);
  buffer.erase(0, body_size);
  return request;
}

Reply NoToken() {
  return JsonReply(400, R"({"success":false,"message":"NO Token Found."})");
}

Reply DataMissing() {
  return JsonReply(
      400, R"({"success":false,"message":"Necessary data is missing."})");
}

}  // namespace

std::optional<std::string> RecordedRequest::Header(
    absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return std::nullopt;
}

absl::string_view RecordedRequest::Path() const {
  absl::string_view path = target;
  return path.substr(0, path.find('?'));
}

Reply JsonReply(int status, std::string json) {
  Reply reply;
  reply.status = status;
  reply.headers = {{"Content-Type", "application/json"}};
  reply.body = std::move(json);
  return reply;
}

FakeConnyline::FakeConnyline() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) Die("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address),
           sizeof(address)) != 0) {
    Die("bind");
  }
  if (listen(listen_fd_, SOMAXCONN) != 0) Die("listen");
  socklen_t length = sizeof(address);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) !=
      0) {
    Die("getsockname");
  }
  port_ = ntohs(address.sin_port);
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) Die("eventfd");
  accept_thread_ = std::thread(&FakeConnyline::AcceptLoop, this);
}

FakeConnyline::~FakeConnyline() { Stop(); }

std::string FakeConnyline::BaseUrl() const {
  return absl::StrCat("http://127.0.0.1:", port_);
}

void FakeConnyline::SetHandler(Handler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

void FakeConnyline::Enqueue(Reply reply) {
  absl::MutexLock lock(&mu_);
  queued_.push_back(std::move(reply));
}

std::vector<RecordedRequest> FakeConnyline::Requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

int FakeConnyline::RequestCount() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(requests_.size());
}

bool FakeConnyline::WaitForRequests(int n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return static_cast<int>(requests_.size()) >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

int FakeConnyline::ConnectionCount() const {
  absl::MutexLock lock(&mu_);
  return connection_count_;
}

int FakeConnyline::MaxConcurrentRequests() const {
  absl::MutexLock lock(&mu_);
  return max_in_flight_;
}

int FakeConnyline::AbandonedRequestCount() const {
  absl::MutexLock lock(&mu_);
  return abandoned_;
}

bool FakeConnyline::WaitForAbandonedRequests(int n,
                                             absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]()
                    ABSL_SHARED_LOCKS_REQUIRED(mu_) { return abandoned_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

void FakeConnyline::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  if (eventfd_write(stop_fd_, 1) != 0) Die("eventfd_write");
  accept_thread_.join();
  // The accept thread, the only other user of connections_, has ended.
  for (Connection& connection : connections_) connection.thread.join();
  connections_.clear();
  close(listen_fd_);
  close(stop_fd_);
}

ClosedPort::ClosedPort() {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) Die("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    Die("bind");
  }
  port_ = ntohs(address.sin_port);
}

ClosedPort::~ClosedPort() { close(fd_); }

std::string ClosedPort::Url() const {
  return absl::StrCat("http://127.0.0.1:", port_);
}

void FakeConnyline::AcceptLoop() {
  while (WaitFor(listen_fd_, POLLIN, stop_fd_, absl::InfiniteDuration()) ==
         Io::kReady) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors: back off instead of spinning on a readable socket.
      if (errno == EMFILE || errno == ENFILE)
        absl::SleepFor(absl::Milliseconds(10));
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // Reap finished connection threads so long runs do not pile them up.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->finished.load()) {
        it->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    int id;
    {
      absl::MutexLock lock(&mu_);
      id = ++connection_count_;
    }
    Connection& connection = connections_.emplace_back();
    connection.thread =
        std::thread(&FakeConnyline::Serve, this, fd, id, &connection.finished);
  }
}

void FakeConnyline::Serve(int fd, int connection_id,
                          std::atomic<bool>* finished) {
  std::string buffer;  // Received and not yet consumed.
  while (std::optional<RecordedRequest> request =
             ReadRequest(fd, stop_fd_, buffer)) {
    request->connection = connection_id;
    if (!Answer(fd, *request, Record(*request))) break;
  }
  close(fd);
  finished->store(true);
}

Reply FakeConnyline::Record(const RecordedRequest& request) {
  Handler handler;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    // Taken together with recording, so queued replies pair with requests
    // in the order Requests() lists them.
    if (!queued_.empty()) {
      Reply reply = std::move(queued_.front());
      queued_.pop_front();
      return reply;
    }
    handler = handler_;
  }
  return handler ? handler(request) : DefaultConnyline(request);
}

bool FakeConnyline::Answer(int fd, const RecordedRequest& request,
                           const Reply& reply) {
  if (reply.delay > absl::ZeroDuration()) {
    const Io waited = WaitForHangup(fd, stop_fd_, reply.delay);
    if (waited != Io::kTimeout) {
      FinishRequest(/*abandoned=*/waited == Io::kPeerGone);
      return false;
    }
  }
  if (reply.action == Reply::Action::kCloseWithoutAnswer) {
    FinishRequest(/*abandoned=*/false);
    return false;
  }

  std::string out;
  if (reply.interim_status != 0) {
    out = StatusLineAndHeaders(reply.interim_status, reply.interim_headers);
    out += "\r\n";
  }
  out += StatusLineAndHeaders(reply.status, reply.headers);
  const std::string filler(64, 'x');
  const absl::string_view body =
      reply.action != Reply::Action::kRespond && reply.body.empty()
          ? filler
          : reply.body;
  if (reply.chunked && reply.action == Reply::Action::kRespond) {
    out += "Transfer-Encoding: chunked\r\n\r\n";
    for (size_t i = 0; i < body.size(); i += kChunkBytes) {
      const absl::string_view piece = body.substr(i, kChunkBytes);
      absl::StrAppend(&out, absl::Hex(piece.size()), "\r\n", piece, "\r\n");
    }
    out += "0\r\n\r\n";
  } else {
    if (FindHeader(reply.headers, "content-length") == nullptr) {
      absl::StrAppend(&out, "Content-Length: ", body.size(), "\r\n");
    }
    absl::StrAppend(&out, "\r\n",
                    reply.action == Reply::Action::kRespond
                        ? body
                        : body.substr(0, body.size() / 2));
  }

  const Io sent = SendAll(fd, stop_fd_, out);
  if (sent != Io::kReady) {
    FinishRequest(/*abandoned=*/sent == Io::kPeerGone);
    return false;
  }
  switch (reply.action) {
    case Reply::Action::kRespond: {
      FinishRequest(/*abandoned=*/false);
      const std::string* reply_connection =
          FindHeader(reply.headers, "connection");
      const std::string* request_connection =
          FindHeader(request.headers, "connection");
      return !(reply_connection != nullptr &&
               absl::EqualsIgnoreCase(*reply_connection, "close")) &&
             !(request_connection != nullptr &&
               absl::EqualsIgnoreCase(*request_connection, "close"));
    }
    case Reply::Action::kResetMidBody: {
      // Linger 0 makes close() send RST instead of FIN.
      const linger reset{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      FinishRequest(/*abandoned=*/false);
      return false;
    }
    case Reply::Action::kNeverEnd:
      FinishRequest(
          /*abandoned=*/WaitForHangup(fd, stop_fd_, absl::InfiniteDuration()) ==
          Io::kPeerGone);
      return false;
    case Reply::Action::kCloseWithoutAnswer:
      break;
  }
  return false;
}

void FakeConnyline::FinishRequest(bool abandoned) {
  absl::MutexLock lock(&mu_);
  --in_flight_;
  if (abandoned) ++abandoned_;
}

Reply FakeConnyline::DefaultConnyline(const RecordedRequest& request) {
  // "/api/v1/{acc}/lists/get-all/" splits into
  // {"", "api", "v1", acc, "lists", "get-all", ""}.
  const std::vector<absl::string_view> parts =
      absl::StrSplit(request.Path(), '/');
  const bool api = parts.size() == 7 && parts[0].empty() && parts[1] == "api" &&
                   parts[2] == "v1" && !parts[3].empty();
  const bool lists = api && request.method == "GET" && parts[4] == "lists" &&
                     parts[5] == "get-all" && parts[6].empty();
  const bool create = api && request.method == "POST" &&
                      parts[4] == "campaigns" && parts[5] == "sms" &&
                      parts[6] == "create";
  if (!lists && !create) {
    return JsonReply(404, R"({"success":false,"message":"Not Found."})");
  }
  const std::string authorization =
      request.Header("authorization").value_or("");
  if (!absl::StartsWith(authorization, "Bearer ") ||
      absl::StripAsciiWhitespace(authorization.substr(7)).empty()) {
    return NoToken();
  }
  if (lists) {
    return JsonReply(200, R"({"data":[{"list_id":123,"name":"2026 Clients"},)"
                          R"({"list_id":456,"name":"Newsletter"}]})");
  }

  const Json body =
      Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return DataMissing();
  for (const char* field : {"campaign_name", "sender", "sms_text", "start"}) {
    if (!body.contains(field) || !body[field].is_string() ||
        body[field].get<std::string>().empty()) {
      return DataMissing();
    }
  }
  if (!body.contains("list_id") || !body["list_id"].is_number_integer()) {
    return DataMissing();
  }
  const Json answer = {{"success", true},
                       {"message", "SMS Campaign created successfully."},
                       {"data",
                        {{"campaign_name", body["campaign_name"]},
                         {"sender", body["sender"]},
                         {"list_id", body["list_id"]},
                         {"start", body["start"].get<std::string>() + ":00"},
                         {"created_at", "2026-02-24 09:15:00"}}}};
  return JsonReply(201, answer.dump());
}

}  // namespace campaign_gateway::testing_util
