// End-to-end, as a consuming team uses the gateway: the sandbox binary
// (what scripts/run.sh runs) started as a process and called over a real
// socket: every sandbox fault list as README's table says, reflection that
// describes every service it lists, --help, and the client guide's Python
// example (docs/clients.md) run as the guide says.
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/curl_transport.h"
#include "tests/support/gateway_process.h"
#include "tests/support/grpc_callback_queue.h"
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
using ::testing::Not;
using testing_util::Decode;
using testing_util::Failure;
using testing_util::GatewayProcess;
using testing_util::HasErrorInfo;
using testing_util::RunProgram;
using testing_util::RunResult;
using testing_util::TempDir;
using testing_util::ValidCreate;

constexpr char kGateway[] = GATEWAY_BINARY;
constexpr char kCampaignctl[] = CAMPAIGNCTL_BINARY;
constexpr char kSourceDir[] = SOURCE_DIR;

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

std::vector<std::string> WithSandbox(std::vector<std::string> flags) {
  flags.insert(flags.begin(), "--sandbox");
  return flags;
}

// The sandbox gateway, started fresh: a fault list's side effects (the 429
// cool-down, the circuit breaker) stay within one test.
class SandboxGateway {
 public:
  explicit SandboxGateway(std::vector<std::string> flags = {})
      : process_(kGateway, WithSandbox(std::move(flags))) {
    if (!process_.Started()) return;
    channel_ = grpc::CreateChannel(process_.address(),
                                   grpc::InsecureChannelCredentials());
    stub_ = CampaignService::NewStub(channel_);
  }

  GatewayProcess& process() { return process_; }
  CampaignService::Stub& stub() { return *stub_; }

  // `replayed`: set to whether the answer came from the idempotency store.
  grpc::Status Create(int64_t list_id, absl::Duration timeout,
                      std::string request_id = "", bool* replayed = nullptr) {
    campaigns::v1::CreateSmsCampaignRequest request =
        ValidCreate(std::move(request_id));
    request.set_list_id(list_id);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    campaigns::v1::CreateSmsCampaignResponse response;
    grpc::Status status =
        stub_->CreateSmsCampaign(&context, request, &response);
    if (replayed != nullptr) {
      // With an answer's initial metadata, or in an error's trailers.
      *replayed =
          context.GetServerInitialMetadata().count("idempotent-replayed") +
              context.GetServerTrailingMetadata().count("idempotent-replayed") >
          0;
    }
    return status;
  }

  grpc::Status ListLists() {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    campaigns::v1::ListListsResponse response;
    return stub_->ListLists(&context, {}, &response);
  }

  // The gauge of requests to (sandbox) Connyline in flight, from /metrics.
  std::optional<int> UpstreamInFlight() {
    const HttpResponse metrics = HttpGet(process_.admin_port(), "/metrics");
    const std::string kGauge =
        "\ncampaign_gateway_upstream_requests_in_flight ";
    const size_t at = metrics.body.find(kGauge);
    if (at == std::string::npos) return std::nullopt;
    return std::atoi(metrics.body.c_str() + at + kGauge.size());
  }

