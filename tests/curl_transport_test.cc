#include "service/curl_transport.h"

#include <curl/curl.h>

#include <atomic>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/fake_connyline.h"
#include "tests/support/h2_server.h"
#include "tests/support/nginx_upstream.h"
#include "tests/support/test_certs.h"
#include "tests/support/tls_fake_connyline.h"

namespace campaign_gateway {
namespace {

using ::campaign_gateway::testing_util::ClosedPort;
using ::campaign_gateway::testing_util::FakeConnyline;
using ::campaign_gateway::testing_util::H2Server;
using ::campaign_gateway::testing_util::NginxUpstream;
using ::campaign_gateway::testing_util::RecordedRequest;
using ::campaign_gateway::testing_util::Reply;
using ::campaign_gateway::testing_util::TestPki;
using ::campaign_gateway::testing_util::TlsFakeConnyline;
using Kind = TransportError::Kind;
using Json = nlohmann::json;

// 56 characters, like a real Connyline token.
const std::string kToken(56, 'T');
constexpr absl::Duration kWait = absl::Seconds(30);

std::string KindName(Kind kind) {
  switch (kind) {
    case Kind::kConnectFailed:
      return "kConnectFailed";
    case Kind::kNameResolution:
      return "kNameResolution";
    case Kind::kTls:
      return "kTls";
    case Kind::kTimeout:
      return "kTimeout";
    case Kind::kConnectionLost:
      return "kConnectionLost";
    case Kind::kResponseTooLarge:
      return "kResponseTooLarge";
    case Kind::kCancelled:
      return "kCancelled";
    case Kind::kOther:
      return "kOther";
  }
  return "?";
}

std::string Describe(const HttpResult& result) {
  if (const auto* response = std::get_if<HttpResponse>(&result)) {
    return absl::StrCat("HTTP ", response->status, " with ",
                        response->body.size(), " body bytes");
  }
  const auto& error = std::get<TransportError>(result);
  return absl::StrCat(
      KindName(error.kind), " (", error.detail,
      "), may have been sent: ", error.request_may_have_been_sent);
}

::testing::AssertionResult IsError(const HttpResult& result, Kind kind) {
  const auto* error = std::get_if<TransportError>(&result);
  if (error != nullptr && error->kind == kind) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "expected " << KindName(kind) << ", got " << Describe(result);
}

bool WasSent(const HttpResult& result) {
  return std::get<TransportError>(result).request_may_have_been_sent;
}

CurlTransportOptions OneShard() {
  CurlTransportOptions options;
  options.shards = 1;
  return options;
}

Reply Delayed(absl::Duration delay) {
  Reply reply;
  reply.delay = delay;
  return reply;
}

// Answers every request as Connyline would, after `delay`.
void AnswerLikeConnylineAfter(FakeConnyline& server, absl::Duration delay) {
  server.SetHandler([delay](const RecordedRequest& request) {
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = delay;
    return reply;
  });
}

Reply Misbehave(Reply::Action action, std::string body = "") {
  Reply reply;
  reply.action = action;
  reply.body = std::move(body);
  return reply;
}

// Receives one call's callback and remembers how often and where it ran.
class Outcome {
 public:
  HttpTransport::Callback Callback() {
    return [this](HttpResult result) {
      thread_ = std::this_thread::get_id();
      if (calls_.fetch_add(1) == 0) {
        result_ = std::move(result);
        done_.Notify();
      }
    };
  }

  // The result; fails the test (and returns a kOther) if none comes.
  const HttpResult& Wait() {
    if (!done_.WaitForNotificationWithTimeout(kWait)) {
      ADD_FAILURE() << "no callback within " << kWait;
      result_ = TransportError{Kind::kOther, "test: no callback"};
    }
    return *result_;
  }
  bool HasRun() const { return done_.HasBeenNotified(); }
  int calls() const { return calls_.load(); }
  std::thread::id thread() const { return thread_; }

 private:
  absl::Notification done_;
  std::atomic<int> calls_{0};
  std::optional<HttpResult> result_;
  std::thread::id thread_;
};

class CurlTransportTest : public ::testing::Test {
 protected:
  void UseTransport(const CurlTransportOptions& options) {
    transport_ = std::make_unique<CurlTransport>(options);
  }

  HttpRequest Get(absl::string_view path) {
    return {"GET",
            server_.BaseUrl() + std::string(path),
            {{"Authorization", "Bearer " + kToken},
             {"Accept", "application/json"},
             {"User-Agent", "campaign-gateway/0.1.0"}},
            ""};
  }

  HttpRequest Post(absl::string_view path, std::string body) {
    HttpRequest request = Get(path);
    request.method = "POST";
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = std::move(body);
    return request;
  }

  HttpResult Fetch(HttpRequest request,
                   absl::Time deadline = absl::Now() + absl::Seconds(10)) {
    Outcome outcome;
    transport_->Start(std::move(request), deadline, outcome.Callback());
    return outcome.Wait();
  }

