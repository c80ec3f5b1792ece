// Proven under faults: the whole server side in process (CurlTransport →
// InstrumentedTransport → UpstreamClient → Gateway → CampaignServiceImpl on
// 127.0.0.1:0) called by a real gRPC client, against a loopback Connyline
// stand-in that misbehaves on cue: slow, reset, endless, huge, HTML, garbage,
// 5xx storms, a refused port, TLS with an untrusted certificate. Each test
// asserts the exact outcome (code, ErrorInfo reason and metadata, what
// Connyline received) and that no call hangs: every call is bounded, and a
// call still running past its bound fails the test instead of hanging it.
// Exactly-once creation over the same wire is exactly_once_test.cc's.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/curl_transport.h"
#include "service/errors.h"
#include "service/gateway.h"
#include "service/grpc_service.h"
#include "service/idempotency_store.h"
#include "service/telemetry.h"
#include "service/timer.h"
#include "service/upstream_client.h"
#include "tests/support/fake_connyline.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/gateway_process.h"
#include "tests/support/grpc_callback_queue.h"
#include "tests/support/harness_calls.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_certs.h"
#include "tests/support/tls_fake_connyline.h"

namespace campaign_gateway {
namespace {

using ::campaigns::v1::CampaignService;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::Always;
using testing_util::AsyncCall;
using testing_util::Call;
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
using testing_util::RecordedRequest;
using testing_util::Reply;
using testing_util::Rpc;
using testing_util::RpcName;
using testing_util::Start;
using testing_util::TestPki;
using testing_util::TlsFakeConnyline;
using testing_util::ValidCreate;
using testing_util::WaitAll;
using testing_util::WithCaFile;
using testing_util::WithDefaultTimeout;
using testing_util::WithMaxInflight;
using testing_util::WithMaxResponseBytes;
using testing_util::WithUpstream;

constexpr const char* kToken = testing_util::kHarnessToken;

// See tests/support/grpc_callback_queue.h.
const ::testing::Environment* const kKeepGrpcCallbackQueue =
    ::testing::AddGlobalTestEnvironment(
        testing_util::NewKeepGrpcCallbackQueue());

// ---- 1. Slow answers beyond the deadline ----

class SlowAnswerTest : public ::testing::TestWithParam<Rpc> {};

TEST_P(SlowAnswerTest, TheCallersDeadlineEndsCallAndUpstreamRequest) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Seconds(30)));
  Harness harness(connyline.BaseUrl());
  auto call = Call(harness.stub(), GetParam(), kShortDeadline);
  // The caller's own deadline may fire before the gateway's answer arrives,
  // so only the code is certain here (the next test checks the details).
  EXPECT_EQ(call->status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GE(call->elapsed(), kShortDeadline - absl::Milliseconds(50));
  EXPECT_LT(call->elapsed(), absl::Seconds(5));
  // Given up upstream, not left running; and a timeout is never retried.
  EXPECT_TRUE(connyline.WaitForAbandonedRequests(1, absl::Seconds(5)));
  EXPECT_EQ(connyline.RequestCount(), 1);
}

TEST_P(SlowAnswerTest, TheDefaultTimeoutIsAnUpstreamTimeout) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Seconds(30)));
  Harness harness(connyline.BaseUrl(), WithDefaultTimeout(kShortDeadline));
  // No caller deadline: only the gateway's clock runs, so its answer (with
  // details) is what the caller gets.
  auto call = Call(harness.stub(), GetParam(), absl::InfiniteDuration());
  EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::DEADLINE_EXCEEDED,
                                         "UPSTREAM_TIMEOUT"));
  const Failure failure = Decode(call->status);
  EXPECT_EQ(failure.Meta("transport_error"), "timeout");
  EXPECT_EQ(failure.Meta("request_sent"), "<absent>");
  EXPECT_GE(call->elapsed(), kShortDeadline - absl::Milliseconds(50));
  EXPECT_LT(call->elapsed(), absl::Seconds(5));
  EXPECT_TRUE(connyline.WaitForAbandonedRequests(1, absl::Seconds(5)));
  EXPECT_EQ(connyline.RequestCount(), 1);
}

INSTANTIATE_TEST_SUITE_P(Rpcs, SlowAnswerTest,
                         ::testing::Values(Rpc::kListLists, Rpc::kCreate),
                         [](const auto& info) { return RpcName(info.param); });

// ---- 2. Connection reset mid-body ----

