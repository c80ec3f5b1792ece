#include "service/upstream_client.h"

#include <atomic>
#include <optional>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/errors.h"
#include "tests/support/scripted_transport.h"
#include "tests/support/status_matchers.h"

namespace campaign_gateway {
namespace {

using ::testing::Contains;
using ::testing::Pair;
using testing_util::HasErrorInfo;
using testing_util::ScriptedTransport;

HttpResult Answer(int status) {
  HttpResponse response;
  response.status = status;
  return response;
}

// Waits for the one result of Send().
class Result {
 public:
  UpstreamClient::Callback Callback() {
    return [this](UpstreamResult r) {
      value_ = std::move(r);
      done_.Notify();
    };
  }
  const UpstreamResult& Get() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return *value_;
  }
  bool HasResult() const { return done_.HasBeenNotified(); }

 private:
  absl::Notification done_;
  std::optional<UpstreamResult> value_;
};

std::shared_ptr<CallContext> Context(
    absl::Duration timeout = absl::Seconds(10)) {
  auto context = std::make_shared<CallContext>();
  context->deadline = absl::Now() + timeout;
  return context;
}

UpstreamOptions FastRetries() {
  UpstreamOptions options;
  options.retry = {.max_attempts = 3,
                   .initial_backoff = absl::Milliseconds(1),
                   .max_backoff = absl::Milliseconds(5)};
  return options;
}

HttpRequest Get() {
  return {"GET", "http://x/api/v1/a/lists/get-all/", {}, ""};
}
HttpRequest Post() {
  return {"POST", "http://x/api/v1/a/campaigns/sms/create", {}, "{}"};
}

// Each slot is given back just after its callback ran: wait for that before
// the client goes out of scope.
void WaitIdle(const UpstreamClient& client) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (client.inflight() != 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(client.inflight(), 0);
}

// A clock that stays in one rate-limit window.
absl::Time StoppedClock() { return absl::FromUnixSeconds(1000); }

class UpstreamClientTest : public ::testing::Test {
 protected:
  TimerQueue timers_;
};

TEST_F(UpstreamClientTest, RetriesAGetOnA503AndSucceeds) {
  std::atomic<int> calls{0};
  ScriptedTransport transport(
      [&](const HttpRequest&) { return Answer(++calls == 1 ? 503 : 200); });
  UpstreamClient client(FastRetries(), transport, timers_);
  auto context = Context();
  Result result;
  client.Send(Get(), context, {.idempotent = true}, result.Callback());
  ASSERT_TRUE(result.Get().response.ok());
  EXPECT_EQ(result.Get().response->status, 200);
  EXPECT_EQ(transport.started().size(), 2u);
  EXPECT_EQ(context->upstream_outcome().attempts, 2);
  EXPECT_EQ(client.retries(), 1u);
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, NeverRetriesAPostThatMayHaveBeenSent) {
  ScriptedTransport transport([](const HttpRequest&) -> HttpResult {
    return TransportError{TransportError::Kind::kConnectionLost, "reset", true};
  });
  UpstreamClient client(FastRetries(), transport, timers_);
  Result result;
  client.Send(Post(), Context(), {.idempotent = false}, result.Callback());
  EXPECT_EQ(result.Get().response.status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(result.Get().request_may_have_been_sent);
  EXPECT_EQ(transport.started().size(), 1u);
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, RetriesAPostThatWasRefusedBeforeSending) {
  std::atomic<int> calls{0};
  ScriptedTransport transport([&](const HttpRequest&) -> HttpResult {
    if (++calls == 1) {
      return TransportError{TransportError::Kind::kConnectFailed, "refused",
                            false};
    }
    return Answer(201);
  });
  UpstreamClient client(FastRetries(), transport, timers_);
  Result result;
  client.Send(Post(), Context(), {.idempotent = false}, result.Callback());
  ASSERT_TRUE(result.Get().response.ok());
  EXPECT_EQ(transport.started().size(), 2u);
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, ReportsNothingSentWhenEveryAttemptWasRefused) {
  ScriptedTransport transport([](const HttpRequest&) -> HttpResult {
    return TransportError{TransportError::Kind::kConnectFailed, "refused",
                          false};
  });
  UpstreamClient client(FastRetries(), transport, timers_);
  Result result;
  client.Send(Post(), Context(), {}, result.Callback());
  EXPECT_EQ(result.Get().response.status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(result.Get().request_may_have_been_sent);
  EXPECT_EQ(transport.started().size(), 3u);
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, DoesNotRetryPastTheDeadline) {
  ScriptedTransport transport([](const HttpRequest&) { return Answer(503); });
  UpstreamOptions options;
  options.retry = {.max_attempts = 5,
                   .initial_backoff = absl::Seconds(10),
                   .max_backoff = absl::Seconds(10)};
  UpstreamClient client(options, transport, timers_);
  // Any backoff up to 10 s is drawn; only one that fits 200 ms would run,
  // so with overwhelming probability there is one attempt, never five.
  Result result;
  client.Send(Get(), Context(absl::Milliseconds(200)), {.idempotent = true},
              result.Callback());
  ASSERT_TRUE(result.Get().response.ok());
  EXPECT_EQ(result.Get().response->status, 503);
  EXPECT_LE(transport.started().size(), 2u);
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, ShedsLoadBeyondMaxInflightAtOnce) {
  ScriptedTransport transport([](const HttpRequest&) { return Answer(200); });
  transport.Hold(true);
  UpstreamOptions options;
  options.max_inflight = 2;
  UpstreamClient client(options, transport, timers_);
  Result first, second, third;
  client.Send(Get(), Context(), {}, first.Callback());
  client.Send(Get(), Context(), {}, second.Callback());
  client.Send(Get(), Context(), {}, third.Callback());
  ASSERT_TRUE(third.HasResult());  // inline, no queue
  const absl::Status& status = third.Get().response.status();
  EXPECT_THAT(status,
              HasErrorInfo(absl::StatusCode::kResourceExhausted, "OVERLOADED"));
  EXPECT_TRUE(GetRetryInfo(status).has_value());
  EXPECT_FALSE(third.Get().request_may_have_been_sent);
  EXPECT_EQ(client.inflight(), 2);
  transport.ReleaseAll();
  EXPECT_TRUE(first.Get().response.ok());
  EXPECT_TRUE(second.Get().response.ok());
  // The slots are given back just after the answers are handed on.
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (client.inflight() != 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(client.inflight(), 0);
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, AnOpenBreakerFailsFastWithRetryInfo) {
  ScriptedTransport transport([](const HttpRequest&) { return Answer(500); });
  UpstreamOptions options;
  options.retry.max_attempts = 1;
  options.breaker = {.failure_threshold = 2,
                     .open_duration = absl::Seconds(30)};
  std::atomic<bool> reported_open{false};
  options.on_breaker_state = [&](bool open) { reported_open = open; };
  UpstreamClient client(options, transport, timers_);
  for (int i = 0; i < 2; ++i) {
    Result result;
    client.Send(Post(), Context(), {}, result.Callback());
    EXPECT_EQ(result.Get().response->status, 500);
  }
  EXPECT_TRUE(reported_open);
  Result refused;
  client.Send(Post(), Context(), {}, refused.Callback());
  ASSERT_TRUE(refused.HasResult());
  const absl::Status& status = refused.Get().response.status();
  EXPECT_THAT(status,
              HasErrorInfo(absl::StatusCode::kUnavailable, "CIRCUIT_OPEN"));
  EXPECT_GT(GetRetryInfo(status)->retry_delay().seconds(), 20);
  EXPECT_EQ(transport.started().size(), 2u);
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, CancellationAbortsUnlessTheCallRunsOn) {
  ScriptedTransport transport([](const HttpRequest&) { return Answer(201); });
  transport.Hold(true);
  UpstreamClient client({}, transport, timers_);

  auto aborting = Context();
  Result aborted;
  client.Send(Post(), aborting, {.abort_on_cancel = true}, aborted.Callback());
  aborting->cancellation.Cancel();
  EXPECT_EQ(aborted.Get().response.status().code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(transport.cancelled().size(), 1u);

  auto running_on = Context();
  Result finished;
  client.Send(Post(), running_on, {.abort_on_cancel = false},
              finished.Callback());
  running_on->cancellation.Cancel();
  transport.ReleaseAll();
  ASSERT_TRUE(finished.Get().response.ok());
  EXPECT_EQ(finished.Get().response->status, 201);
  EXPECT_EQ(transport.cancelled().size(), 1u);
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, PropagatesTheCallsHeaders) {
  ScriptedTransport transport([](const HttpRequest&) { return Answer(200); });
  UpstreamClient client({}, transport, timers_);
  auto context = Context();
  context->propagated_headers = {{"X-Request-Id", "abc"}};
  Result result;
  client.Send(Get(), context, {}, result.Callback());
  result.Get();
  EXPECT_THAT(transport.started()[0].request.headers,
              Contains(Pair("X-Request-Id", "abc")));
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, ARefusedAdmissionSendsNothing) {
  ScriptedTransport transport([](const HttpRequest&) { return Answer(200); });
  LocalAdmission admission({.rate_limit = 1, .now = StoppedClock});
  UpstreamOptions options;
  options.admission = &admission;
  UpstreamClient client(options, transport, timers_);
  Result first, second;
  client.Send(Get(), Context(), {.idempotent = true}, first.Callback());
  ASSERT_TRUE(first.Get().response.ok());
  client.Send(Get(), Context(), {.idempotent = true}, second.Callback());
  const absl::Status status = second.Get().response.status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(GetErrorInfo(status).has_value());
  EXPECT_EQ(GetErrorInfo(status)->reason(), "RATE_LIMITED");
  EXPECT_FALSE(second.Get().request_may_have_been_sent);
  EXPECT_EQ(transport.started().size(), 1u);
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, A429WithRetryAfterCoolsEveryRequestDown) {
  ScriptedTransport transport([](const HttpRequest&) -> HttpResult {
    HttpResponse response;
    response.status = 429;
    response.headers = {{"retry-after", "30"}};
    return response;
  });
  LocalAdmission admission({});
  UpstreamOptions options = FastRetries();
  options.admission = &admission;
  UpstreamClient client(options, transport, timers_);
  Result limited;
  client.Send(Post(), Context(), {.idempotent = false}, limited.Callback());
  ASSERT_TRUE(limited.Get().response.ok());  // the 429 itself, to be mapped
  EXPECT_EQ(limited.Get().response->status, 429);

  Result held;
  client.Send(Get(), Context(), {.idempotent = true}, held.Callback());
  const absl::Status status = held.Get().response.status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(held.Get().request_may_have_been_sent);
  ASSERT_TRUE(GetRetryInfo(status).has_value());
  EXPECT_GT(GetRetryInfo(status)->retry_delay().seconds(), 25);
  EXPECT_EQ(transport.started().size(), 1u);  // only the first went out
  WaitIdle(client);
}

TEST_F(UpstreamClientTest, ARetryHeldBackAnswersWithTheLastAttempt) {
  std::atomic<int> calls{0};
  ScriptedTransport transport([&](const HttpRequest&) -> HttpResult {
    ++calls;
    HttpResponse response;
    response.status = 503;
    return response;
  });
  LocalAdmission admission({.rate_limit = 1, .now = StoppedClock});
  UpstreamOptions options = FastRetries();
  options.admission = &admission;
  UpstreamClient client(options, transport, timers_);
  Result result;
  client.Send(Get(), Context(), {.idempotent = true}, result.Callback());
  ASSERT_TRUE(result.Get().response.ok());
  EXPECT_EQ(result.Get().response->status, 503);
  EXPECT_EQ(calls.load(), 1);  // the retry was held back
  WaitIdle(client);
}

}  // namespace
}  // namespace campaign_gateway
