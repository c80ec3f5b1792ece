#include "service/rest_request.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace campaign_gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

const UpstreamTarget kTarget{"https://gw.example.net/connyline",
                             std::string(56, 't'), "campaign-gateway/0.1.0"};

CampaignDraft DocumentedDraft() {
  CampaignDraft draft;
  draft.campaign_name = "February 2026 Promo";
  draft.sender = "MYSHOP";
  draft.list_id = 123;
  draft.sms_text = "Hi! Don't miss our exclusive offer. Visit: {shortlink1}";
  draft.start = "2026-02-25 10:30";
  draft.shortlink1 = "https://www.example.com/promo";
  return draft;
}

TEST(BuildListListsRequestTest, GetWithPathPrefixedBase) {
  const HttpRequest request = BuildListListsRequest(kTarget, "acme01");
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.url,
            "https://gw.example.net/connyline/api/v1/acme01/lists/get-all/");
  EXPECT_EQ(request.body, "");
}

TEST(BuildListListsRequestTest, HeadersExactly) {
  const HttpRequest request = BuildListListsRequest(kTarget, "acme01");
  EXPECT_THAT(request.headers,
              ElementsAre(Pair("Authorization", "Bearer " + kTarget.token),
                          Pair("Accept", "application/json"),
                          Pair("User-Agent", "campaign-gateway/0.1.0")));
}

TEST(BuildListListsRequestTest, BaseWithoutPrefix) {
  const UpstreamTarget target{"http://127.0.0.1:8080", "tok", "ua"};
  EXPECT_EQ(BuildListListsRequest(target, "acme").url,
            "http://127.0.0.1:8080/api/v1/acme/lists/get-all/");
}

TEST(BuildListListsRequestTest, AccountIsPercentEncoded) {
  EXPECT_EQ(BuildListListsRequest(kTarget, "a/b?c#d e%Σ-._~").url,
            "https://gw.example.net/connyline/api/v1/"
            "a%2Fb%3Fc%23d%20e%25%CE%A3-._~/lists/get-all/");
  // A dot-segment would be resolved away by HTTP clients.
  EXPECT_EQ(BuildListListsRequest(kTarget, "..").url,
            "https://gw.example.net/connyline/api/v1/%2E%2E/lists/get-all/");
  EXPECT_EQ(BuildListListsRequest(kTarget, "a.b").url,
            "https://gw.example.net/connyline/api/v1/a.b/lists/get-all/");
}

TEST(BuildCreateCampaignRequestTest, PostWithPathPrefixedBase) {
  const HttpRequest request =
      BuildCreateCampaignRequest(kTarget, "acme01", DocumentedDraft());
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url,
            "https://gw.example.net/connyline/api/v1/acme01/campaigns/sms/"
            "create");
}

TEST(BuildCreateCampaignRequestTest, HeadersExactly) {
  const HttpRequest request =
      BuildCreateCampaignRequest(kTarget, "acme01", DocumentedDraft());
  EXPECT_THAT(request.headers,
              ElementsAre(Pair("Authorization", "Bearer " + kTarget.token),
                          Pair("Accept", "application/json"),
                          Pair("User-Agent", "campaign-gateway/0.1.0"),
                          Pair("Content-Type", "application/json")));
}

TEST(BuildCreateCampaignRequestTest, DocumentedBodyExactly) {
  const HttpRequest request =
      BuildCreateCampaignRequest(kTarget, "acme01", DocumentedDraft());
  EXPECT_EQ(request.body,
            R"({"campaign_name":"February 2026 Promo","sender":"MYSHOP",)"
            R"("list_id":123,"sms_text":"Hi! Don't miss our exclusive offer. )"
            R"(Visit: {shortlink1}","start":"2026-02-25 10:30",)"
            R"("shortlink1":"https://www.example.com/promo"})");
}

TEST(BuildCreateCampaignRequestTest, ExactlySixKeysInDocumentedOrder) {
  const nlohmann::ordered_json body = nlohmann::ordered_json::parse(
      BuildCreateCampaignRequest(kTarget, "acme01", DocumentedDraft()).body);
  std::vector<std::string> keys;
  for (const auto& [key, value] : body.items()) keys.push_back(key);
  EXPECT_THAT(keys, ElementsAre("campaign_name", "sender", "list_id",
                                "sms_text", "start", "shortlink1"));
}

TEST(BuildCreateCampaignRequestTest, ListIdIsAJsonInteger) {
  CampaignDraft draft = DocumentedDraft();
  draft.list_id = 9007199254740993;  // beyond a double's exact range
  const nlohmann::json body = nlohmann::json::parse(
      BuildCreateCampaignRequest(kTarget, "acme01", draft).body);
  ASSERT_TRUE(body["list_id"].is_number_integer());
  EXPECT_EQ(body["list_id"].get<int64_t>(), 9007199254740993);
  EXPECT_NE(BuildCreateCampaignRequest(kTarget, "acme01", draft)
                .body.find(R"("list_id":9007199254740993,)"),
            std::string::npos);
}

TEST(BuildCreateCampaignRequestTest, EmptyShortlinkIsSentAsEmptyString) {
  CampaignDraft draft = DocumentedDraft();
  draft.sms_text = "Hi! Your exclusive offer is waiting for you.";
  draft.shortlink1.clear();
  const std::string body =
      BuildCreateCampaignRequest(kTarget, "acme01", draft).body;
  EXPECT_NE(body.find(R"("shortlink1":"")"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(body)["shortlink1"], "");
}

TEST(BuildCreateCampaignRequestTest, TextIsByteExact) {
  CampaignDraft draft = DocumentedDraft();
  draft.campaign_name = "Προσφορά \"Φεβρουαρίου\" 🎉";
  draft.sms_text =
      "Γεια σου! Μην χάσεις την προσφορά 😀\nLine 2\ttab \\ back\r\nend "
      "{shortlink1} 'single' \"double\" </script> € ß";
  const std::string body =
      BuildCreateCampaignRequest(kTarget, "acme01", draft).body;
  // UTF-8 goes out raw, not as \u escapes.
  EXPECT_NE(body.find("Προσφορά \\\"Φεβρουαρίου\\\" 🎉"), std::string::npos);
  EXPECT_EQ(body.find("\\u"), std::string::npos);
  const nlohmann::json parsed = nlohmann::json::parse(body);
  EXPECT_EQ(parsed["campaign_name"].get<std::string>(), draft.campaign_name);
  EXPECT_EQ(parsed["sms_text"].get<std::string>(), draft.sms_text);
  EXPECT_EQ(parsed["sender"].get<std::string>(), draft.sender);
  EXPECT_EQ(parsed["start"].get<std::string>(), draft.start);
  EXPECT_EQ(parsed["shortlink1"].get<std::string>(), draft.shortlink1);
}

TEST(BuildCreateCampaignRequestTest, InvalidUtf8NeverThrows) {
  // Validation rejects it first; the builder must still not throw.
  CampaignDraft draft = DocumentedDraft();
  draft.sms_text = "bad \xFF byte";
  HttpRequest request;
  EXPECT_NO_THROW(request =
                      BuildCreateCampaignRequest(kTarget, "acme01", draft));
  EXPECT_TRUE(nlohmann::json::accept(request.body));
}

}  // namespace
}  // namespace campaign_gateway
