#include "service/sandbox_transport.h"

#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/rest_request.h"
#include "service/rest_response.h"

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;

const UpstreamTarget kTarget{"http://sandbox.invalid",
                             std::string(kSandboxToken), "ua"};

CampaignDraft Draft() {
  return {.campaign_name = "Promo",
          .sender = "MYSHOP",
          .list_id = 123,
          .sms_text = "Γεια σου \"κόσμε\" 🎉\nline two",
          .start = "2026-02-25 10:30",
          .shortlink1 = ""};
}

TEST(SimulateConnylineTest, ListsTheSampleLists) {
  HttpResponse response =
      SimulateConnyline(BuildListListsRequest(kTarget, "sandbox"),
                        absl::UTCTimeZone(), absl::Now(), nullptr)
          .value();
  EXPECT_EQ(response.status, 200);
  auto parsed = ParseListListsResponse(response);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->lists_size(), static_cast<int>(SandboxLists().size()));
  EXPECT_EQ(parsed->lists(0).name(), "2026 Clients");
}

TEST(SimulateConnylineTest, AcceptsAndRecordsAValidCreateByteExact) {
  std::vector<std::string> accepted;
  const absl::Time now = absl::FromCivil(
      absl::CivilSecond(2026, 2, 24, 9, 15, 0), absl::UTCTimeZone());
  HttpResponse response =
      SimulateConnyline(BuildCreateCampaignRequest(kTarget, "sandbox", Draft()),
                        absl::UTCTimeZone(), now, &accepted)
          .value();
  EXPECT_EQ(response.status, 201);
  auto parsed = ParseCreateCampaignResponse(response, absl::UTCTimeZone());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->campaign().start(), "2026-02-25 10:30:00");
  EXPECT_EQ(parsed->campaign().created_at(), "2026-02-24 09:15:00");
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(accepted[0])["sms_text"], Draft().sms_text);
}

TEST(SimulateConnylineTest, AnswersLikeConnylineOnErrors) {
  HttpRequest no_token = BuildListListsRequest(kTarget, "sandbox");
  no_token.headers.clear();
  HttpResponse response =
      SimulateConnyline(no_token, absl::UTCTimeZone(), absl::Now(), nullptr)
          .value();
  EXPECT_EQ(response.status, 400);
  EXPECT_THAT(response.body, HasSubstr("NO Token Found."));

  HttpRequest missing = BuildCreateCampaignRequest(kTarget, "sandbox", Draft());
  missing.body = R"({"campaign_name":"x"})";
  response =
      SimulateConnyline(missing, absl::UTCTimeZone(), absl::Now(), nullptr)
          .value();
  EXPECT_EQ(response.status, 400);
  EXPECT_THAT(response.body, HasSubstr("Necessary data is missing."));

  CampaignDraft unknown_list = Draft();
  unknown_list.list_id = 42;
  response = SimulateConnyline(
                 BuildCreateCampaignRequest(kTarget, "sandbox", unknown_list),
                 absl::UTCTimeZone(), absl::Now(), nullptr)
                 .value();
  EXPECT_EQ(response.status, 404);
}

// ---- Fault lists: list_id 990000 + S answers as Connyline's HTTP S ----

HttpRequest CreateOnList(int64_t list_id) {
  CampaignDraft draft = Draft();
  draft.list_id = list_id;
  return BuildCreateCampaignRequest(kTarget, "sandbox", draft);
}

struct FaultCase {
  int64_t list_id;
  int http_status;
  std::string message;  // Connyline's "message", before the sandbox's note
};

void PrintTo(const FaultCase& c, std::ostream* os) { *os << c.list_id; }

class FaultListTest : public ::testing::TestWithParam<FaultCase> {};

