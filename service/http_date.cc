#include "service/http_date.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/time/civil_time.h"
#include "service/text.h"

namespace campaign_gateway {
namespace {

// A Retry-After beyond this is a misconfigured server, not advice to follow.
constexpr absl::Duration kMaxRetryAfter = absl::Hours(1);

std::optional<int> IndexOf(absl::string_view needle,
                           std::initializer_list<absl::string_view> names) {
  int index = 0;
  for (absl::string_view name : names) {
    if (needle == name) return index;
    ++index;
  }
  return std::nullopt;
}

// IMF-fixdate, the one HTTP-date form senders must generate (RFC 9110
// 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT". The obsolete forms are rare
// enough that ignoring them (no RetryInfo) is the safer failure.
std::optional<absl::Time> ParseImfFixdate(absl::string_view text) {
  // Positions: "Www, DD Mmm YYYY HH:MM:SS GMT"
  //             0123456789012345678901234567 8
  if (text.size() != 29 || text.substr(3, 2) != ", " || text[7] != ' ' ||
      text[11] != ' ' || text[16] != ' ' || text[19] != ':' ||
      text[22] != ':' || text.substr(25) != " GMT") {
    return std::nullopt;
  }
  if (!IndexOf(text.substr(0, 3),
               {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"})) {
    return std::nullopt;
  }
  const std::optional<int> month =
      IndexOf(text.substr(8, 3), {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"});
  const std::optional<int> day = Digits(text.substr(5, 2));
  const std::optional<int> year = Digits(text.substr(12, 4));
  const std::optional<int> hour = Digits(text.substr(17, 2));
  const std::optional<int> minute = Digits(text.substr(20, 2));
  const std::optional<int> second = Digits(text.substr(23, 2));
  if (!month || !day || !year || !hour || !minute || !second) {
    return std::nullopt;
  }
  // Leap second 60 is allowed by the grammar; treat it as the next second.
  if (*hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
  const absl::CivilDay civil_day(*year, *month + 1, *day);
  if (civil_day.year() != *year || civil_day.month() != *month + 1 ||
      civil_day.day() != *day) {
    return std::nullopt;  // e.g. 31 Feb
  }
  return absl::FromCivil(
      absl::CivilSecond(*year, *month + 1, *day, *hour, *minute, *second),
      absl::UTCTimeZone());
}

}  // namespace

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time now) {
  const absl::string_view text = absl::StripAsciiWhitespace(value);
  if (text.empty()) return std::nullopt;
  if (std::all_of(text.begin(), text.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c));
      })) {
    // Digits only: delta-seconds. Saturate instead of overflowing.
    int64_t seconds = 0;
    for (char c : text) {
      seconds = std::min<int64_t>(seconds * 10 + (c - '0'),
                                  absl::ToInt64Seconds(kMaxRetryAfter) + 1);
    }
    return std::min(absl::Seconds(seconds), kMaxRetryAfter);
  }
  const std::optional<absl::Time> date = ParseImfFixdate(text);
  if (!date) return std::nullopt;
  return std::clamp(*date - now, absl::ZeroDuration(), kMaxRetryAfter);
}

}  // namespace campaign_gateway
