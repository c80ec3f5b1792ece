// Several gateway replicas (the production Server, in process) sharing one
// real redis-server on loopback, against one loopback Connyline: exactly-once
// creation whatever replica a repeat reaches, the shared 429 cool-down and
// rate limit, two accounts on one Redis, and Redis stopped, restarted or
// frozen under traffic.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/redis_client.h"
#include "service/redis_idempotency_store.h"
#include "tests/support/fake_connyline.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/grpc_callback_queue.h"
#include "tests/support/harness_calls.h"
#include "tests/support/redis_server.h"
#include "tests/support/status_matchers.h"

namespace campaign_gateway {
namespace {

using ::campaigns::v1::CreateSmsCampaignRequest;
using ::google::protobuf::util::MessageDifferencer;
using testing_util::AsyncCall;
using testing_util::Call;
using testing_util::Create;
using testing_util::Decode;
using testing_util::Delayed;
using testing_util::FakeConnyline;
using testing_util::Harness;
using testing_util::HarnessOptions;
using testing_util::HasErrorInfo;
using testing_util::JsonReply;
using testing_util::kHangBound;
using testing_util::RedisServer;
using testing_util::Reply;
using testing_util::Rpc;
using testing_util::Start;
using testing_util::ValidCreate;
using testing_util::WaitAll;

// See tests/support/grpc_callback_queue.h.
const ::testing::Environment* const kKeepGrpcCallbackQueue =
    ::testing::AddGlobalTestEnvironment(
        testing_util::NewKeepGrpcCallbackQueue());

// In the initial metadata of a success, the trailers of an error.
bool Replayed(AsyncCall& call) {
  for (const auto* metadata : {&call.context.GetServerInitialMetadata(),
                               &call.context.GetServerTrailingMetadata()}) {
    auto it = metadata->find("idempotent-replayed");
    if (it != metadata->end() && it->second == "true") return true;
  }
  return false;
}

std::string ErrorMetadata(const grpc::Status& status, const std::string& key) {
  return Decode(status).Meta(key);
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.status().ok()) << redis_.status();
  }

  RedisOptions Redis() const {
    RedisOptions options;
    options.port = redis_.port();
    options.password = redis_.password();
    // Fast enough for a test to see a Redis outage and recovery.
    options.command_timeout = absl::Milliseconds(300);
    options.reconnect_backoff_max = absl::Milliseconds(200);
    return options;
  }
  std::unique_ptr<Harness> Replica(HarnessOptions options = {}) {
    options.redis = Redis();
    return std::make_unique<Harness>(connyline_.BaseUrl(), std::move(options));
  }

  RedisServer redis_;
  FakeConnyline connyline_;
};

