// End-to-end: the real campaign-gateway and campaignctl binaries, started as
// processes and called over real sockets.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/curl_transport.h"
#include "tests/support/fake_connyline.h"
#include "tests/support/gateway_process.h"
#include "tests/support/grpc_callback_queue.h"
#include "tests/support/raw_call.h"
#include "tests/support/secret_volume.h"
#include "tests/support/status_matchers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_env.h"

namespace campaign_gateway {
namespace {

// See tests/support/grpc_callback_queue.h.
const ::testing::Environment* const kKeepGrpcCallbackQueue =
    ::testing::AddGlobalTestEnvironment(
        testing_util::NewKeepGrpcCallbackQueue());

using ::campaigns::v1::CampaignService;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using testing_util::FakeConnyline;
using testing_util::GatewayProcess;
using testing_util::HasErrorInfo;
using testing_util::RecordedRequest;
using testing_util::Reply;
using testing_util::RunProgram;
using testing_util::RunResult;
using testing_util::Subprocess;
using testing_util::TempDir;
using testing_util::ValidCreate;

constexpr char kGateway[] = GATEWAY_BINARY;
constexpr char kCampaignctl[] = CAMPAIGNCTL_BINARY;
// A made-up token of the documented length; not a real credential.
constexpr char kFakeToken[] =
    "testtokenAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

std::string WriteFile(const std::string& name, const std::string& content) {
  std::string path = absl::StrCat(TempDir(), "/", name, "-", getpid(), "-",
                                  absl::ToUnixNanos(absl::Now()));
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::unique_ptr<grpc::ClientContext> ContextWithDeadline() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  return context;
}

google::rpc::Status Details(const grpc::Status& status) {
  google::rpc::Status details;
  EXPECT_TRUE(details.ParseFromString(status.error_details()));
  return details;
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gateway_ = std::make_unique<GatewayProcess>(
        kGateway, std::vector<std::string>{"--sandbox"});
    ASSERT_TRUE(gateway_->Started()) << gateway_->process().AllOutput();
    channel_ = grpc::CreateChannel(gateway_->address(),
                                   grpc::InsecureChannelCredentials());
    stub_ = CampaignService::NewStub(channel_);
  }