TEST(ResetMidBodyTest, ListListsIsRetriedAndSucceeds) {
  FakeConnyline connyline;
  Reply reset = Documented(Rpc::kListLists);
  reset.action = Reply::Action::kResetMidBody;
  connyline.Enqueue(reset);  // then the documented answer
  Harness harness(connyline.BaseUrl());
  auto call = Call(harness.stub(), Rpc::kListLists);
  ASSERT_TRUE(call->status.ok()) << call->status.error_message();
  ASSERT_EQ(call->lists.lists_size(), 2);
  EXPECT_EQ(call->lists.lists(0).list_id(), 123);
  EXPECT_EQ(connyline.RequestCount(), 2);
  EXPECT_EQ(harness.upstream().retries(), 1u);
}

TEST(ResetMidBodyTest, ACreateIsNeverResent) {
  FakeConnyline connyline;
  Reply reset = Documented(Rpc::kCreate);
  reset.action = Reply::Action::kResetMidBody;
  connyline.Enqueue(reset);
  Harness harness(connyline.BaseUrl());
  auto call = Call(harness.stub(), Rpc::kCreate);
  EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                         "UPSTREAM_UNAVAILABLE"));
  const Failure failure = Decode(call->status);
  EXPECT_EQ(failure.Meta("transport_error"), "connection_lost");
  // Connyline got the whole request: it may have created the campaign, so
  // the caller must not be told a retry is safe.
  EXPECT_EQ(failure.Meta("request_sent"), "<absent>");
  EXPECT_EQ(connyline.RequestCount(), 1);
  EXPECT_EQ(harness.upstream().retries(), 0u);
}

// ---- 3. A body that never ends ----

class NeverEndingBodyTest : public ::testing::TestWithParam<Rpc> {};

TEST_P(NeverEndingBodyTest, EndsAtTheCallersDeadline) {
  FakeConnyline connyline;
  Reply endless = Documented(GetParam());
  endless.action = Reply::Action::kNeverEnd;
  connyline.SetHandler(Always(endless));
  Harness harness(connyline.BaseUrl());
  auto call = Call(harness.stub(), GetParam(), kShortDeadline);
  EXPECT_EQ(call->status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GE(call->elapsed(), kShortDeadline - absl::Milliseconds(50));
  EXPECT_LT(call->elapsed(), absl::Seconds(5));
  EXPECT_TRUE(connyline.WaitForAbandonedRequests(1, absl::Seconds(5)));
  EXPECT_EQ(connyline.RequestCount(), 1);
}

TEST_P(NeverEndingBodyTest, EndsAtTheDefaultTimeoutAsUpstreamTimeout) {
  FakeConnyline connyline;
  Reply endless = Documented(GetParam());
  endless.action = Reply::Action::kNeverEnd;
  connyline.SetHandler(Always(endless));
  Harness harness(connyline.BaseUrl(), WithDefaultTimeout(kShortDeadline));
  auto call = Call(harness.stub(), GetParam(), absl::InfiniteDuration());
  EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::DEADLINE_EXCEEDED,
                                         "UPSTREAM_TIMEOUT"));
  EXPECT_EQ(Decode(call->status).Meta("transport_error"), "timeout");
  EXPECT_LT(call->elapsed(), absl::Seconds(5));
  EXPECT_TRUE(connyline.WaitForAbandonedRequests(1, absl::Seconds(5)));
  EXPECT_EQ(connyline.RequestCount(), 1);
}

INSTANTIATE_TEST_SUITE_P(Rpcs, NeverEndingBodyTest,
                         ::testing::Values(Rpc::kListLists, Rpc::kCreate),
                         [](const auto& info) { return RpcName(info.param); });

// ---- 4. A 10 MB body ----

constexpr size_t kTenMegabytes = 10 << 20;

struct HugeBodyCase {
  std::string name;
  Rpc rpc;
  bool chunked;  // no Content-Length: the size shows only while reading
};
void PrintTo(const HugeBodyCase& c, std::ostream* os) { *os << c.name; }

class HugeBodyTest : public ::testing::TestWithParam<HugeBodyCase> {};

