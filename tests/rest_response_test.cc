#include "service/rest_response.h"

#include <ostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/errors.h"
#include "tests/support/status_matchers.h"

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::HasErrorInfo;

constexpr absl::string_view kDocumentedCreateBody = R"({
"success": true,
"message": "SMS Campaign created successfully.",
"data": {
"campaign_name": "February 2026 Promo",
"sender": "MYSHOP",
"list_id": 123,
"start": "2026-02-25 10:30:00",
"created_at": "2026-02-24 09:15:00"
}
})";

constexpr absl::string_view kDocumentedListsBody =
    R"({ "data": [ { "list_id": 123, "name": "2026 Clients" } ] })";

HttpResponse Response(int status, absl::string_view body) {
  HttpResponse response;
  response.status = status;
  response.body = std::string(body);
  return response;
}

absl::Time Utc(int y, int m, int d, int hh, int mm, int ss) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss),
                         absl::UTCTimeZone());
}

absl::TimeZone LoadZone(const std::string& name) {
  absl::TimeZone zone;
  EXPECT_TRUE(absl::LoadTimeZone(name, &zone)) << name;
  return zone;
}

// Asserts INTERNAL / UPSTREAM_BAD_RESPONSE with http_status and returns the
// message.
std::string ExpectBadResponse(const absl::Status& status, int http_status) {
  EXPECT_THAT(status, HasErrorInfo(absl::StatusCode::kInternal,
                                   reason::kUpstreamBadResponse));
  const std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(status);
  if (!info) return "";
  EXPECT_EQ(info->metadata().at(std::string(metadata_key::kHttpStatus)),
            absl::StrCat(http_status));
  return std::string(status.message());
}

// ---- ListLists ----

TEST(ParseListListsResponseTest, DocumentedBody) {
  const auto lists =
      ParseListListsResponse(Response(200, kDocumentedListsBody));
  ASSERT_TRUE(lists.ok()) << lists.status();
  ASSERT_EQ(lists->lists_size(), 1);
  EXPECT_EQ(lists->lists(0).list_id(), 123);
  EXPECT_EQ(lists->lists(0).name(), "2026 Clients");
}

TEST(ParseListListsResponseTest, ManyListsInOrderWithUnknownFields) {
  const auto lists = ParseListListsResponse(Response(200, R"({
    "success": true, "total": 3,
    "data": [
      {"list_id": 7, "name": "Πελάτες 2026 😀", "contacts": 1500,
       "created_at": "2025-01-01 00:00:00", "tags": ["a"], "meta": null},
      {"list_id": "42", "name": "PHP string id"},
      {"name": "order of keys does not matter", "list_id": 9223372036854775807}
    ]})"));
  ASSERT_TRUE(lists.ok()) << lists.status();
  ASSERT_EQ(lists->lists_size(), 3);
  EXPECT_EQ(lists->lists(0).list_id(), 7);
  EXPECT_EQ(lists->lists(0).name(), "Πελάτες 2026 😀");
  EXPECT_EQ(lists->lists(1).list_id(), 42);
  EXPECT_EQ(lists->lists(2).list_id(), 9223372036854775807);
}

TEST(ParseListListsResponseTest, EmptyDataIsNoLists) {
  const auto lists = ParseListListsResponse(Response(200, R"({"data": []})"));
  ASSERT_TRUE(lists.ok()) << lists.status();
  EXPECT_EQ(lists->lists_size(), 0);
}

struct BadListsCase {
  std::string name;
  std::string body;
  std::string problem;  // expected at the end of the message
};

void PrintTo(const BadListsCase& c, std::ostream* os) { *os << c.name; }

class BadListsBodyTest : public ::testing::TestWithParam<BadListsCase> {};