  // Polls /metrics until the gauge reads `value`, for at most `timeout`.
  bool AwaitUpstreamInFlight(int value, absl::Duration timeout) {
    const absl::Time until = absl::Now() + timeout;
    while (UpstreamInFlight() != value) {
      if (absl::Now() > until) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return true;
  }

 private:
  GatewayProcess process_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<CampaignService::Stub> stub_;
};

// ---- README "Sandbox fault lists", row by row ----

struct FaultRow {
  int64_t list_id;
  grpc::StatusCode code;
  std::string reason;
  std::string http_status;                    // ErrorInfo metadata
  std::optional<absl::Duration> retry_delay;  // RetryInfo
};

void PrintTo(const FaultRow& row, std::ostream* os) { *os << row.list_id; }

class SandboxFaultTest : public ::testing::TestWithParam<FaultRow> {};

TEST_P(SandboxFaultTest, CreateFailsAsTheTableSays) {
  const FaultRow& row = GetParam();
  SandboxGateway gateway;
  ASSERT_TRUE(gateway.process().Started())
      << gateway.process().process().AllOutput();

  const grpc::Status status = gateway.Create(row.list_id, absl::Seconds(10));

  EXPECT_THAT(status, HasErrorInfo(row.code, row.reason));
  const Failure failure = Decode(status);
  EXPECT_EQ(failure.Meta("http_status"), row.http_status);
  // The request reached (sandbox) Connyline: retrying is not known to be
  // safe, so there is no request_sent=false.
  EXPECT_EQ(failure.Meta("request_sent"), "<absent>");
  ASSERT_EQ(failure.retry.has_value(), row.retry_delay.has_value());
  if (row.retry_delay.has_value()) {
    EXPECT_EQ(absl::Seconds(failure.retry->retry_delay().seconds()),
              *row.retry_delay);
  }
}

INSTANTIATE_TEST_SUITE_P(
    WholeTable, SandboxFaultTest,
    ::testing::Values(
        FaultRow{990400, grpc::StatusCode::INVALID_ARGUMENT,
                 "UPSTREAM_REJECTED_REQUEST", "400", std::nullopt},
        FaultRow{990401, grpc::StatusCode::UNAUTHENTICATED,
                 "UPSTREAM_UNAUTHENTICATED", "401", std::nullopt},
        FaultRow{990402, grpc::StatusCode::FAILED_PRECONDITION,
                 "UPSTREAM_PAYMENT_REQUIRED", "402", std::nullopt},
        FaultRow{990403, grpc::StatusCode::PERMISSION_DENIED,
                 "UPSTREAM_PERMISSION_DENIED", "403", std::nullopt},
        FaultRow{990404, grpc::StatusCode::NOT_FOUND, "UPSTREAM_NOT_FOUND",
                 "404", std::nullopt},
        FaultRow{990409, grpc::StatusCode::ALREADY_EXISTS, "UPSTREAM_CONFLICT",
                 "409", std::nullopt},
        FaultRow{990429, grpc::StatusCode::RESOURCE_EXHAUSTED,
                 "UPSTREAM_RATE_LIMITED", "429", absl::Seconds(30)},
        FaultRow{990500, grpc::StatusCode::INTERNAL, "UPSTREAM_INTERNAL_ERROR",
                 "500", std::nullopt},
        FaultRow{990503, grpc::StatusCode::UNAVAILABLE, "UPSTREAM_UNAVAILABLE",
                 "503", std::nullopt},
        FaultRow{990999, grpc::StatusCode::INTERNAL, "UPSTREAM_BAD_RESPONSE",
                 "201", std::nullopt}),
    [](const ::testing::TestParamInfo<FaultRow>& info) {
      return absl::StrCat("List", info.param.list_id);
    });

// 990504 never answers: the caller's deadline decides, and the request held
// in the sandbox ends with the call (nothing stays in flight).
TEST(SandboxSilentListTest, TheDeadlineDecidesAndNothingStaysInFlight) {
  SandboxGateway gateway;
  ASSERT_TRUE(gateway.process().Started())
      << gateway.process().process().AllOutput();
  ASSERT_EQ(gateway.UpstreamInFlight(), 0);

  campaigns::v1::CreateSmsCampaignRequest request = ValidCreate();
  request.set_list_id(990504);
  grpc::ClientContext context;
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  context.set_deadline(absl::ToChronoTime(deadline));
  campaigns::v1::CreateSmsCampaignResponse response;
  absl::Notification done;
  grpc::Status status;
  gateway.stub().async()->CreateSmsCampaign(&context, &request, &response,
                                            [&](grpc::Status s) {
                                              status = std::move(s);
                                              done.Notify();
                                            });
  // Held by the sandbox while the call waits.
  EXPECT_TRUE(gateway.AwaitUpstreamInFlight(1, absl::Milliseconds(900)));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(absl::Now(), deadline);
  // Usually the client's own deadline fires first (no details); if the
  // gateway's answer wins the race, it says UPSTREAM_TIMEOUT.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  if (!status.error_details().empty()) {
    EXPECT_THAT(status, HasErrorInfo(grpc::StatusCode::DEADLINE_EXCEEDED,
                                     "UPSTREAM_TIMEOUT"));
  }
  EXPECT_TRUE(gateway.AwaitUpstreamInFlight(0, absl::Seconds(2)));
  EXPECT_TRUE(gateway.ListLists().ok());
}

