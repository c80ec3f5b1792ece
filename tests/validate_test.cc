#include "service/validate.h"

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/errors.h"
#include "tests/support/status_matchers.h"

namespace campaign_gateway {
namespace {

using ::campaigns::v1::CreateSmsCampaignRequest;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing_util::HasErrorInfo;

absl::TimeZone LoadZone(const std::string& name) {
  absl::TimeZone zone;
  EXPECT_TRUE(absl::LoadTimeZone(name, &zone)) << name;
  return zone;
}

// No bounds on the start: for the rules other than the start window.
const StartWindow kAnyStart{.now = absl::UnixEpoch(),
                            .past_tolerance = absl::InfiniteDuration(),
                            .max_ahead = absl::InfiniteDuration()};

// The documented example request, valid as is.
CreateSmsCampaignRequest ValidRequest() {
  CreateSmsCampaignRequest request;
  request.set_campaign_name("February 2026 Promo");
  request.set_sender("MYSHOP");
  request.set_list_id(123);
  request.set_sms_text(
      "Hi! Don't miss our exclusive offer. Visit: {shortlink1}");
  request.set_start("2026-02-25 10:30");
  request.set_shortlink1("https://www.example.com/promo");
  return request;
}

// The fields named by the BadRequest of `status`, in order.
std::vector<std::string> ViolatedFields(const absl::Status& status) {
  std::vector<std::string> fields;
  if (auto bad_request = GetBadRequest(status)) {
    for (const auto& violation : bad_request->field_violations()) {
      fields.push_back(violation.field());
    }
  }
  return fields;
}

// Code points as UTF-8.
std::string Repeat(absl::string_view unit, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) absl::StrAppend(&out, unit);
  return out;
}

google::protobuf::Timestamp TimestampOf(absl::Time time) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(time));
  return ts;
}

// ---- Valid requests ----

TEST(ValidateCreateRequestTest, DocumentedExampleCopiesEveryFieldByteExact) {
  const absl::StatusOr<CampaignDraft> draft =
      ValidateCreateRequest(ValidRequest(), absl::UTCTimeZone(), kAnyStart);
  ASSERT_TRUE(draft.ok()) << draft.status();
  EXPECT_EQ(draft->campaign_name, "February 2026 Promo");
  EXPECT_EQ(draft->sender, "MYSHOP");
  EXPECT_EQ(draft->list_id, 123);
  EXPECT_EQ(draft->sms_text,
            "Hi! Don't miss our exclusive offer. Visit: {shortlink1}");
  EXPECT_EQ(draft->start, "2026-02-25 10:30");
  EXPECT_EQ(draft->shortlink1, "https://www.example.com/promo");
}

TEST(ValidateCreateRequestTest, ShortlinkIsOptional) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.set_sms_text("Hi! Your exclusive offer is waiting for you.");
  request.clear_shortlink1();
  const absl::StatusOr<CampaignDraft> draft =
      ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart);
  ASSERT_TRUE(draft.ok()) << draft.status();
  EXPECT_EQ(draft->shortlink1, "");
}

TEST(ValidateCreateRequestTest, GreekAndEmojiTextIsKeptByteExact) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.set_campaign_name("Προσφορά Φεβρουαρίου 🎉");
  request.set_sms_text(
      "Γεια σου! \"Μην\" χάσεις την προσφορά 😀\nΔες: {shortlink1}\t!");
  const absl::StatusOr<CampaignDraft> draft =
      ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart);
  ASSERT_TRUE(draft.ok()) << draft.status();
  EXPECT_EQ(draft->campaign_name, request.campaign_name());
  EXPECT_EQ(draft->sms_text, request.sms_text());
}

TEST(ValidateCreateRequestTest, LengthsAreCountedInCodePointsAtTheLimit) {
  CreateSmsCampaignRequest request = ValidRequest();
  // 2-byte Greek and 4-byte emoji: the byte counts far exceed the limits.
  request.set_campaign_name(Repeat("α", kMaxCampaignNameChars));
  request.set_sms_text(Repeat("😀", kMaxSmsTextChars));
  request.clear_shortlink1();
  EXPECT_TRUE(
      ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart).ok());
}

