#include "tests/support/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/test_env.h"

namespace campaign_gateway::testing_util {
namespace {

constexpr char kRedisServer[] = "/usr/bin/redis-server";
constexpr char kSetpriv[] = "/usr/bin/setpriv";
constexpr absl::Duration kStartTimeout = absl::Seconds(10);

std::string UniquePassword() {
  static std::atomic<int> counter{0};
  std::random_device random;
  return absl::StrCat("test-pw-", getpid(), "-", counter.fetch_add(1), "-",
                      absl::Hex(random()), absl::Hex(random()));
}

// A RESP array of bulk strings.
std::string Resp(std::initializer_list<std::string> args) {
  std::string out = absl::StrCat("*", args.size(), "\r\n");
  for (const std::string& arg : args) {
    absl::StrAppend(&out, "$", arg.size(), "\r\n", arg, "\r\n");
  }
  return out;
}

// The state letter of /proc/PID/stat ('T' when stopped), or '?'.
char ProcessState(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return '?';
  return line[paren + 2];
}

// A fresh directory for the server's working files.
std::string MakeTempDir() {
  std::string dir = absl::StrCat(TempDir(), "/redis-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) {
    throw std::runtime_error(
        absl::StrCat("mkdtemp failed: ", std::strerror(errno)));
  }
  return dir;
}

template <typename Predicate>
bool WaitUntil(Predicate done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

}  // namespace

RedisServer::RedisServer() : password_(UniquePassword()) {
  dir_ = MakeTempDir();
  // Another process may take the port between PickFreePort() and
  // redis-server's bind(): pick another one then.
  for (int attempt = 0; attempt < 20; ++attempt) {
    port_ = PickFreePort();
    bool collision = false;
    status_ = StartOnPort(&collision);
    if (!collision) break;
  }
}

RedisServer::RedisServer(int port, std::string password)
    : password_(password.empty() ? UniquePassword() : std::move(password)) {
  dir_ = MakeTempDir();
  port_ = port;
  bool collision = false;
  status_ = StartOnPort(&collision);
}

RedisServer::~RedisServer() {
  Kill();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

int RedisServer::PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t size = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    close(fd);
    throw std::runtime_error("cannot bind a loopback port");
  }
  close(fd);
  return ntohs(address.sin_port);
}

std::string RedisServer::url() const {
  return absl::StrCat("redis://127.0.0.1:", port_);
}

absl::Status RedisServer::StartOnPort(bool* collision) {
  *collision = false;
  paused_ = false;
  // setpriv (util-linux) execs redis-server with a parent-death signal, so a
  // test that crashes leaves no server behind; the pid stays the same.
  process_ =
      std::make_unique<Subprocess>(std::vector<std::string>{kSetpriv,
                                                            "--pdeathsig",
                                                            "KILL",
                                                            "--",
                                                            kRedisServer,
                                                            "--port",
                                                            absl::StrCat(port_),
                                                            "--bind",
                                                            "127.0.0.1",
                                                            "--requirepass",
                                                            password_,
                                                            "--save",
                                                            "",
                                                            "--appendonly",
                                                            "no",
                                                            "--dir",
                                                            dir_,
                                                            "--daemonize",
                                                            "no",
                                                            "--loglevel",
                                                            "warning"});
  const absl::Time deadline = absl::Now() + kStartTimeout;
  while (absl::Now() < deadline) {
    // AUTH with this instance's password also tells it from another test's
    // redis-server that may have won the port.
    if (Ping(absl::Milliseconds(200))) return absl::OkStatus();
    if (process_->Wait(absl::ZeroDuration()).has_value()) {
      const std::string output = process_->AllOutput();
      *collision = output.find("already in use") != std::string::npos;
      process_.reset();
      return absl::UnavailableError(
          absl::StrCat("redis-server on port ", port_, " exited: ", output));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  const std::string output = process_->AllOutput();
  Kill();
  return absl::DeadlineExceededError(absl::StrCat(
      "redis-server on port ", port_, " did not answer PING: ", output));
}

bool RedisServer::Ping(absl::Duration timeout) const {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port_));
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ==
      0) {
    const std::string request = Resp({"AUTH", password_}) + Resp({"PING"});
    const std::string expected = "+OK\r\n+PONG\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      std::string answer;
      const absl::Time deadline = absl::Now() + timeout;
      char buffer[256];
      while (answer.size() < expected.size() && absl::Now() < deadline) {
        const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        answer.append(buffer, static_cast<size_t>(n));
      }
      ok = answer == expected;
    }
  }
  close(fd);
  return ok;
}

void RedisServer::Stop() {
  if (process_ == nullptr) return;
  if (paused_) Resume();
  process_->Signal(SIGTERM);
  if (!process_->Wait(absl::Seconds(10)).has_value()) {
    process_->Signal(SIGKILL);
    process_->Wait(absl::Seconds(10));
  }
  process_.reset();
}

void RedisServer::Kill() {
  if (process_ == nullptr) return;
  process_->Signal(SIGKILL);
  process_->Wait(absl::Seconds(10));
  process_.reset();
  paused_ = false;
}

absl::Status RedisServer::Restart() {
  Stop();
  bool collision = false;
  status_ = StartOnPort(&collision);
  return status_;
}

void RedisServer::Pause() {
  if (process_ == nullptr || paused_) return;
  const pid_t pid = process_->pid();
  process_->Signal(SIGSTOP);
  WaitUntil([pid] { return ProcessState(pid) == 'T'; }, absl::Seconds(5));
  paused_ = true;
}

void RedisServer::Resume() {
  if (process_ == nullptr || !paused_) return;
  const pid_t pid = process_->pid();
  process_->Signal(SIGCONT);
  WaitUntil([pid] { return ProcessState(pid) != 'T'; }, absl::Seconds(5));
  paused_ = false;
}

}  // namespace campaign_gateway::testing_util