// A keyed create on 990504: its timeout is the key's outcome (the create may
// have reached Connyline), so a repeat is answered with it, never re-sent.
TEST(SandboxSilentListTest, AKeyedCreateRemembersItsTimeout) {
  // A keyed create outlives its caller's deadline, up to the gateway's own
  // --keyed_upstream_timeout (short here).
  SandboxGateway gateway({"--keyed_upstream_timeout=1s"});
  ASSERT_TRUE(gateway.process().Started())
      << gateway.process().process().AllOutput();
  const std::string key = "silent-list-key-1";
  EXPECT_EQ(gateway.Create(990504, absl::Milliseconds(500), key).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(gateway.AwaitUpstreamInFlight(0, absl::Seconds(5)));
  // The leader's outcome is recorded once its upstream request ended.
  bool replayed = false;
  const absl::Time start = absl::Now();
  const grpc::Status repeat =
      gateway.Create(990504, absl::Seconds(5), key, &replayed);
  EXPECT_THAT(repeat, HasErrorInfo(grpc::StatusCode::DEADLINE_EXCEEDED,
                                   "UPSTREAM_TIMEOUT"));
  EXPECT_TRUE(replayed);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

// Connyline's 429 holds back every call for its Retry-After, as in
// production: what a consumer sees right after 990429.
TEST(SandboxRateLimitTest, The429CoolDownHoldsBackTheNextCalls) {
  SandboxGateway gateway;
  ASSERT_TRUE(gateway.process().Started())
      << gateway.process().process().AllOutput();
  ASSERT_THAT(gateway.Create(990429, absl::Seconds(10)),
              HasErrorInfo(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "UPSTREAM_RATE_LIMITED"));
  for (const grpc::Status& next :
       {gateway.ListLists(), gateway.Create(123, absl::Seconds(10))}) {
    EXPECT_THAT(next, HasErrorInfo(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "UPSTREAM_RATE_LIMITED"));
    const Failure failure = Decode(next);
    EXPECT_EQ(failure.Meta("request_sent"), "false");
    ASSERT_TRUE(failure.retry.has_value());
    EXPECT_GT(failure.retry->retry_delay().seconds(), 20);
    EXPECT_LE(failure.retry->retry_delay().seconds(), 30);
  }
}

// Five 5xx in a row open the circuit breaker (--breaker_failure_threshold),
// as README's fault list section warns.
TEST(SandboxBreakerTest, FiveServerErrorsInARowOpenTheBreaker) {
  SandboxGateway gateway;
  ASSERT_TRUE(gateway.process().Started())
      << gateway.process().process().AllOutput();
  for (int64_t list_id : {990500, 990503, 990500, 990503, 990500}) {
    EXPECT_NE(gateway.Create(list_id, absl::Seconds(10)).error_code(),
              grpc::StatusCode::OK);
  }
  const grpc::Status next = gateway.ListLists();
  EXPECT_THAT(next,
              HasErrorInfo(grpc::StatusCode::UNAVAILABLE, "CIRCUIT_OPEN"));
  EXPECT_TRUE(Decode(next).retry.has_value());
}

// ---- Tooling: reflection (buf curl, grpcurl) and --help ----

// What tools do: list the services, then ask for each one's file. Every
// service listed must be described, or `buf curl` says "Symbol not found".
TEST(ReflectionTest, DescribesEveryServiceItLists) {
  SandboxGateway gateway;
  ASSERT_TRUE(gateway.process().Started())
      << gateway.process().process().AllOutput();
  auto channel = grpc::CreateChannel(gateway.process().address(),
                                     grpc::InsecureChannelCredentials());
  auto reflection =
      grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  auto stream = reflection->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> services;
  for (const auto& service : response.list_services_response().service()) {
    services.push_back(service.name());
  }
  EXPECT_THAT(services,
              ::testing::IsSupersetOf(
                  {"campaigns.v1.CampaignService", "grpc.health.v1.Health",
                   "grpc.reflection.v1alpha.ServerReflection"}));
  for (const std::string& service : services) {
    request.set_file_containing_symbol(service);
    ASSERT_TRUE(stream->Write(request));
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_FALSE(response.has_error_response())
        << service << ": " << response.error_response().error_message();
    EXPECT_GT(response.file_descriptor_response().file_descriptor_proto_size(),
              0)
        << service;
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// README: "scripts/run.sh --help lists every flag" (run.sh passes it on).
TEST(HelpTest, TheGatewayListsItsFlagsAndExitsZero) {
  const RunResult help = RunProgram({kGateway, "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.stderr_text;
  for (const char* flag : {"--listen ", "--upstream_url ", "--account_code ",
                           "--token_file ", "--redis_url "}) {
    EXPECT_THAT(help.stdout_text, HasSubstr(flag));
  }
  EXPECT_THAT(help.stdout_text, HasSubstr("CAMPAIGN_GATEWAY_<FLAG>"));
  EXPECT_THAT(help.stdout_text, Not(HasSubstr("No flags matched")));
}

TEST(HelpTest, CampaignctlListsItsFlagsAndExitsZero) {
  const RunResult help = RunProgram({kCampaignctl, "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.stderr_text;
  for (const char* flag :
       {"--addr ", "--timeout ", "--list_id ", "--request_id "}) {
    EXPECT_THAT(help.stdout_text, HasSubstr(flag));
  }
}

// ---- docs/clients.md: the guide's example is this test ----

std::string ReadSource(const std::string& path) {
  std::ifstream in(absl::StrCat(kSourceDir, "/", path), std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// The guide's generation command (docs/clients.md, "Python"), with Debian's
// packages only; the test checks the guide shows exactly this.
constexpr char kGuideGenerateCommand[] =
    "protoc -I proto --python_out=gen --grpc_out=gen \\\n"
    "  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \\\n"
    "  proto/campaigns/v1/campaign_service.proto \\\n"
    "  proto/google/rpc/status.proto proto/google/rpc/error_details.proto\n"
    "PYTHONPATH=gen python3 docs/examples/python/client.py localhost:50051\n";

TEST(ClientGuideTest, TheGuideQuotesTheExampleAndItsCommands) {
  const std::string guide = ReadSource("docs/clients.md");
  const std::string example = ReadSource("docs/examples/python/client.py");
  ASSERT_FALSE(example.empty());
  EXPECT_THAT(guide, HasSubstr(absl::StrCat("```python\n", example, "```\n")))
      << "docs/clients.md must quote docs/examples/python/client.py verbatim";
  EXPECT_THAT(guide, HasSubstr(kGuideGenerateCommand));
  EXPECT_THAT(ReadSource("README.md"), HasSubstr("(docs/clients.md)"));
}

TEST(ClientGuideTest, ThePythonExampleRunsAgainstTheSandbox) {
  // Generate as the guide says, into a directory of this test's own.
  const std::string gen = absl::StrCat(TempDir(), "/client-guide-", getpid(),
                                       "-", absl::ToUnixNanos(absl::Now()));
  std::filesystem::create_directories(gen);
  const std::string proto = absl::StrCat(kSourceDir, "/proto");
  const RunResult generated =
      RunProgram({"/usr/bin/protoc", "-I", proto, "--python_out=" + gen,
                  "--grpc_out=" + gen,
                  "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                  proto + "/campaigns/v1/campaign_service.proto",
                  proto + "/google/rpc/status.proto",
                  proto + "/google/rpc/error_details.proto"},
                 {{"LD_PRELOAD", ""}});
  ASSERT_EQ(generated.exit_code, 0) << generated.stderr_text;

  SandboxGateway gateway;
  ASSERT_TRUE(gateway.process().Started())
      << gateway.process().process().AllOutput();
  std::vector<std::string> argv = {
      "/usr/bin/python3",
      absl::StrCat(kSourceDir, "/docs/examples/python/client.py"),
      gateway.process().address()};
  // Once the retry service config is in the repository, clients load it.
  const std::string service_config =
      absl::StrCat(proto, "/campaigns/v1/service_config.json");
  if (std::filesystem::exists(service_config)) {
    argv.push_back("--service-config=" + service_config);
  }
  const absl::Time start = absl::Now();
  // Without the sanitizer stage's LD_PRELOAD (a shim for our binaries that
  // aborts in a process without Abseil): Python is not ours to check.
  const RunResult run =
      RunProgram(argv, {{"PYTHONPATH", gen}, {"LD_PRELOAD", ""}});
  std::filesystem::remove_all(gen);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  for (const char* line : {
           "list 123: 2026 Clients\n",
           "created: Spring promo, start ",
           "created again: Spring promo, replayed: true\n",
           "error: INVALID_ARGUMENT: ",
           "  reason: INVALID_REQUEST (campaign-gateway.connyline)\n",
           "  bad field sender: ",
           "  bad field list_id: ",
           "error: DEADLINE_EXCEEDED: ",
           "error: RESOURCE_EXHAUSTED: ",
           "  reason: UPSTREAM_RATE_LIMITED (campaign-gateway.connyline)\n",
           "  http_status: 429\n",
           "  retry after: 30s",
       }) {
    EXPECT_THAT(run.stdout_text, HasSubstr(line));
  }
}

}  // namespace
}  // namespace campaign_gateway
