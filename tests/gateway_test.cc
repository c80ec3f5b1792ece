// The logic class alone, over a scripted in-memory transport.
#include "service/gateway.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/errors.h"
#include "tests/support/scripted_transport.h"
#include "tests/support/status_matchers.h"

namespace campaign_gateway {
namespace {

using ::campaigns::v1::CreateSmsCampaignRequest;
using ::campaigns::v1::CreateSmsCampaignResponse;
using ::campaigns::v1::ListListsRequest;
using ::campaigns::v1::ListListsResponse;
using ::testing::Contains;
using ::testing::Pair;
using testing_util::HasErrorInfo;
using testing_util::ScriptedTransport;
using testing_util::ValidCreate;

// Waits for the one result of an asynchronous call.
template <typename T>
class Result {
 public:
  Gateway::Callback<T> Callback() {
    return [this](absl::StatusOr<T> r) {
      value_ = std::move(r);
      done_.Notify();
    };
  }
  const absl::StatusOr<T>& Get() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return *value_;
  }
  bool HasResult() const { return done_.HasBeenNotified(); }

 private:
  absl::Notification done_;
  std::optional<absl::StatusOr<T>> value_;
};

HttpResult Json(int status, const std::string& body) {
  HttpResponse response;
  response.status = status;
  response.body = body;
  return response;
}

HttpResult ConnylineAnswer(const HttpRequest& request) {
  if (request.method == "GET") {
    return Json(200, R"({"data":[{"list_id":123,"name":"2026 Clients"}]})");
  }
  return Json(201,
              R"({"success":true,"message":"SMS Campaign created successfully.",
    "data":{"campaign_name":"Promo","sender":"MYSHOP","list_id":123,
    "start":"2026-02-25 10:30:00","created_at":"2026-02-24 09:15:00"}})");
}

class GatewayTest : public ::testing::Test {
 protected:
  GatewayTest()
      : transport_(ConnylineAnswer),
        upstream_(UpstreamOptions{}, transport_, timers_),
        gateway_(GatewayOptions{.account_code = "acme",
                                .time_zone = Athens(),
                                .upstream = {"https://connyline.test/p", "tok",
                                             "campaign-gateway/test"}},
                 upstream_, store_, timers_) {}

  static absl::TimeZone Athens() {
    absl::TimeZone zone;
    EXPECT_TRUE(absl::LoadTimeZone("Europe/Athens", &zone));
    return zone;
  }

  std::shared_ptr<CallContext> Context() {
    auto context = std::make_shared<CallContext>();
    context->deadline = absl::Now() + absl::Seconds(5);
    return context;
  }

  TimerQueue timers_;
  ScriptedTransport transport_;
  UpstreamClient upstream_;
  InMemoryIdempotencyStore store_{{}};
  Gateway gateway_;
};

TEST_F(GatewayTest, ListListsSendsTheDocumentedRequest) {
  auto context = Context();
  context->propagated_headers = {{"x-request-id", "req-1"}};
  Result<ListListsResponse> result;
  gateway_.ListLists(ListListsRequest(), context, result.Callback());
  ASSERT_TRUE(result.Get().ok()) << result.Get().status();
  ASSERT_EQ(result.Get()->lists_size(), 1);
  EXPECT_EQ(result.Get()->lists(0).list_id(), 123);

  auto started = transport_.started();
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].request.method, "GET");
  EXPECT_EQ(started[0].request.url,
            "https://connyline.test/p/api/v1/acme/lists/get-all/");
  EXPECT_THAT(started[0].request.headers,
              Contains(Pair("x-request-id", "req-1")));
  EXPECT_EQ(started[0].deadline, context->deadline);
  EXPECT_EQ(context->upstream_outcome().http_status, 200);
  EXPECT_EQ(context->upstream_outcome().attempts, 1);
}

TEST_F(GatewayTest, AnotherAccountIsRefusedWithoutAnUpstreamCall) {
  ListListsRequest request;
  request.set_account_code("other");
  Result<ListListsResponse> result;
  gateway_.ListLists(request, Context(), result.Callback());
  EXPECT_TRUE(result.HasResult());  // inline: nothing to wait for
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(transport_.started().empty());
}

TEST_F(GatewayTest, InvalidCreateIsRejectedWithoutAnUpstreamCall) {
  auto request = ValidCreate();
  request.set_sender("");
  Result<CreateSmsCampaignResponse> result;
  gateway_.CreateSmsCampaign(request, Context(), result.Callback());
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(GetBadRequest(result.Get().status()).has_value());
  EXPECT_TRUE(transport_.started().empty());
}