TEST_P(BadListsBodyTest, IsBadResponseNamingTheProblem) {
  const absl::Status status =
      ParseListListsResponse(Response(200, GetParam().body)).status();
  EXPECT_EQ(
      ExpectBadResponse(status, 200),
      absl::StrCat("Connyline answered HTTP 200 with an unexpected body: ",
                   GetParam().problem));
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadListsBodyTest,
    ::testing::Values(
        BadListsCase{"Empty", "", "it is empty"},
        BadListsCase{"Whitespace", " \r\n", "it is empty"},
        BadListsCase{"Html", "<html><body><h1>Maintenance</h1></body></html>",
                     "it is not JSON: \"Maintenance\""},
        BadListsCase{"Garbage", "data: 1", "it is not JSON: \"data: 1\""},
        BadListsCase{"TruncatedJson", R"({"data": [)",
                     R"(it is not JSON: "{"data": [")"},
        BadListsCase{
            "TopLevelArray", R"([{"list_id": 1, "name": "x"}])",
            R"(it is not a JSON object: "[{"list_id": 1, "name": "x"}]")"},
        BadListsCase{"MissingData", R"({"lists": []})", "data is missing"},
        BadListsCase{"DataNotArray", R"({"data": {"list_id": 1}})",
                     "data is not an array"},
        BadListsCase{"EntryNotObject",
                     R"({"data": [{"list_id": 1, "name": "a"}, 5]})",
                     "data[1] is not an object"},
        BadListsCase{"MissingListId", R"({"data": [{"name": "a"}]})",
                     "data[0].list_id is missing"},
        BadListsCase{"MissingName", R"({"data": [{"list_id": 1}]})",
                     "data[0].name is missing"},
        BadListsCase{"NameNotString",
                     R"({"data": [{"list_id": 1, "name": 5}]})",
                     "data[0].name is not a string"},
        BadListsCase{"NameNull", R"({"data": [{"list_id": 1, "name": null}]})",
                     "data[0].name is not a string"},
        BadListsCase{"ListIdZero", R"({"data": [{"list_id": 0, "name": "a"}]})",
                     "data[0].list_id is not a positive integer"},
        BadListsCase{"ListIdNegative",
                     R"({"data": [{"list_id": -3, "name": "a"}]})",
                     "data[0].list_id is not a positive integer"},
        BadListsCase{"ListIdFloat",
                     R"({"data": [{"list_id": 1.5, "name": "a"}]})",
                     "data[0].list_id is not a positive integer"},
        BadListsCase{
            "ListIdTooBig",
            R"({"data": [{"list_id": 9223372036854775808, "name": "a"}]})",
            "data[0].list_id is not a positive integer"},
        BadListsCase{"ListIdStringNotDigits",
                     R"({"data": [{"list_id": "12a", "name": "a"}]})",
                     "data[0].list_id is not a positive integer"},
        BadListsCase{"ListIdStringSigned",
                     R"({"data": [{"list_id": "+12", "name": "a"}]})",
                     "data[0].list_id is not a positive integer"},
        BadListsCase{"ListIdStringEmpty",
                     R"({"data": [{"list_id": "", "name": "a"}]})",
                     "data[0].list_id is not a positive integer"},
        BadListsCase{
            "ListIdStringOverflow",
            R"({"data": [{"list_id": "99999999999999999999", "name": "a"}]})",
            "data[0].list_id is not a positive integer"},
        BadListsCase{"ListIdBool",
                     R"({"data": [{"list_id": true, "name": "a"}]})",
                     "data[0].list_id is not a positive integer"},
        BadListsCase{"SuccessNotBoolean", R"({"success": "yes", "data": []})",
                     "success is not a boolean"}),
    [](const ::testing::TestParamInfo<BadListsCase>& info) {
      return info.param.name;
    });

TEST(ParseListListsResponseTest, SuccessFalseIsA400) {
  const absl::Status status =
      ParseListListsResponse(
          Response(200, R"({"success": false, "message": "NO Token Found."})"))
          .status();
  ASSERT_THAT(status, HasErrorInfo(absl::StatusCode::kUnauthenticated,
                                   reason::kUpstreamUnauthenticated));
  EXPECT_EQ(GetErrorInfo(status)->metadata().at("upstream_message"),
            "NO Token Found.");
}

TEST(ParseListListsResponseTest, ErrorStatusesAreDelegatedToTheMapping) {
  HttpResponse response = Response(429, R"({"message": "Too Many Attempts."})");
  response.headers.emplace_back("retry-after", "17");
  const absl::Status status = ParseListListsResponse(response).status();
  EXPECT_THAT(status, HasErrorInfo(absl::StatusCode::kResourceExhausted,
                                   reason::kUpstreamRateLimited));
  ASSERT_TRUE(GetRetryInfo(status).has_value());
  EXPECT_EQ(GetRetryInfo(status)->retry_delay().seconds(), 17);
  EXPECT_EQ(ParseListListsResponse(Response(404, "")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(JsonDepthWithinTest, CountsOnlyBracketsOutsideStrings) {
  EXPECT_TRUE(JsonDepthWithin("", 0));
  EXPECT_TRUE(JsonDepthWithin(R"({"a":[1,{"b":2}]})", 3));
  EXPECT_FALSE(JsonDepthWithin(R"({"a":[1,{"b":2}]})", 2));
  EXPECT_TRUE(JsonDepthWithin(R"({"a":"[[[[{{{{"})", 1));
  EXPECT_TRUE(JsonDepthWithin(R"({"a":"\"[[[["})", 1));  // escaped quote
  EXPECT_TRUE(JsonDepthWithin("[[]][[]]", 2));
  EXPECT_FALSE(JsonDepthWithin(std::string(65, '['), kMaxJsonDepth));
  EXPECT_TRUE(JsonDepthWithin(std::string(64, '['), kMaxJsonDepth));
}

TEST(ParseListListsResponseTest, AHugelyNestedBodyIsABadResponse) {
  // 100,000 levels: no stack overflow, a clean mapping.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const absl::Status status =
      ParseListListsResponse(Response(200, deep)).status();
  EXPECT_THAT(status, HasErrorInfo(absl::StatusCode::kInternal,
                                   "UPSTREAM_BAD_RESPONSE"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("nests deeper than 64 levels"));
  const std::string deep_object =
      R"({"data":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_THAT(
      ParseCreateCampaignResponse(Response(201, deep_object),
                                  absl::UTCTimeZone())
          .status(),
      HasErrorInfo(absl::StatusCode::kInternal, "UPSTREAM_BAD_RESPONSE"));
  // An error answer too: its message is not read, the status still maps.
  const std::string deep_error = R"({"message":"x","a":)" +
                                 std::string(30000, '[') +
                                 std::string(30000, ']') + "}";
  EXPECT_THAT(
      ParseListListsResponse(Response(503, deep_error)).status(),
      HasErrorInfo(absl::StatusCode::kUnavailable, "UPSTREAM_UNAVAILABLE"));
}

TEST(ParseListListsResponseTest, NonJsonExcerptIsShort) {
  const std::string body =
      "<html><body>" + std::string(10 << 20, 'x') + "</body></html>";
  const absl::Status status =
      ParseListListsResponse(Response(200, body)).status();
  EXPECT_LT(ExpectBadResponse(status, 200).size(), 300u);
}

TEST(ParseListListsResponseTest, DeeplyNestedJsonDoesNotCrash) {
  const std::string deep = R"({"data": )" + std::string(100000, '[') +
                           std::string(100000, ']') + "}";
  const absl::Status status =
      ParseListListsResponse(Response(200, deep)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  const std::string unterminated = std::string(1000000, '[');
  EXPECT_EQ(ParseListListsResponse(Response(200, unterminated)).status().code(),
            absl::StatusCode::kInternal);
}

TEST(ParseListListsResponseTest, InvalidUtf8InJsonIsBadResponse) {
  const absl::Status status =
      ParseListListsResponse(
          Response(200, "{\"data\": [{\"list_id\": 1, \"name\": \"\xFF\"}]}"))
          .status();
  EXPECT_THAT(ExpectBadResponse(status, 200), HasSubstr("it is not JSON"));
}

// ---- CreateSmsCampaign ----

TEST(ParseCreateCampaignResponseTest, DocumentedBodyInUtc) {
  const auto created = ParseCreateCampaignResponse(
      Response(201, kDocumentedCreateBody), absl::UTCTimeZone());
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->message(), "SMS Campaign created successfully.");
  const campaigns::v1::SmsCampaign& campaign = created->campaign();
  EXPECT_EQ(campaign.campaign_name(), "February 2026 Promo");
  EXPECT_EQ(campaign.sender(), "MYSHOP");
  EXPECT_EQ(campaign.list_id(), 123);
  EXPECT_EQ(campaign.start(), "2026-02-25 10:30:00");
  EXPECT_EQ(campaign.created_at(), "2026-02-24 09:15:00");
  EXPECT_EQ(campaign.start_time().seconds(),
            absl::ToUnixSeconds(Utc(2026, 2, 25, 10, 30, 0)));
  EXPECT_EQ(campaign.start_time().nanos(), 0);
  EXPECT_EQ(campaign.create_time().seconds(),
            absl::ToUnixSeconds(Utc(2026, 2, 24, 9, 15, 0)));
}

TEST(ParseCreateCampaignResponseTest, TimesAreReadInTheConfiguredZone) {
  const auto created = ParseCreateCampaignResponse(
      Response(201, kDocumentedCreateBody), LoadZone("Europe/Athens"));
  ASSERT_TRUE(created.ok()) << created.status();
  // Athens is UTC+2 in February; the strings stay exactly as sent.
  EXPECT_EQ(created->campaign().start(), "2026-02-25 10:30:00");
  EXPECT_EQ(created->campaign().start_time().seconds(),
            absl::ToUnixSeconds(Utc(2026, 2, 25, 8, 30, 0)));
  EXPECT_EQ(created->campaign().create_time().seconds(),
            absl::ToUnixSeconds(Utc(2026, 2, 24, 7, 15, 0)));
  // The zone is named in the answer, so callers never guess it.
  EXPECT_EQ(created->campaign().time_zone(), "Europe/Athens");
}

TEST(ParseCreateCampaignResponseTest, SummerTimeUsesTheSummerOffset) {
  std::string body = absl::StrReplaceAll(
      kDocumentedCreateBody, {{"2026-02-25 10:30:00", "2026-07-01 12:00:00"}});
  const auto created = ParseCreateCampaignResponse(Response(200, body),
                                                   LoadZone("Europe/Athens"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->campaign().start_time().seconds(),
            absl::ToUnixSeconds(Utc(2026, 7, 1, 9, 0, 0)));
}

TEST(ParseCreateCampaignResponseTest, ToleratesUnknownFieldsAndStringListId) {
  const auto created = ParseCreateCampaignResponse(Response(201, R"({
    "success": true, "code": 201, "message": "ok", "meta": {"x": [1, 2]},
    "data": {"id_hint": null, "campaign_name": "Προσφορά 😀",
             "sender": "MYSHOP", "list_id": "123", "sms_count": 2,
             "start": "2026-02-25 10:30:00", "created_at": "2026-02-24 09:15:00"}
  })"),
                                                   absl::UTCTimeZone());
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->campaign().campaign_name(), "Προσφορά 😀");
  EXPECT_EQ(created->campaign().list_id(), 123);
}

TEST(ParseCreateCampaignResponseTest, MessageIsOptional) {
  nlohmann::json body = nlohmann::json::parse(kDocumentedCreateBody);
  body.erase("message");
  auto created = ParseCreateCampaignResponse(Response(201, body.dump()),
                                             absl::UTCTimeZone());
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->message(), "");
  body["message"] = nullptr;
  created = ParseCreateCampaignResponse(Response(201, body.dump()),
                                        absl::UTCTimeZone());
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->message(), "");
}

// Each required field: removed, then given a wrong type.
struct BadCreateCase {
  std::string name;
  std::string pointer;   // JSON pointer of the field to change
  nlohmann::json value;  // replacement; discarded() means "remove"
  std::string problem;
};

void PrintTo(const BadCreateCase& c, std::ostream* os) { *os << c.name; }

class BadCreateBodyTest : public ::testing::TestWithParam<BadCreateCase> {};

TEST_P(BadCreateBodyTest, IsBadResponseNamingTheField) {
  const BadCreateCase& c = GetParam();
  nlohmann::json body = nlohmann::json::parse(kDocumentedCreateBody);
  const nlohmann::json::json_pointer pointer(c.pointer);
  if (c.value.is_discarded()) {
    body[pointer.parent_pointer()].erase(pointer.back());
  } else {
    body[pointer] = c.value;
  }
  const absl::Status status =
      ParseCreateCampaignResponse(Response(201, body.dump()),
                                  absl::UTCTimeZone())
          .status();
  EXPECT_EQ(
      ExpectBadResponse(status, 201),
      absl::StrCat(
          "Connyline answered HTTP 201 with an unexpected body: ", c.problem,
          " (the campaign may have been created; check before "
          "retrying)"));
}

const nlohmann::json kRemove = nlohmann::json::value_t::discarded;

INSTANTIATE_TEST_SUITE_P(
    Table, BadCreateBodyTest,
    ::testing::Values(
        BadCreateCase{"SuccessMissing", "/success", kRemove,
                      "success is missing"},
        BadCreateCase{"SuccessString", "/success", "true",
                      "success is not true"},
        BadCreateCase{"SuccessOne", "/success", 1, "success is not true"},
        BadCreateCase{"MessageNumber", "/message", 5,
                      "message is not a string"},
        BadCreateCase{"DataMissing", "/data", kRemove, "data is missing"},
        BadCreateCase{"DataArray", "/data", nlohmann::json::array(),
                      "data is not an object"},
        BadCreateCase{"CampaignNameMissing", "/data/campaign_name", kRemove,
                      "data.campaign_name is missing"},
        BadCreateCase{"CampaignNameNumber", "/data/campaign_name", 1,
                      "data.campaign_name is not a string"},
        BadCreateCase{"SenderMissing", "/data/sender", kRemove,
                      "data.sender is missing"},
        BadCreateCase{"SenderNull", "/data/sender", nullptr,
                      "data.sender is not a string"},
        BadCreateCase{"ListIdMissing", "/data/list_id", kRemove,
                      "data.list_id is missing"},
        BadCreateCase{"ListIdObject", "/data/list_id", nlohmann::json::object(),
                      "data.list_id is not a positive integer"},
        BadCreateCase{"ListIdZero", "/data/list_id", 0,
                      "data.list_id is not a positive integer"},
        BadCreateCase{"StartMissing", "/data/start", kRemove,
                      "data.start is missing"},
        BadCreateCase{"StartNumber", "/data/start", 20260225,
                      "data.start is not a string"},
        BadCreateCase{"StartWithoutSeconds", "/data/start", "2026-02-25 10:30",
                      "data.start \"2026-02-25 10:30\" is not a "
                      "\"YYYY-MM-DD HH:MM:SS\" time"},
        BadCreateCase{"StartIso", "/data/start", "2026-02-25T10:30:00Z",
                      "data.start \"2026-02-25T10:30:00Z\" is not a "
                      "\"YYYY-MM-DD HH:MM:SS\" time"},
        BadCreateCase{"StartNotADate", "/data/start", "2026-02-30 10:30:00",
                      "data.start \"2026-02-30 10:30:00\" is not a real date "
                      "and time"},
        BadCreateCase{"CreatedAtMissing", "/data/created_at", kRemove,
                      "data.created_at is missing"},
        BadCreateCase{"CreatedAtBadTime", "/data/created_at",
                      "2026-02-24 25:15:00",
                      "data.created_at \"2026-02-24 25:15:00\" is not a real "
                      "date and time"}),
    [](const ::testing::TestParamInfo<BadCreateCase>& info) {
      return info.param.name;
    });

TEST(ParseCreateCampaignResponseTest, HtmlOn2xxIsBadResponseWithExcerpt) {
  const absl::Status status =
      ParseCreateCampaignResponse(
          Response(200,
                   "<!DOCTYPE html><html><head><title>Login</title></head>"
                   "<body>Please sign in</body></html>"),
          absl::UTCTimeZone())
          .status();
  EXPECT_EQ(ExpectBadResponse(status, 200),
            "Connyline answered HTTP 200 with an unexpected body: it is not "
            "JSON: \"Login Please sign in\" (the campaign may have been "
            "created; check before retrying)");
}

TEST(ParseCreateCampaignResponseTest, SuccessFalseIsMappedAsA400) {
  const absl::Status status =
      ParseCreateCampaignResponse(
          Response(
              200,
              R"({"success": false, "message": "Necessary data is missing."})"),
          absl::UTCTimeZone())
          .status();
  ASSERT_THAT(status, HasErrorInfo(absl::StatusCode::kInvalidArgument,
                                   reason::kUpstreamRejectedRequest));
  const std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(status);
  EXPECT_EQ(info->metadata().at("upstream_message"),
            "Necessary data is missing.");
  // The real status is recorded, not the 400 it is treated as.
  EXPECT_EQ(info->metadata().at("http_status"), "200");
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("Necessary data is missing."));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("may have been")));
}

TEST(ParseCreateCampaignResponseTest, SuccessFalseWithoutMessage) {
  const absl::Status status =
      ParseCreateCampaignResponse(Response(201, R"({"success": false})"),
                                  absl::UTCTimeZone())
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(GetErrorInfo(status)->metadata().count("upstream_message") > 0);
}

struct DelegatedCase {
  std::string name;
  int status;
  std::string body;
  absl::StatusCode code;
};

void PrintTo(const DelegatedCase& c, std::ostream* os) { *os << c.name; }

class DelegatedStatusTest : public ::testing::TestWithParam<DelegatedCase> {};

TEST_P(DelegatedStatusTest, NonSuccessStatusUsesTheMapping) {
  const DelegatedCase& c = GetParam();
  const absl::Status status =
      ParseCreateCampaignResponse(Response(c.status, c.body),
                                  absl::UTCTimeZone())
          .status();
  EXPECT_EQ(status.code(), c.code) << status;
  EXPECT_EQ(GetErrorInfo(status)->metadata().at("http_status"),
            absl::StrCat(c.status));
}

INSTANTIATE_TEST_SUITE_P(
    Table, DelegatedStatusTest,
    ::testing::Values(
        DelegatedCase{"Http400NoTokenFound", 400,
                      R"({"success": false, "message": "NO Token Found."})",
                      absl::StatusCode::kUnauthenticated},
        DelegatedCase{
            "Http400MissingData", 400,
            R"({"success": false, "message": "Necessary data is missing."})",
            absl::StatusCode::kInvalidArgument},
        DelegatedCase{"Http402", 402, "",
                      absl::StatusCode::kFailedPrecondition},
        DelegatedCase{"Http500Html", 500, "<html>oops</html>",
                      absl::StatusCode::kInternal},
        DelegatedCase{"Http503", 503, "", absl::StatusCode::kUnavailable},
        // Even a well-formed success body does not make a 4xx a success.
        DelegatedCase{"Http409WithSuccessBody", 409,
                      std::string(kDocumentedCreateBody),
                      absl::StatusCode::kAlreadyExists}),
    [](const ::testing::TestParamInfo<DelegatedCase>& info) {
      return info.param.name;
    });

// ---- ParseConnylineTime ----

TEST(ParseConnylineTimeTest, ReadsLocalTime) {
  EXPECT_EQ(
      ParseConnylineTime("2026-02-25 10:30:00", absl::UTCTimeZone()).value(),
      Utc(2026, 2, 25, 10, 30, 0));
  EXPECT_EQ(
      ParseConnylineTime("2026-02-25 10:30:59", LoadZone("Asia/Tokyo")).value(),
      Utc(2026, 2, 25, 1, 30, 59));
}

TEST(ParseConnylineTimeTest, RejectsOtherShapes) {
  for (absl::string_view bad :
       {"", "2026-02-25", "2026-02-25 10:30", "2026-02-25T10:30:00",
        "2026-02-25 10:30:00Z", "2026-02-25 10:30:00.000", "2026-2-25 10:30:00",
        "2026-02-29 10:30:00", "2026-02-25 10:30:60", "2026-02-25 10:60:00",
        "0000-01-01 00:00:00", "abcd-ef-gh ij:kl:mn"}) {
    EXPECT_FALSE(ParseConnylineTime(bad, absl::UTCTimeZone()).ok()) << bad;
  }
}

TEST(ParseConnylineTimeTest, DstChangesResolveSensibly) {
  const absl::TimeZone athens = LoadZone("Europe/Athens");
  // 03:30 does not exist in Athens on 2026-03-29 (03:00 -> 04:00 at 01:00
  // UTC): it resolves to the moment of the change.
  EXPECT_EQ(ParseConnylineTime("2026-03-29 03:30:00", athens).value(),
            Utc(2026, 3, 29, 1, 0, 0));
  // 03:30 happens twice on 2026-10-25: the first one (still +3) is taken.
  EXPECT_EQ(ParseConnylineTime("2026-10-25 03:30:00", athens).value(),
            Utc(2026, 10, 25, 0, 30, 0));
}

}  // namespace
}  // namespace campaign_gateway