  FakeConnyline server_;
  // Declared after server_ so it goes first, while the server still answers.
  std::unique_ptr<CurlTransport> transport_ =
      std::make_unique<CurlTransport>(CurlTransportOptions{});
};

TEST_F(CurlTransportTest, GetSendsExactlyWhatWasAskedAndReturnsTheAnswer) {
  const HttpResult result = Fetch(Get("/api/v1/acme/lists/get-all/?page=1"));

  const auto* response = std::get_if<HttpResponse>(&result);
  ASSERT_NE(response, nullptr) << Describe(result);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->Header("content-type"), "application/json");
  const Json body = Json::parse(response->body);
  EXPECT_EQ(body["data"][0]["list_id"], 123);
  EXPECT_EQ(body["data"][0]["name"], "2026 Clients");

  const std::vector<RecordedRequest> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  const RecordedRequest& sent = requests[0];
  EXPECT_EQ(sent.method, "GET");
  EXPECT_EQ(sent.target, "/api/v1/acme/lists/get-all/?page=1");
  EXPECT_EQ(sent.Header("authorization"), "Bearer " + kToken);
  EXPECT_EQ(sent.Header("accept"), "application/json");
  EXPECT_EQ(sent.Header("user-agent"), "campaign-gateway/0.1.0");
  EXPECT_EQ(sent.Header("content-type"), std::nullopt);
  EXPECT_EQ(sent.Header("expect"), std::nullopt);
  EXPECT_EQ(sent.body, "");
}

TEST_F(CurlTransportTest, PostSendsTheBodyByteExact) {
  // Real newlines between fields; Greek, emoji, quotes and escapes inside.
  const std::string body =
      "{\"campaign_name\":\"Καλοκαίρι 2026 \xF0\x9F\x8E\x89\",\n"
      "\"sender\":\"MYSHOP\",\n\"list_id\":123,\n"
      "\"sms_text\":\"Γεια σου! \\\"Quoted\\\" 'single' \\\\ \xF0\x9F\x98\x80"
      "\\nline two {shortlink1}\",\r\n"
      "\"start\":\"2026-02-25 "
      "10:30\",\"shortlink1\":\"https://e.x/p?a=1&b=2\"}";
  const HttpResult result =
      Fetch(Post("/api/v1/acme/campaigns/sms/create", body));

  const auto* response = std::get_if<HttpResponse>(&result);
  ASSERT_NE(response, nullptr) << Describe(result);
  EXPECT_EQ(response->status, 201);
  const Json answer = Json::parse(response->body);
  EXPECT_EQ(answer["success"], true);
  EXPECT_EQ(answer["data"]["campaign_name"], "Καλοκαίρι 2026 \xF0\x9F\x8E\x89");
  EXPECT_EQ(answer["data"]["start"], "2026-02-25 10:30:00");

  const std::vector<RecordedRequest> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/api/v1/acme/campaigns/sms/create");
  EXPECT_EQ(requests[0].body, body);
  EXPECT_EQ(requests[0].Header("content-type"), "application/json");
  EXPECT_EQ(requests[0].Header("authorization"), "Bearer " + kToken);
  EXPECT_EQ(requests[0].Header("accept"), "application/json");
  EXPECT_EQ(requests[0].Header("user-agent"), "campaign-gateway/0.1.0");
}

TEST_F(CurlTransportTest, LargePostIsSentWithoutWaitingForContinue) {
  std::string body(3 << 20, 'a');
  body.back() = 'z';
  const HttpResult result = Fetch(Post("/upload", body));

  ASSERT_TRUE(std::holds_alternative<HttpResponse>(result)) << Describe(result);
  const std::vector<RecordedRequest> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].Header("expect"), std::nullopt);
  EXPECT_EQ(requests[0].body, body);
}

TEST_F(CurlTransportTest, OtherMethodsAreSentAsGiven) {
  HttpRequest request = Post("/things/7", "{\"x\":1}");
  request.method = "PUT";
  const HttpResult result = Fetch(std::move(request));

  ASSERT_TRUE(std::holds_alternative<HttpResponse>(result)) << Describe(result);
  const std::vector<RecordedRequest> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].body, "{\"x\":1}");
}

TEST_F(CurlTransportTest, ReturnsOnlyTheFinalAnswersHeadersLowerCased) {
  for (int interim : {100, 103}) {
    SCOPED_TRACE(interim);
    Reply reply;
    reply.status = 404;
    reply.headers = {{"X-Final-Header", "  padded value  "},
                     {"Retry-After", "7"}};
    reply.body = "<html>not here</html>";
    reply.interim_status = interim;
    reply.interim_headers = {{"X-Interim", "1"},
                             {"Link", "</a.css>; rel=preload"}};
    server_.Enqueue(reply);

    const HttpResult result = Fetch(Get("/missing"));

    const auto* response = std::get_if<HttpResponse>(&result);
    ASSERT_NE(response, nullptr) << Describe(result);
    EXPECT_EQ(response->status, 404);
    EXPECT_EQ(response->body, "<html>not here</html>");
    EXPECT_EQ(response->Header("x-final-header"), "padded value");
    EXPECT_EQ(response->Header("retry-after"), "7");
    EXPECT_EQ(response->Header("content-length"), "21");
    EXPECT_EQ(response->Header("x-interim"), std::nullopt);
    EXPECT_EQ(response->Header("link"), std::nullopt);
    EXPECT_EQ(response->headers.size(), 3u);
  }
}