TEST(ValidateCreateRequestTest, OneCodePointOverTheLimitIsRejected) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.set_campaign_name(Repeat("α", kMaxCampaignNameChars + 1));
  request.set_sms_text(Repeat("😀", kMaxSmsTextChars + 1));
  request.clear_shortlink1();
  const absl::Status status =
      ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart).status();
  EXPECT_THAT(ViolatedFields(status), ElementsAre("campaign_name", "sms_text"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("got 201"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("got 1601"));
}

TEST(ValidateCreateRequestTest, AsciiLengthBounds) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.set_campaign_name(std::string(kMaxCampaignNameChars, 'n'));
  request.set_sms_text(std::string(kMaxSmsTextChars, 's'));
  request.clear_shortlink1();
  EXPECT_TRUE(
      ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart).ok());
  request.set_sms_text(std::string(kMaxSmsTextChars + 1, 's'));
  EXPECT_THAT(ViolatedFields(
                  ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart)
                      .status()),
              ElementsAre("sms_text"));
}

// ---- Bad requests: each names exactly the violating fields ----

struct BadCase {
  std::string name;
  std::function<void(CreateSmsCampaignRequest&)> mutate;
  std::vector<std::string> fields;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadRequestTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadRequestTest, NamesTheViolatingFields) {
  CreateSmsCampaignRequest request = ValidRequest();
  GetParam().mutate(request);
  const absl::StatusOr<CampaignDraft> draft =
      ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart);
  ASSERT_FALSE(draft.ok());
  const absl::Status& status = draft.status();
  EXPECT_THAT(status, HasErrorInfo(absl::StatusCode::kInvalidArgument,
                                   reason::kInvalidRequest));
  EXPECT_THAT(ViolatedFields(status), ElementsAreArray(GetParam().fields));
  // Refused before sending: safe to retry, once fixed.
  EXPECT_EQ(GetErrorInfo(status)->metadata().at("request_sent"), "false");
  EXPECT_THAT(std::string(status.message()),
              StartsWith("invalid CreateSmsCampaignRequest: " +
                         GetParam().fields.front() + ": "));
}

using R = CreateSmsCampaignRequest;

