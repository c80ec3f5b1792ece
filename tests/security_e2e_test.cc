// The campaign-gateway binary started with TLS flags: mTLS, the policy, the
// audit line, the plaintext health port, and its refusals to start on
// half-configured TLS.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/gateway_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_certs.h"

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;
using testing_util::GatewayProcess;
using testing_util::HasErrorInfo;
using testing_util::RunProgram;
using testing_util::TestPki;

constexpr char kGateway[] = GATEWAY_BINARY;
constexpr char kScheduler[] =
    "spiffe://cluster.local/ns/campaigns/sa/scheduler";

constexpr char kPolicy[] = R"({
  "name": "campaign-gateway",
  "allow_rules": [{
    "name": "scheduler",
    "source": {"principals": ["spiffe://cluster.local/ns/campaigns/sa/scheduler"]},
    "request": {"paths": ["/campaigns.v1.CampaignService/*"]}
  }]
})";

class SecurityE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_ = pki_->WriteFile("server.crt", pki_->server_cert_pem());
    key_ = pki_->WriteFile("server.key", pki_->server_key_pem());
    policy_ = pki_->WriteFile("policy.json", kPolicy);
  }

  std::shared_ptr<grpc::Channel> Channel(const GatewayProcess& gateway,
                                         const std::string& san) {
    TestPki::Issued client = pki_->IssueClient(san);
    grpc::SslCredentialsOptions options{.pem_root_certs = pki_->ca_pem(),
                                        .pem_private_key = client.key_pem,
                                        .pem_cert_chain = client.cert_pem};
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return grpc::CreateCustomChannel(gateway.address(),
                                     grpc::SslCredentials(options), args);
  }

  std::unique_ptr<TestPki> pki_ = TestPki::Create();
  std::string cert_, key_, policy_;
};

grpc::Status List(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  campaigns::v1::ListListsResponse response;
  return campaigns::v1::CampaignService::NewStub(channel)->ListLists(
      &context, {}, &response);
}

TEST_F(SecurityE2eTest, ServesMutualTlsWithThePolicyAndAPlaintextHealthPort) {
  // The client CA through the environment, as the Deployment sets it.
  GatewayProcess gateway(
      kGateway,
      {"--sandbox", "--tls_cert_file=" + cert_, "--tls_key_file=" + key_,
       "--authz_policy_file=" + policy_, "--health_listen=127.0.0.1:0",
       "--reflection=false"},
      {{"CAMPAIGN_GATEWAY_TLS_CLIENT_CA_FILE", pki_->ca_file()}});
  ASSERT_TRUE(gateway.Started()) << gateway.process().AllOutput();

  EXPECT_TRUE(List(Channel(gateway, absl::StrCat("URI:", kScheduler))).ok());
  EXPECT_THAT(
      List(Channel(gateway, "URI:spiffe://cluster.local/ns/x/sa/intruder")),
      HasErrorInfo(grpc::StatusCode::PERMISSION_DENIED, "CALLER_NOT_ALLOWED"));
  auto audit = gateway.process().WaitForStdoutLine(
      [](const std::string& l) { return absl::StrContains(l, "\"audit\""); },
      absl::Seconds(5));
  ASSERT_TRUE(audit.has_value());
  nlohmann::json line = nlohmann::json::parse(*audit);
  EXPECT_EQ(line["principal"], "spiffe://cluster.local/ns/x/sa/intruder");
  EXPECT_EQ(line["reason"], "CALLER_NOT_ALLOWED");
  EXPECT_EQ(line["request_sent"], false);

  // Plaintext callers get nothing on the main port...
  EXPECT_EQ(List(grpc::CreateChannel(gateway.address(),
                                     grpc::InsecureChannelCredentials()))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // ...but the kubelet's probe gets health on the health port.
  auto listening = gateway.process().WaitForStdoutLine(
      [](const std::string& l) { return absl::StrContains(l, "listening"); },
      absl::Seconds(1));
  ASSERT_TRUE(listening.has_value());
  const nlohmann::json started = nlohmann::json::parse(*listening);
  EXPECT_EQ(started["tls"], true);
  EXPECT_EQ(started["client_certificates"], true);
  const int health_port = started["health_port"].get<int>();
  ASSERT_GT(health_port, 0);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(grpc::health::v1::Health::NewStub(
                  grpc::CreateChannel(absl::StrCat("127.0.0.1:", health_port),
                                      grpc::InsecureChannelCredentials()))
                  ->Check(&context, {}, &response)
                  .ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(SecurityE2eTest, PlaintextStartsWithAWarning) {
  GatewayProcess gateway(kGateway, {"--sandbox"});
  ASSERT_TRUE(gateway.Started()) << gateway.process().AllOutput();
  auto warning = gateway.process().WaitForStdoutLine(
      [](const std::string& l) {
        return absl::StrContains(l, "\"warning\"") &&
               absl::StrContains(l, "plaintext gRPC");
      },
      absl::Seconds(5));
  EXPECT_TRUE(warning.has_value()) << gateway.process().AllOutput();
}

TEST_F(SecurityE2eTest, RefusesHalfConfiguredTlsNamingOneFlag) {
  const std::string broken = pki_->WriteFile("broken.json", "{\"name\": 1}");
  const std::string other_key =
      pki_->WriteFile("other.key", pki_->IssueServer().key_pem);
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--tls_cert_file=" + cert_}, "--tls_key_file is required"},
      {{"--tls_key_file=" + key_}, "--tls_cert_file is required"},
      {{"--tls_client_ca_file=" + pki_->ca_file()},
       "--tls_client_ca_file needs a server certificate"},
      {{"--tls_cert_file=" + cert_, "--tls_key_file=" + key_,
        "--authz_policy_file=" + policy_},
       "--authz_policy_file needs client certificates"},
      {{"--tls_cert_file=/nonexistent.crt", "--tls_key_file=" + key_},
       "cannot read --tls_cert_file '/nonexistent.crt'"},
      {{"--tls_cert_file=" + cert_, "--tls_key_file=" + other_key},
       "is not the key of the certificate"},
      {{"--tls_cert_file=" + cert_, "--tls_key_file=" + key_,
        "--tls_client_ca_file=" + pki_->ca_file(),
        "--authz_policy_file=" + broken},
       "--authz_policy_file '" + broken +
           "' is not a valid gRPC authorization policy: \"name\" is not a "
           "string"},
      {{"--health_listen=nowhere"}, "--health_listen must be host:port"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {kGateway, "--sandbox",
                                     "--listen=127.0.0.1:0", "--admin_listen="};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    testing_util::RunResult result = RunProgram(argv, {}, absl::Seconds(20));
    EXPECT_EQ(result.exit_code, 2) << c.message;
    EXPECT_THAT(result.stderr_text, HasSubstr(c.message));
    // Never the private key.
    EXPECT_THAT(result.stderr_text + result.stdout_text,
                ::testing::Not(HasSubstr("PRIVATE KEY")));
  }
}

}  // namespace
}  // namespace campaign_gateway
