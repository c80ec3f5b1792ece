// Integration: a real gRPC client over a loopback socket calls the service,
// which calls a real HTTP server on loopback playing Connyline through the
// real libcurl transport. Checks what Connyline receives, byte for byte, and
// what the caller gets back, details included.
#include "service/grpc_service.h"

#include <atomic>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/curl_transport.h"
#include "service/gateway.h"
#include "service/telemetry.h"
#include "tests/support/fake_connyline.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/grpc_callback_queue.h"
#include "tests/support/harness_calls.h"
#include "tests/support/status_matchers.h"

namespace campaign_gateway {
namespace {

// See tests/support/grpc_callback_queue.h.
const ::testing::Environment* const kKeepGrpcCallbackQueue =
    ::testing::AddGlobalTestEnvironment(
        testing_util::NewKeepGrpcCallbackQueue());

using ::campaigns::v1::CreateSmsCampaignRequest;
using ::campaigns::v1::CreateSmsCampaignResponse;
using ::campaigns::v1::ListListsRequest;
using ::campaigns::v1::ListListsResponse;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::ClosedPort;
using testing_util::Decode;
using testing_util::Failure;
using testing_util::FakeConnyline;
using testing_util::HasErrorInfo;
using testing_util::JsonReply;
using testing_util::Reply;
using testing_util::ValidCreate;
using testing_util::WithDefaultTimeout;

constexpr const char* kToken = testing_util::kHarnessToken;

using testing_util::Harness;

std::unique_ptr<grpc::ClientContext> Context(
    absl::Duration timeout = absl::Seconds(10)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

class GrpcServiceTest : public ::testing::Test {
 protected:
  FakeConnyline connyline_;
  Harness harness_{connyline_.BaseUrl()};
};

TEST_F(GrpcServiceTest, ListListsSendsTheDocumentedRequest) {
  auto context = Context();
  context->AddMetadata("x-request-id", "req-42");
  ListListsResponse response;
  grpc::Status status = harness_.stub().ListLists(context.get(), {}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(response.lists_size(), 1);
  EXPECT_EQ(response.lists(0).list_id(), 123);
  EXPECT_EQ(response.lists(0).name(), "2026 Clients");

  ASSERT_EQ(connyline_.RequestCount(), 1);
  const auto request = connyline_.Requests()[0];
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.target, "/api/v1/acme/lists/get-all/");
  EXPECT_EQ(request.Header("authorization"), absl::StrCat("Bearer ", kToken));
  EXPECT_EQ(request.Header("accept"), "application/json");
  EXPECT_EQ(request.Header("user-agent"), "campaign-gateway/0.1.0");
  EXPECT_EQ(request.Header("x-request-id"), "req-42");
  EXPECT_TRUE(request.body.empty());
  // The request id comes back to the caller.
  auto it = context->GetServerInitialMetadata().find("x-request-id");
  ASSERT_NE(it, context->GetServerInitialMetadata().end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "req-42");
}

TEST_F(GrpcServiceTest, ACallWithoutRequestIdGetsANewOne) {
  auto context = Context();
  ListListsResponse response;
  ASSERT_TRUE(harness_.stub().ListLists(context.get(), {}, &response).ok());
  auto it = context->GetServerInitialMetadata().find("x-request-id");
  ASSERT_NE(it, context->GetServerInitialMetadata().end());
  const std::string id(it->second.data(), it->second.size());
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(connyline_.Requests()[0].Header("x-request-id"), id);
}

TEST_F(GrpcServiceTest, CreateSendsExactlyTheDocumentedBodyByteExact) {
  // Quotes, backslashes, newlines and characters beyond ASCII.
  CreateSmsCampaignRequest request;
  request.set_campaign_name("Φεβρουάριος \"Promo\" 🎉");
  request.set_sender("MYSHOP");
  request.set_list_id(123);
  request.set_sms_text("Γεια σου!\nDon't miss it: {shortlink1} \\ «ok» 👍");
  request.set_start(testing_util::FutureStart());
  request.set_shortlink1("https://www.example.com/promo?a=1&b=2");
  CreateSmsCampaignResponse response;
  grpc::Status status =
      harness_.stub().CreateSmsCampaign(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.campaign().start(), request.start() + ":00");
  EXPECT_EQ(response.campaign().campaign_name(), request.campaign_name());

  ASSERT_EQ(connyline_.RequestCount(), 1);
  const auto received = connyline_.Requests()[0];
  EXPECT_EQ(received.method, "POST");
  EXPECT_EQ(received.target, "/api/v1/acme/campaigns/sms/create");
  EXPECT_EQ(received.Header("content-type"), "application/json");
  EXPECT_EQ(received.Header("accept"), "application/json");
  nlohmann::json body = nlohmann::json::parse(received.body);
  ASSERT_EQ(body.size(), 6u);
  EXPECT_EQ(body["campaign_name"], request.campaign_name());
  EXPECT_EQ(body["sender"], "MYSHOP");
  ASSERT_TRUE(body["list_id"].is_number_integer());
  EXPECT_EQ(body["list_id"], 123);
  EXPECT_EQ(body["sms_text"], request.sms_text());
  EXPECT_EQ(body["start"], request.start());
  EXPECT_EQ(body["shortlink1"], request.shortlink1());
  // UTF-8 on the wire, not \u escapes.
  EXPECT_THAT(received.body, HasSubstr("Γεια σου!"));
  EXPECT_THAT(received.body, HasSubstr("🎉"));
}

TEST_F(GrpcServiceTest, AnInvalidRequestNeverReachesConnyline) {
  CreateSmsCampaignRequest request = ValidCreate();
  request.set_start("2026-02-25T10:30");
  CreateSmsCampaignResponse response;
  grpc::Status status =
      harness_.stub().CreateSmsCampaign(Context().get(), request, &response);
  EXPECT_THAT(status, HasErrorInfo(grpc::StatusCode::INVALID_ARGUMENT,
                                   "INVALID_REQUEST"));
  EXPECT_EQ(connyline_.RequestCount(), 0);
}

// Representative rows of the error table, through the whole stack and the
// wire (status_mapping_test covers every row of the pure mapping).
struct WireCase {
  std::string name;
  Reply reply;
  grpc::StatusCode code;
  std::string reason;
  std::string http_status;
  std::string message_part;
};

void PrintTo(const WireCase& c, std::ostream* os) { *os << c.name; }

class WireMappingTest : public ::testing::TestWithParam<WireCase> {};

TEST_P(WireMappingTest, MapsTheUpstreamAnswer) {
  FakeConnyline connyline;
  connyline.SetHandler([](const auto&) { return GetParam().reply; });
  Harness harness(connyline.BaseUrl());
  CreateSmsCampaignResponse response;
  grpc::Status status = harness.stub().CreateSmsCampaign(
      Context().get(), ValidCreate(), &response);
  const WireCase& c = GetParam();
  ASSERT_THAT(status, HasErrorInfo(c.code, c.reason));
  const Failure failure = Decode(status);
  EXPECT_EQ(failure.Meta("http_status"), c.http_status);
  EXPECT_THAT(failure.message, HasSubstr(c.message_part));
  EXPECT_THAT(failure.message, Not(HasSubstr(kToken)));
}

INSTANTIATE_TEST_SUITE_P(
    Table, WireMappingTest,
    ::testing::Values(
        WireCase{
            "NoTokenFound",
            JsonReply(400, R"({"success":false,"message":"NO Token Found."})"),
            grpc::StatusCode::UNAUTHENTICATED, "UPSTREAM_UNAUTHENTICATED",
            "400", "NO Token Found."},
        WireCase{
            "MissingData",
            JsonReply(
                400,
                R"({"success":false,"message":"Necessary data is missing."})"),
            grpc::StatusCode::INVALID_ARGUMENT, "UPSTREAM_REJECTED_REQUEST",
            "400", "Necessary data is missing."},
        WireCase{
            "SuccessFalseOn200",
            JsonReply(200,
                      R"({"success":false,"message":"Sender not allowed"})"),
            // Treated as a 400; the metadata keeps the real status.
            grpc::StatusCode::INVALID_ARGUMENT, "UPSTREAM_REJECTED_REQUEST",
            "200", "Sender not allowed"},
        WireCase{"Forbidden", JsonReply(403, R"({"message":"nope"})"),
                 grpc::StatusCode::PERMISSION_DENIED,
                 "UPSTREAM_PERMISSION_DENIED", "403", "nope"},
        WireCase{"Conflict", JsonReply(409, "{}"),
                 grpc::StatusCode::ALREADY_EXISTS, "UPSTREAM_CONFLICT", "409",
                 "409"},
        WireCase{"InternalError", Reply{.status = 500, .body = "boom"},
                 grpc::StatusCode::INTERNAL, "UPSTREAM_INTERNAL_ERROR", "500",
                 "boom"},
        WireCase{"BadGatewayHtml",
                 Reply{.status = 502,
                       .headers = {{"Content-Type", "text/html"}},
                       .body = "<html><body><h1>502 Bad Gateway</h1></body>"
                               "</html>"},
                 grpc::StatusCode::UNAVAILABLE, "UPSTREAM_UNAVAILABLE", "502",
                 "502 Bad Gateway"},
        WireCase{"GatewayTimeout", Reply{.status = 504},
                 grpc::StatusCode::DEADLINE_EXCEEDED, "UPSTREAM_TIMEOUT", "504",
                 "504"},
        WireCase{"HtmlOn201",
                 Reply{.status = 201, .body = "<html>hello</html>"},
                 grpc::StatusCode::INTERNAL, "UPSTREAM_BAD_RESPONSE", "201",
                 "hello"}),
    [](const ::testing::TestParamInfo<WireCase>& info) {
      return info.param.name;
    });

TEST_F(GrpcServiceTest, RateLimitCarriesRetryInfo) {
  connyline_.Enqueue(Reply{.status = 429,
                           .headers = {{"Retry-After", "30"}},
                           .body = R"({"message":"slow down"})"});
  ListListsResponse response;
  grpc::Status status =
      harness_.stub().ListLists(Context().get(), {}, &response);
  ASSERT_THAT(status, HasErrorInfo(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "UPSTREAM_RATE_LIMITED"));
  const Failure failure = Decode(status);
  ASSERT_TRUE(failure.retry.has_value());
  EXPECT_EQ(failure.retry->retry_delay().seconds(), 30);
}

TEST_F(GrpcServiceTest, TheCallersDeadlineBoundsTheUpstreamRequest) {
  connyline_.SetHandler([](const auto& request) {
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = absl::Seconds(20);
    return reply;
  });
  ListListsResponse response;
  grpc::Status status = harness_.stub().ListLists(
      Context(absl::Milliseconds(300)).get(), {}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The upstream request was given up, not left running.
  EXPECT_TRUE(connyline_.WaitForAbandonedRequests(1, absl::Seconds(5)));
}

TEST_F(GrpcServiceTest, ACallWithoutDeadlineGetsTheDefault) {
  FakeConnyline slow;
  slow.SetHandler([](const auto& request) {
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = absl::Seconds(20);
    return reply;
  });
  Harness harness(slow.BaseUrl(), WithDefaultTimeout(absl::Milliseconds(300)));
  grpc::ClientContext context;  // no deadline
  ListListsResponse response;
  grpc::Status status = harness.stub().ListLists(&context, {}, &response);
  EXPECT_THAT(status, HasErrorInfo(grpc::StatusCode::DEADLINE_EXCEEDED,
                                   "UPSTREAM_TIMEOUT"));
}

TEST_F(GrpcServiceTest, CancellingTheCallAbortsTheUpstreamRequest) {
  connyline_.SetHandler([](const auto& request) {
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = absl::Seconds(20);
    return reply;
  });
  grpc::ClientContext context;
  ListListsRequest request;
  ListListsResponse response;
  absl::Notification done;
  grpc::Status status;
  harness_.stub().async()->ListLists(&context, &request, &response,
                                     [&](grpc::Status s) {
                                       status = std::move(s);
                                       done.Notify();
                                     });
  ASSERT_TRUE(connyline_.WaitForRequests(1, absl::Seconds(5)));
  context.TryCancel();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(connyline_.WaitForAbandonedRequests(1, absl::Seconds(5)));
}

TEST_F(GrpcServiceTest, ManySlowCallsRunConcurrentlyNotQueued) {
  constexpr int kCalls = 200;
  connyline_.SetHandler([](const auto& request) {
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = absl::Milliseconds(200);
    return reply;
  });
  struct Call {
    grpc::ClientContext context;
    ListListsRequest request;
    ListListsResponse response;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Call>> calls;
  std::atomic<int> remaining{kCalls};
  absl::Notification all_done;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(std::make_unique<Call>());
    Call* call = calls.back().get();
    call->context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    harness_.stub().async()->ListLists(&call->context, &call->request,
                                       &call->response,
                                       [&, call](grpc::Status s) {
                                         call->status = std::move(s);
                                         if (--remaining == 0) {
                                           all_done.Notify();
                                         }
                                       });
  }
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  const absl::Duration elapsed = absl::Now() - start;
  for (const auto& call : calls) {
    EXPECT_TRUE(call->status.ok()) << call->status.error_message();
  }
  // All 200 were at Connyline at the same time: nothing queued behind a
  // small pool of threads.
  EXPECT_EQ(connyline_.MaxConcurrentRequests(), kCalls);
  // A generous sanity bound (the real figures come from bench/).
  EXPECT_LT(elapsed, absl::Seconds(5));
}

TEST(GrpcServiceFailureTest, ARefusedConnectionIsUnavailable) {
  const ClosedPort closed;
  Harness harness(closed.Url());
  ListListsResponse response;
  grpc::Status status =
      harness.stub().ListLists(Context().get(), {}, &response);
  ASSERT_THAT(status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                   "UPSTREAM_UNAVAILABLE"));
  EXPECT_EQ(Decode(status).Meta("transport_error"), "connect_failed");
}

TEST_F(GrpcServiceTest, ADroppedConnectionIsUnavailable) {
  connyline_.Enqueue(Reply{.action = Reply::Action::kCloseWithoutAnswer});
  CreateSmsCampaignResponse response;
  grpc::Status status = harness_.stub().CreateSmsCampaign(
      Context().get(), ValidCreate(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  // The create may have reached Connyline: it is not sent again.
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

TEST_F(GrpcServiceTest, MetricsCountRpcsAndUpstreamRequests) {
  ListListsResponse response;
  ASSERT_TRUE(harness_.stub().ListLists(Context().get(), {}, &response).ok());
  connyline_.Enqueue(JsonReply(404, "{}"));
  harness_.stub().ListLists(Context().get(), {}, &response);
  const std::string metrics = harness_.telemetry().Render();
  // prometheus-cpp writes labels in name order.
  for (
      const char* expected : {
          R"(campaign_gateway_rpcs_total{code="OK",method="ListLists"} 1)",
          R"(campaign_gateway_rpcs_total{code="NOT_FOUND",method="ListLists"} 1)",
          R"(campaign_gateway_upstream_requests_total{endpoint="lists/get-all",status="200"} 1)",
          R"(campaign_gateway_upstream_requests_total{endpoint="lists/get-all",status="404"} 1)",
          R"(campaign_gateway_rpc_duration_seconds_count{method="ListLists"} 2)",
          R"(campaign_gateway_rpcs_in_flight{method="ListLists"} 0)",
      }) {
    EXPECT_THAT(metrics, HasSubstr(expected));
  }
}

}  // namespace
}  // namespace campaign_gateway
