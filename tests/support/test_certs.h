// A throwaway PKI for TLS tests, made at run time with OpenSSL's C API: a
// self-signed CA and a server certificate it signs, valid for 127.0.0.1 and
// localhost; more server and client certificates on demand. Nothing is
// committed; the CA's PEM file (and any WriteFile()) lives in a fresh
// directory under TempDir() and is deleted with the object.
//
//   auto pki = TestPki::Create();
//   TlsFakeConnyline server(pki->server_cert_pem(), pki->server_key_pem());
//   CurlTransportOptions options{.ca_file = pki->ca_file()};
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_TEST_CERTS_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_TEST_CERTS_H_

#include <openssl/types.h>

#include <memory>
#include <string>
#include <vector>

namespace campaign_gateway::testing_util {

class TestPki {
 public:
  // Aborts the test binary if OpenSSL or the file system fails: without
  // certificates no TLS test can say anything.
  static std::unique_ptr<TestPki> Create();
  ~TestPki();  // deletes ca_file() and its directory

  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  const std::string& ca_pem() const { return ca_pem_; }
  const std::string& server_cert_pem() const { return server_cert_pem_; }
  const std::string& server_key_pem() const { return server_key_pem_; }
  // A PEM file holding only the CA certificate, for CURLOPT_CAINFO.
  const std::string& ca_file() const { return ca_file_; }

  struct Issued {
    std::string cert_pem;
    std::string key_pem;
  };
  // A further certificate signed by this CA, with a fresh key.
  // `subject_alt_names` in OpenSSL's syntax, e.g.
  // "URI:spiffe://cluster.local/ns/x/sa/y,DNS:scheduler.x".
  Issued IssueServer(const std::string& subject_alt_names =
                         "IP:127.0.0.1,DNS:localhost") const;
  Issued IssueClient(const std::string& subject_alt_names) const;

  // Writes `content` to `name` in this PKI's directory (replacing it through
  // a rename, as an atomic update would); returns the path. Deleted with the
  // object.
  std::string WriteFile(const std::string& name, const std::string& content);
  const std::string& dir() const { return dir_; }

 private:
  TestPki() = default;
  Issued Issue(const std::string& subject_alt_names, bool server) const;

  std::shared_ptr<EVP_PKEY> ca_key_;
  std::shared_ptr<X509> ca_cert_;
  std::vector<std::string> files_;

  std::string ca_pem_;
  std::string server_cert_pem_;
  std::string server_key_pem_;
  std::string dir_;
  std::string ca_file_;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_TEST_CERTS_H_