TEST_F(CurlTransportTest, SequentialRequestsReuseOneConnection) {
  UseTransport(OneShard());
  for (int i = 0; i < 20; ++i) {
    const HttpResult result = Fetch(Get("/api/v1/acme/lists/get-all/"));
    ASSERT_TRUE(std::holds_alternative<HttpResponse>(result))
        << Describe(result);
  }
  EXPECT_EQ(server_.RequestCount(), 20);
  EXPECT_EQ(server_.ConnectionCount(), 1);
}

TEST_F(CurlTransportTest, ServesManyConcurrentCallsAtOnce) {
  constexpr int kCalls = 200;
  // Nobody is answered before all calls have arrived: a transport that queued
  // them behind a few connections would never reach kCalls in flight.
  server_.SetHandler([this](const RecordedRequest& request) {
    server_.WaitForRequests(kCalls, absl::Seconds(20));
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = absl::Milliseconds(200);
    return reply;
  });
  std::vector<Outcome> outcomes(kCalls);
  const absl::Time start = absl::Now();
  for (Outcome& outcome : outcomes) {
    transport_->Start(Get("/api/v1/acme/lists/get-all/"),
                      absl::Now() + absl::Seconds(30), outcome.Callback());
  }
  for (Outcome& outcome : outcomes) {
    const HttpResult& result = outcome.Wait();
    const auto* response = std::get_if<HttpResponse>(&result);
    ASSERT_NE(response, nullptr) << Describe(result);
    EXPECT_EQ(response->status, 200);
  }
  EXPECT_EQ(server_.MaxConcurrentRequests(), kCalls);
  // Sanity bound only: serially this would take 40 s.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(CurlTransportTest, PastDeadlineTimesOutWithoutTouchingTheNetwork) {
  const HttpResult result = Fetch(Get("/api/v1/acme/lists/get-all/"),
                                  absl::Now() - absl::Milliseconds(1));

  EXPECT_TRUE(IsError(result, Kind::kTimeout));
  EXPECT_FALSE(WasSent(result));
  EXPECT_EQ(server_.ConnectionCount(), 0);
  EXPECT_EQ(server_.RequestCount(), 0);
}

TEST_F(CurlTransportTest, AnswerSlowerThanTheDeadlineTimesOut) {
  server_.Enqueue(Delayed(absl::Seconds(20)));
  const absl::Time start = absl::Now();

  const HttpResult result = Fetch(Get("/api/v1/acme/lists/get-all/"),
                                  start + absl::Milliseconds(300));

  EXPECT_TRUE(IsError(result, Kind::kTimeout));
  EXPECT_TRUE(WasSent(result));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(290));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_TRUE(server_.WaitForAbandonedRequests(1, kWait));
}

TEST_F(CurlTransportTest, CancelAbortsTheCallAndClosesItsConnection) {
  constexpr int kCalls = 4;  // Spread over both shards.
  server_.SetHandler([](const RecordedRequest& request) {
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = absl::Seconds(60);
    return reply;
  });
  std::vector<Outcome> outcomes(kCalls);
  std::vector<uint64_t> ids;
  ids.reserve(outcomes.size());
  for (Outcome& outcome : outcomes) {
    ids.push_back(transport_->Start(Get("/api/v1/acme/lists/get-all/"),
                                    absl::Now() + absl::Seconds(60),
                                    outcome.Callback()));
  }
  ASSERT_TRUE(server_.WaitForRequests(kCalls, kWait));

  for (int i = 0; i < kCalls; ++i) {
    transport_->Cancel(ids[i]);
    const HttpResult& result = outcomes[i].Wait();
    EXPECT_TRUE(IsError(result, Kind::kCancelled));
    EXPECT_TRUE(WasSent(result));
  }
  EXPECT_TRUE(server_.WaitForAbandonedRequests(kCalls, kWait));

  // Cancelling again, or an id never issued, changes nothing.
  transport_->Cancel(ids[0]);
  transport_->Cancel(987654321);
  transport_.reset();
  for (const Outcome& outcome : outcomes) EXPECT_EQ(outcome.calls(), 1);
}

TEST_F(CurlTransportTest, CancelRightAfterStartCancels) {
  // Slow enough that the cancel always comes first (libcurl 8 may finish a
  // loopback call within the loop turn that started it).
  server_.Enqueue(Delayed(absl::Seconds(5)));
  Outcome outcome;
  const uint64_t id =
      transport_->Start(Get("/api/v1/acme/lists/get-all/"),
                        absl::Now() + absl::Seconds(10), outcome.Callback());
  transport_->Cancel(id);

  EXPECT_TRUE(IsError(outcome.Wait(), Kind::kCancelled));
  transport_.reset();
  EXPECT_EQ(outcome.calls(), 1);
}

TEST_F(CurlTransportTest, RefusedConnectionIsConnectFailedAndNotSent) {
  const ClosedPort closed;
  HttpRequest request = Get("");
  request.url = absl::StrCat(closed.Url(), "/api/v1/acme/lists/get-all/");
  const HttpResult result = Fetch(std::move(request));

  EXPECT_TRUE(IsError(result, Kind::kConnectFailed));
  EXPECT_FALSE(WasSent(result));
}