INSTANTIATE_TEST_SUITE_P(Table, BadRequestTest,
                         ::
                             testing::Values(BadCase{"MissingCampaignName",
                                                     [](R& r) {
                                                       r.clear_campaign_name();
                                                     },
                                                     {"campaign_name"}},
                                             BadCase{"BlankCampaignName",
                                                     [](R& r) {
                                                       r.set_campaign_name(
                                                           " \t\xC2\xA0 ");
                                                     },
                                                     {"campaign_name"}},
                                             BadCase{"CampaignNameWithNewline",
                                                     [](R& r) {
                                                       r.set_campaign_name(
                                                           "Promo\nFeb");
                                                     },
                                                     {"campaign_name"}},
                                             BadCase{
                                                 "CampaignNameWithC1Control",
                                                 [](R& r) {
                                                   r.set_campaign_name(
                                                       "Promo\xC2\x85");
                                                 },
                                                 {"campaign_name"}},
                                             BadCase{"CampaignNameInvalidUtf8",
                                                     [](R& r) {
                                                       r.set_campaign_name(
                                                           "Promo\xFF");
                                                     },
                                                     {"campaign_name"}},
                                             BadCase{
                                                 "MissingSender",
                                                 [](R& r) { r.clear_sender(); },
                                                 {"sender"}},
                                             BadCase{"SenderWithSpace",
                                                     [](R& r) {
                                                       r.set_sender("MY SHOP");
                                                     },
                                                     {"sender"}},
                                             BadCase{"SenderWithPunctuation",
                                                     [](R& r) {
                                                       r.set_sender("MY-SHOP");
                                                     },
                                                     {"sender"}},
                                             BadCase{"SenderNonAscii",
                                                     [](R& r) {
                                                       r.set_sender(
                                                           "ΚΑΤΑΣΤΗΜΑ");
                                                     },
                                                     {"sender"}},
                                             BadCase{"Sender12Alphanumeric",
                                                     [](R& r) {
                                                       r.set_sender(
                                                           "ABCDEFGHIJK1");
                                                     },
                                                     {"sender"}},
                                             BadCase{"Sender17Digits",
                                                     [](R& r) {
                                                       r.set_sender(
                                                           "12345678901234567");
                                                     },
                                                     {"sender"}},
                                             BadCase{"MissingListId",
                                                     [](R& r) {
                                                       r.clear_list_id();
                                                     },
                                                     {"list_id"}},
                                             BadCase{"NegativeListId",
                                                     [](R& r) {
                                                       r.set_list_id(-5);
                                                     },
                                                     {"list_id"}},
                                             BadCase{"MissingSmsText",
                                                     [](R& r) {
                                                       r.clear_sms_text();
                                                     },
                                                     {"sms_text"}},
                                             BadCase{"BlankSmsText",
                                                     [](R& r) {
                                                       r.set_sms_text("\n\n  ");
                                                     },
                                                     {"sms_text"}},
                                             BadCase{"SmsTextWithBell",
                                                     [](R& r) {
                                                       r.set_sms_text(
                                                           "Hi\a there");
                                                     },
                                                     {"sms_text"}},
                                             BadCase{"SmsTextWithDel",
                                                     [](R& r) {
                                                       r.set_sms_text("Hi\x7F");
                                                     },
                                                     {"sms_text"}},
                                             BadCase{"SmsTextWithNul",
                                                     [](R& r) {
                                                       r.set_sms_text(
                                                           std::string("Hi\0x",
                                                                       4));
                                                     },
                                                     {"sms_text"}},
                                             BadCase{"SmsTextInvalidUtf8",
                                                     [](R& r) {
                                                       r.set_sms_text(
                                                           "Hi \xCE");
                                                     },
                                                     {"sms_text"}},
                                             BadCase{"SmsTextSurrogate",
                                                     [](R& r) {
                                                       r.set_sms_text(
                                                           "Hi \xED\xA0\x80");
                                                     },
                                                     {"sms_text"}},
                                             BadCase{"StartNotACalendarDate",
                                                     [](R& r) {
                                                       r.set_start(
                                                           "2026-02-30 10:30");
                                                     },
                                                     {"start"}},
                                             BadCase{"StartHour24",
                                                     [](R& r) {
                                                       r.set_start(
                                                           "2026-02-25 24:00");
                                                     },
                                                     {"start"}},
                                             BadCase{"StartIsoT",
                                                     [](R& r) {
                                                       r.set_start(
                                                           "2026-02-25T10:30");
                                                     },
                                                     {"start"}},
                                             BadCase{
                                                 "StartWithSeconds",
                                                 [](R& r) {
                                                   r.set_start(
                                                       "2026-02-25 10:30:00");
                                                 },
                                                 {"start"}},
                                             BadCase{
                                                 "EmptyStartIsNoStart",
                                                 [](R& r) { r.set_start(""); },
                                                 {"start", "start_time"}},
                                             BadCase{
                                                 "NeitherStartNorStartTime",
                                                 [](R& r) { r.clear_start(); },
                                                 {"start", "start_time"}},
                                             BadCase{"StartTimeWithSeconds",
                                                     [](R& r) {
                                                       r.clear_start();
                                                       r.mutable_start_time()
                                                           ->set_seconds(
                                                               1772015430);
                                                     },
                                                     {"start_time"}},
                                             BadCase{"StartTimeWithNanos",
                                                     [](R& r) {
                                                       r.clear_start();
                                                       r.mutable_start_time()
                                                           ->set_seconds(
                                                               1772015400);
                                                       r.mutable_start_time()
                                                           ->set_nanos(1);
                                                     },
                                                     {"start_time"}},
                                             BadCase{"StartTimeNegativeNanos",
                                                     [](R& r) {
                                                       r.clear_start();
                                                       r.mutable_start_time()
                                                           ->set_seconds(
                                                               1772015400);
                                                       r.mutable_start_time()
                                                           ->set_nanos(-1);
                                                     },
                                                     {"start_time"}},
                                             BadCase{"StartTimeBeyondYear9999",
                                                     [](R& r) {
                                                       r.clear_start();
                                                       r.mutable_start_time()
                                                           ->set_seconds(
                                                               253402300800);
                                                     },
                                                     {"start_time"}},
                                             BadCase{
                                                 "ShortlinkNotAUrl",
                                                 [](R& r) {
                                                   r.set_shortlink1(
                                                       "www.example.com/promo");
                                                 },
                                                 {"shortlink1"}},
                                             BadCase{
                                                 "ShortlinkFtp",
                                                 [](R& r) {
                                                   r.set_shortlink1(
                                                       "ftp://example.com/x");
                                                 },
                                                 {"shortlink1"}},
                                             BadCase{
                                                 "ShortlinkJavascript",
                                                 [](R& r) {
                                                   r.set_shortlink1(
                                                       "javascript:alert(1)");
                                                 },
                                                 {"shortlink1"}},
                                             BadCase{"ShortlinkNoHost",
                                                     [](R& r) {
                                                       r.set_shortlink1(
                                                           "https:///promo");
                                                     },
                                                     {"shortlink1"}},
                                             BadCase{
                                                 "ShortlinkOnlyUserInfo",
                                                 [](R& r) {
                                                   r.set_shortlink1(
                                                       "https://user@/promo");
                                                 },
                                                 {"shortlink1"}},
                                             BadCase{
                                                 "ShortlinkBadPort",
                                                 [](R& r) {
                                                   r.set_shortlink1(
                                                       "https://"
                                                       "example.com:99999/");
                                                 },
                                                 {"shortlink1"}},
                                             BadCase{"ShortlinkWithSpace",
                                                     [](R& r) {
                                                       r.set_shortlink1(
                                                           "https://"
                                                           "example.com/a b");
                                                     },
                                                     {"shortlink1"}},
                                             BadCase{"ShortlinkWithNewline",
                                                     [](R& r) {
                                                       r.set_shortlink1(
                                                           "https://"
                                                           "example.com/\n");
                                                     },
                                                     {"shortlink1"}},
                                             BadCase{
                                                 "ShortlinkTooLong",
                                                 [](R& r) {
                                                   r.set_shortlink1(
                                                       "https://example.com/" +
                                                       std::string(
                                                           kMaxShortlinkBytes,
                                                           'a'));
                                                 },
                                                 {"shortlink1"}},
                                             BadCase{
                                                 "PlaceholderWithoutShortlink",
                                                 [](R& r) {
                                                   r.clear_shortlink1();
                                                 },
                                                 {"shortlink1"}},
                                             BadCase{
                                                 "EverythingWrongAtOnce",
                                                 [](R& r) {
                                                   r.clear_campaign_name();
                                                   r.set_sender(
                                                       "TOO-LONG-SENDER");
                                                   r.set_list_id(0);
                                                   r.clear_sms_text();
                                                   r.set_start(
                                                       "2026-02-25T10:30");
                                                   r.set_shortlink1("nope");
                                                 },
                                                 {"campaign_name", "sender",
                                                  "list_id", "sms_text",
                                                  "start", "shortlink1"}}),
                         [](const ::testing::TestParamInfo<BadCase>& info) {
                           return info.param.name;
                         });

