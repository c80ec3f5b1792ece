// H2Server: Debian's nghttpd (package nghttp2-server) as an HTTP/2 upstream
// on 127.0.0.1, for tests of HTTP/2 to Connyline: h2c (prior knowledge) or
// TLS with ALPN. It serves one static JSON file at every listed path, and
// its verbose log tells how many connections and streams it saw.
//
//   H2Server server(H2Server::Tls{pki->server_cert_pem(),
//   pki->server_key_pem()});
//   // GET server.BaseUrl() + "/api/v1/acme/lists/get-all/"
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_H2_SERVER_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_H2_SERVER_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "tests/support/subprocess.h"

namespace campaign_gateway::testing_util {

class H2Server {
 public:
  struct Tls {
    std::string cert_pem;
    std::string key_pem;
  };
  // Without `tls`: h2c. Aborts the test binary if nghttpd does not start.
  explicit H2Server(std::optional<Tls> tls = std::nullopt);
  ~H2Server();  // stops nghttpd, deletes its files

  H2Server(const H2Server&) = delete;
  H2Server& operator=(const H2Server&) = delete;

  int Port() const { return port_; }
  // "https://127.0.0.1:PORT" or "http://127.0.0.1:PORT".
  std::string BaseUrl() const;
  // The body of every GET of "/api/v1/<account>/lists/get-all/".
  static const std::string& ListsBody();

  // Connections (HTTP/2 sessions) nghttpd has accepted, and requests
  // (HEADERS frames received) it has seen, from its verbose log. The log
  // may lag behind the answers: WaitForRequests first.
  int ConnectionCount() const;
  int RequestCount() const;
  // Whether the log shows at least `n` requests within `timeout`.
  bool WaitForRequests(int n, absl::Duration timeout) const;

 private:
  std::string dir_;
  bool tls_ = false;
  int port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_H2_SERVER_H_