TEST_P(HugeBodyTest, IsRefusedAsABadResponse) {
  const HugeBodyCase& c = GetParam();
  // The documented answer padded with 10 MB of JSON whitespace: valid JSON
  // that would parse, so only the size cap can refuse it.
  Reply huge = Documented(c.rpc);
  huge.body.insert(huge.body.size() - 1, kTenMegabytes, ' ');
  huge.chunked = c.chunked;
  FakeConnyline connyline;
  connyline.SetHandler(Always(huge));
  Harness harness(connyline.BaseUrl(), WithMaxResponseBytes(1 << 20));
  auto call = Call(harness.stub(), c.rpc);
  EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::INTERNAL,
                                         "UPSTREAM_BAD_RESPONSE"));
  EXPECT_EQ(Decode(call->status).Meta("transport_error"), "response_too_large");
  EXPECT_LT(call->elapsed(), absl::Seconds(5));
  // It would be as large again: never retried.
  EXPECT_EQ(connyline.RequestCount(), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, HugeBodyTest,
    ::testing::Values(
        HugeBodyCase{"ListListsWithContentLength", Rpc::kListLists, false},
        HugeBodyCase{"ListListsChunked", Rpc::kListLists, true},
        HugeBodyCase{"CreateWithContentLength", Rpc::kCreate, false},
        HugeBodyCase{"CreateChunked", Rpc::kCreate, true}),
    [](const auto& info) { return info.param.name; });

// ---- 5. HTML error pages from a proxy ----

// A proxy's error page: styles, a script, the message, and 300 KB of markup
// (below the 1 MiB response cap).
std::string ProxyErrorPage(int status, absl::string_view title) {
  std::string page = absl::StrCat(
      "<!DOCTYPE html>\n<html><head><title>", status, " ", title,
      "</title>\n<style>body{font-family:sans-serif;color:#333}"
      "h1{font-size:2em}</style>\n<script>window.onload=function(){"
      "document.title='x'<1;}</script></head>\n<body><h1>",
      status, " ", title,
      "</h1>\n<p>The server is temporarily unable to service your request "
      "&amp; will be back soon.</p>\n<hr><center>nginx</center>\n");
  while (page.size() < size_t{300} * 1024) {
    absl::StrAppend(&page, "<div class=\"pad\"><!-- padding --></div>\n");
  }
  absl::StrAppend(&page, "</body></html>\n");
  return page;
}

struct HtmlPageCase {
  std::string name;
  Rpc rpc;
  int status;
  std::string title;
  std::optional<std::string> retry_after;
  int requests;  // at Connyline
};
void PrintTo(const HtmlPageCase& c, std::ostream* os) { *os << c.name; }

class HtmlErrorPageTest : public ::testing::TestWithParam<HtmlPageCase> {};

TEST_P(HtmlErrorPageTest, IsUnavailableWithAShortCleanExcerpt) {
  const HtmlPageCase& c = GetParam();
  Reply page;
  page.status = c.status;
  page.headers = {{"Content-Type", "text/html"}, {"Server", "nginx"}};
  page.body = ProxyErrorPage(c.status, c.title);
  if (c.retry_after) page.headers.emplace_back("Retry-After", *c.retry_after);
  FakeConnyline connyline;
  connyline.SetHandler(Always(page));
  Harness harness(connyline.BaseUrl());
  auto call = Call(harness.stub(), c.rpc);

  EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                         "UPSTREAM_UNAVAILABLE"));
  const Failure failure = Decode(call->status);
  EXPECT_EQ(failure.Meta("http_status"), absl::StrCat(c.status));
  // The page's text, not its markup, script or styles, and only a bit of it.
  EXPECT_THAT(failure.message, HasSubstr(absl::StrCat(c.status, " ", c.title)));
  for (const char* markup :
       {"<", ">", "font-family", "window.onload", "&amp;", "padding"}) {
    EXPECT_THAT(failure.message, Not(HasSubstr(markup)));
  }
  const size_t excerpt = failure.message.find("response body: \"");
  EXPECT_NE(excerpt, std::string::npos) << failure.message;
  if (excerpt != std::string::npos) {
    EXPECT_LE(failure.message.size() - excerpt, 200u) << failure.message;
  }
  EXPECT_LE(failure.message.size(), 300u) << failure.message;
  // Retry-After is passed on, and a GET is not retried sooner than asked.
  EXPECT_EQ(failure.retry.has_value(), c.retry_after.has_value());
  if (failure.retry && c.retry_after) {
    EXPECT_EQ(absl::StrCat(failure.retry->retry_delay().seconds()),
              *c.retry_after);
  }
  EXPECT_EQ(connyline.RequestCount(), c.requests);
}