TEST(ValidateCreateRequestTest, MultipleViolationsAreListedInTheMessage) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.set_sender("MY SHOP");
  request.set_list_id(-1);
  const absl::Status status =
      ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart).status();
  EXPECT_EQ(status.message(),
            "invalid CreateSmsCampaignRequest: sender: must be 1 to 11 ASCII "
            "letters and digits, or up to 16 digits; got \"MY SHOP\"; "
            "list_id: must be positive, got -1");
  const std::optional<google::rpc::BadRequest> bad_request =
      GetBadRequest(status);
  ASSERT_TRUE(bad_request.has_value());
  ASSERT_EQ(bad_request->field_violations_size(), 2);
  EXPECT_EQ(bad_request->field_violations(1).description(),
            "must be positive, got -1");
}

TEST(ValidateCreateRequestTest, PlaceholderViolationExplainsItself) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.clear_shortlink1();
  EXPECT_THAT(
      std::string(ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart)
                      .status()
                      .message()),
      HasSubstr("shortlink1: is required because sms_text contains "
                "{shortlink1}"));
}

// ---- Sender ----

struct SenderCase {
  std::string sender;
  bool valid;
};

void PrintTo(const SenderCase& c, std::ostream* os) {
  *os << '"' << c.sender << (c.valid ? "\" (valid)" : "\" (invalid)");
}

// "Valid_MYSHOP", "Invalid_Plus306912345678", "Invalid_Empty".
std::string SenderCaseName(const ::testing::TestParamInfo<SenderCase>& info) {
  std::string name = info.param.valid ? "Valid_" : "Invalid_";
  if (info.param.sender.empty()) name += "Empty";
  for (char c : info.param.sender) {
    if (absl::ascii_isalnum(c) || c == '_') {
      name += c;
    } else if (c == '+') {
      name += "Plus";
    } else {
      absl::StrAppend(&name, "_x", absl::Hex(static_cast<unsigned char>(c)));
    }
  }
  return name;
}

class SenderTest : public ::testing::TestWithParam<SenderCase> {};

TEST_P(SenderTest, Rules) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.set_sender(GetParam().sender);
  EXPECT_EQ(ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart).ok(),
            GetParam().valid)
      << GetParam().sender;
}

