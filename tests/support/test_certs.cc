#include "tests/support/test_certs.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/test_env.h"

namespace campaign_gateway::testing_util {
namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "TestPki: %s failed\n", what);
  ERR_print_errors_fp(stderr);
  std::abort();
}

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertFree {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

Key NewKey() {
  // P-256 is quick to generate and accepted by every TLS 1.2/1.3 stack.
  Key key(EVP_EC_gen("P-256"));
  if (key == nullptr) Fail("EVP_EC_gen");
  return key;
}

// `issuer` may be `cert` itself (self-signed).
void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (extension == nullptr || X509_add_ext(cert, extension, -1) != 1) {
    Fail(value);
  }
  X509_EXTENSION_free(extension);
}

// A certificate for `key` named `common_name`, valid from an hour ago for a
// day (clock skew between the test and OpenSSL's check is harmless). Without
// `issuer` it is self-signed; extensions are added by the caller before
// Sign().
Cert NewCertificate(const std::string& common_name, EVP_PKEY* key,
                    X509* issuer) {
  Cert cert(X509_new());
  if (cert == nullptr) Fail("X509_new");
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) Fail("RAND_bytes");
  serial_bytes[0] &= 0x7f;  // a positive serial
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr);
  if (serial == nullptr ||
      BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) ==
          nullptr) {
    Fail("serial");
  }
  BN_free(serial);
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_set_version(cert.get(), 2) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24L * 3600) == nullptr ||
      X509_set_pubkey(cert.get(), key) != 1 ||
      X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_ASC,
          reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
          0) != 1 ||
      X509_set_issuer_name(cert.get(), issuer != nullptr
                                           ? X509_get_subject_name(issuer)
                                           : name) != 1) {
    Fail("certificate fields");
  }
  return cert;
}

void Sign(X509* cert, EVP_PKEY* issuer_key) {
  if (X509_sign(cert, issuer_key, EVP_sha256()) == 0) Fail("X509_sign");
}

std::string Drain(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    Fail("PEM_write_bio_X509");
  }
  return Drain(bio.get());
}

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    Fail("PEM_write_bio_PrivateKey");
  }
  return Drain(bio.get());
}

// A short random tag, so two PKIs in one run never share a CA name.
std::string RandomTag() {
  unsigned char bytes[6];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) Fail("RAND_bytes");
  std::string tag;
  for (unsigned char b : bytes)
    absl::StrAppend(&tag, absl::Hex(b, absl::kZeroPad2));
  return tag;
}

}  // namespace

std::unique_ptr<TestPki> TestPki::Create() {
  std::unique_ptr<TestPki> pki(new TestPki());
  const std::string tag = RandomTag();

  Key ca_key = NewKey();
  Cert ca = NewCertificate(absl::StrCat("campaign-gateway test CA ", tag),
                           ca_key.get(), nullptr);
  AddExtension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(ca.get(), ca.get(), NID_key_usage,
               "critical,keyCertSign,cRLSign");
  AddExtension(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
  Sign(ca.get(), ca_key.get());

  pki->ca_pem_ = CertPem(ca.get());
  pki->ca_key_ = std::shared_ptr<EVP_PKEY>(ca_key.release(), KeyFree());
  pki->ca_cert_ = std::shared_ptr<X509>(ca.release(), CertFree());
  Issued server = pki->IssueServer();
  pki->server_cert_pem_ = std::move(server.cert_pem);
  pki->server_key_pem_ = std::move(server.key_pem);

  std::string dir_template = TempDir() + "/test-pki-XXXXXX";
  std::vector<char> dir(dir_template.begin(), dir_template.end());
  dir.push_back('\0');
  if (mkdtemp(dir.data()) == nullptr) Fail("mkdtemp");
  pki->dir_ = dir.data();
  pki->ca_file_ = pki->dir_ + "/ca.pem";
  std::ofstream out(pki->ca_file_, std::ios::binary | std::ios::trunc);
  out << pki->ca_pem_;
  out.close();
  if (!out) Fail("writing ca.pem");
  return pki;
}

TestPki::Issued TestPki::IssueServer(
    const std::string& subject_alt_names) const {
  return Issue(subject_alt_names, /*server=*/true);
}

TestPki::Issued TestPki::IssueClient(
    const std::string& subject_alt_names) const {
  return Issue(subject_alt_names, /*server=*/false);
}

TestPki::Issued TestPki::Issue(const std::string& subject_alt_names,
                               bool server) const {
  X509* ca = ca_cert_.get();
  Key key = NewKey();
  Cert cert = NewCertificate(
      absl::StrCat(server ? "server " : "client ", RandomTag()), key.get(), ca);
  AddExtension(cert.get(), ca, NID_basic_constraints, "CA:FALSE");
  AddExtension(cert.get(), ca, NID_key_usage, "critical,digitalSignature");
  AddExtension(cert.get(), ca, NID_ext_key_usage,
               server ? "serverAuth" : "clientAuth");
  // curl checks the name against the SAN only, never the CN.
  AddExtension(cert.get(), ca, NID_subject_alt_name, subject_alt_names.c_str());
  AddExtension(cert.get(), ca, NID_subject_key_identifier, "hash");
  AddExtension(cert.get(), ca, NID_authority_key_identifier, "keyid:always");
  Sign(cert.get(), ca_key_.get());
  return {.cert_pem = CertPem(cert.get()), .key_pem = KeyPem(key.get())};
}

std::string TestPki::WriteFile(const std::string& name,
                               const std::string& content) {
  std::string path = absl::StrCat(dir_, "/", name);
  const std::string staging = absl::StrCat(path, ".tmp");
  std::ofstream out(staging, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out || std::rename(staging.c_str(), path.c_str()) != 0) {
    Fail("writing a PKI file");
  }
  bool known = false;
  for (const std::string& file : files_) known = known || file == path;
  if (!known) files_.push_back(path);
  return path;
}

TestPki::~TestPki() {
  for (const std::string& file : files_) unlink(file.c_str());
  if (!ca_file_.empty()) unlink(ca_file_.c_str());
  if (!dir_.empty()) rmdir(dir_.c_str());
}

}  // namespace campaign_gateway::testing_util
