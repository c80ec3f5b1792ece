#include "service/http_date.h"

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace campaign_gateway {
namespace {

// A fixed "now" so HTTP-date Retry-After values are deterministic.
const absl::Time kNow =
    absl::FromUnixSeconds(784111777);  // 1994-11-06 08:49:37Z

TEST(ParseRetryAfterTest, DeltaSeconds) {
  EXPECT_EQ(ParseRetryAfter("0", kNow), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("120", kNow), absl::Seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 7 ", kNow), absl::Seconds(7));
}

TEST(ParseRetryAfterTest, AbsurdValuesAreCappedAtAnHour) {
  EXPECT_EQ(ParseRetryAfter("3600", kNow), absl::Hours(1));
  EXPECT_EQ(ParseRetryAfter("3601", kNow), absl::Hours(1));
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999999", kNow),
            absl::Hours(1));
  EXPECT_EQ(ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", kNow),
            absl::Hours(1));
}

TEST(ParseRetryAfterTest, HttpDate) {
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", kNow),
            absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 09:19:37 GMT", kNow),
            absl::Minutes(30));
  // Across a month and year boundary from another "now".
  EXPECT_EQ(ParseRetryAfter(
                "Thu, 01 Jan 2026 00:00:10 GMT",
                absl::FromCivil(absl::CivilSecond(2025, 12, 31, 23, 59, 50),
                                absl::UTCTimeZone())),
            absl::Seconds(20));
}

TEST(ParseRetryAfterTest, DateInThePastIsZero) {
  EXPECT_EQ(ParseRetryAfter("Sat, 01 Jan 1994 00:00:00 GMT", kNow),
            absl::ZeroDuration());
}

TEST(ParseRetryAfterTest, RejectsEverythingElse) {
  for (absl::string_view bad :
       {"", " ", "-1", "+5", "1.5", "5s", "soon", "0x10",
        "Sunday, 06-Nov-94 08:49:37 GMT",  // RFC 850, obsolete
        "Sun Nov  6 08:49:37 1994",        // asctime, obsolete
        "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT extra"}) {
    EXPECT_EQ(ParseRetryAfter(bad, kNow), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace campaign_gateway