INSTANTIATE_TEST_SUITE_P(
    Table, SenderTest,
    ::testing::Values(SenderCase{"A", true}, SenderCase{"MYSHOP", true},
                      SenderCase{"Shop2026", true},
                      SenderCase{"ABCDEFGHIJK", true},         // 11
                      SenderCase{"ABCDEFGHIJKL", false},       // 12
                      SenderCase{"ABCDEFGHIJ12", false},       // 12, mixed
                      SenderCase{"306912345678", true},        // 12 digits
                      SenderCase{"1234567890123456", true},    // 16 digits
                      SenderCase{"12345678901234567", false},  // 17 digits
                      SenderCase{"+306912345678", false},
                      SenderCase{"MY_SHOP", false}, SenderCase{"", false}),
    SenderCaseName);

// ---- start ----

TEST(ParseStartMinuteTest, AcceptsRealCalendarMinutes) {
  EXPECT_EQ(ParseStartMinute("2026-02-25 10:30").value(),
            absl::CivilMinute(2026, 2, 25, 10, 30));
  EXPECT_EQ(ParseStartMinute("2028-02-29 00:00").value(),
            absl::CivilMinute(2028, 2, 29, 0, 0));
  EXPECT_EQ(ParseStartMinute("2026-12-31 23:59").value(),
            absl::CivilMinute(2026, 12, 31, 23, 59));
}

