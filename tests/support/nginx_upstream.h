// NginxUpstream: Debian's nginx (with its echo module) as an HTTPS upstream
// offering HTTP/2 by ALPN, for tests of what a real HTTP/2 server sees of
// the gateway's streams: cancellation (RST_STREAM) and connection reuse.
//
//   NginxUpstream server(pki->server_cert_pem(), pki->server_key_pem());
//   GET server.BaseUrl() + "/api/v1/acme/lists/get-all/"   answers at once
//   GET server.BaseUrl() + "/slow"                           after 30 s
//   GET server.BaseUrl() + "/status"                         stub_status
//
// It listens on a socket this process bound to port 0 and hands to nginx
// (nginx's own inherited-socket mechanism, the NGINX environment variable),
// so no port is guessed. One worker; error log at level info.
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_NGINX_UPSTREAM_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_NGINX_UPSTREAM_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "tests/support/subprocess.h"

namespace campaign_gateway::testing_util {

class NginxUpstream {
 public:
  // Aborts the test binary if nginx does not start.
  NginxUpstream(const std::string& cert_pem, const std::string& key_pem);
  ~NginxUpstream();  // stops nginx, deletes its files

  NginxUpstream(const NginxUpstream&) = delete;
  NginxUpstream& operator=(const NginxUpstream&) = delete;

  // "https://127.0.0.1:PORT".
  std::string BaseUrl() const;
  // nginx's error log so far.
  std::string ErrorLog() const;
  // Whether the error log contains `text` within `timeout`.
  bool WaitForErrorLog(const std::string& text, absl::Duration timeout) const;

 private:
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_NGINX_UPSTREAM_H_