INSTANTIATE_TEST_SUITE_P(
    Pages, HtmlErrorPageTest,
    ::testing::Values(
        // A GET is retried (3 attempts); a create never is.
        HtmlPageCase{"ListLists502", Rpc::kListLists, 502, "Bad Gateway",
                     std::nullopt, 3},
        HtmlPageCase{"ListLists503", Rpc::kListLists, 503,
                     "Service Temporarily Unavailable", std::nullopt, 3},
        HtmlPageCase{"ListLists503RetryAfter", Rpc::kListLists, 503,
                     "Service Temporarily Unavailable", "120", 1},
        HtmlPageCase{"Create502", Rpc::kCreate, 502, "Bad Gateway",
                     std::nullopt, 1},
        HtmlPageCase{"Create503RetryAfter", Rpc::kCreate, 503,
                     "Service Temporarily Unavailable", "30", 1}),
    [](const auto& info) { return info.param.name; });

// An error page larger than the response cap is still an error page: the
// status decides (UNAVAILABLE for a 503), and only an excerpt is kept.
class HugeErrorPageTest : public ::testing::TestWithParam<bool /*chunked*/> {};

TEST_P(HugeErrorPageTest, IsStillMappedByItsStatus) {
  Reply page;
  page.status = 503;
  page.headers = {{"Content-Type", "text/html"}};
  page.body = ProxyErrorPage(503, "Service Temporarily Unavailable");
  page.body.insert(page.body.size() - 16, 2 << 20, ' ');  // 2 MB > 1 MiB cap
  page.chunked = GetParam();
  FakeConnyline connyline;
  connyline.SetHandler(Always(page));
  Harness harness(connyline.BaseUrl(), WithMaxResponseBytes(1 << 20));
  auto call = Call(harness.stub(), Rpc::kCreate);
  EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                         "UPSTREAM_UNAVAILABLE"));
  const Failure failure = Decode(call->status);
  EXPECT_EQ(failure.Meta("http_status"), "503");
  EXPECT_THAT(failure.message, HasSubstr("503 Service Temporarily"));
  EXPECT_EQ(connyline.RequestCount(), 1);
}

INSTANTIATE_TEST_SUITE_P(Framing, HugeErrorPageTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Chunked" : "ContentLength";
                         });

// ---- 6. Garbage on success ----

struct GarbageCase {
  std::string name;
  Rpc rpc;
  int status;
  std::string body;
};
void PrintTo(const GarbageCase& c, std::ostream* os) { *os << c.name; }

class GarbageTest : public ::testing::TestWithParam<GarbageCase> {};

