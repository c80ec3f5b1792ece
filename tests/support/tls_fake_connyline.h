// TlsFakeConnyline: a minimal HTTPS server on 127.0.0.1 that answers like
// FakeConnyline::DefaultConnyline (Connyline as documented), for tests of the
// gateway's TLS to Connyline: certificate verification, a configured CA.
//
//   auto pki = TestPki::Create();
//   TlsFakeConnyline server(pki->server_cert_pem(), pki->server_key_pem());
//   // https://127.0.0.1:PORT, trusted only with pki->ca_file()
//
// Deliberately small: one thread accepts and serves connections one at a
// time, one request per connection (answered with Connection: close), every
// read and write bounded by a timeout so a stuck client cannot hang a test.
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_TLS_FAKE_CONNYLINE_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_TLS_FAKE_CONNYLINE_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/support/fake_connyline.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace campaign_gateway::testing_util {

class TlsFakeConnyline {
 public:
  // Serves the certificate chain and key given as PEM; aborts the test binary
  // if they do not load or it cannot listen.
  TlsFakeConnyline(const std::string& cert_pem, const std::string& key_pem);
  ~TlsFakeConnyline();  // Stop()

  TlsFakeConnyline(const TlsFakeConnyline&) = delete;
  TlsFakeConnyline& operator=(const TlsFakeConnyline&) = delete;

  int Port() const { return port_; }
  // "https://127.0.0.1:PORT", no trailing slash.
  std::string BaseUrl() const;

  // TCP connections accepted so far. A client sees the server's certificate
  // only after its connection was accepted, so once a client reports a
  // certificate failure this already counts that connection.
  int ConnectionCount() const;
  // Connections whose TLS handshake failed (e.g. the client rejected the
  // certificate and sent an alert).
  int HandshakeFailureCount() const;
  bool WaitForHandshakeFailures(int n, absl::Duration timeout) const;
  // Completed handshakes that resumed an earlier TLS session (a ticket or
  // session id), and those that did not (full handshakes).
  int ResumedHandshakeCount() const;
  int FullHandshakeCount() const;
  // Requests received over completed handshakes, in arrival order.
  std::vector<RecordedRequest> Requests() const;
  int RequestCount() const;

  // Stops listening and joins the server thread. Idempotent.
  void Stop();

 private:
  void AcceptLoop();
  void Serve(int fd);

  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // readable once Stop() begins
  int port_ = 0;
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int connections_ ABSL_GUARDED_BY(mu_) = 0;
  int handshake_failures_ ABSL_GUARDED_BY(mu_) = 0;
  int resumed_handshakes_ ABSL_GUARDED_BY(mu_) = 0;
  int full_handshakes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_TLS_FAKE_CONNYLINE_H_
