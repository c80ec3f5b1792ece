// The campaign-gateway binary with --redis_url, as processes: a leader
// SIGKILLed mid-create leaves its key's outcome unknown (never a second
// POST); a refused Redis password stops the start with one line that names
// Redis and not the password; an unreachable Redis does not, and keyed
// creates fail closed until it is there; replayed answers are logged so; an
// outage of Redis is logged even right after a connect.
#include <csignal>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/fake_connyline.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/gateway_process.h"
#include "tests/support/grpc_callback_queue.h"
#include "tests/support/harness_calls.h"
#include "tests/support/redis_server.h"
#include "tests/support/status_matchers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_env.h"

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::AsyncCall;
using testing_util::Create;
using testing_util::Decode;
using testing_util::FakeConnyline;
using testing_util::GatewayProcess;
using testing_util::Harness;
using testing_util::HarnessOptions;
using testing_util::HasErrorInfo;
using testing_util::kHarnessToken;
using testing_util::RecordedRequest;
using testing_util::RedisServer;
using testing_util::Reply;
using testing_util::Rpc;
using testing_util::RunProgram;
using testing_util::RunResult;
using testing_util::Start;
using testing_util::ValidCreate;

constexpr char kGateway[] = GATEWAY_BINARY;

// See tests/support/grpc_callback_queue.h.
const ::testing::Environment* const kKeepGrpcCallbackQueue =
    ::testing::AddGlobalTestEnvironment(
        testing_util::NewKeepGrpcCallbackQueue());

// A file of this test's own holding `content`.
std::string WriteFile(const std::string& name, const std::string& content) {
  std::string path =
      absl::StrCat(testing_util::TempDir(), "/", name, "-", getpid(), "-",
                   absl::ToUnixNanos(absl::Now()));
  std::ofstream(path) << content;
  return path;
}

class ReplicasE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.status().ok()) << redis_.status();
    token_file_ = WriteFile("token", kHarnessToken);
    password_file_ = WriteFile("redis-password", redis_.password() + "\n");
  }

  std::vector<std::string> Flags(int redis_port) const {
    return {"--upstream_url=" + connyline_.BaseUrl(),
            "--account_code=acme",
            "--token_file=" + token_file_,
            absl::StrCat("--redis_url=redis://127.0.0.1:", redis_port),
            "--redis_password_file=" + password_file_,
            "--shutdown_drain=0s"};
  }
  std::unique_ptr<Harness> InProcessReplica() {
    HarnessOptions options;
    options.redis =
        RedisOptions{.port = redis_.port(), .password = redis_.password()};
    return std::make_unique<Harness>(connyline_.BaseUrl(), std::move(options));
  }
  static std::unique_ptr<campaigns::v1::CampaignService::Stub> StubFor(
      const GatewayProcess& gateway) {
    return campaigns::v1::CampaignService::NewStub(grpc::CreateChannel(
        gateway.address(), grpc::InsecureChannelCredentials()));
  }

  RedisServer redis_;
  FakeConnyline connyline_;
  std::string token_file_;
  std::string password_file_;
};

TEST_F(ReplicasE2eTest, ALeaderKilledMidCreateLeavesTheOutcomeUnknown) {
  // Connyline holds the create long enough for its gateway to die.
  connyline_.SetHandler([](const RecordedRequest& request) {
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = absl::Seconds(30);
    return reply;
  });
  GatewayProcess leader(kGateway, Flags(redis_.port()));
  ASSERT_TRUE(leader.Started()) << leader.process().AllOutput();
  auto leader_stub = StubFor(leader);
  // Its lease ends 2 s after this 2 s deadline.
  auto doomed = Start(*leader_stub, Rpc::kCreate, absl::Seconds(2),
                      ValidCreate("killed-mid-create"));
  ASSERT_TRUE(connyline_.WaitForRequests(1, absl::Seconds(10)));
  ASSERT_EQ(connyline_.RequestCount(), 1);  // the POST is out
  leader.process().Signal(SIGKILL);         // OOM kill, node loss
  ASSERT_TRUE(leader.process().Wait(absl::Seconds(10)).has_value());
  doomed->done.WaitForNotificationWithTimeout(absl::Seconds(10));

  auto replica = InProcessReplica();
  // A repeat waits out the dead leader's lease, then learns the truth: the
  // outcome is unknown. It never sends a second POST.
  auto repeat = Create(replica->stub(), ValidCreate("killed-mid-create"),
                       absl::Seconds(15));
  EXPECT_THAT(repeat->status,
              HasErrorInfo(grpc::StatusCode::ABORTED, "OUTCOME_UNKNOWN"));
  EXPECT_EQ(Decode(repeat->status).Meta("request_sent"), "unknown");
  // That outcome is remembered like any other.
  auto again = Create(replica->stub(), ValidCreate("killed-mid-create"));
  EXPECT_THAT(again->status,
              HasErrorInfo(grpc::StatusCode::ABORTED, "OUTCOME_UNKNOWN"));
  EXPECT_LT(again->elapsed(), absl::Seconds(1));
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

TEST_F(ReplicasE2eTest, RefusesToStartWhenRedisRefusesThePassword) {
  const std::string wrong = "not-the-password-SECRETSECRET";
  std::vector<std::string> argv = {
      kGateway, "--listen=127.0.0.1:0",
      "--admin_listen=", "--allow_insecure_upstream"};
  for (std::string& flag : Flags(redis_.port())) {
    if (absl::StartsWith(flag, "--redis_password_file=")) {
      flag = "--redis_password_file=" + WriteFile("wrong", wrong);
    }
    argv.push_back(flag);
  }
  RunResult result = RunProgram(argv, {}, absl::Seconds(20));
  EXPECT_EQ(result.exit_code, 2) << result.stdout_text << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr("--redis_url"));
  EXPECT_THAT(result.stderr_text, HasSubstr("Redis"));
  EXPECT_EQ(
      std::count(result.stderr_text.begin(), result.stderr_text.end(), '\n'), 1)
      << result.stderr_text;
  EXPECT_THAT(result.stderr_text + result.stdout_text,
              Not(HasSubstr("SECRETSECRET")));
  EXPECT_THAT(result.stderr_text + result.stdout_text,
              Not(HasSubstr(redis_.password())));
}