TEST_P(GarbageTest, IsABadResponse) {
  const GarbageCase& c = GetParam();
  FakeConnyline connyline;
  connyline.SetHandler(Always(JsonReply(c.status, c.body)));
  Harness harness(connyline.BaseUrl());
  auto call = Call(harness.stub(), c.rpc);
  EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::INTERNAL,
                                         "UPSTREAM_BAD_RESPONSE"));
  const Failure failure = Decode(call->status);
  EXPECT_EQ(failure.Meta("http_status"), absl::StrCat(c.status));
  // Whatever came back is quoted short and printable.
  EXPECT_LE(failure.message.size(), 400u) << failure.message;
  for (char ch : failure.message) {
    EXPECT_FALSE(static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
        << "control byte in: " << failure.message;
  }
  // A well-formed HTTP answer says nothing about availability: not retried.
  EXPECT_EQ(connyline.RequestCount(), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, GarbageTest,
    ::testing::Values(
        GarbageCase{"ListsNotJson", Rpc::kListLists, 200, "garbage{]"},
        GarbageCase{"ListsTruncated", Rpc::kListLists, 200,
                    R"({"data":[{"list_id":123,"name":"2026 Cl)"},
        GarbageCase{"ListsArray", Rpc::kListLists, 200, "[1,2,3]"},
        GarbageCase{"ListsDataNotArray", Rpc::kListLists, 200,
                    R"({"data":"nope"})"},
        GarbageCase{"ListsMissingListId", Rpc::kListLists, 200,
                    R"({"data":[{"name":"x"}]})"},
        GarbageCase{"ListsEmpty", Rpc::kListLists, 200, ""},
        GarbageCase{"ListsBinary", Rpc::kListLists, 200,
                    std::string("\xff\xfe\x00\x01\x1b[31mboom\r\n", 14)},
        GarbageCase{"CreateNotJson", Rpc::kCreate, 201, "}}}{{{"},
        GarbageCase{"CreateHtml", Rpc::kCreate, 201,
                    "<html><body>Created!</body></html>"},
        GarbageCase{"CreateMissingData", Rpc::kCreate, 201,
                    R"({"success":true,"message":"ok"})"},
        GarbageCase{"CreateDataIncomplete", Rpc::kCreate, 201,
                    R"({"success":true,"data":{"campaign_name":"x"}})"},
        GarbageCase{"CreateBadStart", Rpc::kCreate, 200,
                    R"({"success":true,"data":{"campaign_name":"x",)"
                    R"("sender":"MYSHOP","list_id":123,"start":"soon",)"
                    R"("created_at":"2026-02-24 09:15:00"}})"}),
    [](const auto& info) { return info.param.name; });

// ---- 7. A 5xx storm: the circuit breaker ----

constexpr absl::Duration kOpenDuration = absl::Seconds(1);

UpstreamOptions BreakerOptions() {
  UpstreamOptions options;
  options.retry.max_attempts = 1;  // every call is one request
  options.breaker.failure_threshold = 3;
  options.breaker.open_duration = kOpenDuration;
  return options;
}

// Connyline in a 503 storm until `healthy`, and then slow by `delay`.
FakeConnyline::Handler Storm(const std::atomic<bool>& healthy,
                             absl::Duration delay = absl::ZeroDuration()) {
  return [&healthy, delay](const RecordedRequest& request) {
    if (!healthy.load()) {
      return JsonReply(503, R"({"success":false,"message":"maintenance"})");
    }
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = delay;
    return reply;
  };
}

// `status` is the open breaker's fast refusal.
void ExpectCircuitOpen(const AsyncCall& call) {
  EXPECT_THAT(call.status,
              HasErrorInfo(grpc::StatusCode::UNAVAILABLE, "CIRCUIT_OPEN"));
  const Failure failure = Decode(call.status);
  EXPECT_EQ(failure.Meta("request_sent"), "false");
  ASSERT_TRUE(failure.retry.has_value()) << failure.message;
  const absl::Duration delay =
      absl::Seconds(failure.retry->retry_delay().seconds()) +
      absl::Nanoseconds(failure.retry->retry_delay().nanos());
  EXPECT_GT(delay, absl::ZeroDuration());
  EXPECT_LE(delay, kOpenDuration);
  // At once: no upstream round trip (a sanity bound for loaded machines).
  EXPECT_LT(call.elapsed(), absl::Seconds(1));
}

TEST(CircuitBreakerOverTheWireTest, OpensInAStormProbesReopensAndRecovers) {
  std::atomic<bool> healthy{false};
  FakeConnyline connyline;
  connyline.SetHandler(Storm(healthy));
  Harness harness(connyline.BaseUrl(), WithUpstream(BreakerOptions()));

  // Three failures in a row open it.
  for (int i = 0; i < 3; ++i) {
    auto call = Call(harness.stub(), Rpc::kListLists);
    EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                           "UPSTREAM_UNAVAILABLE"));
    EXPECT_EQ(Decode(call->status).Meta("http_status"), "503");
  }
  const absl::Time opened = absl::Now();
  EXPECT_EQ(harness.upstream().breaker_state(), CircuitBreaker::State::kOpen);
  ASSERT_EQ(connyline.RequestCount(), 3);

  // Now everything fails fast and Connyline sees none of it, creates
  // included.
  for (Rpc rpc : {Rpc::kListLists, Rpc::kCreate, Rpc::kListLists}) {
    auto call = Call(harness.stub(), rpc, absl::Seconds(10),
                     ValidCreate("refused-by-breaker"));
    SCOPED_TRACE(RpcName(rpc));
    ExpectCircuitOpen(*call);
  }
  ASSERT_LT(absl::Now() - opened, kOpenDuration)
      << "too slow to observe the open state; the rest is meaningless";
  EXPECT_EQ(connyline.RequestCount(), 3);

  // After the open duration one probe goes through; it fails, so the
  // breaker opens again at once.
  absl::SleepFor(kOpenDuration - (absl::Now() - opened) +
                 absl::Milliseconds(50));
  auto probe = Call(harness.stub(), Rpc::kListLists);
  EXPECT_THAT(probe->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                          "UPSTREAM_UNAVAILABLE"));
  const absl::Time reopened = absl::Now();
  EXPECT_EQ(connyline.RequestCount(), 4);
  auto after_probe = Call(harness.stub(), Rpc::kListLists);
  ExpectCircuitOpen(*after_probe);
  EXPECT_EQ(connyline.RequestCount(), 4);

  // Connyline recovers: the next probe succeeds and closes the breaker.
  healthy = true;
  absl::SleepFor(kOpenDuration - (absl::Now() - reopened) +
                 absl::Milliseconds(50));
  auto good_probe = Call(harness.stub(), Rpc::kListLists);
  ASSERT_TRUE(good_probe->status.ok()) << good_probe->status.error_message();
  EXPECT_EQ(harness.upstream().breaker_state(), CircuitBreaker::State::kClosed);
  for (int i = 0; i < 3; ++i) {
    auto call = Call(harness.stub(), Rpc::kListLists);
    EXPECT_TRUE(call->status.ok()) << call->status.error_message();
  }
  // The create the breaker turned away sent nothing, so its key was not
  // kept: repeating it now creates the campaign.
  auto create = Create(harness.stub(), ValidCreate("refused-by-breaker"));
  EXPECT_TRUE(create->status.ok()) << create->status.error_message();
  EXPECT_EQ(connyline.RequestCount(), 4 + 1 + 3 + 1);
}