TEST_P(FaultListTest, AnswersWithConnylinesErrorBody) {
  const FaultCase& c = GetParam();
  std::vector<std::string> accepted;
  const HttpResponse response =
      SimulateConnyline(CreateOnList(c.list_id), absl::UTCTimeZone(),
                        absl::Now(), &accepted)
          .value();
  EXPECT_EQ(response.status, c.http_status);
  EXPECT_EQ(response.Header("content-type"), "application/json");
  const nlohmann::json body = nlohmann::json::parse(response.body);
  EXPECT_EQ(body["success"], false);
  EXPECT_EQ(body["message"],
            absl::StrCat(c.message, " (sandbox fault list ", c.list_id, ")"));
  if (c.http_status == 429) {
    EXPECT_EQ(response.Header("retry-after"), "30");
  } else {
    EXPECT_EQ(response.Header("retry-after"), std::nullopt);
  }
  EXPECT_TRUE(accepted.empty());
}

INSTANTIATE_TEST_SUITE_P(
    AllStatuses, FaultListTest,
    ::testing::Values(FaultCase{990400, 400, "Necessary data is missing."},
                      FaultCase{990401, 401, "Unauthenticated."},
                      FaultCase{990402, 402, "Insufficient credit."},
                      FaultCase{990403, 403, "Forbidden."},
                      FaultCase{990404, 404, "List not found."},
                      FaultCase{
                          990409, 409,
                          "Conflict: a campaign like this one already exists."},
                      FaultCase{990429, 429, "Too Many Requests."},
                      FaultCase{990500, 500, "Server Error."},
                      FaultCase{990503, 503, "Service Unavailable."}),
    [](const ::testing::TestParamInfo<FaultCase>& info) {
      return absl::StrCat("List", info.param.list_id);
    });

TEST(SimulateConnylineTest, TheMalformedListAnswers201WithABrokenBody) {
  std::vector<std::string> accepted;
  const HttpResponse response =
      SimulateConnyline(CreateOnList(990999), absl::UTCTimeZone(), absl::Now(),
                        &accepted)
          .value();
  EXPECT_EQ(response.status, 201);
  EXPECT_TRUE(
      nlohmann::json::parse(response.body, nullptr, false).is_discarded());
  EXPECT_FALSE(ParseCreateCampaignResponse(response, absl::UTCTimeZone()).ok());
  EXPECT_TRUE(accepted.empty());
}

TEST(SimulateConnylineTest, TheSilentListIsNeverAnswered) {
  EXPECT_EQ(SimulateConnyline(CreateOnList(990504), absl::UTCTimeZone(),
                              absl::Now(), nullptr),
            std::nullopt);
}

TEST(SimulateConnylineTest, OtherListsNearTheFaultsAreUnknown) {
  for (int64_t list_id : {990000, 990418, 990502, 991000}) {
    EXPECT_EQ(SimulateConnyline(CreateOnList(list_id), absl::UTCTimeZone(),
                                absl::Now(), nullptr)
                  .value()
                  .status,
              404)
        << list_id;
  }
}

TEST(SimulateConnylineTest, TheFaultListsAreNotListed) {
  for (const SandboxList& list : SandboxLists()) {
    EXPECT_LT(list.list_id, kSandboxFaultListBase) << list.name;
  }
}