TEST_F(CurlTransportTest, UnknownHostIsNameResolutionAndNotSent) {
  HttpRequest request = Get("");
  request.url = "http://does-not-exist.invalid/api/v1/acme/lists/get-all/";
  const HttpResult result = Fetch(std::move(request));

  EXPECT_TRUE(IsError(result, Kind::kNameResolution));
  EXPECT_FALSE(WasSent(result));
}

TEST_F(CurlTransportTest, TlsFailureIsTlsAndNotSent) {
  // The fake speaks plain HTTP, so the handshake fails.
  HttpRequest request = Get("/api/v1/acme/lists/get-all/");
  request.url = absl::StrCat("https://127.0.0.1:", server_.Port(),
                             "/api/v1/acme/lists/get-all/");
  const HttpResult result = Fetch(request);
  EXPECT_TRUE(IsError(result, Kind::kTls));
  EXPECT_FALSE(WasSent(result));

  CurlTransportOptions options;
  options.ca_file = "/nonexistent/ca.pem";
  UseTransport(options);
  const HttpResult no_ca = Fetch(std::move(request));
  EXPECT_TRUE(IsError(no_ca, Kind::kTls));
  EXPECT_FALSE(WasSent(no_ca));
  EXPECT_EQ(server_.RequestCount(), 0);
}

TEST_F(CurlTransportTest, ConnectionClosedWithoutAnswerIsConnectionLost) {
  server_.Enqueue(Misbehave(Reply::Action::kCloseWithoutAnswer));
  const HttpResult result = Fetch(Get("/api/v1/acme/lists/get-all/"));

  EXPECT_TRUE(IsError(result, Kind::kConnectionLost));
  EXPECT_TRUE(WasSent(result));
  EXPECT_EQ(std::get<TransportError>(result).detail.find(kToken),
            std::string::npos);
}

TEST_F(CurlTransportTest, ConnectionResetMidBodyIsConnectionLost) {
  server_.Enqueue(
      Misbehave(Reply::Action::kResetMidBody, std::string(4096, 'b')));
  const HttpResult result = Fetch(Get("/api/v1/acme/lists/get-all/"));

  EXPECT_TRUE(IsError(result, Kind::kConnectionLost));
  EXPECT_TRUE(WasSent(result));
}

TEST_F(CurlTransportTest, PostIsNotResentWhenAReusedConnectionDies) {
  UseTransport(OneShard());
  ASSERT_TRUE(std::holds_alternative<HttpResponse>(
      Fetch(Get("/api/v1/acme/lists/get-all/"))));
  server_.Enqueue(Misbehave(Reply::Action::kCloseWithoutAnswer));

  const HttpResult result = Fetch(Post("/api/v1/acme/campaigns/sms/create",
                                       "{\"campaign_name\":\"once\"}"));

  EXPECT_TRUE(IsError(result, Kind::kConnectionLost));
  EXPECT_TRUE(WasSent(result));
  int posts = 0;
  for (const RecordedRequest& request : server_.Requests()) {
    posts += request.method == "POST";
  }
  EXPECT_EQ(posts, 1);
}

TEST_F(CurlTransportTest, GetIsRetriedWhenAReusedConnectionDies) {
  UseTransport(OneShard());
  ASSERT_TRUE(std::holds_alternative<HttpResponse>(
      Fetch(Get("/api/v1/acme/lists/get-all/"))));
  server_.Enqueue(Misbehave(Reply::Action::kCloseWithoutAnswer));

  const HttpResult result = Fetch(Get("/api/v1/acme/lists/get-all/"));

  const auto* response = std::get_if<HttpResponse>(&result);
  ASSERT_NE(response, nullptr) << Describe(result);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(server_.RequestCount(), 3);
}

TEST_F(CurlTransportTest, AnswerThatNeverEndsTimesOutAtTheDeadline) {
  server_.Enqueue(Misbehave(Reply::Action::kNeverEnd, std::string(4096, 'n')));
  const absl::Time start = absl::Now();

  const HttpResult result = Fetch(Get("/api/v1/acme/lists/get-all/"),
                                  start + absl::Milliseconds(500));

  EXPECT_TRUE(IsError(result, Kind::kTimeout));
  EXPECT_TRUE(WasSent(result));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(490));
  EXPECT_TRUE(server_.WaitForAbandonedRequests(1, kWait));
}

TEST_F(CurlTransportTest, AnswerAboveTheCapIsResponseTooLarge) {
  constexpr size_t kCap = 1 << 20;
  CurlTransportOptions options;
  options.max_response_bytes = kCap;
  UseTransport(options);
  struct Case {
    size_t size;
    bool chunked;  // Without a length, only the write callback can tell.
    bool fits;
  };
  for (const Case& test :
       {Case{10 << 20, false, false}, Case{10 << 20, true, false},
        Case{kCap + 1, true, false}, Case{kCap, true, true},
        Case{kCap, false, true}}) {
    SCOPED_TRACE(absl::StrCat(test.size, test.chunked ? " chunked" : ""));
    Reply reply;
    reply.body = std::string(test.size, 'L');
    reply.chunked = test.chunked;
    server_.Enqueue(reply);
    const HttpResult result = Fetch(Get("/big"));
    if (test.fits) {
      const auto* response = std::get_if<HttpResponse>(&result);
      ASSERT_NE(response, nullptr) << Describe(result);
      EXPECT_EQ(response->body, std::string(test.size, 'L'));
    } else {
      EXPECT_TRUE(IsError(result, Kind::kResponseTooLarge));
      EXPECT_TRUE(WasSent(result));
    }
  }
}