TEST_F(ReplicasTest, ARepeatOnAnotherReplicaOrAfterARestartSendsNothing) {
  auto a = Replica();
  auto b = Replica();
  auto first = Create(a->stub(), ValidCreate("across-1"));
  ASSERT_TRUE(first->status.ok()) << first->status.error_message();
  EXPECT_FALSE(Replayed(*first));

  auto on_b = Create(b->stub(), ValidCreate("across-1"));
  ASSERT_TRUE(on_b->status.ok()) << on_b->status.error_message();
  EXPECT_TRUE(MessageDifferencer::Equals(first->created, on_b->created));
  EXPECT_TRUE(Replayed(*on_b));

  a.reset();  // a rolling update replaces the pod
  a = Replica();
  auto after_restart = Create(a->stub(), ValidCreate("across-1"));
  ASSERT_TRUE(after_restart->status.ok());
  EXPECT_TRUE(
      MessageDifferencer::Equals(first->created, after_restart->created));
  EXPECT_TRUE(Replayed(*after_restart));
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

TEST_F(ReplicasTest, ConcurrentRepeatsOnThreeReplicasShareOnePost) {
  connyline_.SetHandler(Delayed(absl::Milliseconds(500)));
  std::vector<std::unique_ptr<Harness>> replicas;
  replicas.reserve(3);
  for (int i = 0; i < 3; ++i) replicas.push_back(Replica());
  std::vector<std::shared_ptr<AsyncCall>> calls;
  for (int round = 0; round < 4; ++round) {
    for (auto& replica : replicas) {
      calls.push_back(Start(replica->stub(), Rpc::kCreate, absl::Seconds(10),
                            ValidCreate("concurrent-across")));
    }
  }
  WaitAll(calls, kHangBound);
  int replayed = 0;
  for (const auto& call : calls) {
    ASSERT_TRUE(call->status.ok()) << call->status.error_message();
    EXPECT_TRUE(MessageDifferencer::Equals(calls[0]->created, call->created));
    replayed += Replayed(*call) ? 1 : 0;
  }
  EXPECT_EQ(connyline_.RequestCount(), 1);
  EXPECT_EQ(replayed, static_cast<int>(calls.size()) - 1);
}

TEST_F(ReplicasTest, OtherContentUnderTheKeyIsRefusedOnEveryReplica) {
  auto a = Replica();
  auto b = Replica();
  ASSERT_TRUE(Create(a->stub(), ValidCreate("reused"))->status.ok());
  CreateSmsCampaignRequest other = ValidCreate("reused");
  other.set_sms_text("Something else entirely");
  auto reused = Create(b->stub(), other);
  EXPECT_THAT(reused->status, HasErrorInfo(grpc::StatusCode::INVALID_ARGUMENT,
                                           "IDEMPOTENCY_KEY_REUSED"));
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

TEST_F(ReplicasTest, AFinalErrorIsRememberedForEveryReplica) {
  connyline_.Enqueue(JsonReply(402, R"({"message":"Not enough credit"})"));
  auto a = Replica();
  auto b = Replica();
  auto first = Create(a->stub(), ValidCreate("no-credit"));
  auto repeat = Create(b->stub(), ValidCreate("no-credit"));
  EXPECT_EQ(first->status.error_code(), repeat->status.error_code());
  EXPECT_EQ(first->status.error_message(), repeat->status.error_message());
  EXPECT_EQ(first->status.error_details(), repeat->status.error_details());
  EXPECT_TRUE(Replayed(*repeat));
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

TEST_F(ReplicasTest, AFailureThatSentNothingIsForgottenForEveryReplica) {
  // A port that refuses (a stopped server's released port could be taken by
  // a parallel test's listener: the refusal became a 10 s hang once).
  testing_util::ClosedPort down;
  auto a = Replica();
  a->RouteTo(down.Url());
  auto b = Replica();
  auto refused = Create(a->stub(), ValidCreate("after-refusal"));
  EXPECT_THAT(refused->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                            "UPSTREAM_UNAVAILABLE"));
  EXPECT_EQ(ErrorMetadata(refused->status, "request_sent"), "false");
  auto repeat = Create(b->stub(), ValidCreate("after-refusal"));
  ASSERT_TRUE(repeat->status.ok()) << repeat->status.error_message();
  EXPECT_FALSE(Replayed(*repeat));
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

TEST_F(ReplicasTest, TwoAccountsOnOneRedisNeverSeeEachOthersKeys) {
  HarnessOptions other;
  other.account = "other-account";
  auto acme = Replica();
  auto second = Replica(other);
  auto for_acme = Create(acme->stub(), ValidCreate("shared-key"));
  CreateSmsCampaignRequest request = ValidCreate("shared-key");
  request.set_sms_text("Another account's campaign");
  auto for_other = Create(second->stub(), request);
  ASSERT_TRUE(for_acme->status.ok()) << for_acme->status.error_message();
  ASSERT_TRUE(for_other->status.ok()) << for_other->status.error_message();
  EXPECT_FALSE(Replayed(*for_other));
  EXPECT_EQ(connyline_.RequestCount(), 2);
  EXPECT_THAT(connyline_.Requests()[1].target,
              ::testing::HasSubstr("/other-account/"));
}

TEST_F(ReplicasTest, KeysAreNamespacedByAccountAndAlwaysCarryATtl) {
  auto a = Replica();
  ASSERT_TRUE(Create(a->stub(), ValidCreate("ttl-key"))->status.ok());
  RedisClient raw(Redis());
  ASSERT_TRUE(raw.Start(absl::Seconds(5)).ok());
  absl::Notification done;
  absl::StatusOr<RedisReply> ttl;
  raw.Command({"PTTL", "campaign-gateway:{acme}:idem:ttl-key"},
              absl::Now() + absl::Seconds(5),
              [&](absl::StatusOr<RedisReply> reply) {
                ttl = std::move(reply);
                done.Notify();
              });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  // The harness keeps the default --idempotency_ttl, 24 h.
  EXPECT_GT(ttl->integer(), absl::ToInt64Milliseconds(absl::Hours(23)));
  EXPECT_LE(ttl->integer(), absl::ToInt64Milliseconds(absl::Hours(24)));
  raw.Stop();
}

TEST_F(ReplicasTest, AFollowerWhoseDeadlineComesFirstGetsDeadlineExceeded) {
  connyline_.SetHandler(Delayed(absl::Seconds(3)));
  auto a = Replica();
  auto b = Replica();
  auto leader = Start(a->stub(), Rpc::kCreate, absl::Seconds(10),
                      ValidCreate("slow-leader"));
  ASSERT_TRUE(connyline_.WaitForRequests(1, absl::Seconds(10)));
  auto follower =
      Create(b->stub(), ValidCreate("slow-leader"), absl::Milliseconds(500));
  EXPECT_EQ(follower->status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(follower->elapsed(), absl::Seconds(2));
  WaitAll({leader}, kHangBound);
  EXPECT_TRUE(leader->status.ok()) << leader->status.error_message();
  // The leader's result then answers repeats anywhere.
  auto repeat = Create(b->stub(), ValidCreate("slow-leader"));
  EXPECT_TRUE(repeat->status.ok()) << repeat->status.error_message();
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

// ---- Redis outages ----

TEST_F(ReplicasTest, RedisDownFailsKeyedCreatesClosedAndTheRestWorks) {
  auto a = Replica();
  redis_.Stop();
  const absl::Time started = absl::Now();
  auto keyed = Create(a->stub(), ValidCreate("while-down"));
  EXPECT_LT(absl::Now() - started, absl::Seconds(2));  // at once, no hang
  EXPECT_THAT(keyed->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                          "IDEMPOTENCY_STORE_UNAVAILABLE"));
  EXPECT_EQ(ErrorMetadata(keyed->status, "request_sent"), "false");
  EXPECT_EQ(connyline_.RequestCount(), 0);

  auto unkeyed = Create(a->stub(), ValidCreate());
  EXPECT_TRUE(unkeyed->status.ok()) << unkeyed->status.error_message();
  auto lists = Call(a->stub(), Rpc::kListLists);
  EXPECT_TRUE(lists->status.ok()) << lists->status.error_message();
  EXPECT_THAT(a->telemetry().Render(),
              ::testing::HasSubstr("campaign_gateway_idempotency_store_up 0"));

  // Back: the replica reconnects by itself.
  ASSERT_TRUE(redis_.Restart().ok());
  std::shared_ptr<AsyncCall> again;
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  do {
    absl::SleepFor(absl::Milliseconds(100));
    again = Create(a->stub(), ValidCreate("while-down"));
  } while (!again->status.ok() && absl::Now() < give_up);
  EXPECT_TRUE(again->status.ok()) << again->status.error_message();
  EXPECT_THAT(a->telemetry().Render(),
              ::testing::HasSubstr("campaign_gateway_idempotency_store_up 1"));
  // The unkeyed create, the list, and this one.
  EXPECT_EQ(connyline_.RequestCount(), 3);
}

TEST_F(ReplicasTest, AFrozenRedisDoesNotHoldACallPastItsDeadline) {
  auto a = Replica();
  redis_.Pause();  // SIGSTOP: connections stay open, nothing answers
  const absl::Time started = absl::Now();
  auto keyed = Create(a->stub(), ValidCreate("frozen"), absl::Seconds(2));
  const absl::Duration took = absl::Now() - started;
  redis_.Resume();
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_FALSE(keyed->status.ok());
  EXPECT_THAT(keyed->status.error_code(),
              ::testing::AnyOf(grpc::StatusCode::UNAVAILABLE,
                               grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_EQ(connyline_.RequestCount(), 0);
}

TEST_F(ReplicasTest, RedisRestartedUnderTrafficNeverSendsAKeyTwice) {
  connyline_.SetHandler(Delayed(absl::Milliseconds(50)));
  std::vector<std::unique_ptr<Harness>> replicas;
  replicas.reserve(2);
  for (int i = 0; i < 2; ++i) replicas.push_back(Replica());
  std::vector<std::shared_ptr<AsyncCall>> calls;
  for (int i = 0; i < 40; ++i) {
    if (i == 20) ASSERT_TRUE(redis_.Restart().ok());
    const std::string key = absl::StrCat("traffic-", i % 10);
    calls.push_back(Start(replicas[i % 2]->stub(), Rpc::kCreate,
                          absl::Seconds(5), ValidCreate(key)));
    absl::SleepFor(absl::Milliseconds(20));
  }
  WaitAll(calls, kHangBound);
  int sent_ok = 0;
  for (const auto& call : calls) {
    if (call->status.ok()) {
      ++sent_ok;
      continue;
    }
    // A failure either sent nothing (store down) or is an honest outcome.
    EXPECT_THAT(call->status.error_code(),
                ::testing::AnyOf(grpc::StatusCode::UNAVAILABLE,
                                 grpc::StatusCode::DEADLINE_EXCEEDED,
                                 grpc::StatusCode::ABORTED));
  }
  EXPECT_GT(sent_ok, 0);
  // The store is not persistent here (--save ''), so a restart forgets
  // keys: each of the 10 keys was POSTed at most once per Redis life.
  EXPECT_LE(connyline_.RequestCount(), 20);
  for (const auto& request : connyline_.Requests()) {
    EXPECT_THAT(request.target, ::testing::HasSubstr("/campaigns/sms/create"));
  }
}

// ---- Shared admission ----

TEST_F(ReplicasTest, A429OnOneReplicaHoldsEveryReplicaBack) {
  Reply slow_down = JsonReply(429, R"({"message":"slow down"})");
  slow_down.headers.emplace_back("Retry-After", "30");
  connyline_.Enqueue(slow_down);
  auto a = Replica();
  auto b = Replica();
  auto limited = Call(a->stub(), Rpc::kListLists);
  EXPECT_THAT(limited->status,
              HasErrorInfo(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "UPSTREAM_RATE_LIMITED"));
  for (Rpc rpc : {Rpc::kListLists, Rpc::kCreate}) {
    auto held = Call(b->stub(), rpc);
    EXPECT_THAT(held->status, HasErrorInfo(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                           "UPSTREAM_RATE_LIMITED"));
    EXPECT_EQ(ErrorMetadata(held->status, "request_sent"), "false");
    const auto failure = Decode(held->status);
    ASSERT_TRUE(failure.retry.has_value());
    EXPECT_GT(failure.retry->retry_delay().seconds(), 25);
  }
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

TEST_F(ReplicasTest, TheRateLimitIsSharedByThreeReplicas) {
  constexpr int kLimit = 5;
  constexpr int kCalls = 60;
  std::vector<std::unique_ptr<Harness>> replicas;
  for (int i = 0; i < 3; ++i) {
    HarnessOptions options;
    options.upstream_rate_limit = kLimit;
    replicas.push_back(Replica(std::move(options)));
  }
  const absl::Time started = absl::Now();
  std::vector<std::shared_ptr<AsyncCall>> calls;
  calls.reserve(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(Start(replicas[i % 3]->stub(), Rpc::kListLists));
  }
  WaitAll(calls, kHangBound);
  const absl::Duration took = absl::Now() - started;
  int ok = 0;
  for (const auto& call : calls) {
    if (call->status.ok()) {
      ++ok;
      continue;
    }
    EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                           "RATE_LIMITED"));
    EXPECT_EQ(ErrorMetadata(call->status, "request_sent"), "false");
    EXPECT_TRUE(Decode(call->status).retry.has_value());
  }
  // Each one-second window (Redis's clock) lets kLimit through, summed over
  // the replicas; the calls spanned at most this many windows.
  const int windows = static_cast<int>(absl::ToInt64Seconds(took)) + 2;
  EXPECT_GT(ok, 0);
  EXPECT_LE(ok, kLimit * windows);
  EXPECT_LT(ok, kCalls);  // 60 calls do not fit a few windows of 5
  EXPECT_EQ(connyline_.RequestCount(), ok);
}

}  // namespace
}  // namespace campaign_gateway