TEST(SandboxTransportTest, AnswersAsynchronouslyAndRecords) {
  SandboxTransport transport(absl::UTCTimeZone());
  absl::Notification done;
  HttpResult result;
  std::thread::id callback_thread;
  transport.Start(BuildCreateCampaignRequest(kTarget, "sandbox", Draft()),
                  absl::Now() + absl::Seconds(5), [&](HttpResult r) {
                    callback_thread = std::this_thread::get_id();
                    result = std::move(r);
                    done.Notify();
                  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  // Never inline: the transport's own thread answers.
  EXPECT_NE(callback_thread, std::this_thread::get_id());
  ASSERT_TRUE(std::holds_alternative<HttpResponse>(result));
  EXPECT_EQ(std::get<HttpResponse>(result).status, 201);
  EXPECT_EQ(transport.AcceptedCampaigns().size(), 1u);
}

TEST(SandboxTransportTest, HonoursAPassedDeadline) {
  SandboxTransport transport(absl::UTCTimeZone());
  absl::Notification done;
  HttpResult result;
  transport.Start(BuildListListsRequest(kTarget, "sandbox"),
                  absl::Now() - absl::Seconds(1), [&](HttpResult r) {
                    result = std::move(r);
                    done.Notify();
                  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(std::holds_alternative<TransportError>(result));
  EXPECT_EQ(std::get<TransportError>(result).kind,
            TransportError::Kind::kTimeout);
}

}  // namespace
}  // namespace campaign_gateway

namespace campaign_gateway {
namespace {

// The silent list through the transport: held until its deadline, its
// cancellation or the transport's end, and answered exactly once.
struct Outcome {
  absl::Notification done;
  HttpResult result;
  absl::Time at;
};

uint64_t StartSilent(SandboxTransport& transport, absl::Time deadline,
                     Outcome& outcome) {
  return transport.Start(CreateOnList(kSandboxSilentList), deadline,
                         [&outcome](HttpResult r) {
                           outcome.result = std::move(r);
                           outcome.at = absl::Now();
                           outcome.done.Notify();
                         });
}

TransportError ErrorOf(const Outcome& outcome) {
  const auto* error = std::get_if<TransportError>(&outcome.result);
  return error != nullptr ? *error : TransportError{};
}

TEST(SandboxTransportTest, TheSilentListTimesOutAtItsDeadline) {
  SandboxTransport transport(absl::UTCTimeZone());
  const absl::Time deadline = absl::Now() + absl::Milliseconds(300);
  Outcome outcome;
  StartSilent(transport, deadline, outcome);
  // Other requests are answered meanwhile: the held one blocks nothing.
  Outcome other;
  transport.Start(BuildListListsRequest(kTarget, "sandbox"),
                  absl::Now() + absl::Seconds(5), [&other](HttpResult r) {
                    other.result = std::move(r);
                    other.done.Notify();
                  });
  ASSERT_TRUE(other.done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_FALSE(outcome.done.HasBeenNotified());
  EXPECT_EQ(transport.Unanswered(), 1u);

  ASSERT_TRUE(outcome.done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_GE(outcome.at, deadline);
  const TransportError error = ErrorOf(outcome);
  EXPECT_EQ(error.kind, TransportError::Kind::kTimeout);
  // It reached "Connyline", which may have acted on it.
  EXPECT_TRUE(error.request_may_have_been_sent);
  EXPECT_EQ(transport.Unanswered(), 0u);
}

TEST(SandboxTransportTest, CancellingTheSilentListEndsItAtOnce) {
  SandboxTransport transport(absl::UTCTimeZone());
  Outcome outcome;
  const uint64_t id =
      StartSilent(transport, absl::Now() + absl::Seconds(60), outcome);
  while (transport.Unanswered() == 0) absl::SleepFor(absl::Milliseconds(1));
  const absl::Time cancelled_at = absl::Now();
  transport.Cancel(id);
  ASSERT_TRUE(outcome.done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_LT(outcome.at - cancelled_at, absl::Seconds(1));
  EXPECT_EQ(ErrorOf(outcome).kind, TransportError::Kind::kCancelled);
  EXPECT_EQ(transport.Unanswered(), 0u);
}

TEST(SandboxTransportTest, StoppingEndsTheSilentListOnce) {
  Outcome outcome;
  {
    SandboxTransport transport(absl::UTCTimeZone());
    StartSilent(transport, absl::InfiniteFuture(), outcome);
    while (transport.Unanswered() == 0) absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(outcome.done.HasBeenNotified());
  EXPECT_EQ(ErrorOf(outcome).kind, TransportError::Kind::kCancelled);
}

}  // namespace
}  // namespace campaign_gateway
