// Exactly-once creation over the wire: the same in-process gateway as
// resilience_test (tests/support/gateway_harness.h) called by a real gRPC
// client, against a loopback Connyline stand-in. A create with a
// request_id is POSTed to Connyline at most once, however often, however
// concurrently and whatever its callers do meanwhile; a repeat gets the
// first outcome, and only an outcome that sent nothing is forgotten.
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/fake_connyline.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/grpc_callback_queue.h"
#include "tests/support/harness_calls.h"
#include "tests/support/status_matchers.h"

namespace campaign_gateway {
namespace {

using ::campaigns::v1::CreateSmsCampaignRequest;
using ::google::protobuf::util::MessageDifferencer;
using testing_util::AsyncCall;
using testing_util::ClosedPort;
using testing_util::Create;
using testing_util::Decode;
using testing_util::Delayed;
using testing_util::Documented;
using testing_util::Failure;
using testing_util::FakeConnyline;
using testing_util::Harness;
using testing_util::HasErrorInfo;
using testing_util::JsonReply;
using testing_util::kHangBound;
using testing_util::kShortDeadline;
using testing_util::Reply;
using testing_util::Rpc;
using testing_util::Start;
using testing_util::ValidCreate;
using testing_util::WaitAll;
using testing_util::WithDefaultTimeout;
using testing_util::WithMaxInflight;

// See tests/support/grpc_callback_queue.h.
const ::testing::Environment* const kKeepGrpcCallbackQueue =
    ::testing::AddGlobalTestEnvironment(
        testing_util::NewKeepGrpcCallbackQueue());

bool SameResponse(const AsyncCall& a, const AsyncCall& b) {
  return MessageDifferencer::Equals(a.created, b.created);
}

TEST(ExactlyOnceTest, ASequentialRepeatGetsTheFirstResultWithoutAPost) {
  FakeConnyline connyline;
  Harness harness(connyline.BaseUrl());
  auto first = Create(harness.stub(), ValidCreate("seq-1"));
  auto repeat = Create(harness.stub(), ValidCreate("seq-1"));
  ASSERT_TRUE(first->status.ok()) << first->status.error_message();
  ASSERT_TRUE(repeat->status.ok()) << repeat->status.error_message();
  EXPECT_TRUE(SameResponse(*first, *repeat));
  EXPECT_EQ(first->created.campaign().campaign_name(), "Spring promo");
  EXPECT_EQ(connyline.RequestCount(), 1);
  // A new key is a new campaign, even with the same content.
  auto other = Create(harness.stub(), ValidCreate("seq-2"));
  EXPECT_TRUE(other->status.ok()) << other->status.error_message();
  EXPECT_EQ(connyline.RequestCount(), 2);
}

TEST(ExactlyOnceTest, ConcurrentDuplicatesShareOnePost) {
  constexpr int kCalls = 20;
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Milliseconds(500)));
  Harness harness(connyline.BaseUrl());
  std::vector<std::shared_ptr<AsyncCall>> calls;
  calls.reserve(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(Start(harness.stub(), Rpc::kCreate, absl::Seconds(10),
                          ValidCreate("concurrent-1")));
  }
  WaitAll(calls, kHangBound);
  for (const auto& call : calls) {
    ASSERT_TRUE(call->status.ok()) << call->status.error_message();
    EXPECT_TRUE(SameResponse(*calls[0], *call));
  }
  EXPECT_EQ(connyline.RequestCount(), 1);
  EXPECT_EQ(harness.store().size(), 1u);
}

TEST(ExactlyOnceTest, WaitingDuplicatesTakeNoInflightSlot) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Milliseconds(300)));
  Harness harness(connyline.BaseUrl(), WithMaxInflight(1));
  std::vector<std::shared_ptr<AsyncCall>> calls;
  calls.reserve(10);
  for (int i = 0; i < 10; ++i) {
    calls.push_back(Start(harness.stub(), Rpc::kCreate, absl::Seconds(10),
                          ValidCreate("one-slot")));
  }
  WaitAll(calls, kHangBound);
  for (const auto& call : calls) {
    EXPECT_TRUE(call->status.ok()) << call->status.error_message();
  }
  EXPECT_EQ(connyline.RequestCount(), 1);
}

