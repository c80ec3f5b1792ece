#include "tests/support/h2_server.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/support/test_env.h"

namespace campaign_gateway::testing_util {
namespace {

// Debian's path (/usr/sbin is not on every test runner's PATH).
constexpr char kNghttpd[] = "/usr/sbin/nghttpd";

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "H2Server: %s\n", what.c_str());
  std::abort();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  if (!out.good()) Fail("cannot write " + path);
}

// The port `pid` listens on: nghttpd is started on port 0 and only says
// "listen 127.0.0.1:0", so find its listening socket's inode in /proc.
int ListeningPort(pid_t pid) {
  std::set<std::string> inodes;
  const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
  for (const auto& entry : std::filesystem::directory_iterator(fd_dir)) {
    std::error_code error;
    const std::string target =
        std::filesystem::read_symlink(entry.path(), error).string();
    if (!error && absl::StartsWith(target, "socket:[")) {
      inodes.insert(target.substr(8, target.size() - 9));
    }
  }
  std::ifstream tcp(absl::StrCat("/proc/", pid, "/net/tcp"));
  std::string line;
  std::getline(tcp, line);  // header
  while (std::getline(tcp, line)) {
    std::vector<std::string> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    // sl local_address rem_address st ... inode (10th field)
    if (fields.size() < 10 || fields[3] != "0A") continue;  // 0A: LISTEN
    if (inodes.count(fields[9]) == 0) continue;
    const std::string hex_port = fields[1].substr(fields[1].find(':') + 1);
    return static_cast<int>(std::strtol(hex_port.c_str(), nullptr, 16));
  }
  return 0;
}

}  // namespace

const std::string& H2Server::ListsBody() {
  static const std::string* const body =
      new std::string(R"({"data":[{"list_id":123,"name":"2026 Clients"}]})");
  return *body;
}

H2Server::H2Server(std::optional<Tls> tls) : tls_(tls.has_value()) {
  std::string dir_template = TempDir() + "/h2-server-XXXXXX";
  if (mkdtemp(dir_template.data()) == nullptr) Fail("mkdtemp");
  dir_ = dir_template;
  // Any account: nghttpd serves files, so "acme" is the one tests use.
  const std::string lists = dir_ + "/htdocs/api/v1/acme/lists/get-all";
  std::filesystem::create_directories(lists);
  WriteFile(lists + "/index.html", ListsBody());

  std::vector<std::string> argv = {kNghttpd,    "-v", "-a",
                                   "127.0.0.1", "-d", dir_ + "/htdocs"};
  if (tls) {
    WriteFile(dir_ + "/cert.pem", tls->cert_pem);
    WriteFile(dir_ + "/key.pem", tls->key_pem);
    argv.insert(argv.end(), {"0", dir_ + "/key.pem", dir_ + "/cert.pem"});
  } else {
    argv.insert(argv.end(), {"--no-tls", "0"});
  }
  process_ = std::make_unique<Subprocess>(argv);
  if (!process_->WaitForStdoutLine(
          [](const std::string& line) {
            return absl::StrContains(line, "listen 127.0.0.1");
          },
          absl::Seconds(10))) {
    Fail("nghttpd did not start (is nghttp2-server installed?): " +
         process_->AllOutput());
  }
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while ((port_ = ListeningPort(process_->pid())) == 0) {
    if (absl::Now() > give_up) Fail("nghttpd listens on no port");
    absl::SleepFor(absl::Milliseconds(10));
  }
}

H2Server::~H2Server() {
  process_.reset();  // kills nghttpd
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string H2Server::BaseUrl() const {
  return absl::StrCat(tls_ ? "https" : "http", "://127.0.0.1:", port_);
}

int H2Server::ConnectionCount() const {
  std::set<std::string> ids;
  for (const std::string& line : process_->StdoutLines()) {
    if (absl::StartsWith(line, "[id="))
      ids.insert(line.substr(0, line.find(']')));
  }
  return static_cast<int>(ids.size());
}

int H2Server::RequestCount() const {
  int requests = 0;
  for (const std::string& line : process_->StdoutLines()) {
    requests += absl::StrContains(line, ") :method: ");
  }
  return requests;
}

bool H2Server::WaitForRequests(int n, absl::Duration timeout) const {
  const absl::Time give_up = absl::Now() + timeout;
  while (RequestCount() < n) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

}  // namespace campaign_gateway::testing_util
