#include "service/sandbox_transport.h"

#include <string>
#include <thread>
#include <vector>

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
                        absl::UTCTimeZone(), absl::Now(), nullptr);
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
                        absl::UTCTimeZone(), now, &accepted);
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
      SimulateConnyline(no_token, absl::UTCTimeZone(), absl::Now(), nullptr);
  EXPECT_EQ(response.status, 400);
  EXPECT_THAT(response.body, HasSubstr("NO Token Found."));

  HttpRequest missing = BuildCreateCampaignRequest(kTarget, "sandbox", Draft());
  missing.body = R"({"campaign_name":"x"})";
  response =
      SimulateConnyline(missing, absl::UTCTimeZone(), absl::Now(), nullptr);
  EXPECT_EQ(response.status, 400);
  EXPECT_THAT(response.body, HasSubstr("Necessary data is missing."));

  CampaignDraft unknown_list = Draft();
  unknown_list.list_id = 42;
  response = SimulateConnyline(
      BuildCreateCampaignRequest(kTarget, "sandbox", unknown_list),
      absl::UTCTimeZone(), absl::Now(), nullptr);
  EXPECT_EQ(response.status, 404);
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