// A caller's own short deadline says nothing about Connyline: five keyed
// creates and five lists with a 50 ms deadline against a slow Connyline do
// not open the breaker for everybody.
TEST(CircuitBreakerOverTheWireTest, CallersShortDeadlinesDoNotOpenIt) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Milliseconds(300)));
  Harness harness(connyline.BaseUrl(), WithUpstream(BreakerOptions()));
  std::vector<std::shared_ptr<AsyncCall>> calls;
  for (int i = 0; i < 5; ++i) {
    calls.push_back(Start(harness.stub(), Rpc::kCreate, absl::Milliseconds(50),
                          ValidCreate(absl::StrCat("impatient-", i))));
    calls.push_back(
        Start(harness.stub(), Rpc::kListLists, absl::Milliseconds(50)));
  }
  WaitAll(calls, kHangBound);
  for (const auto& call : calls) {
    EXPECT_EQ(call->status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  // The keyed creates ran on to their end upstream.
  const absl::Time bound = absl::Now() + absl::Seconds(10);
  while (harness.upstream().inflight() > 0 && absl::Now() < bound) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(harness.upstream().inflight(), 0);
  EXPECT_GE(connyline.RequestCount(), 5);
  EXPECT_EQ(harness.upstream().breaker_state(), CircuitBreaker::State::kClosed);
  // An unkeyed call afterwards still reaches Connyline.
  connyline.SetHandler(FakeConnyline::DefaultConnyline);
  const int before = connyline.RequestCount();
  auto create = Create(harness.stub(), ValidCreate());
  EXPECT_TRUE(create->status.ok()) << create->status.error_message();
  EXPECT_EQ(connyline.RequestCount(), before + 1);
}

TEST(CircuitBreakerOverTheWireTest, HalfOpenLetsExactlyOneProbeThrough) {
  std::atomic<bool> healthy{false};
  FakeConnyline connyline;
  // Once healthy, slow enough that every other call arrives mid-probe.
  connyline.SetHandler(Storm(healthy, absl::Milliseconds(1500)));
  Harness harness(connyline.BaseUrl(), WithUpstream(BreakerOptions()));
  for (int i = 0; i < 3; ++i) Call(harness.stub(), Rpc::kListLists);
  ASSERT_EQ(harness.upstream().breaker_state(), CircuitBreaker::State::kOpen);
  healthy = true;
  absl::SleepFor(kOpenDuration + absl::Milliseconds(50));

  constexpr int kCalls = 6;
  auto probe = Start(harness.stub(), Rpc::kListLists);
  ASSERT_TRUE(connyline.WaitForRequests(4, absl::Seconds(5)));
  std::vector<std::shared_ptr<AsyncCall>> others;
  for (int i = 1; i < kCalls; ++i) {
    others.push_back(Start(harness.stub(), Rpc::kListLists));
  }
  WaitAll(others, kHangBound);
  for (const auto& call : others) ExpectCircuitOpen(*call);
  WaitAll({probe}, kHangBound);
  EXPECT_TRUE(probe->status.ok()) << probe->status.error_message();
  EXPECT_EQ(connyline.RequestCount(), 3 + 1);
  // Closed again: everyone gets through.
  auto after = Call(harness.stub(), Rpc::kListLists);
  EXPECT_TRUE(after->status.ok()) << after->status.error_message();
  EXPECT_EQ(connyline.RequestCount(), 3 + 2);
}

// ---- 8. The retry budget ----

TEST(RetryBudgetOverTheWireTest, RetriesCannotMultiplyTheLoadOfAStorm) {
  constexpr int kCalls = 100;
  constexpr double kRatio = 0.1;
  constexpr double kMaxTokens = 5;
  FakeConnyline connyline;
  connyline.SetHandler(
      Always(JsonReply(503, R"({"success":false,"message":"overloaded"})")));
  UpstreamOptions options;
  options.retry.max_attempts = 5;
  options.retry.initial_backoff = absl::Milliseconds(1);
  options.retry.max_backoff = absl::Milliseconds(5);
  options.retry_budget_ratio = kRatio;
  options.retry_budget_max_tokens = kMaxTokens;
  // Isolate the budget from the breaker.
  options.breaker.failure_threshold = 1 << 30;
  Harness harness(connyline.BaseUrl(), WithUpstream(options));
  std::vector<std::shared_ptr<AsyncCall>> calls;
  calls.reserve(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(Start(harness.stub(), Rpc::kListLists));
  }
  WaitAll(calls, kHangBound);
  for (const auto& call : calls) {
    EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                           "UPSTREAM_UNAVAILABLE"));
  }
  const int requests = connyline.RequestCount();
  // Without a budget: 5 attempts each, 500 requests.
  EXPECT_LE(requests, kCalls * (1 + kRatio) + kMaxTokens);
  // The budget was spent, not unused: at least the initial tokens.
  EXPECT_GE(requests, kCalls + kMaxTokens);
  EXPECT_EQ(static_cast<uint64_t>(requests),
            kCalls + harness.upstream().retries());
}