TEST_F(CurlTransportTest, DestructionCancelsEveryCallExactlyOnce) {
  server_.SetHandler([](const RecordedRequest& request) {
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = absl::Seconds(60);
    return reply;
  });
  // In flight at the server, then just queued, then started from a callback
  // while the transport shuts down.
  std::vector<Outcome> in_flight(10);
  std::vector<Outcome> queued(5);
  Outcome restarted;
  Outcome restarter;
  for (Outcome& outcome : in_flight) {
    transport_->Start(Get("/api/v1/acme/lists/get-all/"),
                      absl::Now() + absl::Seconds(60), outcome.Callback());
  }
  // unique_ptr::reset() clears transport_ before deleting, hence the copy.
  CurlTransport* transport = transport_.get();
  transport_->Start(
      Get("/api/v1/acme/lists/get-all/"), absl::Now() + absl::Seconds(60),
      [&, done = restarter.Callback()](HttpResult result) mutable {
        transport->Start(Get("/api/v1/acme/lists/get-all/"),
                         absl::Now() + absl::Seconds(60), restarted.Callback());
        std::move(done)(std::move(result));
      });
  ASSERT_TRUE(server_.WaitForRequests(11, kWait));
  for (Outcome& outcome : queued) {
    transport_->Start(Get("/api/v1/acme/lists/get-all/"),
                      absl::Now() + absl::Seconds(60), outcome.Callback());
  }
  const absl::Time start = absl::Now();

  transport_.reset();

  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  std::vector<Outcome*> all = {&restarted, &restarter};
  for (Outcome& outcome : in_flight) all.push_back(&outcome);
  for (Outcome& outcome : queued) all.push_back(&outcome);
  for (Outcome* outcome : all) {
    ASSERT_TRUE(outcome->HasRun());
    EXPECT_EQ(outcome->calls(), 1);
    EXPECT_TRUE(IsError(outcome->Wait(), Kind::kCancelled));
  }
}

TEST_F(CurlTransportTest, CallbackNeverRunsOnTheCallersThread) {
  Outcome expired;
  Outcome refused;
  Outcome answered;
  transport_->Start(Get("/"), absl::Now() - absl::Seconds(1),
                    expired.Callback());
  const ClosedPort closed;
  HttpRequest request = Get("");
  request.url = closed.Url();
  transport_->Start(std::move(request), absl::Now() + absl::Seconds(10),
                    refused.Callback());
  transport_->Start(Get("/api/v1/acme/lists/get-all/"),
                    absl::Now() + absl::Seconds(10), answered.Callback());

  for (Outcome* outcome : {&expired, &refused, &answered}) {
    outcome->Wait();
    EXPECT_NE(outcome->thread(), std::this_thread::get_id());
  }
}

TEST_F(CurlTransportTest, CallbackMayStartAndCancelCalls) {
  server_.Enqueue(Delayed(absl::Seconds(60)));
  Outcome slow;
  const uint64_t slow_id = transport_->Start(
      Get("/slow"), absl::Now() + absl::Seconds(60), slow.Callback());
  ASSERT_TRUE(server_.WaitForRequests(1, kWait));

  Outcome second;
  Outcome first;
  transport_->Start(
      Get("/api/v1/acme/lists/get-all/"), absl::Now() + absl::Seconds(10),
      [&, done = first.Callback()](HttpResult result) mutable {
        transport_->Cancel(slow_id);
        transport_->Start(Get("/api/v1/acme/lists/get-all/"),
                          absl::Now() + absl::Seconds(10), second.Callback());
        std::move(done)(std::move(result));
      });

  EXPECT_TRUE(std::holds_alternative<HttpResponse>(first.Wait()));
  EXPECT_TRUE(IsError(slow.Wait(), Kind::kCancelled));
  const HttpResult& result = second.Wait();
  const auto* response = std::get_if<HttpResponse>(&result);
  ASSERT_NE(response, nullptr) << Describe(result);
  EXPECT_EQ(response->status, 200);
}

TEST_F(CurlTransportTest, WithoutDeadlineTheCallStillCompletes) {
  const HttpResult result =
      Fetch(Get("/api/v1/acme/lists/get-all/"), absl::InfiniteFuture());
  ASSERT_TRUE(std::holds_alternative<HttpResponse>(result)) << Describe(result);
}

