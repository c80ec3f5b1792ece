#include "tests/support/tls_fake_connyline.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace campaign_gateway::testing_util {
namespace {

// Every read and write on a connection gives up after this.
constexpr int kIoTimeoutSeconds = 5;
constexpr size_t kMaxRequestBytes = 1 << 20;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "TlsFakeConnyline: %s failed\n", what);
  ERR_print_errors_fp(stderr);
  std::abort();
}

// Parses "METHOD target HTTP/1.x" and the header lines of `head`.
std::optional<RecordedRequest> ParseHead(absl::string_view head) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  std::vector<absl::string_view> parts =
      absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  if (parts.size() != 3) return std::nullopt;
  RecordedRequest request;
  request.method = std::string(parts[0]);
  request.target = std::string(parts[1]);
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) return std::nullopt;
    request.headers.emplace_back(
        absl::AsciiStrToLower(lines[i].substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  return request;
}

// Reads one request (head and Content-Length body) from `ssl`.
std::optional<RecordedRequest> ReadRequest(SSL* ssl) {
  std::string buffer;
  size_t head_end;
  char chunk[16 * 1024];
  while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (buffer.size() > kMaxRequestBytes) return std::nullopt;
    const int n = SSL_read(ssl, chunk, sizeof(chunk));
    if (n <= 0) return std::nullopt;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  std::optional<RecordedRequest> request =
      ParseHead(absl::string_view(buffer).substr(0, head_end));
  if (!request) return std::nullopt;
  size_t body_size = 0;
  if (auto length = request->Header("content-length");
      length && (!absl::SimpleAtoi(*length, &body_size) ||
                 body_size > kMaxRequestBytes)) {
    return std::nullopt;
  }
  buffer.erase(0, head_end + 4);
  while (buffer.size() < body_size) {
    const int n = SSL_read(ssl, chunk, sizeof(chunk));
    if (n <= 0) return std::nullopt;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  request->body = buffer.substr(0, body_size);
  return request;
}

bool WriteAll(SSL* ssl, absl::string_view data) {
  while (!data.empty()) {
    const int n = SSL_write(ssl, data.data(), static_cast<int>(data.size()));
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

TlsFakeConnyline::TlsFakeConnyline(const std::string& cert_pem,
                                   const std::string& key_pem) {
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (ctx_ == nullptr) Die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  // Lets clients resume sessions (TLS 1.2 session ids; 1.3 tickets anyway).
  static constexpr unsigned char kSessionContext[] = "tls-fake-connyline";
  SSL_CTX_set_session_id_context(ctx_, kSessionContext,
                                 sizeof(kSessionContext) - 1);
  BIO* cert_bio = BIO_new_mem_buf(cert_pem.data(), cert_pem.size());
  X509* cert = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
  BIO_free(cert_bio);
  BIO* key_bio = BIO_new_mem_buf(key_pem.data(), key_pem.size());
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  BIO_free(key_bio);
  if (cert == nullptr || key == nullptr ||
      SSL_CTX_use_certificate(ctx_, cert) != 1 ||
      SSL_CTX_use_PrivateKey(ctx_, key) != 1 ||
      SSL_CTX_check_private_key(ctx_) != 1) {
    Die("loading the certificate and key");
  }
  X509_free(cert);  // the context holds its own references
  EVP_PKEY_free(key);

  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) Die("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address),
           sizeof(address)) != 0 ||
      listen(listen_fd_, SOMAXCONN) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) !=
          0) {
    Die("listening on 127.0.0.1:0");
  }
  port_ = ntohs(address.sin_port);
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) Die("eventfd");
  thread_ = std::thread(&TlsFakeConnyline::AcceptLoop, this);
}

TlsFakeConnyline::~TlsFakeConnyline() { Stop(); }

std::string TlsFakeConnyline::BaseUrl() const {
  return absl::StrCat("https://127.0.0.1:", port_);
}

int TlsFakeConnyline::ConnectionCount() const {
  absl::MutexLock lock(&mu_);
  return connections_;
}

int TlsFakeConnyline::ResumedHandshakeCount() const {
  absl::MutexLock lock(&mu_);
  return resumed_handshakes_;
}

int TlsFakeConnyline::FullHandshakeCount() const {
  absl::MutexLock lock(&mu_);
  return full_handshakes_;
}

int TlsFakeConnyline::HandshakeFailureCount() const {
  absl::MutexLock lock(&mu_);
  return handshake_failures_;
}

bool TlsFakeConnyline::WaitForHandshakeFailures(int n,
                                                absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return handshake_failures_ >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

std::vector<RecordedRequest> TlsFakeConnyline::Requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

int TlsFakeConnyline::RequestCount() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(requests_.size());
}

void TlsFakeConnyline::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  if (eventfd_write(stop_fd_, 1) != 0) Die("eventfd_write");
  thread_.join();
  close(listen_fd_);
  close(stop_fd_);
  SSL_CTX_free(ctx_);
}

void TlsFakeConnyline::AcceptLoop() {
  // A client that hangs up makes SSL_write raise SIGPIPE on this thread;
  // blocked, it turns into an EPIPE error instead of killing the binary.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;  // EINTR
    if (fds[1].revents != 0) return;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    {
      absl::MutexLock lock(&mu_);
      ++connections_;
    }
    const timeval timeout{kIoTimeoutSeconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    Serve(fd);
    close(fd);
  }
}

void TlsFakeConnyline::Serve(int fd) {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) Die("SSL_new");
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) != 1) {
    ERR_clear_error();
    SSL_free(ssl);
    absl::MutexLock lock(&mu_);
    ++handshake_failures_;
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    ++(SSL_session_reused(ssl) ? resumed_handshakes_ : full_handshakes_);
  }
  if (std::optional<RecordedRequest> request = ReadRequest(ssl)) {
    {
      absl::MutexLock lock(&mu_);
      request->connection = connections_;
      requests_.push_back(*request);
    }
    const Reply reply = FakeConnyline::DefaultConnyline(*request);
    std::string out = absl::StrCat("HTTP/1.1 ", reply.status, " Fake\r\n");
    for (const auto& [name, value] : reply.headers) {
      absl::StrAppend(&out, name, ": ", value, "\r\n");
    }
    absl::StrAppend(&out, "Content-Length: ", reply.body.size(),
                    "\r\nConnection: close\r\n\r\n", reply.body);
    if (WriteAll(ssl, out)) SSL_shutdown(ssl);
  }
  ERR_clear_error();
  SSL_free(ssl);
}

}  // namespace campaign_gateway::testing_util