// ---- 9. A refused port ----

class RefusedPortTest : public ::testing::TestWithParam<Rpc> {};

TEST_P(RefusedPortTest, IsUnavailableAndSaysNothingWasSent) {
  const ClosedPort closed;
  Harness harness(closed.Url());
  auto call = Call(harness.stub(), GetParam());
  EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                         "UPSTREAM_UNAVAILABLE"));
  const Failure failure = Decode(call->status);
  EXPECT_EQ(failure.Meta("transport_error"), "connect_failed");
  EXPECT_EQ(failure.Meta("request_sent"), "false");
  // Both retried (nothing was sent, so even a create may be), still refused.
  EXPECT_EQ(harness.upstream().retries(), 2u);
  EXPECT_LT(call->elapsed(), absl::Seconds(5));
}

INSTANTIATE_TEST_SUITE_P(Rpcs, RefusedPortTest,
                         ::testing::Values(Rpc::kListLists, Rpc::kCreate),
                         [](const auto& info) { return RpcName(info.param); });

// ---- 10. Max in flight ----

TEST(MaxInflightTest, CallsBeyondTheLimitAreRefusedAtOnce) {
  constexpr int kLimit = 4;
  constexpr int kCalls = 10;
  constexpr absl::Duration kDelay = absl::Seconds(2);
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(kDelay));
  Harness harness(connyline.BaseUrl(), WithMaxInflight(kLimit));
  std::vector<std::shared_ptr<AsyncCall>> calls;
  calls.reserve(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(Start(harness.stub(), Rpc::kListLists));
  }
  WaitAll(calls, kHangBound);
  int ok = 0;
  absl::Time first_ok = absl::InfiniteFuture();
  absl::Time last_refusal = absl::InfinitePast();
  for (const auto& call : calls) {
    if (call->status.ok()) {
      ++ok;
      EXPECT_GE(call->elapsed(), kDelay - absl::Milliseconds(50));
      first_ok = std::min(first_ok, call->finished);
      continue;
    }
    EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                           "OVERLOADED"));
    const Failure failure = Decode(call->status);
    EXPECT_EQ(failure.Meta("request_sent"), "false");
    EXPECT_TRUE(failure.retry.has_value());
    EXPECT_LT(call->elapsed(), kDelay / 2);
    last_refusal = std::max(last_refusal, call->finished);
  }
  EXPECT_EQ(ok, kLimit);
  // Refused at once, not queued behind the slow ones.
  EXPECT_LT(last_refusal, first_ok);
  EXPECT_EQ(connyline.RequestCount(), kLimit);
  EXPECT_EQ(connyline.MaxConcurrentRequests(), kLimit);
  // The slot is given back just after the answer is handed on.
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (harness.upstream().inflight() != 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(harness.upstream().inflight(), 0);
}

// ---- 11. TLS ----

class TlsTest : public ::testing::TestWithParam<Rpc> {
 protected:
  std::unique_ptr<TestPki> pki_ = TestPki::Create();
  TlsFakeConnyline connyline_{pki_->server_cert_pem(), pki_->server_key_pem()};

