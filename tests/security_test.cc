// Inbound security end to end in process: the production Server with TLS
// files, a client CA and a policy file written at test time (TestPki), real
// gRPC clients with and without client certificates over loopback, and a
// loopback Connyline that counts what reaches it.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/config.h"
#include "service/server.h"
#include "service/telemetry.h"
#include "tests/support/fake_connyline.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/raw_call.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_env.h"

namespace campaign_gateway {
namespace {

using ::campaign_gateway::testing_util::Decode;
using ::campaign_gateway::testing_util::FakeConnyline;
using ::campaign_gateway::testing_util::HasErrorInfo;
using ::campaign_gateway::testing_util::kHarnessToken;
using ::campaign_gateway::testing_util::TestPki;
using ::campaign_gateway::testing_util::ValidCreate;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kScheduler[] =
    "spiffe://cluster.local/ns/campaigns/sa/scheduler";
constexpr char kReporter[] = "spiffe://cluster.local/ns/campaigns/sa/reporter";
constexpr char kIntruder[] = "spiffe://cluster.local/ns/other/sa/intruder";

// The scheduler and the reporter may call everything; the reporter is the
// one a reload takes away.
std::string PolicyAllowing(std::vector<std::string> principals) {
  nlohmann::json policy = {
      {"name", "test"},
      {"allow_rules",
       {{{"name", "callers"},
         {"source", {{"principals", principals}}},
         {"request", {{"paths", {"/campaigns.v1.CampaignService/*"}}}}}}}};
  return policy.dump();
}

// Lines the process wrote to stdout while the object lived.
class StdoutCapture {
 public:
  StdoutCapture()
      : path_(absl::StrCat(testing_util::TempDir(), "/security_test_",
                           getpid())) {
    std::fflush(stdout);
    saved_ = dup(STDOUT_FILENO);
    EXPECT_NE(std::freopen(path_.c_str(), "w", stdout), nullptr);
  }
  ~StdoutCapture() { Restore(); }
  // The JSON lines whose "msg" is `msg`.
  std::vector<nlohmann::json> Lines(absl::string_view msg) {
    std::fflush(stdout);
    std::ifstream in(path_);
    std::vector<nlohmann::json> lines;
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json json = nlohmann::json::parse(line, nullptr, false);
      if (json.is_object() && json.value("msg", "") == msg) {
        lines.push_back(json);
      }
    }
    return lines;
  }
  std::string Text() {
    std::fflush(stdout);
    std::ifstream in(path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  void Restore() {
    if (saved_ < 0) return;
    std::fflush(stdout);
    dup2(saved_, STDOUT_FILENO);
    close(saved_);
    saved_ = -1;
    std::remove(path_.c_str());
  }

 private:
  std::string path_;
  int saved_ = -1;
};

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_file_ = pki_->WriteFile("server.crt", pki_->server_cert_pem());
    key_file_ = pki_->WriteFile("server.key", pki_->server_key_pem());
    ca_file_ = pki_->WriteFile("client-ca.crt", pki_->ca_pem());
    policy_file_ =
        pki_->WriteFile("policy.json", PolicyAllowing({kScheduler, kReporter}));
  }

  Config SecureConfig() {
    Config config;
    config.listen = "127.0.0.1:0";
    config.admin_listen = "";
    config.health_listen = "127.0.0.1:0";
    config.upstream_url = connyline_.BaseUrl();
    config.account_code = "acme";
    config.token = kHarnessToken;
    config.tls_cert_file = cert_file_;
    config.tls_key_file = key_file_;
    config.tls_client_ca_file = ca_file_;
    config.authz_policy_file = policy_file_;
    config.reflection = false;
    return config;
  }

  void StartServer(const Config& config) {
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Start(config, {.log_rpcs = false});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // A fresh connection (no subchannel shared with earlier channels),
  // presenting the client certificate of `san` unless it is empty.
  std::shared_ptr<grpc::Channel> Channel(const std::string& san) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pki_->ca_pem();
    if (!san.empty()) {
      TestPki::Issued client = pki_->IssueClient(san);
      options.pem_cert_chain = client.cert_pem;
      options.pem_private_key = client.key_pem;
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()),
        grpc::SslCredentials(options), args);
  }

  static grpc::Status Create(
      const std::shared_ptr<grpc::Channel>& channel,
      const campaigns::v1::CreateSmsCampaignRequest& request,
      grpc::ClientContext* context = nullptr) {
    grpc::ClientContext own;
    if (context == nullptr) context = &own;
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    campaigns::v1::CreateSmsCampaignResponse response;
    return campaigns::v1::CampaignService::NewStub(channel)->CreateSmsCampaign(
        context, request, &response);
  }