// The fake's default handler is what gateway tests rely on.
TEST_F(CurlTransportTest, FakeConnylineAnswersLikeConnyline) {
  HttpRequest no_token = Get("/api/v1/acme/lists/get-all/");
  no_token.headers.erase(no_token.headers.begin());
  struct Case {
    HttpRequest request;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {no_token, 400, "NO Token Found."},
      {Post("/api/v1/acme/campaigns/sms/create",
            R"({"campaign_name":"x","sender":"MYSHOP","list_id":1})"),
       400, "Necessary data is missing."},
      {Post("/api/v1/acme/campaigns/sms/create", "not json"), 400,
       "Necessary data is missing."},
      {Get("/api/v1/acme/lists/get-all"), 404, "Not Found."},
      {Get("/api/v1/acme/campaigns/sms/create"), 404, "Not Found."},
  };
  for (const Case& test : cases) {
    SCOPED_TRACE(test.request.method + " " + test.request.url);
    const HttpResult result = Fetch(test.request);
    const auto* response = std::get_if<HttpResponse>(&result);
    ASSERT_NE(response, nullptr) << Describe(result);
    EXPECT_EQ(response->status, test.status);
    const Json body = Json::parse(response->body);
    EXPECT_EQ(body["success"], false);
    EXPECT_EQ(body["message"], test.message);
  }
}

// Starts `calls` GETs of `url` at once and expects each to end 200 with
// `body`.
void ExpectConcurrentGets(CurlTransport& transport, const std::string& url,
                          int calls, const std::string& body) {
  std::vector<Outcome> outcomes(calls);
  for (Outcome& outcome : outcomes) {
    transport.Start({"GET", url, {{"Accept", "application/json"}}, ""},
                    absl::Now() + absl::Seconds(20), outcome.Callback());
  }
  for (Outcome& outcome : outcomes) {
    const HttpResult& result = outcome.Wait();
    const auto* response = std::get_if<HttpResponse>(&result);
    ASSERT_NE(response, nullptr) << Describe(result);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, body);
  }
}

TEST(CurlTransportTlsTest, TlsSessionsAreResumedAcrossShards) {
  const auto pki = TestPki::Create();
  TlsFakeConnyline server(pki->server_cert_pem(), pki->server_key_pem());
  CurlTransportOptions options;
  options.shards = 4;
  options.ca_file = pki->ca_file();
  CurlTransport transport(options);
  // The fake closes each connection after its answer, and successive calls
  // go to successive shards: every call is a new connection, from a shard
  // that has not connected before for the first four.
  constexpr int kCalls = 8;
  for (int i = 0; i < kCalls; ++i) {
    Outcome outcome;
    transport.Start({"GET",
                     server.BaseUrl() + "/api/v1/acme/lists/get-all/",
                     {{"Authorization", "Bearer " + kToken}},
                     ""},
                    absl::Now() + absl::Seconds(10), outcome.Callback());
    const HttpResult& result = outcome.Wait();
    ASSERT_TRUE(std::holds_alternative<HttpResponse>(result))
        << Describe(result);
  }
  EXPECT_EQ(server.ConnectionCount(), kCalls);
  EXPECT_EQ(server.FullHandshakeCount(), 1);
  EXPECT_EQ(server.ResumedHandshakeCount(), kCalls - 1);
}

TEST(CurlTransportHttp2Test, OverTlsConcurrentCallsShareOneConnection) {
  const auto pki = TestPki::Create();
  H2Server server(H2Server::Tls{pki->server_cert_pem(), pki->server_key_pem()});
  CurlTransportOptions options;
  options.shards = 1;
  options.ca_file = pki->ca_file();
  options.max_connections_per_shard = 8;
  ASSERT_EQ(options.http2, UpstreamHttp2::kAuto);  // the default negotiates
  CurlTransport transport(options);

  // nghttpd speaks nothing but HTTP/2: an answer proves ALPN chose h2.
  // Three waves: the later ones run on recycled easy handles (libcurl 7.88
  // refuses CURLOPT_BUFFERSIZE on some after an HTTP/2 transfer).
  constexpr int kCalls = 100;
  for (int wave = 0; wave < 3; ++wave) {
    ExpectConcurrentGets(transport,
                         server.BaseUrl() + "/api/v1/acme/lists/get-all/",
                         kCalls, H2Server::ListsBody());
  }
  ASSERT_TRUE(server.WaitForRequests(3 * kCalls, kWait));
  EXPECT_EQ(server.RequestCount(), 3 * kCalls);
  EXPECT_EQ(server.ConnectionCount(), 1);
}

TEST(CurlTransportHttp2Test, PriorKnowledgeSpeaksH2cOneConnectionPerShard) {
  if (curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
    // Its own `curl -Z --http2-prior-knowledge` fails the same way.
    GTEST_SKIP() << "libcurl 7.x fails concurrent h2c transfers on one "
                    "connection (Error in the HTTP2 framing layer)";
  }
  H2Server server;
  CurlTransportOptions options;
  options.shards = 2;
  options.http2 = UpstreamHttp2::kPriorKnowledge;
  CurlTransport transport(options);

  constexpr int kCalls = 40;
  ExpectConcurrentGets(transport,
                       server.BaseUrl() + "/api/v1/acme/lists/get-all/", kCalls,
                       H2Server::ListsBody());
  ASSERT_TRUE(server.WaitForRequests(kCalls, kWait));
  EXPECT_EQ(server.RequestCount(), kCalls);
  EXPECT_EQ(server.ConnectionCount(), 2);
}