TEST(ExactlyOnceTest, TheSameKeyForOtherContentIsRefusedWithoutAPost) {
  FakeConnyline connyline;
  Harness harness(connyline.BaseUrl());
  auto first = Create(harness.stub(), ValidCreate("reused"));
  ASSERT_TRUE(first->status.ok()) << first->status.error_message();
  CreateSmsCampaignRequest other = ValidCreate("reused");
  other.set_sms_text("Something else entirely");
  auto reused = Create(harness.stub(), other);
  EXPECT_THAT(reused->status, HasErrorInfo(grpc::StatusCode::INVALID_ARGUMENT,
                                           "IDEMPOTENCY_KEY_REUSED"));
  const Failure failure = Decode(reused->status);
  ASSERT_TRUE(failure.bad_request.has_value());
  ASSERT_EQ(failure.bad_request->field_violations_size(), 1);
  EXPECT_EQ(failure.bad_request->field_violations(0).field(), "request_id");
  EXPECT_EQ(connyline.RequestCount(), 1);
}

TEST(ExactlyOnceTest, TheSameKeyForOtherContentIsRefusedWhileInFlight) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Seconds(1)));
  Harness harness(connyline.BaseUrl());
  auto leader = Start(harness.stub(), Rpc::kCreate, absl::Seconds(10),
                      ValidCreate("reused-early"));
  ASSERT_TRUE(connyline.WaitForRequests(1, absl::Seconds(5)));
  CreateSmsCampaignRequest other = ValidCreate("reused-early");
  other.set_list_id(456);
  auto reused = Create(harness.stub(), other);
  EXPECT_THAT(reused->status, HasErrorInfo(grpc::StatusCode::INVALID_ARGUMENT,
                                           "IDEMPOTENCY_KEY_REUSED"));
  WaitAll({leader}, kHangBound);
  // Refused at once, not after waiting for the leader.
  EXPECT_LT(reused->finished, leader->finished);
  EXPECT_TRUE(leader->status.ok()) << leader->status.error_message();
  EXPECT_EQ(connyline.RequestCount(), 1);
}

TEST(ExactlyOnceTest, AKeyWhoseCreateSentNothingIsForgotten) {
  FakeConnyline connyline;
  // Nothing listens where the gateway sends at first.
  const ClosedPort closed;
  Harness harness(closed.Url());
  auto refused = Create(harness.stub(), ValidCreate("after-refusal"));
  EXPECT_THAT(refused->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                            "UPSTREAM_UNAVAILABLE"));
  EXPECT_EQ(Decode(refused->status).Meta("request_sent"), "false");
  EXPECT_EQ(harness.store().size(), 0u);

  harness.RouteTo(connyline.BaseUrl());  // Connyline is up
  auto repeat = Create(harness.stub(), ValidCreate("after-refusal"));
  ASSERT_TRUE(repeat->status.ok()) << repeat->status.error_message();
  EXPECT_EQ(connyline.RequestCount(), 1);
  // From now on the key holds the success.
  auto again = Create(harness.stub(), ValidCreate("after-refusal"));
  ASSERT_TRUE(again->status.ok()) << again->status.error_message();
  EXPECT_TRUE(SameResponse(*repeat, *again));
  EXPECT_EQ(connyline.RequestCount(), 1);
}