TEST_F(GatewayTest, ValidateOnlyAnswersWhatWouldBeSentInTheZone) {
  CreateSmsCampaignRequest request = ValidCreate("validate-only");
  request.set_validate_only(true);
  request.set_sms_text("Offer {shortlink1}");
  Result<CreateSmsCampaignResponse> result;
  gateway_.CreateSmsCampaign(request, Context(), result.Callback());
  EXPECT_TRUE(result.HasResult());  // inline: nothing to wait for
  ASSERT_TRUE(result.Get().ok()) << result.Get().status();
  EXPECT_EQ(result.Get()->campaign().start(), request.start());
  // 10:30 in Athens, read in the zone.
  absl::Time instant;
  absl::TimeZone athens;
  ASSERT_TRUE(absl::LoadTimeZone("Europe/Athens", &athens));
  ASSERT_TRUE(absl::ParseTime("%Y-%m-%d %H:%M", request.start(), athens,
                              &instant, nullptr));
  EXPECT_EQ(result.Get()->campaign().start_time().seconds(),
            absl::ToUnixSeconds(instant));
  EXPECT_EQ(result.Get()->campaign().time_zone(), "Europe/Athens");
  EXPECT_EQ(result.Get()->preview().units(), 6 + 23);
  EXPECT_TRUE(transport_.started().empty());
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(GatewayTest, ACreatesAnswerAndItsReplayCarryThePreview) {
  const CreateSmsCampaignRequest request = ValidCreate("with-preview");
  for (int i = 0; i < 2; ++i) {
    Result<CreateSmsCampaignResponse> result;
    gateway_.CreateSmsCampaign(request, Context(), result.Callback());
    ASSERT_TRUE(result.Get().ok()) << result.Get().status();
    EXPECT_EQ(result.Get()->preview().encoding(),
              campaigns::v1::SmsEncoding::SMS_ENCODING_GSM_7);
    EXPECT_EQ(result.Get()->campaign().time_zone(), "Europe/Athens");
  }
  EXPECT_EQ(transport_.started().size(), 1u);
}

TEST_F(GatewayTest, CreatePostsTheBodyAndReadsTimesInTheZone) {
  CreateSmsCampaignRequest request = ValidCreate();
  request.set_sms_text("Hi!");
  request.clear_shortlink1();  // sent as ""
  Result<CreateSmsCampaignResponse> result;
  gateway_.CreateSmsCampaign(request, Context(), result.Callback());
  ASSERT_TRUE(result.Get().ok()) << result.Get().status();
  // 10:30 in Athens in February (UTC+2) is 08:30Z.
  EXPECT_EQ(result.Get()->campaign().start_time().seconds(), 1772008200);
  EXPECT_EQ(result.Get()->campaign().start(), "2026-02-25 10:30:00");

  auto started = transport_.started();
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].request.method, "POST");
  EXPECT_EQ(started[0].request.url,
            "https://connyline.test/p/api/v1/acme/campaigns/sms/create");
  nlohmann::json body = nlohmann::json::parse(started[0].request.body);
  EXPECT_EQ(body["list_id"], 123);
  EXPECT_EQ(body["start"], request.start());
  EXPECT_EQ(body["shortlink1"], "");
}

TEST_F(GatewayTest, TransportFailuresAreMapped) {
  ScriptedTransport refusing([](const HttpRequest&) -> HttpResult {
    return TransportError{TransportError::Kind::kConnectFailed, "refused",
                          false};
  });
  UpstreamClient upstream({}, refusing, timers_);
  Gateway gateway({.account_code = "acme",
                   .time_zone = absl::UTCTimeZone(),
                   .upstream = {"http://x", "tok", "ua"}},
                  upstream, store_, timers_);
  auto context = Context();
  Result<ListListsResponse> result;
  gateway.ListLists(ListListsRequest(), context, result.Callback());
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kUnavailable);
  // Nothing was sent, so the caller learns that retrying is safe.
  EXPECT_EQ(GetErrorInfo(result.Get().status())->metadata().at("request_sent"),
            "false");
  EXPECT_EQ(context->upstream_outcome().http_status, 0);
  // A GET is retried (3 attempts by default) before giving up.
  EXPECT_EQ(context->upstream_outcome().attempts, 3);
  EXPECT_EQ(refusing.started().size(), 3u);
}