TEST(CurlTransportHttp2Test, ConnectionCapHoldsForHttp1) {
  FakeConnyline server;
  constexpr int kCalls = 30;
  AnswerLikeConnylineAfter(server, absl::Milliseconds(20));
  CurlTransportOptions options;
  options.shards = 1;
  options.max_connections_per_shard = 3;
  CurlTransport transport(options);
  std::vector<Outcome> outcomes(kCalls);
  for (Outcome& outcome : outcomes) {
    transport.Start(
        {"GET", server.BaseUrl() + "/api/v1/acme/lists/get-all/", {}, ""},
        absl::Now() + absl::Seconds(20), outcome.Callback());
  }
  for (Outcome& outcome : outcomes) {
    const HttpResult& result = outcome.Wait();
    ASSERT_TRUE(std::holds_alternative<HttpResponse>(result))
        << Describe(result);
  }
  // Requests beyond the cap waited for a connection instead of opening one.
  EXPECT_EQ(server.RequestCount(), kCalls);
  EXPECT_LE(server.MaxConcurrentRequests(), 3);
  EXPECT_LE(server.ConnectionCount(), 3);
}

CurlTransportOptions OneConnection() {
  CurlTransportOptions options;
  options.shards = 1;
  options.max_connections_per_shard = 1;
  return options;
}

HttpRequest ListsGet(const FakeConnyline& server) {
  return {"GET", server.BaseUrl() + "/api/v1/acme/lists/get-all/", {}, ""};
}

TEST(CurlTransportQueueTest, WaitingForAConnectionDoesNotUseTheConnectTimeout) {
  FakeConnyline server;
  AnswerLikeConnylineAfter(server, absl::Milliseconds(150));
  CurlTransportOptions options = OneConnection();
  options.connect_timeout = absl::Milliseconds(200);
  CurlTransport transport(options);
  // The last call waits ~600 ms for the one connection, three times the
  // connect timeout: libcurl 8 would fail it as unreachable had it queued.
  std::vector<Outcome> outcomes(5);
  for (Outcome& outcome : outcomes) {
    transport.Start(ListsGet(server), absl::Now() + absl::Seconds(20),
                    outcome.Callback());
  }
  for (Outcome& outcome : outcomes) {
    const HttpResult& result = outcome.Wait();
    ASSERT_TRUE(std::holds_alternative<HttpResponse>(result))
        << Describe(result);
  }
  EXPECT_EQ(server.RequestCount(), 5);
  EXPECT_EQ(server.MaxConcurrentRequests(), 1);
  EXPECT_EQ(server.ConnectionCount(), 1);
}

TEST(CurlTransportQueueTest, AWaitingCallTimesOutUnsentAtItsDeadline) {
  FakeConnyline server;
  server.Enqueue(Delayed(absl::Seconds(2)));
  CurlTransport transport(OneConnection());
  Outcome slow;
  transport.Start(ListsGet(server), absl::Now() + absl::Seconds(20),
                  slow.Callback());
  ASSERT_TRUE(server.WaitForRequests(1, kWait));
  Outcome waiting;
  const absl::Time start = absl::Now();
  transport.Start(ListsGet(server), start + absl::Milliseconds(200),
                  waiting.Callback());
  const HttpResult& result = waiting.Wait();
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(IsError(result, Kind::kTimeout));
  EXPECT_FALSE(WasSent(result));
  // At its own deadline, not when the connection came free.
  EXPECT_GE(took, absl::Milliseconds(190));
  // Below the loop's 1 s idle poll: its own deadline woke the shard.
  EXPECT_LT(took, absl::Milliseconds(800));
  EXPECT_FALSE(slow.HasRun());
  EXPECT_EQ(server.RequestCount(), 1);
  EXPECT_TRUE(std::holds_alternative<HttpResponse>(slow.Wait()));
}

TEST(CurlTransportQueueTest, ACancelledWaitingCallIsNeverSent) {
  FakeConnyline server;
  server.Enqueue(Delayed(absl::Milliseconds(300)));
  CurlTransport transport(OneConnection());
  Outcome first;
  transport.Start(ListsGet(server), absl::Now() + absl::Seconds(20),
                  first.Callback());
  ASSERT_TRUE(server.WaitForRequests(1, kWait));
  Outcome cancelled;
  const uint64_t id = transport.Start(
      ListsGet(server), absl::Now() + absl::Seconds(20), cancelled.Callback());
  transport.Cancel(id);
  const HttpResult& result = cancelled.Wait();
  ASSERT_TRUE(IsError(result, Kind::kCancelled));
  EXPECT_FALSE(WasSent(result));
  // A later call goes through once the connection is free; the cancelled
  // one, queued before it, never reached the server.
  Outcome later;
  transport.Start(ListsGet(server), absl::Now() + absl::Seconds(20),
                  later.Callback());
  EXPECT_TRUE(std::holds_alternative<HttpResponse>(first.Wait()));
  EXPECT_TRUE(std::holds_alternative<HttpResponse>(later.Wait()));
  EXPECT_EQ(server.RequestCount(), 2);
}