TEST(ExactlyOnceTest, ARateLimitedCreateIsForgotten) {
  FakeConnyline connyline;
  Reply slow_down = JsonReply(429, R"({"message":"slow down"})");
  slow_down.headers.emplace_back("Retry-After", "1");
  connyline.Enqueue(slow_down);
  Harness harness(connyline.BaseUrl());
  auto limited = Create(harness.stub(), ValidCreate("rate-limited"));
  EXPECT_THAT(limited->status,
              HasErrorInfo(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "UPSTREAM_RATE_LIMITED"));
  // Connyline's Retry-After holds every request back (nothing is sent)...
  auto held = Create(harness.stub(), ValidCreate("rate-limited"));
  EXPECT_THAT(held->status, HasErrorInfo(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                         "UPSTREAM_RATE_LIMITED"));
  EXPECT_EQ(connyline.RequestCount(), 1);
  // ...and once it passed, the forgotten key sends again.
  absl::SleepFor(absl::Milliseconds(1100));
  auto repeat = Create(harness.stub(), ValidCreate("rate-limited"));
  EXPECT_TRUE(repeat->status.ok()) << repeat->status.error_message();
  EXPECT_EQ(connyline.RequestCount(), 2);
}

TEST(ExactlyOnceTest,
     ARepeatOfACreateResetMidBodyGetsTheSameErrorWithoutAPost) {
  FakeConnyline connyline;
  Reply reset = Documented(Rpc::kCreate);
  reset.action = Reply::Action::kResetMidBody;
  connyline.Enqueue(reset);
  Harness harness(connyline.BaseUrl());
  auto first = Create(harness.stub(), ValidCreate("reset-1"));
  auto repeat = Create(harness.stub(), ValidCreate("reset-1"));
  EXPECT_THAT(first->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                          "UPSTREAM_UNAVAILABLE"));
  // The outcome is unknown (it may exist at Connyline): the key keeps it,
  // so a blind retry cannot create a second campaign.
  EXPECT_THAT(repeat->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                           "UPSTREAM_UNAVAILABLE"));
  EXPECT_EQ(repeat->status.error_message(), first->status.error_message());
  EXPECT_EQ(connyline.RequestCount(), 1);
}

TEST(ExactlyOnceTest, AnUpstreamFailureIsRememberedAsTheFinalResult) {
  FakeConnyline connyline;
  connyline.Enqueue(JsonReply(500, R"({"message":"database error"})"));
  Harness harness(connyline.BaseUrl());
  auto failed = Create(harness.stub(), ValidCreate("failed-500"));
  auto repeat = Create(harness.stub(), ValidCreate("failed-500"));
  EXPECT_THAT(failed->status, HasErrorInfo(grpc::StatusCode::INTERNAL,
                                           "UPSTREAM_INTERNAL_ERROR"));
  EXPECT_THAT(repeat->status, HasErrorInfo(grpc::StatusCode::INTERNAL,
                                           "UPSTREAM_INTERNAL_ERROR"));
  EXPECT_EQ(connyline.RequestCount(), 1);
}

TEST(ExactlyOnceTest, ALeaderWhoseCallerCancelsStillCompletesItsPost) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Seconds(1)));
  Harness harness(connyline.BaseUrl());
  auto leader = Start(harness.stub(), Rpc::kCreate, absl::Seconds(10),
                      ValidCreate("cancelled-leader"));
  ASSERT_TRUE(connyline.WaitForRequests(1, absl::Seconds(5)));
  const absl::Time cancelled = absl::Now();
  leader->context.TryCancel();
  WaitAll({leader}, kHangBound);
  EXPECT_EQ(leader->status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_LT(leader->finished - cancelled, absl::Milliseconds(500));

  // The repeat learns the outcome of the POST that kept running (waiting
  // for it if it still runs) and sends nothing itself.
  auto repeat = Create(harness.stub(), ValidCreate("cancelled-leader"));
  ASSERT_TRUE(repeat->status.ok()) << repeat->status.error_message();
  EXPECT_EQ(repeat->created.campaign().list_id(), 123);
  EXPECT_EQ(connyline.RequestCount(), 1);
  // The fake finished answering before the repeat could get the answer;
  // an aborted POST would have counted at once.
  EXPECT_EQ(connyline.AbandonedRequestCount(), 0);
}