TEST_F(GatewayTest, UpstreamErrorsAreMapped) {
  ScriptedTransport failing([](const HttpRequest&) {
    return Json(400, R"({"success":false,"message":"NO Token Found."})");
  });
  UpstreamClient upstream({}, failing, timers_);
  Gateway gateway({.account_code = "acme",
                   .time_zone = absl::UTCTimeZone(),
                   .upstream = {"http://x", "tok", "ua"}},
                  upstream, store_, timers_);
  Result<CreateSmsCampaignResponse> result;
  gateway.CreateSmsCampaign(ValidCreate(), Context(), result.Callback());
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(GatewayTest, CancellingTheCallCancelsTheUpstreamRequest) {
  transport_.Hold(true);
  auto context = Context();
  Result<ListListsResponse> result;
  gateway_.ListLists(ListListsRequest(), context, result.Callback());
  ASSERT_TRUE(transport_.WaitForStarted(1, absl::Seconds(5)));
  EXPECT_FALSE(result.HasResult());
  context->cancellation.Cancel();
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(transport_.cancelled(),
            std::vector<uint64_t>{transport_.started()[0].id});
}

TEST_F(GatewayTest, ACallCancelledBeforeSendingIsCancelledAtOnce) {
  transport_.Hold(true);
  auto context = Context();
  context->cancellation.Cancel();
  Result<ListListsResponse> result;
  gateway_.ListLists(ListListsRequest(), context, result.Callback());
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(transport_.cancelled().size(), 1u);
}

size_t Posts(const ScriptedTransport& transport) {
  size_t posts = 0;
  for (const auto& started : transport.started()) {
    posts += started.request.method == "POST";
  }
  return posts;
}

TEST_F(GatewayTest, ARepeatedRequestIdReturnsTheFirstResultWithoutAPost) {
  auto request = ValidCreate();
  request.set_request_id("6f1c2a8e-1d1b-4c44-9a59-0b0c7f0e5a10");
  Result<CreateSmsCampaignResponse> first, second;
  gateway_.CreateSmsCampaign(request, Context(), first.Callback());
  ASSERT_TRUE(first.Get().ok()) << first.Get().status();
  gateway_.CreateSmsCampaign(request, Context(), second.Callback());
  ASSERT_TRUE(second.Get().ok()) << second.Get().status();
  EXPECT_EQ(second.Get()->SerializeAsString(),
            first.Get()->SerializeAsString());
  EXPECT_EQ(Posts(transport_), 1u);
}

TEST_F(GatewayTest, ConcurrentDuplicatesShareOneUpstreamCall) {
  transport_.Hold(true);
  auto request = ValidCreate();
  request.set_request_id("key-1");
  Result<CreateSmsCampaignResponse> results[5];
  for (auto& result : results) {
    gateway_.CreateSmsCampaign(request, Context(), result.Callback());
  }
  ASSERT_TRUE(transport_.WaitForStarted(1, absl::Seconds(5)));
  transport_.ReleaseAll();
  for (auto& result : results) {
    ASSERT_TRUE(result.Get().ok()) << result.Get().status();
    EXPECT_EQ(result.Get()->campaign().start(), "2026-02-25 10:30:00");
  }
  EXPECT_EQ(Posts(transport_), 1u);
}

TEST_F(GatewayTest, TheSameRequestIdWithOtherContentIsRefused) {
  auto request = ValidCreate();
  request.set_request_id("key-2");
  Result<CreateSmsCampaignResponse> first, other;
  gateway_.CreateSmsCampaign(request, Context(), first.Callback());
  ASSERT_TRUE(first.Get().ok());
  request.set_sms_text("Something else");
  gateway_.CreateSmsCampaign(request, Context(), other.Callback());
  const absl::Status& status = other.Get().status();
  EXPECT_THAT(status, HasErrorInfo(absl::StatusCode::kInvalidArgument,
                                   "IDEMPOTENCY_KEY_REUSED"));
  ASSERT_TRUE(GetBadRequest(status).has_value());
  EXPECT_EQ(GetBadRequest(status)->field_violations(0).field(), "request_id");
  EXPECT_EQ(Posts(transport_), 1u);
}

TEST_F(GatewayTest, AFailureThatSentNothingIsForgotten) {
  std::atomic<int> calls{0};
  ScriptedTransport flaky([&](const HttpRequest& request) -> HttpResult {
    // Refused three times (every attempt of the first call), then up.
    if (++calls <= 3) {
      return TransportError{TransportError::Kind::kConnectFailed, "refused",
                            false};
    }
    return ConnylineAnswer(request);
  });
  UpstreamClient upstream({.retry = {.max_attempts = 3,
                                     .initial_backoff = absl::Milliseconds(1),
                                     .max_backoff = absl::Milliseconds(2)}},
                          flaky, timers_);
  Gateway gateway({.account_code = "acme",
                   .time_zone = Athens(),
                   .upstream = {"http://x", "tok", "ua"}},
                  upstream, store_, timers_);
  auto request = ValidCreate();
  request.set_request_id("key-3");
  Result<CreateSmsCampaignResponse> first, second;
  gateway.CreateSmsCampaign(request, Context(), first.Callback());
  EXPECT_EQ(first.Get().status().code(), absl::StatusCode::kUnavailable);
  gateway.CreateSmsCampaign(request, Context(), second.Callback());
  EXPECT_TRUE(second.Get().ok()) << second.Get().status();
  EXPECT_EQ(flaky.started().size(), 4u);
}

TEST_F(GatewayTest, ALeaderWhoseCallerCancelsStillLearnsTheOutcome) {
  transport_.Hold(true);
  auto request = ValidCreate();
  request.set_request_id("key-4");
  auto context = Context();
  Result<CreateSmsCampaignResponse> cancelled, repeat;
  gateway_.CreateSmsCampaign(request, context, cancelled.Callback());
  ASSERT_TRUE(transport_.WaitForStarted(1, absl::Seconds(5)));
  context->cancellation.Cancel();
  EXPECT_EQ(cancelled.Get().status().code(), absl::StatusCode::kCancelled);
  // The POST was not aborted...
  EXPECT_TRUE(transport_.cancelled().empty());
  transport_.ReleaseAll();
  // ...so its success answers the repeat, without a second POST.
  gateway_.CreateSmsCampaign(request, Context(), repeat.Callback());
  ASSERT_TRUE(repeat.Get().ok()) << repeat.Get().status();
  EXPECT_EQ(Posts(transport_), 1u);
}

TEST_F(GatewayTest, AnInvalidRequestIdIsAFieldViolation) {
  auto request = ValidCreate();
  request.set_request_id("has spaces and/slashes");
  Result<CreateSmsCampaignResponse> result;
  gateway_.CreateSmsCampaign(request, Context(), result.Callback());
  ASSERT_TRUE(GetBadRequest(result.Get().status()).has_value());
  EXPECT_EQ(GetBadRequest(result.Get().status())->field_violations(0).field(),
            "request_id");
  EXPECT_EQ(Posts(transport_), 0u);
}

TEST_F(GatewayTest, ARepeatIsMarkedReplayedAndTheFirstIsNot) {
  auto request = ValidCreate();
  request.set_request_id("key-replayed");
  auto first_context = Context();
  auto repeat_context = Context();
  Result<CreateSmsCampaignResponse> first, repeat;
  gateway_.CreateSmsCampaign(request, first_context, first.Callback());
  ASSERT_TRUE(first.Get().ok());
  gateway_.CreateSmsCampaign(request, repeat_context, repeat.Callback());
  ASSERT_TRUE(repeat.Get().ok());
  EXPECT_FALSE(first_context->replayed());
  EXPECT_TRUE(repeat_context->replayed());
}

TEST_F(GatewayTest, AFollowerPastItsDeadlineGetsDeadlineExceeded) {
  transport_.Hold(true);
  auto request = ValidCreate();
  request.set_request_id("key-follower-deadline");
  Result<CreateSmsCampaignResponse> leader, follower;
  gateway_.CreateSmsCampaign(request, Context(), leader.Callback());
  ASSERT_TRUE(transport_.WaitForStarted(1, absl::Seconds(5)));
  auto short_context = std::make_shared<CallContext>();
  short_context->deadline = absl::Now() + absl::Milliseconds(100);
  gateway_.CreateSmsCampaign(request, short_context, follower.Callback());
  EXPECT_EQ(follower.Get().status().code(),
            absl::StatusCode::kDeadlineExceeded);
  transport_.ReleaseAll();
  EXPECT_TRUE(leader.Get().ok());
  EXPECT_EQ(Posts(transport_), 1u);
}

// A store whose answers the test decides, recording what the Gateway does.
class ScriptedStore final : public IdempotencyStore {
 public:
  explicit ScriptedStore(Outcome outcome) : outcome_(std::move(outcome)) {}
  void Join(Claim claim, Callback done) override {
    absl::MutexLock lock(&mu_);
    claims_.push_back(std::move(claim));
    pending_ = std::move(done);
  }
  // Answers the last Join with the scripted outcome.
  void Answer() {
    Callback done;
    {
      absl::MutexLock lock(&mu_);
      done = std::move(pending_);
    }
    std::move(done)(outcome_);
  }
  void Finish(absl::string_view key, absl::string_view lease,
              const Result& result, bool remember,
              absl::AnyInvocable<void() &&> recorded) override {
    {
      absl::MutexLock lock(&mu_);
      finished_.push_back({std::string(key), std::string(lease), remember});
    }
    std::move(recorded)();
  }
  struct Finished {
    std::string key;
    std::string lease;
    bool remember;
  };
  std::vector<IdempotencyStore::Claim> claims() {
    absl::MutexLock lock(&mu_);
    return claims_;
  }
  std::vector<Finished> finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }

 private:
  const Outcome outcome_;
  absl::Mutex mu_;
  std::vector<Claim> claims_ ABSL_GUARDED_BY(mu_);
  Callback pending_ ABSL_GUARDED_BY(mu_);
  std::vector<Finished> finished_ ABSL_GUARDED_BY(mu_);
};