  std::unique_ptr<GatewayProcess> gateway_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<CampaignService::Stub> stub_;
};

TEST_F(SandboxTest, SaysAtStartupThatNoSmsIsSent) {
  auto line = gateway_->process().WaitForStdoutLine(
      [](const std::string& l) { return absl::StrContains(l, "no SMS"); },
      absl::Seconds(5));
  ASSERT_TRUE(line.has_value());
  EXPECT_THAT(*line, HasSubstr("no SMS is ever sent"));
}

TEST_F(SandboxTest, ListsTheSampleLists) {
  campaigns::v1::ListListsResponse response;
  grpc::Status status =
      stub_->ListLists(ContextWithDeadline().get(), {}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(response.lists_size(), 1);
  EXPECT_EQ(response.lists(0).list_id(), 123);
  EXPECT_EQ(response.lists(0).name(), "2026 Clients");
}

TEST_F(SandboxTest, CreatesACampaignLikeConnyline) {
  campaigns::v1::CreateSmsCampaignResponse response;
  grpc::Status status = stub_->CreateSmsCampaign(ContextWithDeadline().get(),
                                                 ValidCreate(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.message(), "SMS Campaign created successfully.");
  EXPECT_EQ(response.campaign().campaign_name(), "Spring promo");
  EXPECT_EQ(response.campaign().sender(), "MYSHOP");
  EXPECT_EQ(response.campaign().list_id(), 123);
  const std::string start = ValidCreate().start();
  EXPECT_EQ(response.campaign().start(), start + ":00");
  // UTC is the default zone.
  absl::Time instant;
  ASSERT_TRUE(absl::ParseTime("%Y-%m-%d %H:%M", start, &instant, nullptr));
  EXPECT_EQ(response.campaign().start_time().seconds(),
            absl::ToUnixSeconds(instant));
  EXPECT_GT(response.campaign().create_time().seconds(), 1700000000);
}

TEST_F(SandboxTest, RejectsABadRequestWithFieldDetails) {
  auto request = ValidCreate();
  request.set_sender("NOT A VALID SENDER");
  request.set_list_id(0);
  campaigns::v1::CreateSmsCampaignResponse response;
  grpc::Status status =
      stub_->CreateSmsCampaign(ContextWithDeadline().get(), request, &response);
  ASSERT_THAT(status, HasErrorInfo(grpc::StatusCode::INVALID_ARGUMENT,
                                   "INVALID_REQUEST"));
  // The ErrorInfo first, then the field violations.
  const google::rpc::Status details = Details(status);
  ASSERT_GE(details.details_size(), 2);
  EXPECT_TRUE(details.details(0).Is<google::rpc::ErrorInfo>());
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(1).UnpackTo(&bad_request));
  std::vector<std::string> fields;
  for (const auto& v : bad_request.field_violations()) {
    fields.push_back(v.field());
  }
  EXPECT_THAT(fields, UnorderedElementsAre("sender", "list_id"));
}

TEST_F(SandboxTest, AnUnknownListIsNotFound) {
  auto request = ValidCreate();
  request.set_list_id(999999);
  campaigns::v1::CreateSmsCampaignResponse response;
  grpc::Status status =
      stub_->CreateSmsCampaign(ContextWithDeadline().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SandboxTest, AnotherAccountIsPermissionDenied) {
  campaigns::v1::ListListsRequest request;
  request.set_account_code("someone-else");
  campaigns::v1::ListListsResponse response;
  grpc::Status status =
      stub_->ListLists(ContextWithDeadline().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(SandboxTest, AnswersHealthChecks) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const std::string service : {"", "campaigns.v1.CampaignService"}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status =
        health->Check(ContextWithDeadline().get(), request, &response);
    ASSERT_TRUE(status.ok()) << service << ": " << status.error_message();
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING)
        << service;
  }
  grpc::health::v1::HealthCheckRequest unknown;
  unknown.set_service("no.such.Service");
  grpc::health::v1::HealthCheckResponse response;
  EXPECT_EQ(health->Check(ContextWithDeadline().get(), unknown, &response)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// SO_REUSEPORT is off: a second gateway on the same port would otherwise
// start and silently take a share of the connections.
TEST_F(SandboxTest, ASecondGatewayOnTheSamePortRefusesToStart) {
  const std::string listen = absl::StrCat("127.0.0.1:", gateway_->port());
  RunResult second =
      RunProgram({kGateway, "--sandbox", absl::StrCat("--listen=", listen),
                  "--admin_listen=127.0.0.1:0"},
                 {}, absl::Seconds(20));
  EXPECT_EQ(second.exit_code, 2) << second.stdout_text << second.stderr_text;
  EXPECT_THAT(second.stderr_text,
              HasSubstr(absl::StrCat("cannot listen on --listen '", listen,
                                     "' (port in use")));
  // The first one still serves.
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  EXPECT_TRUE(grpc::health::v1::Health::NewStub(channel_)
                  ->Check(ContextWithDeadline().get(), request, &response)
                  .ok());
}

TEST_F(SandboxTest, ServesReflection) {
  auto reflection =
      grpc::reflection::v1alpha::ServerReflection::NewStub(channel_);
  auto context = ContextWithDeadline();
  auto stream = reflection->ServerReflectionInfo(context.get());
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> services;
  for (const auto& s : response.list_services_response().service()) {
    services.push_back(s.name());
  }
  EXPECT_THAT(services, IsSupersetOf({"campaigns.v1.CampaignService",
                                      "grpc.health.v1.Health"}));
  request.set_file_containing_symbol("campaigns.v1.CampaignService");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_GT(response.file_descriptor_response().file_descriptor_proto_size(),
            0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(SandboxTest, CampaignctlPrintsResultsAndErrors) {
  const std::string addr = absl::StrCat("--addr=", gateway_->address());
  RunResult health = RunProgram({kCampaignctl, addr, "health"});
  EXPECT_EQ(health.exit_code, 0) << health.stderr_text;
  EXPECT_THAT(health.stdout_text, HasSubstr("SERVING"));

  RunResult lists = RunProgram({kCampaignctl, addr, "lists"});
  EXPECT_EQ(lists.exit_code, 0) << lists.stderr_text;
  EXPECT_THAT(lists.stdout_text, HasSubstr("123"));
  EXPECT_THAT(lists.stdout_text, HasSubstr("2026 Clients"));

  RunResult created =
      RunProgram({kCampaignctl, addr, "create", "--campaign_name=Promo",
                  "--sender=MYSHOP", "--list_id=123", "--sms_text=Γεια σου! 🎉",
                  "--start=" + testing_util::FutureStart()});
  EXPECT_EQ(created.exit_code, 0) << created.stderr_text;
  EXPECT_THAT(created.stdout_text,
              HasSubstr("SMS Campaign created successfully."));
  EXPECT_THAT(created.stdout_text,
              HasSubstr(testing_util::FutureStart() + ":00"));
  // "Γεια σου! 🎉": UCS-2, 10 code units and 2 for the emoji.
  EXPECT_THAT(created.stdout_text,
              HasSubstr("preview:       SMS_ENCODING_UCS_2, 12 units, 1 "
                        "segment(s) per recipient"));

  RunResult bad =
      RunProgram({kCampaignctl, addr, "create", "--campaign_name=Promo",
                  "--sender=MY SHOP", "--list_id=123", "--sms_text=Hi",
                  "--start=2026-02-30 10:30"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.stderr_text, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(bad.stderr_text, HasSubstr("INVALID_REQUEST"));
  EXPECT_THAT(bad.stderr_text, HasSubstr("bad field sender"));
  EXPECT_THAT(bad.stderr_text, HasSubstr("bad field start"));

  RunResult usage = RunProgram({kCampaignctl, addr, "frobnicate"});
  EXPECT_EQ(usage.exit_code, 2);
}

// Bytes that are no valid request, over a raw generic call: the service
// parses each request itself (raw callback methods) and answers
// INVALID_ARGUMENT; libprotobuf's complaint lands in the JSON log (once a
// minute), not raw on stderr.
TEST_F(SandboxTest, AnUnparseableRequestIsInvalidArgumentAndLeavesNoRawLine) {
  const auto raw_call = [&](const std::string& method,
                            const std::string& bytes) {
    return testing_util::RawUnaryCall(
        channel_, absl::StrCat("/campaigns.v1.CampaignService/", method),
        bytes);
  };
  // campaign_name: FF FE (invalid UTF-8).
  const grpc::Status create =
      raw_call("CreateSmsCampaign", std::string("\x0a\x02\xff\xfe", 4));
  EXPECT_THAT(create, HasErrorInfo(grpc::StatusCode::INVALID_ARGUMENT,
                                   "INVALID_REQUEST"));
  EXPECT_EQ(testing_util::Decode(create).Meta("request_sent"), "false");
  EXPECT_THAT(create.error_message(),
              HasSubstr("not a valid campaigns.v1.CreateSmsCampaignRequest"));
  // Field 1 as a varint cut short.
  const grpc::Status lists = raw_call("ListLists", std::string("\x08\xff", 2));
  EXPECT_THAT(lists, HasErrorInfo(grpc::StatusCode::INVALID_ARGUMENT,
                                  "INVALID_REQUEST"));
  EXPECT_EQ(testing_util::Decode(lists).Meta("request_sent"), "false");
  EXPECT_THAT(lists.error_message(),
              HasSubstr("not a valid campaigns.v1.ListListsRequest"));
  auto logged = gateway_->process().WaitForStdoutLine(
      [](const std::string& l) {
        return absl::StrContains(l, "\"source\":\"protobuf\"");
      },
      absl::Seconds(5));
  ASSERT_TRUE(logged.has_value()) << gateway_->process().AllOutput();
  EXPECT_THAT(*logged, HasSubstr("invalid UTF-8"));
  EXPECT_THAT(gateway_->process().Stderr(), Not(HasSubstr("libprotobuf")));
  // And the gateway still serves, also a raw call of valid bytes.
  campaigns::v1::ListListsResponse lists_response;
  EXPECT_TRUE(
      stub_->ListLists(ContextWithDeadline().get(), {}, &lists_response).ok());
  EXPECT_TRUE(raw_call("ListLists", "").ok());
}

TEST_F(SandboxTest, ExitsZeroOnSigterm) {
  gateway_->process().Signal(SIGTERM);
  std::optional<int> code = gateway_->process().Wait(absl::Seconds(30));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << gateway_->process().AllOutput();
}

// The gateway refuses to start, with one clear line, on bad configuration.
struct RefusalCase {
  std::string name;
  std::vector<std::string> flags;
  std::map<std::string, std::string> env;
  std::string expected_message;
};

void PrintTo(const RefusalCase& c, std::ostream* os) { *os << c.name; }

class StartupRefusalTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(StartupRefusalTest, RefusesToStart) {
  const RefusalCase& c = GetParam();
  std::vector<std::string> argv = {kGateway};
  argv.insert(argv.end(), c.flags.begin(), c.flags.end());
  std::map<std::string, std::string> env = c.env;
  env.emplace("CONNYLINE_TOKEN", "");  // unset unless the case sets it
  RunResult result = RunProgram(argv, env, absl::Seconds(20));
  EXPECT_EQ(result.exit_code, 2) << result.stdout_text << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr(c.expected_message));
  // At most one flag is named (none when the culprit is CONNYLINE_TOKEN).
  size_t flags_named = 0;
  for (size_t at = result.stderr_text.find("--"); at != std::string::npos;
       at = result.stderr_text.find("--", at + 2)) {
    ++flags_named;
  }
  EXPECT_LE(flags_named, 1u) << result.stderr_text;
  // One line, and never the token.
  EXPECT_EQ(
      std::count(result.stderr_text.begin(), result.stderr_text.end(), '\n'), 1)
      << result.stderr_text;
  EXPECT_THAT(result.stderr_text + result.stdout_text,
              Not(HasSubstr("SECRETSECRET")));
}

INSTANTIATE_TEST_SUITE_P(
    Config, StartupRefusalTest,
    ::testing::Values(
        RefusalCase{
            "NoToken",
            {"--listen=127.0.0.1:0", "--upstream_url=https://127.0.0.1:9",
             "--account_code=acme"},
            {},
            "no API token"},
        RefusalCase{
            "TokenWithSpace",
            {"--listen=127.0.0.1:0", "--upstream_url=https://127.0.0.1:9",
             "--account_code=acme"},
            {{"CONNYLINE_TOKEN", "SECRETSECRET with-space"}},
            "whitespace or control characters"},
        RefusalCase{
            "TokenWithControlCharacter",
            {"--listen=127.0.0.1:0", "--upstream_url=https://127.0.0.1:9",
             "--account_code=acme"},
            {{"CONNYLINE_TOKEN", "SECRETSECRET\x01"}},
            "whitespace or control characters"},
        RefusalCase{
            "MissingTokenFile",
            {"--listen=127.0.0.1:0", "--upstream_url=https://127.0.0.1:9",
             "--account_code=acme", "--token_file=/nonexistent/token"},
            {},
            "--token_file '/nonexistent/token'"},
        RefusalCase{"UnknownTimeZone",
                    {"--listen=127.0.0.1:0", "--time_zone=Mars/Olympus_Mons"},
                    {},
                    "unknown --time_zone 'Mars/Olympus_Mons'"},
        RefusalCase{"UnknownTimeZoneFromEnvironment",
                    {"--listen=127.0.0.1:0"},
                    {{"CAMPAIGN_GATEWAY_TIME_ZONE", "Mars/Olympus_Mons"}},
                    "unknown --time_zone 'Mars/Olympus_Mons'"},
        RefusalCase{"MalformedListen",
                    {"--listen=localhost"},
                    {},
                    "--listen must be host:port"},
        RefusalCase{"UnusableListen",
                    {"--listen=192.0.2.1:50051", "--sandbox"},
                    {},
                    "cannot listen on --listen '192.0.2.1:50051'"},
        RefusalCase{"BadUpstreamUrl",
                    {"--listen=127.0.0.1:0", "--upstream_url=ftp://x",
                     "--account_code=acme"},
                    {{"CONNYLINE_TOKEN", kFakeToken}},
                    "--upstream_url must start with https:// or http://"},
        RefusalCase{
            "NoAccountCode",
            {"--listen=127.0.0.1:0", "--upstream_url=https://127.0.0.1:9"},
            {{"CONNYLINE_TOKEN", kFakeToken}},
            "--account_code is required"},
        RefusalCase{"SandboxNotAskedFor",
                    {"--listen=127.0.0.1:0"},
                    {},
                    "--upstream_url is required"},
        RefusalCase{"TokenFileWithoutUpstream",
                    {"--listen=127.0.0.1:0", "--token_file=/nonexistent/t"},
                    {},
                    "--token_file is set but no upstream URL is"},
        RefusalCase{"AccountCodeWithoutUpstream",
                    {"--listen=127.0.0.1:0"},
                    {{"CAMPAIGN_GATEWAY_ACCOUNT_CODE", "acme"}},
                    "--account_code is set but no upstream URL is"},
        RefusalCase{"MisspeltVariable",
                    {"--listen=127.0.0.1:0", "--token_file=/nonexistent/t"},
                    {{"CAMPAIGN_GATEWAY_UPSTREM_URL", "https://127.0.0.1:9"}},
                    "unknown environment variable "
                    "CAMPAIGN_GATEWAY_UPSTREM_URL: no flag has that name; did "
                    "you mean --upstream_url (CAMPAIGN_GATEWAY_UPSTREAM_URL)?"},
        RefusalCase{
            "PlainHttpUpstream",
            {"--listen=127.0.0.1:0", "--upstream_url=http://127.0.0.1:9",
             "--account_code=acme"},
            {{"CONNYLINE_TOKEN", kFakeToken}},
            "--upstream_url is plain http://"},
        RefusalCase{
            "SandboxAndUpstream",
            {"--listen=127.0.0.1:0", "--sandbox",
             "--upstream_url=https://127.0.0.1:9", "--account_code=acme"},
            {{"CONNYLINE_TOKEN", kFakeToken}},
            "--sandbox contradicts the upstream URL"}),
    [](const ::testing::TestParamInfo<RefusalCase>& info) {
      return info.param.name;
    });

TEST(ConfigurationTest, FlagWinsOverEnvironment) {
  GatewayProcess gateway(kGateway, {"--sandbox", "--time_zone=Europe/Athens"},
                         {{"CAMPAIGN_GATEWAY_TIME_ZONE", "Mars/Olympus_Mons"}});
  ASSERT_TRUE(gateway.Started()) << gateway.process().AllOutput();
  auto line = gateway.process().WaitForStdoutLine(
      [](const std::string& l) { return absl::StrContains(l, "listening"); },
      absl::Seconds(1));
  ASSERT_TRUE(line.has_value());
  EXPECT_THAT(*line, HasSubstr("Europe/Athens"));
}

TEST(ConfigurationTest, TokenFileWithTrailingNewlineIsAccepted) {
  const std::string path = WriteFile("token", absl::StrCat(kFakeToken, "\n"));
  GatewayProcess gateway(
      kGateway, {"--upstream_url=http://127.0.0.1:9", "--account_code=acme",
                 "--token_file=" + path});
  ASSERT_TRUE(gateway.Started()) << gateway.process().AllOutput();
  EXPECT_THAT(gateway.process().AllOutput(), Not(HasSubstr(kFakeToken)));
  // No warning about the token (plaintext gRPC has its own warning).
  for (absl::string_view line :
       absl::StrSplit(gateway.process().AllOutput(), '\n')) {
    if (absl::StrContains(line, "\"warning\"")) {
      EXPECT_THAT(line, Not(HasSubstr("token"))) << line;
    }
  }
}

TEST(ConfigurationTest, ShortTokenOnlyWarnsAndIsNeverPrinted) {
  GatewayProcess gateway(
      kGateway, {"--upstream_url=http://127.0.0.1:9", "--account_code=acme"},
      {{"CONNYLINE_TOKEN", "SECRETSECRETshort"}});
  ASSERT_TRUE(gateway.Started()) << gateway.process().AllOutput();
  auto warning = gateway.process().WaitForStdoutLine(
      [](const std::string& l) { return absl::StrContains(l, "warning"); },
      absl::Seconds(5));
  ASSERT_TRUE(warning.has_value());
  EXPECT_THAT(*warning, HasSubstr("has 17 characters"));
  EXPECT_THAT(gateway.process().AllOutput(), Not(HasSubstr("SECRETSECRET")));
}

// GET http://127.0.0.1:port/path with the project's own transport.
HttpResponse HttpGet(int port, const std::string& path) {
  CurlTransport transport(CurlTransportOptions{.shards = 1});
  absl::Notification done;
  HttpResponse response;
  transport.Start(
      {"GET", absl::StrCat("http://127.0.0.1:", port, path), {}, ""},
      absl::Now() + absl::Seconds(10), [&](HttpResult result) {
        if (auto* r = std::get_if<HttpResponse>(&result)) {
          response = std::move(*r);
        }
        done.Notify();
      });
  done.WaitForNotification();
  return response;
}

// A client of the admin port that connects and sends `partial` (maybe
// nothing), then waits.
int SlowClient(int port, const std::string& partial) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  if (!partial.empty()) {
    EXPECT_EQ(send(fd, partial.data(), partial.size(), 0),
              static_cast<ssize_t>(partial.size()));
  }
  return fd;
}

// Whether the server closes `fd` within `timeout` (after answering, maybe:
// civetweb answers a request cut short with an error).
bool ClosedByServer(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    const int left =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (poll(&p, 1, std::max(left, 1)) != 1) return false;
    char buffer[4096];
    if (recv(fd, buffer, sizeof(buffer), 0) <= 0) return true;
  }
  return false;
}

// Slow clients hold an admin worker thread each until their request arrives
// or --admin_request_timeout ends it: scrapes still go through at once.
TEST(AdminTest, SlowClientsDoNotBlockAScrape) {
  GatewayProcess gateway(kGateway, {"--sandbox", "--admin_request_timeout=1s"});
  ASSERT_TRUE(gateway.Started()) << gateway.process().AllOutput();
  const int silent = SlowClient(gateway.admin_port(), "");
  const int partial =
      SlowClient(gateway.admin_port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n");
  absl::SleepFor(absl::Milliseconds(200));  // both hold a worker now
  const absl::Time started = absl::Now();
  HttpResponse metrics = HttpGet(gateway.admin_port(), "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body, HasSubstr("campaign_gateway_build_info"));
  EXPECT_LT(absl::Now() - started, absl::Seconds(1));
  // And the slow ones are dropped at the timeout.
  EXPECT_TRUE(ClosedByServer(silent, absl::Seconds(5)));
  EXPECT_TRUE(ClosedByServer(partial, absl::Seconds(5)));
  close(silent);
  close(partial);
}

std::vector<nlohmann::json> RpcLogLines(Subprocess& process) {
  std::vector<nlohmann::json> lines;
  for (const std::string& line : process.StdoutLines()) {
    nlohmann::json json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_object() && json.value("msg", "") == "rpc") {
      lines.push_back(json);
    }
  }
  return lines;
}

// The binary against a real HTTP server playing Connyline.
class UpstreamTest : public ::testing::Test {
 protected:
  // `token_file` empty: a new file holding kFakeToken.
  void Start(std::vector<std::string> extra_flags = {},
             std::string token_file = "") {
    if (token_file.empty()) {
      token_file = WriteFile("token", absl::StrCat(kFakeToken, "\n"));
    }
    token_file_ = token_file;
    std::vector<std::string> flags = {
        "--upstream_url=" + connyline_.BaseUrl() + "/", "--account_code=acme",
        "--token_file=" + token_file, "--time_zone=Europe/Athens"};
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    gateway_ = std::make_unique<GatewayProcess>(kGateway, flags);
    ASSERT_TRUE(gateway_->Started()) << gateway_->process().AllOutput();
    channel_ = grpc::CreateChannel(gateway_->address(),
                                   grpc::InsecureChannelCredentials());
    stub_ = CampaignService::NewStub(channel_);
  }

  static campaigns::v1::CreateSmsCampaignRequest Create() {
    campaigns::v1::CreateSmsCampaignRequest request;
    request.set_campaign_name("Promo");
    request.set_sender("MYSHOP");
    request.set_list_id(123);
    request.set_sms_text("SECRET-SMS-TEXT Γεια σου");
    request.mutable_start_time()->set_seconds(
        absl::ToUnixSeconds(StartInstant()));
    return request;
  }

  // 08:30Z, 30 days from now: inside the start window, far from the
  // night-time DST changes of Athens.
  static absl::Time StartInstant() {
    static const absl::CivilDay day = absl::ToCivilDay(
        absl::Now() + absl::Hours(30 * 24), absl::UTCTimeZone());
    static const absl::Time instant = absl::FromCivil(
        absl::CivilMinute(day.year(), day.month(), day.day(), 8, 30),
        absl::UTCTimeZone());
    return instant;
  }
  // StartInstant() as Connyline's local "YYYY-MM-DD HH:MM" in Athens.
  static std::string LocalStart() {
    absl::TimeZone athens;
    EXPECT_TRUE(absl::LoadTimeZone("Europe/Athens", &athens));
    return absl::FormatTime("%Y-%m-%d %H:%M", StartInstant(), athens);
  }

  // The Authorization header of a ListLists sent now (empty on failure).
  std::string AuthorizationSentNow() {
    const int before = connyline_.RequestCount();
    campaigns::v1::ListListsResponse lists;
    if (!stub_->ListLists(ContextWithDeadline().get(), {}, &lists).ok() ||
        connyline_.RequestCount() <= before) {
      return "";
    }
    return connyline_.Requests().back().Header("authorization").value_or("");
  }

  // Sends ListLists until one carries `want` (the token file is polled
  // every second), for up to 10 s.
  bool WaitForAuthorization(const std::string& want) {
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while (absl::Now() < until) {
      if (AuthorizationSentNow() == want) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  FakeConnyline connyline_;
  std::string token_file_;
  std::unique_ptr<GatewayProcess> gateway_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<CampaignService::Stub> stub_;
};

// Made-up rotated tokens of the documented length; not real credentials.
constexpr char kRotatedToken[] =
    "rotatedBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

TEST_F(UpstreamTest, UsesAReplacedTokenFileWithoutARestart) {
  Start();
  EXPECT_EQ(AuthorizationSentNow(), absl::StrCat("Bearer ", kFakeToken));
  // Replaced as editors and `kubectl cp` do: a new file renamed over it.
  const std::string next = WriteFile("token-next", kRotatedToken);
  ASSERT_EQ(::rename(next.c_str(), token_file_.c_str()), 0);
  EXPECT_TRUE(WaitForAuthorization(absl::StrCat("Bearer ", kRotatedToken)));
  EXPECT_TRUE(gateway_->process()
                  .WaitForStdoutLine(
                      [](const std::string& l) {
                        return absl::StrContains(l, "API token rotated");
                      },
                      absl::Seconds(1))
                  .has_value());

  // A bad token keeps the good one, and is logged without its value.
  std::ofstream(token_file_, std::ios::binary) << "SECRETSECRET not a token";
  ASSERT_TRUE(gateway_->process()
                  .WaitForStdoutLine(
                      [](const std::string& l) {
                        return absl::StrContains(l, "holds no valid token");
                      },
                      absl::Seconds(10))
                  .has_value())
      << gateway_->process().AllOutput();
  EXPECT_EQ(AuthorizationSentNow(), absl::StrCat("Bearer ", kRotatedToken));
  const std::string output = gateway_->process().AllOutput();
  EXPECT_THAT(output, Not(HasSubstr("SECRETSECRET")));
  EXPECT_THAT(output, Not(HasSubstr(kFakeToken)));
  EXPECT_THAT(output, Not(HasSubstr(kRotatedToken)));
}

TEST_F(UpstreamTest, FollowsAKubernetesSecretUpdate) {
  testing_util::SecretVolume volume;
  ASSERT_TRUE(volume.Publish(absl::StrCat(kFakeToken, "\n")));
  Start({}, volume.path());
  EXPECT_EQ(AuthorizationSentNow(), absl::StrCat("Bearer ", kFakeToken));
  ASSERT_TRUE(volume.Publish(absl::StrCat(kRotatedToken, "\n")));
  EXPECT_TRUE(WaitForAuthorization(absl::StrCat("Bearer ", kRotatedToken)));
}

// libcurl's error text names the upstream's address: the JSON log gets it,
// the caller only a summary.
TEST(UpstreamAddressTest, CallersNeverSeeTheUpstreamAddress) {
  testing_util::ClosedPort closed;
  GatewayProcess gateway(kGateway,
                         {"--upstream_url=" + closed.Url(),
                          "--account_code=acme", "--retry_max_attempts=1"},
                         {{"CONNYLINE_TOKEN", kFakeToken}});
  ASSERT_TRUE(gateway.Started()) << gateway.process().AllOutput();
  auto stub = CampaignService::NewStub(grpc::CreateChannel(
      gateway.address(), grpc::InsecureChannelCredentials()));
  campaigns::v1::ListListsResponse lists;
  const grpc::Status status =
      stub->ListLists(ContextWithDeadline().get(), {}, &lists);
  ASSERT_THAT(status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                   "UPSTREAM_UNAVAILABLE"));
  const std::string port = absl::StrCat(closed.port());
  EXPECT_THAT(status.error_message(), Not(HasSubstr("127.0.0.1")));
  EXPECT_THAT(status.error_message(), Not(HasSubstr(port)));
  EXPECT_THAT(status.error_details(), Not(HasSubstr("127.0.0.1")));
  EXPECT_THAT(status.error_details(), Not(HasSubstr(port)));
  // The operator still learns what happened, and where.
  auto logged = gateway.process().WaitForStdoutLine(
      [](const std::string& l) {
        return absl::StrContains(l, "upstream transport error");
      },
      absl::Seconds(5));
  ASSERT_TRUE(logged.has_value()) << gateway.process().AllOutput();
  EXPECT_THAT(*logged, HasSubstr(port));
}

// The owner of /proc/<pid>/status: root's for a process that is not
// dumpable, whoever runs it; 0 also when it cannot be read.
uid_t ProcOwner(pid_t pid) {
  struct stat st {};
  if (::stat(absl::StrCat("/proc/", pid, "/status").c_str(), &st) != 0) {
    return 0;
  }
  return st.st_uid;
}

// Waits until `process`'s /proc entry belongs to `uid` (up to 5 s).
bool WaitForProcOwner(Subprocess& process, uid_t uid) {
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (absl::Now() < until) {
    if (ProcOwner(process.pid()) == uid) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

// prctl(PR_SET_DUMPABLE, 0): no core dump carries the token. The kernel
// then gives the process's /proc entries to root, which an e2e test can
// see. As root every process's entries are root's, so the binary is run as
// nobody (setpriv), with an ordinary program as the control.
TEST(ConfigurationTest, CoreDumpsAreDisabled) {
  std::vector<std::string> run_as;
  uid_t uid = ::getuid();
  if (::geteuid() == 0) {
    run_as = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
              "--clear-groups"};
    uid = 65534;
  }
  ASSERT_NE(uid, 0u);
  std::vector<std::string> control_argv = run_as;
  control_argv.insert(control_argv.end(), {"/bin/sleep", "30"});
  Subprocess control(control_argv);
  EXPECT_TRUE(WaitForProcOwner(control, uid))
      << "an ordinary process should own its /proc entries";

  std::vector<std::string> argv = run_as;
  argv.insert(argv.end(), {kGateway, "--sandbox", "--listen=127.0.0.1:0",
                           "--admin_listen="});
  Subprocess gateway(argv);
  ASSERT_TRUE(gateway
                  .WaitForStdoutLine(
                      [](const std::string& l) {
                        return absl::StrContains(l, "\"listening\"");
                      },
                      absl::Seconds(20))
                  .has_value())
      << gateway.AllOutput();
  EXPECT_EQ(ProcOwner(gateway.pid()), 0u);
  gateway.Signal(SIGKILL);
  control.Signal(SIGKILL);
}

TEST_F(UpstreamTest, CreatesThroughConnylineAndLogsOneLinePerRpc) {
  Start();
  auto context = ContextWithDeadline();
  context->AddMetadata("x-request-id", "e2e-request-1");
  campaigns::v1::CreateSmsCampaignResponse response;
  grpc::Status status =
      stub_->CreateSmsCampaign(context.get(), Create(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.campaign().start(), LocalStart() + ":00");
  EXPECT_EQ(response.campaign().start_time().seconds(),
            absl::ToUnixSeconds(StartInstant()));

  ASSERT_EQ(connyline_.RequestCount(), 1);
  const RecordedRequest request = connyline_.Requests()[0];
  EXPECT_EQ(request.target, "/api/v1/acme/campaigns/sms/create");
  EXPECT_EQ(request.Header("authorization"),
            absl::StrCat("Bearer ", kFakeToken));
  EXPECT_EQ(request.Header("x-request-id"), "e2e-request-1");
  EXPECT_EQ(nlohmann::json::parse(request.body)["start"], LocalStart());

  campaigns::v1::ListListsResponse lists;
  ASSERT_TRUE(stub_->ListLists(ContextWithDeadline().get(), {}, &lists).ok());

  gateway_->process().WaitForStdoutLine(
      [](const std::string& l) { return absl::StrContains(l, "ListLists"); },
      absl::Seconds(5));
  std::vector<nlohmann::json> logs = RpcLogLines(gateway_->process());
  ASSERT_EQ(logs.size(), 2u) << gateway_->process().AllOutput();
  EXPECT_EQ(logs[0]["method"], "CreateSmsCampaign");
  EXPECT_EQ(logs[0]["code"], "OK");
  EXPECT_EQ(logs[0]["request_id"], "e2e-request-1");
  EXPECT_EQ(logs[0]["upstream_status"], 201);
  EXPECT_TRUE(logs[0]["duration_ms"].is_number());
  EXPECT_TRUE(logs[0]["upstream_ms"].is_number());
  EXPECT_EQ(logs[1]["method"], "ListLists");
  EXPECT_EQ(logs[1]["request_id"].get<std::string>().size(), 36u);
  // Never the token, never the SMS text.
  EXPECT_THAT(gateway_->process().AllOutput(), Not(HasSubstr(kFakeToken)));
  EXPECT_THAT(gateway_->process().AllOutput(),
              Not(HasSubstr("SECRET-SMS-TEXT")));
}

TEST_F(UpstreamTest, ServesPrometheusMetricsOnTheAdminPort) {
  Start();
  campaigns::v1::ListListsResponse lists;
  ASSERT_TRUE(stub_->ListLists(ContextWithDeadline().get(), {}, &lists).ok());
  connyline_.Enqueue(Reply{.status = 404});
  stub_->ListLists(ContextWithDeadline().get(), {}, &lists);

  HttpResponse metrics = HttpGet(gateway_->admin_port(), "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.Header("content-type").value_or(""),
              HasSubstr("text/plain"));
  // prometheus-cpp writes labels in name order.
  for (
      const char* expected : {
          R"(campaign_gateway_rpcs_total{code="OK",method="ListLists"} 1)",
          R"(campaign_gateway_rpcs_total{code="NOT_FOUND",method="ListLists"} 1)",
          R"(campaign_gateway_rpc_duration_seconds_bucket{method="ListLists",le="+Inf"} 2)",
          R"(campaign_gateway_rpcs_in_flight{method="ListLists"} 0)",
          R"(campaign_gateway_upstream_requests_total{endpoint="lists/get-all",status="404"} 1)",
          R"(campaign_gateway_upstream_request_duration_seconds_count{endpoint="lists/get-all"} 2)",
          R"(campaign_gateway_upstream_requests_in_flight 0)",
          R"(campaign_gateway_circuit_breaker_open 0)",
          R"(campaign_gateway_guard_events_total{event="retry"} 0)",
          R"(campaign_gateway_build_info{mode="connyline",version="0.1.0"} 1)",
      }) {
    EXPECT_THAT(metrics.body, HasSubstr(expected));
  }
}

TEST_F(UpstreamTest, SigtermDrainsAndCompletesTheCallInFlight) {
  connyline_.SetHandler([](const RecordedRequest& request) {
    Reply reply = FakeConnyline::DefaultConnyline(request);
    if (request.method == "POST") reply.delay = absl::Seconds(2);
    return reply;
  });
  Start({"--shutdown_drain=1s", "--shutdown_timeout=10s"});

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  campaigns::v1::CreateSmsCampaignRequest request = Create();
  campaigns::v1::CreateSmsCampaignResponse response;
  absl::Notification done;
  grpc::Status status;
  stub_->async()->CreateSmsCampaign(&context, &request, &response,
                                    [&](grpc::Status s) {
                                      status = std::move(s);
                                      done.Notify();
                                    });
  ASSERT_TRUE(connyline_.WaitForRequests(1, absl::Seconds(5)));
  gateway_->process().Signal(SIGTERM);

  // At once: health says NOT_SERVING, yet new calls are still served.
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckResponse health_response;
  ASSERT_TRUE(gateway_->process()
                  .WaitForStdoutLine(
                      [](const std::string& l) {
                        return absl::StrContains(l, "draining");
                      },
                      absl::Seconds(5))
                  .has_value());
  ASSERT_TRUE(
      health->Check(ContextWithDeadline().get(), {}, &health_response).ok());
  EXPECT_EQ(health_response.status(),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  campaigns::v1::ListListsResponse lists;
  EXPECT_TRUE(stub_->ListLists(ContextWithDeadline().get(), {}, &lists).ok());

  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(15)));
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.campaign().campaign_name(), "Promo");
  std::optional<int> code = gateway_->process().Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << gateway_->process().AllOutput();
  // The create reached Connyline exactly once.
  int creates = 0;
  for (const auto& r : connyline_.Requests()) creates += r.method == "POST";
  EXPECT_EQ(creates, 1);
}

}  // namespace
}  // namespace campaign_gateway