  static grpc::Status List(const std::shared_ptr<grpc::Channel>& channel) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    campaigns::v1::ListListsRequest request;
    campaigns::v1::ListListsResponse response;
    return campaigns::v1::CampaignService::NewStub(channel)->ListLists(
        &context, request, &response);
  }

  FakeConnyline connyline_;
  std::unique_ptr<TestPki> pki_ = TestPki::Create();
  std::string cert_file_, key_file_, ca_file_, policy_file_;
  std::unique_ptr<Server> server_;
};

TEST_F(SecurityTest, AllowedCallerCreatesAndIsAudited) {
  StdoutCapture capture;
  StartServer(SecureConfig());
  const grpc::Status status =
      Create(Channel(absl::StrCat("URI:", kScheduler)), ValidCreate("key-1"));
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(connyline_.RequestCount(), 1);

  std::vector<nlohmann::json> audit = capture.Lines("audit");
  ASSERT_EQ(audit.size(), 1u) << capture.Text();
  const campaigns::v1::CreateSmsCampaignRequest sent = ValidCreate("key-1");
  EXPECT_EQ(audit[0]["principal"], kScheduler);
  EXPECT_EQ(audit[0]["method"], "CreateSmsCampaign");
  EXPECT_EQ(audit[0]["code"], "OK");
  EXPECT_EQ(audit[0]["request_sent"], true);
  EXPECT_EQ(audit[0]["idempotency_key"], "key-1");
  EXPECT_EQ(audit[0]["campaign_name"], sent.campaign_name());
  EXPECT_EQ(audit[0]["list_id"], sent.list_id());
  EXPECT_EQ(audit[0]["sender"], sent.sender());
  EXPECT_FALSE(audit[0]["start"].get<std::string>().empty());
  EXPECT_TRUE(audit[0].contains("request_id"));
  // Never the SMS text or the token.
  EXPECT_THAT(capture.Text(), Not(HasSubstr(sent.sms_text())));
  EXPECT_THAT(capture.Text(), Not(HasSubstr(kHarnessToken)));
}

// The authorization comes before the request's own parse: a refused caller
// learns nothing from sending bytes that are no request; an allowed one
// gets INVALID_REQUEST.
TEST_F(SecurityTest, UnparseableBytesFromADeniedCallerArePermissionDenied) {
  StartServer(SecureConfig());
  const auto raw_create = [](const std::shared_ptr<grpc::Channel>& channel) {
    return testing_util::RawUnaryCall(
        channel, "/campaigns.v1.CampaignService/CreateSmsCampaign",
        std::string("\x08\xff", 2));  // a cut varint
  };
  EXPECT_THAT(
      raw_create(Channel(absl::StrCat("URI:", kIntruder))),
      HasErrorInfo(grpc::StatusCode::PERMISSION_DENIED, "CALLER_NOT_ALLOWED"));
  EXPECT_THAT(
      raw_create(Channel(absl::StrCat("URI:", kScheduler))),
      HasErrorInfo(grpc::StatusCode::INVALID_ARGUMENT, "INVALID_REQUEST"));
  EXPECT_EQ(connyline_.RequestCount(), 0);
}