class GatewayWithStoreTest : public GatewayTest {
 protected:
  Gateway GatewayOver(IdempotencyStore& store) {
    return Gateway(GatewayOptions{.account_code = "acme",
                                  .time_zone = Athens(),
                                  .upstream = {"https://connyline.test/p",
                                               "tok", "campaign-gateway/test"}},
                   upstream_, store, timers_);
  }
  static CreateSmsCampaignRequest Keyed() {
    auto request = ValidCreate();
    request.set_request_id("key-scripted");
    return request;
  }
};

TEST_F(GatewayWithStoreTest, AnUnavailableStoreFailsClosedWithoutAPost) {
  ScriptedStore store(
      {.role = IdempotencyStore::Role::kUnavailable,
       .result = MakeError(absl::StatusCode::kUnavailable, "store down",
                           reason::kIdempotencyStoreUnavailable,
                           {{"request_sent", "false"}})});
  Gateway gateway = GatewayOver(store);
  Result<CreateSmsCampaignResponse> result;
  gateway.CreateSmsCampaign(Keyed(), Context(), result.Callback());
  store.Answer();
  EXPECT_THAT(result.Get().status(),
              HasErrorInfo(absl::StatusCode::kUnavailable,
                           "IDEMPOTENCY_STORE_UNAVAILABLE"));
  EXPECT_EQ(Posts(transport_), 0u);
  EXPECT_TRUE(store.finished().empty());
}

