#include "tests/support/nginx_upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/test_env.h"

namespace campaign_gateway::testing_util {
namespace {

constexpr char kNginx[] = "/usr/sbin/nginx";
constexpr char kEchoModule[] = "/usr/lib/nginx/modules/ngx_http_echo_module.so";

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "NginxUpstream: %s\n", what.c_str());
  std::abort();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  if (!out.good()) Fail("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

}  // namespace

NginxUpstream::NginxUpstream(const std::string& cert_pem,
                             const std::string& key_pem) {
  std::string dir_template = TempDir() + "/nginx-upstream-XXXXXX";
  if (mkdtemp(dir_template.data()) == nullptr) Fail("mkdtemp");
  dir_ = dir_template;
  std::filesystem::create_directories(dir_ + "/tmp");
  WriteFile(dir_ + "/cert.pem", cert_pem);
  WriteFile(dir_ + "/key.pem", key_pem);

  // Not SOCK_CLOEXEC: nginx inherits it.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (fd < 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    Fail("cannot listen on 127.0.0.1");
  }
  port_ = ntohs(address.sin_port);

  const std::string& d = dir_;
  WriteFile(d + "/nginx.conf", absl::StrCat(R"(
load_module )",
                                            kEchoModule, R"(;
worker_processes 1;
pid )",
                                            d, R"(/nginx.pid;
error_log )",
                                            d, R"(/error.log info;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path )",
                                            d, R"(/tmp;
  proxy_temp_path )",
                                            d, R"(/tmp;
  fastcgi_temp_path )",
                                            d, R"(/tmp;
  uwsgi_temp_path )",
                                            d, R"(/tmp;
  scgi_temp_path )",
                                            d, R"(/tmp;
  server {
    listen 127.0.0.1:)",
                                            port_, R"( ssl http2;
    ssl_certificate )",
                                            d, R"(/cert.pem;
    ssl_certificate_key )",
                                            d, R"(/key.pem;
    location ~ ^/api/v1/[^/]+/lists/get-all/$ {
      default_type application/json;
      echo '{"data":[{"list_id":123,"name":"2026 Clients"}]}';
    }
    location = /slow {
      default_type application/json;
      echo_sleep 30;
      echo '{}';
    }
    location = /status { stub_status; }
  }
}
)"));
  process_ = std::make_unique<Subprocess>(
      std::vector<std::string>{kNginx, "-e", d + "/error.log", "-p", d, "-c",
                               d + "/nginx.conf", "-g", "daemon off;"},
      std::map<std::string, std::string>{{"NGINX", absl::StrCat(fd, ";")}});
  close(fd);  // nginx has its own copy
  // nginx answers once its worker runs; the log says so.
  if (!WaitForErrorLog("start worker process", absl::Seconds(10))) {
    Fail(
        "nginx did not start (are nginx and libnginx-mod-http-echo "
        "installed?): " +
        process_->AllOutput() + ErrorLog());
  }
}

NginxUpstream::~NginxUpstream() {
  // TERM lets the master stop its worker (a KILL would orphan it).
  process_->Signal(SIGTERM);
  process_->Wait(absl::Seconds(10));
  process_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string NginxUpstream::BaseUrl() const {
  return absl::StrCat("https://127.0.0.1:", port_);
}

std::string NginxUpstream::ErrorLog() const {
  return ReadFile(dir_ + "/error.log");
}

bool NginxUpstream::WaitForErrorLog(const std::string& text,
                                    absl::Duration timeout) const {
  const absl::Time give_up = absl::Now() + timeout;
  while (!absl::StrContains(ErrorLog(), text)) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

}  // namespace campaign_gateway::testing_util