TEST(ParseStartMinuteTest, RejectsEverythingElse) {
  for (absl::string_view bad : {"2026-02-30 10:30",    "2026-02-25 24:00",
                                "2026-02-25T10:30",    "2026-2-25 10:30",
                                "2026-02-25 10:30 ",   " 2026-02-25 10:30",
                                "2026-02-25 10:30:00", "2027-02-29 10:00",
                                "2026-13-01 10:00",    "2026-00-10 10:00",
                                "2026-04-31 10:00",    "2026-02-00 10:00",
                                "2026-02-25 10:60",    "0000-01-01 00:00",
                                "2026-02-25 1:300",    "2026/02/25 10:30",
                                "2026-02-25 10.30",    "+026-02-25 10:30",
                                "2026-02-25 -1:30",    "",
                                "2026-02-25"}) {
    const absl::StatusOr<absl::CivilMinute> minute = ParseStartMinute(bad);
    EXPECT_FALSE(minute.ok()) << bad;
    EXPECT_EQ(minute.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(ParseStartMinuteTest, MessagesSayWhatIsWrong) {
  EXPECT_EQ(ParseStartMinute("2026-02-30 10:30").status().message(),
            "\"2026-02-30 10:30\" is not a calendar date");
  EXPECT_EQ(ParseStartMinute("2026-02-25 24:00").status().message(),
            "\"2026-02-25 24:00\" is not a time of day (00:00 to 23:59)");
  EXPECT_THAT(
      std::string(ParseStartMinute("2026-02-25T10:30").status().message()),
      HasSubstr("must be formatted \"YYYY-MM-DD HH:MM\""));
}

// ---- start_time ----

absl::StatusOr<CampaignDraft> WithStartTime(absl::Time time,
                                            const absl::TimeZone& zone) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.clear_start();
  *request.mutable_start_time() = TimestampOf(time);
  return ValidateCreateRequest(request, zone, kAnyStart);
}

TEST(StartTimeTest, UtcInstantBecomesLocalMinute) {
  const absl::Time instant = absl::FromCivil(
      absl::CivilSecond(2026, 2, 25, 8, 30, 0), absl::UTCTimeZone());
  EXPECT_EQ(WithStartTime(instant, absl::UTCTimeZone())->start,
            "2026-02-25 08:30");
  // Athens is UTC+2 in winter.
  EXPECT_EQ(WithStartTime(instant, LoadZone("Europe/Athens"))->start,
            "2026-02-25 10:30");
}

TEST(StartTimeTest, AthensAcrossTheSpringDstChange) {
  // Clocks go from 03:00 EET to 04:00 EEST on 2026-03-29 (01:00 UTC).
  const absl::TimeZone athens = LoadZone("Europe/Athens");
  const absl::Time before = absl::FromCivil(
      absl::CivilSecond(2026, 3, 29, 0, 59, 0), absl::UTCTimeZone());
  EXPECT_EQ(WithStartTime(before, athens)->start, "2026-03-29 02:59");
  EXPECT_EQ(WithStartTime(before + absl::Minutes(1), athens)->start,
            "2026-03-29 04:00");
  // A day later the offset is +3.
  EXPECT_EQ(WithStartTime(before + absl::Hours(24), athens)->start,
            "2026-03-30 03:59");
}

TEST(StartTimeTest, AthensAcrossTheAutumnDstChangeIsRefusedAsAmbiguous) {
  // 04:00 EEST becomes 03:00 EET on 2026-10-25 (01:00 UTC): the local
  // minute 03:30 happens twice, an hour apart. Connyline reads local times
  // without an offset, so either instant would reach it as the same text.
  const absl::TimeZone athens = LoadZone("Europe/Athens");
  const absl::Time first = absl::FromCivil(
      absl::CivilSecond(2026, 10, 25, 0, 30, 0), absl::UTCTimeZone());
  for (absl::Time instant : {first, first + absl::Hours(1)}) {
    absl::StatusOr<CampaignDraft> draft = WithStartTime(instant, athens);
    EXPECT_THAT(ViolatedFields(draft.status()), ElementsAre("start_time"));
    EXPECT_THAT(std::string(draft.status().message()),
                HasSubstr("falls at 2026-10-25 03:30 local time, which is "
                          "ambiguous in Europe/Athens"));
  }
  // Either side of the repeated hour is fine.
  EXPECT_EQ(WithStartTime(first - absl::Minutes(31), athens)->start,
            "2026-10-25 02:59");
  EXPECT_EQ(WithStartTime(first + absl::Minutes(90), athens)->start,
            "2026-10-25 04:00");
}

// ---- DST and the start window, with an injected clock ----

// `start` (local, Athens) validated at `now`, with the default window.
absl::Status StartAt(const std::string& start, absl::Time now) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.set_start(start);
  return ValidateCreateRequest(request, LoadZone("Europe/Athens"),
                               StartWindow{.now = now})
      .status();
}

absl::Time Utc(int y, int mo, int d, int h, int mi) {
  return absl::FromCivil(absl::CivilMinute(y, mo, d, h, mi),
                         absl::UTCTimeZone());
}

TEST(StartDstTest, ALocalTimeInTheSpringGapIsRefused) {
  // 2027-03-28: Athens goes from 03:00 EET straight to 04:00 EEST.
  const absl::Time now = Utc(2026, 12, 1, 12, 0);
  const absl::Status status = StartAt("2027-03-28 03:30", now);
  EXPECT_THAT(status, HasErrorInfo(absl::StatusCode::kInvalidArgument,
                                   "INVALID_REQUEST"));
  EXPECT_THAT(ViolatedFields(status), ElementsAre("start"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("start: \"2027-03-28 03:30\" does not exist in "
                        "Europe/Athens: daylight saving time starts that day "
                        "and the clocks skip 03:00 to 04:00"));
  EXPECT_TRUE(StartAt("2027-03-28 02:59", now).ok());
  EXPECT_TRUE(StartAt("2027-03-28 04:00", now).ok());
}

TEST(StartDstTest, ALocalTimeInTheAutumnOverlapIsRefused) {
  // 2027-10-31: Athens goes back from 04:00 EEST to 03:00 EET.
  const absl::Time now = Utc(2026, 12, 1, 12, 0);
  const absl::Status status = StartAt("2027-10-31 03:30", now);
  EXPECT_THAT(ViolatedFields(status), ElementsAre("start"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("\"2027-10-31 03:30\" is ambiguous in Europe/Athens: "
                        "daylight saving time ends that day and the clocks "
                        "repeat 03:00 to 04:00"));
  EXPECT_TRUE(StartAt("2027-10-31 02:59", now).ok());
  EXPECT_TRUE(StartAt("2027-10-31 04:00", now).ok());
}

TEST(StartDstTest, TheNextRealTransitionIsRefusedToo) {
  // Not tied to a date: Athens's next spring-forward after tomorrow.
  const absl::TimeZone athens = LoadZone("Europe/Athens");
  absl::TimeZone::CivilTransition transition;
  absl::Time at = absl::Now() + absl::Hours(24);
  bool found = false;
  for (int i = 0; i < 4 && !found; ++i) {
    ASSERT_TRUE(athens.NextTransition(at, &transition));
    found = transition.to > transition.from;  // the clocks jump forward
    at = athens.At(transition.to).pre;
  }
  ASSERT_TRUE(found);
  const absl::CivilMinute inside = absl::CivilMinute(transition.from) + 30;
  const absl::Status status =
      StartAt(absl::FormatCivilTime(inside).substr(0, 16).replace(10, 1, " "),
              absl::Now());
  EXPECT_THAT(std::string(status.message()), HasSubstr("does not exist"));
}

TEST(StartWindowTest, BoundsAreInclusiveAndBothSidesAreRefused) {
  // In UTC to keep the arithmetic plain.
  const absl::Time now = Utc(2026, 12, 1, 12, 0);
  auto in_utc = [&](absl::Time start) {
    CreateSmsCampaignRequest request = ValidRequest();
    request.set_start(
        absl::FormatTime("%Y-%m-%d %H:%M", start, absl::UTCTimeZone()));
    return ValidateCreateRequest(request, absl::UTCTimeZone(),
                                 StartWindow{.now = now})
        .status();
  };
  EXPECT_TRUE(in_utc(now - absl::Minutes(5)).ok());
  EXPECT_TRUE(in_utc(now + absl::Hours(730 * 24)).ok());
  const absl::Status past = in_utc(now - absl::Minutes(6));
  EXPECT_THAT(ViolatedFields(past), ElementsAre("start"));
  EXPECT_THAT(std::string(past.message()),
              HasSubstr("\"2026-12-01 11:54\" (UTC) is in the past (more "
                        "than 5m before now)"));
  const absl::Status ahead = in_utc(now + absl::Hours(730 * 24 + 1));
  EXPECT_THAT(std::string(ahead.message()),
              HasSubstr("is too far ahead (at most 730 days from now)"));
  // The Timestamp's year 1 and year 9999 are outside any sane window.
  EXPECT_FALSE(in_utc(Utc(1, 1, 1, 0, 0)).ok());
  EXPECT_FALSE(in_utc(Utc(9999, 12, 31, 23, 59)).ok());
}

TEST(StartWindowTest, AppliesToStartTimeToo) {
  const absl::Time now = Utc(2026, 12, 1, 12, 0);
  CreateSmsCampaignRequest request = ValidRequest();
  request.clear_start();
  *request.mutable_start_time() = TimestampOf(now - absl::Hours(1));
  absl::Status status =
      ValidateCreateRequest(request, absl::UTCTimeZone(), {.now = now})
          .status();
  EXPECT_THAT(ViolatedFields(status), ElementsAre("start_time"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("start_time: is in the past"));
  request.mutable_start_time()->set_seconds(253402300740);  // 9999-12-31
  status = ValidateCreateRequest(request, absl::UTCTimeZone(), {.now = now})
               .status();
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("start_time: is too far ahead"));
  *request.mutable_start_time() = TimestampOf(now + absl::Hours(1));
  EXPECT_TRUE(
      ValidateCreateRequest(request, absl::UTCTimeZone(), {.now = now}).ok());
}

TEST(StartTimeTest, ZoneCanMoveTheDate) {
  const absl::Time instant = absl::FromCivil(
      absl::CivilSecond(2026, 12, 31, 23, 0, 0), absl::UTCTimeZone());
  EXPECT_EQ(WithStartTime(instant, LoadZone("Asia/Tokyo"))->start,
            "2027-01-01 08:00");
  EXPECT_EQ(WithStartTime(instant, LoadZone("America/New_York"))->start,
            "2026-12-31 18:00");
}

TEST(StartTimeTest, NonMinuteInstantIsRejectedWithItsValue) {
  const absl::Time instant = absl::FromCivil(
      absl::CivilSecond(2026, 2, 25, 8, 30, 15), absl::UTCTimeZone());
  const absl::Status status =
      WithStartTime(instant, absl::UTCTimeZone()).status();
  EXPECT_THAT(ViolatedFields(status), ElementsAre("start_time"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("start_time: must fall on a whole minute (no seconds "
                        "or nanos), got 2026-02-25T08:30:15Z"));
}

TEST(StartTimeTest, EpochIsAValidMinute) {
  EXPECT_EQ(WithStartTime(absl::UnixEpoch(), absl::UTCTimeZone())->start,
            "1970-01-01 00:00");
  // Negative seconds on a whole minute are fine too.
  EXPECT_EQ(
      WithStartTime(absl::UnixEpoch() - absl::Minutes(1), absl::UTCTimeZone())
          ->start,
      "1969-12-31 23:59");
}

TEST(StartTimeTest, TimestampBoundsInAnOffsetZone) {
  // 9999-12-31 23:59 UTC is 10000-01-01 in Tokyo: not expressible.
  const absl::Time last = absl::FromCivil(
      absl::CivilSecond(9999, 12, 31, 23, 59, 0), absl::UTCTimeZone());
  EXPECT_TRUE(WithStartTime(last, absl::UTCTimeZone()).ok());
  EXPECT_THAT(
      ViolatedFields(WithStartTime(last, LoadZone("Asia/Tokyo")).status()),
      ElementsAre("start_time"));
}

// start and start_time are one oneof since 1.0.0, with their old numbers:
// bytes from an older client that set both still parse, to the last one on
// the wire, instead of being refused as before.
TEST(StartOneofTest, BothOnTheWireReadAsTheLastOne) {
  CreateSmsCampaignRequest with_start = ValidRequest();  // start set
  CreateSmsCampaignRequest with_start_time;
  with_start_time.mutable_start_time()->set_seconds(1772015400);
  CreateSmsCampaignRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(with_start.SerializeAsString() +
                                     with_start_time.SerializeAsString()));
  EXPECT_EQ(parsed.schedule_case(), CreateSmsCampaignRequest::kStartTime);
  EXPECT_TRUE(parsed.start().empty());
  const absl::StatusOr<CampaignDraft> draft =
      ValidateCreateRequest(parsed, absl::UTCTimeZone(), kAnyStart);
  ASSERT_TRUE(draft.ok()) << draft.status();
  EXPECT_EQ(draft->start, "2026-02-25 10:30");
}

TEST(StartOneofTest, SettingOneClearsTheOther) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.mutable_start_time()->set_seconds(1772015400);
  EXPECT_TRUE(request.start().empty());
  request.set_start("2026-02-25 10:30");
  EXPECT_FALSE(request.has_start_time());
}

// ---- shortlink1 ----

struct ShortlinkCase {
  std::string name;
  std::string url;
};

void PrintTo(const ShortlinkCase& c, std::ostream* os) { *os << c.name; }

class GoodShortlinkTest : public ::testing::TestWithParam<ShortlinkCase> {};

TEST_P(GoodShortlinkTest, Accepted) {
  CreateSmsCampaignRequest request = ValidRequest();
  request.set_shortlink1(GetParam().url);
  const absl::StatusOr<CampaignDraft> draft =
      ValidateCreateRequest(request, absl::UTCTimeZone(), kAnyStart);
  ASSERT_TRUE(draft.ok()) << draft.status();
  EXPECT_EQ(draft->shortlink1, GetParam().url);
}

INSTANTIATE_TEST_SUITE_P(
    Table, GoodShortlinkTest,
    ::testing::Values(
        ShortlinkCase{"Https", "https://www.example.com/promo"},
        ShortlinkCase{"HttpWithoutPath", "http://example.com"},
        ShortlinkCase{"UpperCaseWithQueryAndFragment",
                      "HTTPS://EXAMPLE.COM/Promo?a=1&b=2#top"},
        ShortlinkCase{"Port", "https://example.com:8443/x"},
        ShortlinkCase{"Ipv6Host", "https://[2001:db8::1]/x"},
        ShortlinkCase{"Ipv6HostAndPort", "https://[2001:db8::1]:443"},
        ShortlinkCase{"NonAsciiPath", "https://shop.gr/προσφορά"},
        ShortlinkCase{"QueryWithoutPath", "https://example.com?q=1"},
        ShortlinkCase{"LongestAllowed",
                      "https://example.com/" +
                          std::string(kMaxShortlinkBytes - 20, 'a')}),
    [](const ::testing::TestParamInfo<ShortlinkCase>& info) {
      return info.param.name;
    });

// ---- ResolveAccount ----

TEST(ResolveAccountTest, EmptyMeansConfigured) {
  EXPECT_EQ(ResolveAccount("", "acme").value(), "acme");
}

TEST(ResolveAccountTest, SameAccountIsAllowed) {
  EXPECT_EQ(ResolveAccount("acme", "acme").value(), "acme");
}

TEST(ResolveAccountTest, OtherAccountIsPermissionDenied) {
  const absl::StatusOr<std::string> account = ResolveAccount("other", "acme");
  ASSERT_FALSE(account.ok());
  EXPECT_THAT(account.status(),
              HasErrorInfo(absl::StatusCode::kPermissionDenied,
                           reason::kAccountNotAllowed));
  EXPECT_THAT(std::string(account.status().message()), HasSubstr("\"other\""));
  EXPECT_THAT(std::string(account.status().message()),
              HasSubstr("serves only its configured account"));
}

TEST(ResolveAccountTest, IsCaseSensitive) {
  EXPECT_FALSE(ResolveAccount("ACME", "acme").ok());
}

TEST(ResolveAccountTest, HostileAccountIsEscapedAndShortInTheMessage) {
  const std::string hostile = "evil\n\x01" + std::string(1000, 'x');
  const absl::Status status = ResolveAccount(hostile, "acme").status();
  EXPECT_THAT(std::string(status.message()), HasSubstr("evil\\n\\x01"));
  EXPECT_LT(status.message().size(), 250u);
}

}  // namespace
}  // namespace campaign_gateway