TEST(ExactlyOnceTest, AWaitingDuplicateWhoseCallerCancelsLeavesTheLeader) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Seconds(1)));
  Harness harness(connyline.BaseUrl());
  auto leader = Start(harness.stub(), Rpc::kCreate, absl::Seconds(10),
                      ValidCreate("cancelled-follower"));
  ASSERT_TRUE(connyline.WaitForRequests(1, absl::Seconds(5)));
  auto follower = Start(harness.stub(), Rpc::kCreate, absl::Seconds(10),
                        ValidCreate("cancelled-follower"));
  absl::SleepFor(absl::Milliseconds(100));  // let it join
  follower->context.TryCancel();
  WaitAll({follower, leader}, kHangBound);
  EXPECT_EQ(follower->status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(leader->status.ok()) << leader->status.error_message();
  EXPECT_EQ(connyline.RequestCount(), 1);
  EXPECT_EQ(connyline.AbandonedRequestCount(), 0);
}

// A caller's short deadline ends its call, not its keyed create: the POST
// runs on under the gateway-owned --keyed_upstream_timeout, and a repeat
// learns its real outcome instead of an unknown one.
TEST(ExactlyOnceTest, AKeyedCreateOutlivesItsCallersDeadlineAndIsSentOnce) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Seconds(2)));
  Harness harness(connyline.BaseUrl());
  auto first = Create(harness.stub(), ValidCreate("too-slow"), kShortDeadline);
  EXPECT_EQ(first->status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  auto repeat = Create(harness.stub(), ValidCreate("too-slow"));
  ASSERT_TRUE(repeat->status.ok()) << repeat->status.error_message();
  EXPECT_EQ(repeat->created.campaign().list_id(), 123);
  EXPECT_EQ(connyline.RequestCount(), 1);
  EXPECT_EQ(connyline.AbandonedRequestCount(), 0);
}

// The gateway-owned timeout bounds it: past it the POST is given up
// (Connyline may still act on it), and that unknown outcome is what the key
// remembers, so it is never sent twice.
TEST(ExactlyOnceTest, AKeyedCreatePastTheGatewaysTimeoutIsNeverSentTwice) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Seconds(3)));
  testing_util::HarnessOptions options;
  options.keyed_upstream_timeout = absl::Seconds(1);
  Harness harness(connyline.BaseUrl(), options);
  auto first = Create(harness.stub(), ValidCreate("too-slow"));
  EXPECT_THAT(first->status, HasErrorInfo(grpc::StatusCode::DEADLINE_EXCEEDED,
                                          "UPSTREAM_TIMEOUT"));
  EXPECT_LT(first->elapsed(), absl::Seconds(2.5));
  EXPECT_TRUE(connyline.WaitForAbandonedRequests(1, absl::Seconds(5)));
  auto repeat = Create(harness.stub(), ValidCreate("too-slow"));
  EXPECT_THAT(repeat->status, HasErrorInfo(grpc::StatusCode::DEADLINE_EXCEEDED,
                                           "UPSTREAM_TIMEOUT"));
  EXPECT_EQ(connyline.RequestCount(), 1);
}

// A caller without a deadline gets the gateway's default, also while it
// waits for a duplicate's leader that has a longer deadline of its own.
TEST(ExactlyOnceTest, AWaitingDuplicateKeepsItsOwnDefaultDeadline) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Seconds(3)));
  Harness harness(connyline.BaseUrl(),
                  WithDefaultTimeout(absl::Milliseconds(500)));
  auto leader = Start(harness.stub(), Rpc::kCreate, absl::Seconds(10),
                      ValidCreate("long-leader"));
  ASSERT_TRUE(connyline.WaitForRequests(1, absl::Seconds(5)));
  auto follower = Call(harness.stub(), Rpc::kCreate, absl::InfiniteDuration(),
                       ValidCreate("long-leader"));
  EXPECT_THAT(
      follower->status,
      HasErrorInfo(grpc::StatusCode::DEADLINE_EXCEEDED, "UPSTREAM_TIMEOUT"));
  EXPECT_LT(follower->elapsed(), absl::Seconds(2));
  WaitAll({leader}, kHangBound);
  EXPECT_TRUE(leader->status.ok()) << leader->status.error_message();
  EXPECT_EQ(connyline.RequestCount(), 1);
}

}  // namespace
}  // namespace campaign_gateway