TEST(CurlTransportQueueTest, WaitingCallsStartInArrivalOrder) {
  FakeConnyline server;
  AnswerLikeConnylineAfter(server, absl::Milliseconds(20));
  CurlTransport transport(OneConnection());
  constexpr int kCalls = 6;
  std::vector<Outcome> outcomes(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    HttpRequest request = ListsGet(server);
    request.url += absl::StrCat("?n=", i);
    transport.Start(std::move(request), absl::Now() + absl::Seconds(20),
                    outcomes[i].Callback());
  }
  for (Outcome& outcome : outcomes) outcome.Wait();
  const std::vector<RecordedRequest> requests = server.Requests();
  ASSERT_EQ(requests.size(), kCalls);
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(absl::EndsWith(requests[i].target, absl::StrCat("?n=", i)))
        << requests[i].target;
  }
}

// nginx's stub_status: "Active connections: 1 \nserver accepts handled
// requests\n 1 1 3 \nReading: 0 Writing: 2 Waiting: 0 \n".
struct NginxStatus {
  int accepted = -1;
  int writing = -1;  // requests being answered
};
NginxStatus ReadStatus(CurlTransport& transport, const std::string& base) {
  Outcome outcome;
  transport.Start({"GET", base + "/status", {}, ""},
                  absl::Now() + absl::Seconds(10), outcome.Callback());
  NginxStatus status;
  const auto* response = std::get_if<HttpResponse>(&outcome.Wait());
  if (response == nullptr || response->status != 200) return status;
  std::istringstream in(response->body);
  std::string word;
  while (in >> word) {
    if (word == "requests") in >> status.accepted;
    if (word == "Writing:") in >> status.writing;
  }
  return status;
}

TEST(CurlTransportHttp2Test, CancelResetsTheStreamAndKeepsTheConnection) {
  const auto pki = TestPki::Create();
  NginxUpstream server(pki->server_cert_pem(), pki->server_key_pem());
  CurlTransportOptions options;
  options.shards = 1;
  options.ca_file = pki->ca_file();
  CurlTransport transport(options);
  const std::string lists = server.BaseUrl() + "/api/v1/acme/lists/get-all/";
  ExpectConcurrentGets(transport, lists, 1,
                       R"({"data":[{"list_id":123,"name":"2026 Clients"}]})"
                       "\n");

  Outcome slow;
  const uint64_t id =
      transport.Start({"GET", server.BaseUrl() + "/slow", {}, ""},
                      absl::Now() + absl::Seconds(60), slow.Callback());
  // Writing: the slow request and the status request itself.
  const absl::Time give_up = absl::Now() + kWait;
  while (ReadStatus(transport, server.BaseUrl()).writing < 2) {
    ASSERT_LT(absl::Now(), give_up) << "the slow request never arrived";
    absl::SleepFor(absl::Milliseconds(20));
  }
  transport.Cancel(id);
  EXPECT_TRUE(IsError(slow.Wait(), Kind::kCancelled));
  EXPECT_TRUE(WasSent(slow.Wait()));

  // The connection carries the next calls: nginx accepted only one ...
  ExpectConcurrentGets(transport, lists, 3,
                       R"({"data":[{"list_id":123,"name":"2026 Clients"}]})"
                       "\n");
  EXPECT_EQ(ReadStatus(transport, server.BaseUrl()).accepted, 1);
  // ... and saw the slow request's stream reset (curl resets it with
  // STREAM_CLOSED, at the latest with the connection's next frames).
  EXPECT_TRUE(server.WaitForErrorLog("client terminated stream 3", kWait) ||
              absl::StrContains(server.ErrorLog(), "client canceled stream 3"))
      << server.ErrorLog();
}

TEST(CurlTransportHttp2Test, AfterAnHttp2AnswerAConnectionCarriesManyCalls) {
  const auto pki = TestPki::Create();
  NginxUpstream server(pki->server_cert_pem(), pki->server_key_pem());
  CurlTransportOptions options;
  options.shards = 1;
  options.ca_file = pki->ca_file();
  options.max_connections_per_shard = 1;
  constexpr int kSlow = 5;
  // Before the transport: its destructor cancels them, calling back.
  std::vector<Outcome> slow(kSlow);
  CurlTransport transport(options);
  // Until an answer shows the upstream multiplexes, one call per connection.
  ExpectConcurrentGets(transport,
                       server.BaseUrl() + "/api/v1/acme/lists/get-all/", 1,
                       R"({"data":[{"list_id":123,"name":"2026 Clients"}]})"
                       "\n");

  for (Outcome& outcome : slow) {
    transport.Start({"GET", server.BaseUrl() + "/slow", {}, ""},
                    absl::Now() + absl::Seconds(20), outcome.Callback());
  }
  // Had the shard kept one call per connection, the status request would
  // wait behind the slow ones for their 20 s.
  NginxStatus status;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  do {
    status = ReadStatus(transport, server.BaseUrl());
    if (status.writing == kSlow + 1) break;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < give_up);
  EXPECT_EQ(status.writing, kSlow + 1);  // the slow ones and the status
  EXPECT_EQ(status.accepted, 1);
  for (Outcome& outcome : slow) EXPECT_FALSE(outcome.HasRun());
}

}  // namespace
}  // namespace campaign_gateway
