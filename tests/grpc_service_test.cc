// Integration: a real gRPC client over a loopback socket calls the service,
// which calls a real HTTP server on loopback playing Connyline through the
// real libcurl transport. Checks what Connyline receives, byte for byte, and
// what the caller gets back, details included.
#include "service/grpc_service.h"

#include <atomic>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
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
using testing_util::HarnessOptions;

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

// Bytes that are no CreateSmsCampaignRequest (a truncated varint): the
// service's own parse answers them like any other invalid request, counted.
TEST_F(GrpcServiceTest, AnUnparseableRequestIsAnInvalidRequest) {
  grpc::GenericStub generic(harness_.channel());
  grpc::Slice slice(std::string("\x08\xff", 2));
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  auto context = Context();
  absl::Notification done;
  grpc::Status status;
  generic.UnaryCall(
      context.get(), "/campaigns.v1.CampaignService/CreateSmsCampaign",
      grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
        status = std::move(s);
        done.Notify();
      });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(15)));
  EXPECT_THAT(status, HasErrorInfo(grpc::StatusCode::INVALID_ARGUMENT,
                                   "INVALID_REQUEST"));
  EXPECT_EQ(Decode(status).Meta("request_sent"), "false");
  EXPECT_EQ(status.error_message(),
            "the request is not a valid campaigns.v1.CreateSmsCampaignRequest "
            "protobuf");
  EXPECT_EQ(connyline_.RequestCount(), 0);
  EXPECT_THAT(
      harness_.telemetry().Render(),
      HasSubstr(R"(campaign_gateway_rpcs_total{code="INVALID_ARGUMENT",)"
                R"(method="CreateSmsCampaign"} 1)"));
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
  // One client connection carries them all: allow that many streams on it
  // (the default, 100, would queue the rest in the client).
  HarnessOptions options;
  options.max_concurrent_streams = kCalls;
  Harness harness(connyline_.BaseUrl(), options);
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
    harness.stub().async()->ListLists(&call->context, &call->request,
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

// ---- validate_only (AIP-163) and the cost preview ----

TEST_F(GrpcServiceTest, ValidateOnlySendsNothingStoresNoKeyAndPreviews) {
  CreateSmsCampaignRequest request = ValidCreate("validate-only-key");
  request.set_validate_only(true);
  CreateSmsCampaignResponse response;
  grpc::Status status =
      harness_.stub().CreateSmsCampaign(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.message(), "Validation passed; nothing was sent.");
  const auto& campaign = response.campaign();
  EXPECT_EQ(campaign.campaign_name(), request.campaign_name());
  EXPECT_EQ(campaign.sender(), request.sender());
  EXPECT_EQ(campaign.list_id(), request.list_id());
  EXPECT_EQ(campaign.start(), request.start());  // as it would be sent
  EXPECT_EQ(campaign.time_zone(), "UTC");        // the harness's zone
  absl::Time instant;                            // 10:30 UTC
  ASSERT_TRUE(absl::ParseTime("%Y-%m-%d %H:%M", request.start(),
                              absl::UTCTimeZone(), &instant, nullptr));
  EXPECT_EQ(campaign.start_time().seconds(), absl::ToUnixSeconds(instant));
  EXPECT_TRUE(campaign.created_at().empty());
  EXPECT_FALSE(campaign.has_create_time());
  ASSERT_TRUE(response.has_preview());
  EXPECT_EQ(response.preview().encoding(),
            campaigns::v1::SmsEncoding::SMS_ENCODING_GSM_7);
  EXPECT_GT(response.preview().units(), 0);
  EXPECT_EQ(response.preview().segments(), 1);
  EXPECT_EQ(connyline_.RequestCount(), 0);
  EXPECT_EQ(harness_.store().size(), 0u);

  // The key was not taken: a real create with it and other content works.
  request.set_validate_only(false);
  request.set_campaign_name("Another campaign");
  status =
      harness_.stub().CreateSmsCampaign(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

TEST_F(GrpcServiceTest, ValidateOnlyValidatesInFull) {
  CreateSmsCampaignRequest request = ValidCreate();
  request.set_validate_only(true);
  request.set_sender("");
  CreateSmsCampaignResponse response;
  grpc::Status status =
      harness_.stub().CreateSmsCampaign(Context().get(), request, &response);
  EXPECT_THAT(status, HasErrorInfo(grpc::StatusCode::INVALID_ARGUMENT,
                                   "INVALID_REQUEST"));
  EXPECT_EQ(Decode(status).Meta("request_sent"), "false");
  EXPECT_EQ(connyline_.RequestCount(), 0);
}

TEST_F(GrpcServiceTest, EveryCreateAnswerCarriesThePreviewAndTimeZone) {
  CreateSmsCampaignRequest request = ValidCreate("preview-key");
  request.set_sms_text("Καλή χρονιά! {shortlink1}");
  CreateSmsCampaignResponse first;
  ASSERT_TRUE(
      harness_.stub().CreateSmsCampaign(Context().get(), request, &first).ok());
  EXPECT_EQ(first.campaign().time_zone(), "UTC");
  EXPECT_EQ(first.preview().encoding(),
            campaigns::v1::SmsEncoding::SMS_ENCODING_UCS_2);
  EXPECT_EQ(first.preview().units(), 13 + 23);
  // A replay too.
  CreateSmsCampaignResponse replay;
  ASSERT_TRUE(harness_.stub()
                  .CreateSmsCampaign(Context().get(), request, &replay)
                  .ok());
  EXPECT_EQ(replay.preview().units(), first.preview().units());
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

// ---- request_sent=false on every refusal the gateway makes itself ----

struct RefusalCase {
  std::string name;
  std::function<HarnessOptions()> options;
  // Calls made first (e.g. to open the breaker); may return nothing useful.
  std::function<void(Harness&, FakeConnyline&)> setup;
  // The refused call; sets `sent_before` to Connyline's request count just
  // before it.
  std::function<grpc::Status(Harness&, FakeConnyline&, int& sent_before)>
      refused;
  std::string reason;
};

void PrintTo(const RefusalCase& c, std::ostream* os) { *os << c.name; }

grpc::Status Lists(Harness& harness, const std::string& account = "") {
  ListListsRequest request;
  request.set_account_code(account);
  ListListsResponse response;
  return harness.stub().ListLists(Context().get(), request, &response);
}

grpc::Status Create(Harness& harness, const CreateSmsCampaignRequest& request) {
  CreateSmsCampaignResponse response;
  return harness.stub().CreateSmsCampaign(Context().get(), request, &response);
}

HarnessOptions NoRetries() {
  HarnessOptions options;
  options.upstream.retry.max_attempts = 1;
  return options;
}

class RefusalTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(RefusalTest, SaysNothingWasSent) {
  const RefusalCase& c = GetParam();
  FakeConnyline connyline;
  ClosedPort closed;
  HarnessOptions options = c.options ? c.options() : HarnessOptions{};
  Harness harness(connyline.BaseUrl(), std::move(options));
  if (c.name == "ConnectionRefused") harness.RouteTo(closed.Url());
  if (c.setup) c.setup(harness, connyline);
  int sent_before = -1;
  const grpc::Status status = c.refused(harness, connyline, sent_before);
  ASSERT_EQ(Decode(status).info.reason(), c.reason) << status.error_message();
  ASSERT_EQ(Decode(status).error_infos, 1);
  EXPECT_EQ(Decode(status).Meta("request_sent"), "false");
  EXPECT_EQ(connyline.RequestCount(), sent_before);
}

auto ListsRefused(const std::string& account = "") {
  return [account](Harness& h, FakeConnyline& f, int& sent_before) {
    sent_before = f.RequestCount();
    return Lists(h, account);
  };
}

auto CreateRefused(
    const std::function<void(CreateSmsCampaignRequest&)>& mutate) {
  return [mutate](Harness& h, FakeConnyline& f, int& sent_before) {
    CreateSmsCampaignRequest request = ValidCreate("refusal-key");
    mutate(request);
    sent_before = f.RequestCount();
    return Create(h, request);
  };
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, RefusalTest,
    ::testing::Values(
        RefusalCase{"InvalidRequest", nullptr, nullptr,
                    CreateRefused([](auto& r) { r.set_sender(""); }),
                    "INVALID_REQUEST"},
        RefusalCase{"AccountNotAllowedOnLists", nullptr, nullptr,
                    ListsRefused("other"), "ACCOUNT_NOT_ALLOWED"},
        RefusalCase{"AccountNotAllowedOnCreate", nullptr, nullptr,
                    CreateRefused([](auto& r) { r.set_account_code("other"); }),
                    "ACCOUNT_NOT_ALLOWED"},
        RefusalCase{
            "IdempotencyKeyReused", nullptr,
            [](Harness& h, FakeConnyline&) {
              EXPECT_TRUE(Create(h, ValidCreate("refusal-key")).ok());
            },
            CreateRefused([](auto& r) { r.set_campaign_name("Other"); }),
            "IDEMPOTENCY_KEY_REUSED"},
        RefusalCase{"Overloaded",
                    [] {
                      HarnessOptions options;
                      options.upstream.max_inflight = 0;
                      return options;
                    },
                    nullptr, ListsRefused(), "OVERLOADED"},
        RefusalCase{"CircuitOpen",
                    [] {
                      HarnessOptions options = NoRetries();
                      options.upstream.breaker.failure_threshold = 1;
                      options.upstream.breaker.open_duration =
                          absl::Seconds(60);
                      return options;
                    },
                    [](Harness& h, FakeConnyline& f) {
                      f.Enqueue(JsonReply(500, "{}"));
                      EXPECT_FALSE(Lists(h).ok());
                    },
                    ListsRefused(), "CIRCUIT_OPEN"},
        RefusalCase{"UpstreamCoolDown", nullptr,
                    [](Harness& h, FakeConnyline& f) {
                      Reply reply =
                          JsonReply(429, R"({"message":"Slow down"})");
                      reply.headers.emplace_back("Retry-After", "30");
                      f.Enqueue(reply);
                      EXPECT_FALSE(Lists(h).ok());
                    },
                    ListsRefused(), "UPSTREAM_RATE_LIMITED"},
        RefusalCase{"RateLimited",
                    [] {
                      HarnessOptions options;
                      options.upstream_rate_limit = 1;
                      return options;
                    },
                    nullptr,
                    // One request per second: within a few calls one is
                    // refused, whatever the window's phase.
                    [](Harness& h, FakeConnyline& f, int& sent_before) {
                      grpc::Status status;
                      for (int i = 0; i < 5 && status.ok(); ++i) {
                        sent_before = f.RequestCount();
                        status = Lists(h);
                      }
                      return status;
                    },
                    "RATE_LIMITED"},
        RefusalCase{"ConnectionRefused", NoRetries, nullptr,
                    CreateRefused([](auto&) {}), "UPSTREAM_UNAVAILABLE"}),
    [](const auto& info) { return info.param.name; });

// ---- The retry service config clients load ----

std::string ServiceConfigJson() {
  std::ifstream file(SERVICE_CONFIG_JSON);
  EXPECT_TRUE(file) << SERVICE_CONFIG_JSON;
  return {std::istreambuf_iterator<char>(file),
          std::istreambuf_iterator<char>()};
}

// The gateway's own ListLists retries are off, so only the client's retry
// can explain a second upstream request.
class ServiceConfigTest : public ::testing::Test {
 protected:
  std::unique_ptr<campaigns::v1::CampaignService::Stub> Client(
      bool with_config) {
    grpc::ChannelArguments args;
    if (with_config) args.SetServiceConfigJSON(ServiceConfigJson());
    return campaigns::v1::CampaignService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", harness_.server().port()),
        grpc::InsecureChannelCredentials(), args));
  }

  FakeConnyline connyline_;
  Harness harness_{connyline_.BaseUrl(), NoRetries()};
};

TEST_F(ServiceConfigTest, ListListsIsRetriedTransparentlyOnUnavailable) {
  connyline_.Enqueue(JsonReply(503, "{}"));
  ListListsResponse response;
  const grpc::Status status =
      Client(true)->ListLists(Context().get(), {}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.lists(0).list_id(), 123);
  EXPECT_EQ(connyline_.RequestCount(), 2);
}

// The control: without the config the same failure reaches the caller, so
// the test above saw the config at work (a config gRPC could not parse
// would leave the channel without retries, or failing every call).
TEST_F(ServiceConfigTest, WithoutTheConfigTheFailureReachesTheCaller) {
  connyline_.Enqueue(JsonReply(503, "{}"));
  ListListsResponse response;
  const grpc::Status status =
      Client(false)->ListLists(Context().get(), {}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(connyline_.RequestCount(), 1);
}

// An error's metadata travels in the trailers, so that the answer is
// Trailers-Only (the condition for a client's retryPolicy to apply).
TEST_F(GrpcServiceTest, AnErrorReturnsItsRequestIdInTheTrailers) {
  auto context = Context();
  context->AddMetadata("x-request-id", "req-err");
  ListListsRequest request;
  request.set_account_code("other");
  ListListsResponse response;
  ASSERT_FALSE(
      harness_.stub().ListLists(context.get(), request, &response).ok());
  EXPECT_EQ(context->GetServerInitialMetadata().count("x-request-id"), 0u);
  auto it = context->GetServerTrailingMetadata().find("x-request-id");
  ASSERT_NE(it, context->GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "req-err");
}

// Why the config may retry creates on UNAVAILABLE only with request_id set:
// a 503 may have been a create Connyline processed; its key replays the
// outcome to every retry instead of sending it again.
TEST_F(ServiceConfigTest, RetriesOfAKeyedCreateNeverSendItTwice) {
  connyline_.Enqueue(JsonReply(503, "{}"));
  CreateSmsCampaignResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  const grpc::Status status = Client(true)->CreateSmsCampaign(
      &context, ValidCreate("service-config-key"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(connyline_.RequestCount(), 1);
  // The answer the caller got came from a retry: a replay of the first (in
  // the trailers, as an error's metadata).
  const auto& metadata = context.GetServerTrailingMetadata();
  const auto it = metadata.find("idempotent-replayed");
  ASSERT_NE(it, metadata.end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "true");
}
}  // namespace
}  // namespace campaign_gateway