  void ExpectRefused(const std::string& ca_file) {
    Harness harness(connyline_.BaseUrl(), WithCaFile(ca_file));
    auto call = Call(harness.stub(), GetParam());
    EXPECT_THAT(call->status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
                                           "UPSTREAM_UNAVAILABLE"));
    const Failure failure = Decode(call->status);
    EXPECT_EQ(failure.Meta("transport_error"), "tls");
    EXPECT_EQ(failure.Meta("request_sent"), "false");
    // Not a byte of the request went over the untrusted connection, and a
    // certificate problem is not retried: one refused handshake.
    const int attempts = 1 + static_cast<int>(harness.upstream().retries());
    EXPECT_EQ(attempts, 1);
    EXPECT_EQ(connyline_.ConnectionCount(), attempts);
    EXPECT_TRUE(connyline_.WaitForHandshakeFailures(attempts, kHangBound));
    EXPECT_EQ(connyline_.RequestCount(), 0);
  }
};

TEST_P(TlsTest, AnUntrustedCertificateIsRefused) {
  ExpectRefused("");  // the system's CAs
}

TEST_P(TlsTest, ACertificateFromAnotherCaIsRefused) {
  std::unique_ptr<TestPki> other = TestPki::Create();
  ExpectRefused(other->ca_file());
}

TEST_P(TlsTest, TheConfiguredCaIsTrusted) {
  Harness harness(connyline_.BaseUrl(), WithCaFile(pki_->ca_file()));
  auto call = Call(harness.stub(), GetParam());
  ASSERT_TRUE(call->status.ok()) << call->status.error_message();
  if (GetParam() == Rpc::kListLists) {
    ASSERT_EQ(call->lists.lists_size(), 2);
    EXPECT_EQ(call->lists.lists(1).name(), "Newsletter");
  } else {
    EXPECT_EQ(call->created.campaign().start(),
              testing_util::FutureStart() + ":00");
  }
  ASSERT_EQ(connyline_.RequestCount(), 1);
  EXPECT_EQ(connyline_.Requests()[0].Header("authorization"),
            absl::StrCat("Bearer ", kToken));
  EXPECT_EQ(connyline_.HandshakeFailureCount(), 0);
}

INSTANTIATE_TEST_SUITE_P(Rpcs, TlsTest,
                         ::testing::Values(Rpc::kListLists, Rpc::kCreate),
                         [](const auto& info) { return RpcName(info.param); });

// ---- Shutdown of the real binary with a create still running upstream ----

#ifdef GATEWAY_BINARY
// A keyed create outlives its RPC (its caller cancelled); SIGTERM comes
// while Connyline still works on it. The binary waits for the POST (so the
// key's outcome is not lost mid-flight) and exits cleanly: under ASan this
// also proves no callback runs into torn-down objects.
TEST(ShutdownTest, WaitsForALeaderCreateThatOutlivedItsRpc) {
  FakeConnyline connyline;
  connyline.SetHandler(Delayed(absl::Milliseconds(1500)));
  testing_util::GatewayProcess gateway(
      GATEWAY_BINARY,
      {absl::StrCat("--upstream_url=", connyline.BaseUrl()),
       "--account_code=acme", "--shutdown_drain=0s", "--shutdown_timeout=10s"},
      {{"CONNYLINE_TOKEN", kToken}});
  ASSERT_TRUE(gateway.Started()) << gateway.process().AllOutput();
  auto channel = grpc::CreateChannel(gateway.address(),
                                     grpc::InsecureChannelCredentials());
  auto stub = CampaignService::NewStub(channel);
  auto leader = Start(*stub, Rpc::kCreate, absl::Seconds(10),
                      ValidCreate("leader-at-shutdown"));
  ASSERT_TRUE(connyline.WaitForRequests(1, absl::Seconds(5)));
  leader->context.TryCancel();
  WaitAll({leader}, kHangBound);
  EXPECT_EQ(leader->status.error_code(), grpc::StatusCode::CANCELLED);
  gateway.process().Signal(SIGTERM);
  const std::optional<int> exit_code =
      gateway.process().Wait(absl::Seconds(20));
  ASSERT_TRUE(exit_code.has_value()) << "hung at shutdown";
  EXPECT_EQ(*exit_code, 0) << gateway.process().AllOutput();
  EXPECT_EQ(connyline.RequestCount(), 1);
  EXPECT_EQ(connyline.AbandonedRequestCount(), 0);
  EXPECT_THAT(gateway.process().AllOutput(), HasSubstr(R"("msg":"stopped")"));
}
#endif

}  // namespace
}  // namespace campaign_gateway