TEST_F(ReplicasE2eTest, StartsWithoutRedisAndFailsKeyedCreatesClosedUntilUp) {
  const int port = RedisServer::PickFreePort();
  GatewayProcess gateway(kGateway, Flags(port));
  ASSERT_TRUE(gateway.Started()) << gateway.process().AllOutput();
  EXPECT_THAT(gateway.process().AllOutput(), HasSubstr("Redis"));
  auto stub = StubFor(gateway);

  // SERVING: lists and unkeyed creates work; keyed ones are refused.
  auto channel = grpc::CreateChannel(gateway.address(),
                                     grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext health_context;
  grpc::health::v1::HealthCheckRequest health_request;
  grpc::health::v1::HealthCheckResponse health_response;
  ASSERT_TRUE(
      health->Check(&health_context, health_request, &health_response).ok());
  EXPECT_EQ(health_response.status(),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_TRUE(Create(*stub, ValidCreate())->status.ok());
  auto keyed = Create(*stub, ValidCreate("before-redis"));
  EXPECT_THAT(keyed->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                          "IDEMPOTENCY_STORE_UNAVAILABLE"));
  EXPECT_EQ(Decode(keyed->status).Meta("request_sent"), "false");
  EXPECT_EQ(connyline_.RequestCount(), 1);

  // Redis comes up: the gateway connects by itself.
  RedisServer late(port, redis_.password());
  ASSERT_TRUE(late.status().ok()) << late.status();
  std::shared_ptr<AsyncCall> created;
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  do {
    absl::SleepFor(absl::Milliseconds(100));
    created = Create(*stub, ValidCreate("before-redis"));
  } while (!created->status.ok() && absl::Now() < give_up);
  ASSERT_TRUE(created->status.ok()) << created->status.error_message();
  auto replayed = Create(*stub, ValidCreate("before-redis"));
  ASSERT_TRUE(replayed->status.ok());
  EXPECT_EQ(connyline_.RequestCount(), 2);

  // The log lines carry the key and whether the answer was replayed (read
  // from the child's stdout as it comes).
  auto logged = [&gateway](const std::string& needle) {
    return gateway.process()
        .WaitForStdoutLine(
            [&needle](const std::string& line) {
              return absl::StrContains(
                         line, "\"idempotency_key\":\"before-redis\"") &&
                     absl::StrContains(line, needle);
            },
            absl::Seconds(10))
        .has_value();
  };
  EXPECT_TRUE(logged("\"replayed\":false"));
  EXPECT_TRUE(logged("\"replayed\":true"));
  EXPECT_TRUE(logged("IDEMPOTENCY_STORE_UNAVAILABLE"));
  EXPECT_THAT(gateway.process().AllOutput(), Not(HasSubstr(redis_.password())));
}

TEST_F(ReplicasE2eTest, LogsAnOutageOfTheStoreEvenRightAfterConnecting) {
  constexpr char kUp[] = "idempotency store (Redis) connected";
  constexpr char kDown[] = "idempotency store (Redis) is down";
  GatewayProcess gateway(kGateway, Flags(redis_.port()));
  ASSERT_TRUE(gateway.Started()) << gateway.process().AllOutput();
  const auto count = [&gateway](absl::string_view needle) {
    int n = 0;
    for (const std::string& line : gateway.process().StdoutLines()) {
      n += absl::StrContains(line, needle) ? 1 : 0;
    }
    return n;
  };
  const auto wait_for = [&count](absl::string_view needle, int n) {
    const absl::Time give_up = absl::Now() + absl::Seconds(15);
    while (count(needle) < n && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    return count(needle) >= n;
  };
  ASSERT_TRUE(wait_for(kUp, 1)) << gateway.process().AllOutput();

  // Redis goes away seconds after the connect line: still a warning (the
  // 10 s allowance is for outages, not for the connect before them).
  redis_.Stop();
  EXPECT_TRUE(wait_for(kDown, 1)) << gateway.process().AllOutput();
  const absl::Time first_down = absl::Now();
  ASSERT_TRUE(redis_.Restart().ok());
  EXPECT_TRUE(wait_for(kUp, 2)) << gateway.process().AllOutput();

  // Flapping within the 10 s costs no more lines: only the metric tells.
  redis_.Stop();
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_TRUE(redis_.Restart().ok());
  absl::SleepFor(absl::Seconds(3));  // the reconnect (backoff up to 2 s)
  if (absl::Now() - first_down < absl::Seconds(9)) {  // not on a slow machine
    EXPECT_EQ(count(kDown), 1) << gateway.process().AllOutput();
    EXPECT_EQ(count(kUp), 2) << gateway.process().AllOutput();
  }
  EXPECT_THAT(gateway.process().AllOutput(), Not(HasSubstr(redis_.password())));
}

}  // namespace
}  // namespace campaign_gateway