TEST_F(GatewayWithStoreTest, TheClaimCarriesTheDeadlineAndALeaseBeyondIt) {
  ScriptedStore store(
      {.role = IdempotencyStore::Role::kLeader, .lease = "lease-1"});
  Gateway gateway = GatewayOver(store);
  auto context = Context();
  Result<CreateSmsCampaignResponse> result;
  gateway.CreateSmsCampaign(Keyed(), context, result.Callback());
  ASSERT_EQ(store.claims().size(), 1u);
  const IdempotencyStore::Claim claim = store.claims()[0];
  EXPECT_EQ(claim.key, "key-scripted");
  EXPECT_EQ(claim.fingerprint.size(), 64u);
  EXPECT_EQ(claim.deadline, context->deadline);
  // The lease covers the gateway-owned upstream timeout (10 s by default)
  // a leader's create runs under, whatever the caller's deadline.
  EXPECT_GT(claim.lease_until, context->deadline);
  EXPECT_GT(claim.lease_until, absl::Now() + absl::Seconds(10));
  EXPECT_LE(claim.lease_until,
            std::max(context->deadline, absl::Now() + absl::Seconds(10)) +
                absl::Seconds(5));
  EXPECT_TRUE(claim.wanted());
  store.Answer();
  ASSERT_TRUE(result.Get().ok()) << result.Get().status();
  ASSERT_EQ(store.finished().size(), 1u);
  EXPECT_EQ(store.finished()[0].lease, "lease-1");
  EXPECT_TRUE(store.finished()[0].remember);
  EXPECT_EQ(Posts(transport_), 1u);
}

TEST_F(GatewayWithStoreTest, ALeadGrantedAfterTheCallerLeftSendsNothing) {
  ScriptedStore store(
      {.role = IdempotencyStore::Role::kLeader, .lease = "lease-2"});
  Gateway gateway = GatewayOver(store);
  auto context = Context();
  Result<CreateSmsCampaignResponse> result;
  gateway.CreateSmsCampaign(Keyed(), context, result.Callback());
  context->cancellation.Cancel();  // before the store answered
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(store.claims()[0].wanted());
  store.Answer();
  // The key is released (nothing was sent) and nothing is sent.
  ASSERT_EQ(store.finished().size(), 1u);
  EXPECT_FALSE(store.finished()[0].remember);
  EXPECT_EQ(store.finished()[0].lease, "lease-2");
  EXPECT_EQ(Posts(transport_), 0u);
}

}  // namespace
}  // namespace campaign_gateway