TEST_F(SecurityTest, DeniedCallerGetsPermissionDeniedAndNothingIsSent) {
  StdoutCapture capture;
  StartServer(SecureConfig());
  auto intruder = Channel(absl::StrCat("URI:", kIntruder, ",DNS:intruder.x"));
  const grpc::Status status = Create(intruder, ValidCreate("key-1"));
  EXPECT_THAT(status, HasErrorInfo(grpc::StatusCode::PERMISSION_DENIED,
                                   "CALLER_NOT_ALLOWED"));
  EXPECT_EQ(Decode(status).Meta("request_sent"), "false");
  // The message never reveals the policy.
  EXPECT_THAT(status.error_message(), Not(HasSubstr("scheduler")));
  EXPECT_THAT(status.error_message(), Not(HasSubstr("callers")));
  EXPECT_THAT(List(intruder), HasErrorInfo(grpc::StatusCode::PERMISSION_DENIED,
                                           "CALLER_NOT_ALLOWED"));
  EXPECT_EQ(connyline_.RequestCount(), 0);

  const std::string metrics = server_->telemetry().Render();
  EXPECT_THAT(metrics, HasSubstr("campaign_gateway_authz_denials_total{method="
                                 "\"CreateSmsCampaign\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("campaign_gateway_authz_denials_total{method="
                                 "\"ListLists\"} 1"));
  std::vector<nlohmann::json> audit = capture.Lines("audit");
  ASSERT_EQ(audit.size(), 2u) << capture.Text();
  EXPECT_EQ(audit[0]["principal"], kIntruder);
  EXPECT_EQ(audit[0]["method"], "CreateSmsCampaign");
  EXPECT_EQ(audit[0]["code"], "PERMISSION_DENIED");
  EXPECT_EQ(audit[0]["reason"], "CALLER_NOT_ALLOWED");
  EXPECT_EQ(audit[0]["request_sent"], false);
  EXPECT_EQ(audit[1]["method"], "ListLists");
}

TEST_F(SecurityTest, WithoutAClientCertificateTheHandshakeFails) {
  StartServer(SecureConfig());
  EXPECT_EQ(Create(Channel(""), ValidCreate()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // Plaintext to the TLS port fails too.
  auto plaintext =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                          grpc::InsecureChannelCredentials());
  EXPECT_EQ(Create(plaintext, ValidCreate()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // A certificate from another CA is refused as well.
  std::unique_ptr<TestPki> other = TestPki::Create();
  TestPki::Issued foreign =
      other->IssueClient(absl::StrCat("URI:", kScheduler));
  grpc::SslCredentialsOptions options{.pem_root_certs = pki_->ca_pem(),
                                      .pem_private_key = foreign.key_pem,
                                      .pem_cert_chain = foreign.cert_pem};
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto forged =
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                grpc::SslCredentials(options), args);
  EXPECT_EQ(Create(forged, ValidCreate()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // Nothing reached a handler.
  EXPECT_EQ(connyline_.RequestCount(), 0);
  EXPECT_THAT(server_->telemetry().Render(),
              Not(HasSubstr("code=\"UNAVAILABLE\"")));
  EXPECT_THAT(server_->telemetry().Render(),
              HasSubstr("campaign_gateway_rpcs_total{code=\"OK\",method="
                        "\"CreateSmsCampaign\"} 0"));
}

TEST_F(SecurityTest, PolicyReloadsWhileServing) {
  StdoutCapture capture;
  StartServer(SecureConfig());
  auto reporter =
      Channel(absl::StrCat("DNS:reporter.campaigns,URI:", kReporter));
  ASSERT_TRUE(List(reporter).ok());

  // A broken file keeps the last good policy (and says so).
  pki_->WriteFile("policy.json", "{\"name\": \"broken\", \"allow_rules\": [");
  absl::Time until = absl::Now() + absl::Seconds(10);
  while (capture
             .Lines("authorization policy not reloaded: the new file is "
                    "broken; the last good policy stays in force")
             .empty() &&
         absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(List(reporter).ok());

  // The Kubernetes way: a new directory, then the `..data` symlink swapped.
  // Here the policy file itself is replaced through a rename.
  pki_->WriteFile("policy.json", PolicyAllowing({kScheduler}));
  until = absl::Now() + absl::Seconds(10);
  grpc::Status status = List(reporter);
  while (status.ok() && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(100));
    status = List(reporter);
  }
  EXPECT_THAT(status, HasErrorInfo(grpc::StatusCode::PERMISSION_DENIED,
                                   "CALLER_NOT_ALLOWED"));
  EXPECT_TRUE(List(Channel(absl::StrCat("URI:", kScheduler))).ok());
}

TEST_F(SecurityTest, ConfigMapSymlinkSwapReloadsThePolicy) {
  // Kubernetes mounts policy.json -> ..data/policy.json, ..data -> ..v1; an
  // update writes ..v2 and renames a new ..data link over the old one.
  const std::string dir = pki_->dir();
  ASSERT_EQ(mkdir((dir + "/..v1").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((dir + "/..v2").c_str(), 0700), 0);
  {
    std::ofstream(dir + "/..v1/policy.json") << PolicyAllowing({kReporter});
    std::ofstream(dir + "/..v2/policy.json") << PolicyAllowing({kScheduler});
  }
  ASSERT_EQ(symlink("..v1", (dir + "/..data").c_str()), 0);
  ASSERT_EQ(symlink("..data/policy.json", (dir + "/mounted.json").c_str()), 0);
  Config config = SecureConfig();
  config.authz_policy_file = dir + "/mounted.json";
  StartServer(config);
  auto reporter = Channel(absl::StrCat("URI:", kReporter));
  ASSERT_TRUE(List(reporter).ok());

  ASSERT_EQ(symlink("..v2", (dir + "/..data_tmp").c_str()), 0);
  ASSERT_EQ(rename((dir + "/..data_tmp").c_str(), (dir + "/..data").c_str()),
            0);
  const absl::Time until = absl::Now() + absl::Seconds(10);
  grpc::Status status = List(reporter);
  while (status.ok() && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(100));
    status = List(reporter);
  }
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  server_.reset();
  for (const char* file :
       {"/mounted.json", "/..data", "/..v1/policy.json", "/..v2/policy.json"}) {
    unlink((dir + file).c_str());
  }
  rmdir((dir + "/..v1").c_str());
  rmdir((dir + "/..v2").c_str());
}

// The server certificate a new connection is shown.
std::string ServedCertificate(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  campaigns::v1::ListListsRequest request;
  campaigns::v1::ListListsResponse response;
  const grpc::Status status =
      campaigns::v1::CampaignService::NewStub(channel)->ListLists(
          &context, request, &response);
  if (!status.ok()) return "";
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  std::vector<grpc::string_ref> pem =
      auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  return pem.empty() ? "" : std::string(pem[0].data(), pem[0].size());
}

TEST_F(SecurityTest, RotatedServerCertificateIsServedWithoutRestart) {
  StartServer(SecureConfig());
  const std::string scheduler = absl::StrCat("URI:", kScheduler);
  ASSERT_EQ(ServedCertificate(Channel(scheduler)), pki_->server_cert_pem());
  auto existing = Channel(scheduler);
  ASSERT_TRUE(List(existing).ok());

  TestPki::Issued next = pki_->IssueServer();
  pki_->WriteFile("server.key", next.key_pem);
  pki_->WriteFile("server.crt", next.cert_pem);
  const absl::Time until = absl::Now() + absl::Seconds(15);
  std::string served;
  while (served != next.cert_pem && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(200));
    served = ServedCertificate(Channel(scheduler));
  }
  EXPECT_EQ(served, next.cert_pem);
  // Connections made before keep working.
  EXPECT_TRUE(List(existing).ok());
}

TEST_F(SecurityTest, IdempotencyKeysAreScopedByCaller) {
  StartServer(SecureConfig());
  auto scheduler = Channel(absl::StrCat("URI:", kScheduler));
  auto reporter = Channel(absl::StrCat("URI:", kReporter));
  ASSERT_TRUE(Create(scheduler, ValidCreate("shared-key")).ok());
  // Another caller's same request_id is its own key: sent, not replayed.
  grpc::ClientContext context;
  ASSERT_TRUE(Create(reporter, ValidCreate("shared-key"), &context).ok());
  EXPECT_EQ(connyline_.RequestCount(), 2);
  EXPECT_EQ(context.GetServerTrailingMetadata().count("idempotent-replayed") +
                context.GetServerInitialMetadata().count("idempotent-replayed"),
            0u);
  // The same caller's repeat is answered from the store.
  grpc::ClientContext repeat;
  ASSERT_TRUE(Create(scheduler, ValidCreate("shared-key"), &repeat).ok());
  EXPECT_EQ(connyline_.RequestCount(), 2);
  EXPECT_EQ(repeat.GetServerTrailingMetadata().count("idempotent-replayed") +
                repeat.GetServerInitialMetadata().count("idempotent-replayed"),
            1u);
}

TEST_F(SecurityTest, HealthIsOnThePlaintextPortAndReflectionIsOff) {
  StartServer(SecureConfig());
  ASSERT_GT(server_->health_port(), 0);
  auto plaintext =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->health_port()),
                          grpc::InsecureChannelCredentials());
  for (const char* service : {"", "campaigns.v1.CampaignService"}) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status =
        grpc::health::v1::Health::NewStub(plaintext)->Check(&context, request,
                                                            &response);
    ASSERT_TRUE(status.ok()) << service << ": " << status.error_message();
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }
  // The health port serves nothing else.
  EXPECT_EQ(Create(plaintext, ValidCreate()).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  server_->Drain();
  {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(grpc::health::v1::Health::NewStub(plaintext)
                    ->Check(&context, request, &response)
                    .ok());
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  }

  // --reflection=false: not on the TLS port, even for an allowed caller.
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(
      Channel(absl::StrCat("URI:", kScheduler)));
  auto stream = reflection->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  stream->Write(request);
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace campaign_gateway
