#include "service/validate.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "service/errors.h"
#include "service/text.h"

namespace campaign_gateway {
namespace {

// Bounds of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;

// Caller-supplied values quoted in messages are escaped and cut to this.
constexpr size_t kMaxQuotedBytes = 64;

// ---- Text ----

// Calls `fn` with each code point of `text`, in order; false when `text` is
// not valid UTF-8 (`fn` may have seen a prefix).
template <typename Fn>
bool ForEachCodePoint(absl::string_view text, Fn fn) {
  while (!text.empty()) {
    char32_t cp = 0;
    const size_t len = DecodeUtf8(text, cp);
    if (len == 0) return false;
    fn(cp);
    text.remove_prefix(len);
  }
  return true;
}

bool IsWhitespace(char32_t cp) {
  switch (cp) {
    case ' ':
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

// Validation refuses before anything is sent: a caller may see that.
std::map<std::string, std::string> NothingSent() {
  return {{std::string(metadata_key::kRequestSent), "false"}};
}

// ---- Violations ----

class Violations {
 public:
  void Add(absl::string_view field, std::string description) {
    google::rpc::BadRequest::FieldViolation* v =
        bad_request_.add_field_violations();
    v->set_field(std::string(field));
    v->set_description(std::move(description));
  }

  bool empty() const { return bad_request_.field_violations_size() == 0; }

  absl::Status ToStatus() const {
    std::vector<std::string> parts;
    for (const auto& v : bad_request_.field_violations()) {
      parts.push_back(absl::StrCat(v.field(), ": ", v.description()));
    }
    absl::Status status =
        MakeError(absl::StatusCode::kInvalidArgument,
                  absl::StrCat("invalid CreateSmsCampaignRequest: ",
                               absl::StrJoin(parts, "; ")),
                  reason::kInvalidRequest, NothingSent());
    AttachBadRequest(status, bad_request_);
    return status;
  }

 private:
  google::rpc::BadRequest bad_request_;
};

// Rules shared by campaign_name and sms_text: required, valid UTF-8, not
// blank, at most `max_chars` code points, no control characters other than
// those `allowed_control` accepts.
template <typename AllowedControl>
void CheckText(absl::string_view field, absl::string_view value, int max_chars,
               AllowedControl allowed_control, Violations& violations) {
  if (value.empty()) {
    violations.Add(field, "is required");
    return;
  }
  size_t chars = 0;
  bool blank = true;
  bool control = false;
  const bool utf8 = ForEachCodePoint(value, [&](char32_t cp) {
    ++chars;
    blank = blank && IsWhitespace(cp);
    control = control || (IsControl(cp) && !allowed_control(cp));
  });
  if (!utf8) {
    violations.Add(field, "is not valid UTF-8");
    return;
  }
  if (blank) {
    violations.Add(field, "must not be blank");
    return;
  }
  if (chars > static_cast<size_t>(max_chars)) {
    violations.Add(field, absl::StrCat("must be at most ", max_chars,
                                       " characters, got ", chars));
  }
  if (control) {
    violations.Add(field, "must not contain control characters");
  }
}

void CheckSender(absl::string_view sender, Violations& violations) {
  if (sender.empty()) {
    violations.Add("sender", "is required");
    return;
  }
  const auto is_digit = [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  };
  const auto is_alnum = [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c));
  };
  if (std::all_of(sender.begin(), sender.end(), is_digit)) {
    if (sender.size() > static_cast<size_t>(kMaxNumericSenderDigits)) {
      violations.Add("sender",
                     absl::StrCat("a numeric sender must have at most ",
                                  kMaxNumericSenderDigits, " digits, got ",
                                  sender.size()));
    }
    return;
  }
  if (!std::all_of(sender.begin(), sender.end(), is_alnum)) {
    violations.Add("sender",
                   absl::StrCat("must be 1 to ", kMaxAlphanumericSenderChars,
                                " ASCII letters and digits, or up "
                                "to ",
                                kMaxNumericSenderDigits, " digits; got ",
                                Quote(sender, kMaxQuotedBytes)));
    return;
  }
  if (sender.size() > static_cast<size_t>(kMaxAlphanumericSenderChars)) {
    violations.Add(
        "sender", absl::StrCat("an alphanumeric sender must have at most ",
                               kMaxAlphanumericSenderChars, " characters, got ",
                               sender.size()));
  }
}

std::string FormatMinute(const absl::CivilMinute& minute) {
  return absl::StrFormat("%04d-%02d-%02d %02d:%02d", minute.year(),
                         minute.month(), minute.day(), minute.hour(),
                         minute.minute());
}

// start_time as Connyline's local "YYYY-MM-DD HH:MM" in `zone`, or the
// violation.
absl::StatusOr<std::string> LocalStart(const google::protobuf::Timestamp& ts,
                                       const absl::TimeZone& zone) {
  if (ts.seconds() < kMinTimestampSeconds ||
      ts.seconds() > kMaxTimestampSeconds || ts.nanos() < 0 ||
      ts.nanos() > 999999999) {
    return absl::InvalidArgumentError(
        "is not a valid timestamp (0001-01-01 to 9999-12-31, nanos in "
        "range)");
  }
  if (ts.seconds() % 60 != 0 || ts.nanos() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "must fall on a whole minute (no seconds or nanos), got ",
        absl::FormatTime(
            "%Y-%m-%dT%H:%M:%E*SZ",
            absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos()),
            absl::UTCTimeZone())));
  }
  const absl::CivilMinute local =
      absl::ToCivilMinute(absl::FromUnixSeconds(ts.seconds()), zone);
  // Near the Timestamp bounds a zone offset can leave the 4-digit years.
  if (local.year() < 1 || local.year() > 9999) {
    return absl::InvalidArgumentError(
        "is out of range in the gateway's time zone");
  }
  return FormatMinute(local);
}

// The local hours a DST change in `zone` skips or repeats around `info`'s
// transition, as "HH:MM to HH:MM".
std::string TransitionHours(const absl::TimeZone::TimeInfo& info,
                            const absl::TimeZone& zone) {
  const absl::CivilMinute before = absl::CivilMinute(absl::ToCivilSecond(
                                       info.trans - absl::Seconds(1), zone)) +
                                   1;
  const absl::CivilMinute after = absl::ToCivilMinute(info.trans, zone);
  const absl::CivilMinute from = std::min(before, after);
  const absl::CivilMinute to = std::max(before, after);
  return absl::StrFormat("%02d:%02d to %02d:%02d", from.hour(), from.minute(),
                         to.hour(), to.minute());
}

// The instant of local `minute` in `zone`, or why Connyline, which reads
// local times without an offset, could not be told it unambiguously.
absl::StatusOr<absl::Time> LocalInstant(const absl::CivilMinute& minute,
                                        const absl::TimeZone& zone) {
  const absl::TimeZone::TimeInfo info = zone.At(minute);
  switch (info.kind) {
    case absl::TimeZone::TimeInfo::UNIQUE:
      return info.pre;
    case absl::TimeZone::TimeInfo::SKIPPED:
      return absl::InvalidArgumentError(absl::StrCat(
          "does not exist in ", zone.name(),
          ": daylight saving time starts that day and the clocks skip ",
          TransitionHours(info, zone)));
    case absl::TimeZone::TimeInfo::REPEATED:
      return absl::InvalidArgumentError(absl::StrCat(
          "is ambiguous in ", zone.name(),
          ": daylight saving time ends that day and the clocks repeat ",
          TransitionHours(info, zone),
          ", so the local time names two instants; choose another minute"));
  }
  return info.pre;
}

// "" when `start` falls inside `window`, else what is wrong with it.
std::string WindowProblem(absl::Time start, const StartWindow& window) {
  if (start < window.now - window.past_tolerance) {
    return absl::StrCat("is in the past (more than ",
                        absl::FormatDuration(window.past_tolerance),
                        " before now)");
  }
  if (start > window.now + window.max_ahead) {
    const int64_t hours = absl::ToInt64Hours(window.max_ahead);
    return absl::StrCat("is too far ahead (at most ",
                        hours % 24 == 0
                            ? absl::StrCat(hours / 24, " days")
                            : absl::FormatDuration(window.max_ahead),
                        " from now)");
  }
  return "";
}

// "" when `text` is a usable local start in `zone`, else what is wrong.
std::string StartProblem(absl::string_view text, const absl::TimeZone& zone,
                         const StartWindow& window) {
  absl::StatusOr<absl::CivilMinute> minute = ParseStartMinute(text);
  if (!minute.ok()) return std::string(minute.status().message());
  const std::string quoted = Quote(text, kMaxQuotedBytes);
  absl::StatusOr<absl::Time> instant = LocalInstant(*minute, zone);
  if (!instant.ok()) {
    return absl::StrCat(quoted, " ", instant.status().message());
  }
  std::string far = WindowProblem(*instant, window);
  if (far.empty()) return "";
  return absl::StrCat(quoted, " (", zone.name(), ") ", far);
}

// "" when `seconds` (whose local time in `zone` is `local`) is a usable
// start, else what is wrong. Every instant has one local time, but a
// repeated one would reach Connyline naming two instants.
std::string StartTimeProblem(int64_t seconds, absl::string_view local,
                             const absl::TimeZone& zone,
                             const StartWindow& window) {
  const absl::Time instant = absl::FromUnixSeconds(seconds);
  absl::StatusOr<absl::Time> unique =
      LocalInstant(absl::ToCivilMinute(instant, zone), zone);
  if (!unique.ok()) {
    return absl::StrCat("falls at ", local, " local time, which ",
                        unique.status().message());
  }
  return WindowProblem(instant, window);
}

void CheckStart(const campaigns::v1::CreateSmsCampaignRequest& request,
                const absl::TimeZone& zone, const StartWindow& window,
                std::string& start, Violations& violations) {
  // One oneof: at most one is set (the last on the wire); an empty `start`
  // counts as none.
  const bool has_start = !request.start().empty();
  const bool has_start_time = request.has_start_time();
  if (!has_start && !has_start_time) {
    violations.Add("start", "one of start and start_time is required");
    violations.Add("start_time", "one of start and start_time is required");
  }
  if (has_start) {
    std::string problem = StartProblem(request.start(), zone, window);
    if (!problem.empty()) {
      violations.Add("start", std::move(problem));
    } else {
      start = request.start();
    }
  }
  if (has_start_time) {
    absl::StatusOr<std::string> local = LocalStart(request.start_time(), zone);
    std::string problem = local.ok()
                              ? StartTimeProblem(request.start_time().seconds(),
                                                 *local, zone, window)
                              : std::string(local.status().message());
    if (!problem.empty()) {
      violations.Add("start_time", std::move(problem));
    } else {
      start = *std::move(local);
    }
  }
}

// "" when `url` is an acceptable shortlink, else what is wrong with it.
std::string ShortlinkProblem(absl::string_view url) {
  if (url.size() > static_cast<size_t>(kMaxShortlinkBytes)) {
    return absl::StrCat("must be at most ", kMaxShortlinkBytes, " bytes, got ",
                        url.size());
  }
  bool forbidden = false;
  if (!ForEachCodePoint(url, [&](char32_t cp) {
        forbidden = forbidden || IsControl(cp) || IsWhitespace(cp);
      })) {
    return "is not valid UTF-8";
  }
  if (forbidden) return "must not contain whitespace or control characters";
  absl::string_view rest = url;
  if (absl::StartsWithIgnoreCase(rest, "https://")) {
    rest.remove_prefix(8);
  } else if (absl::StartsWithIgnoreCase(rest, "http://")) {
    rest.remove_prefix(7);
  } else {
    return "must be an absolute http:// or https:// URL";
  }
  absl::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    authority.remove_prefix(at + 1);  // user info
  }
  absl::string_view host = authority;
  absl::string_view port;
  if (absl::StartsWith(authority, "[")) {  // IPv6 literal
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos || close == 1) {
      return "must have a valid host";
    }
    host = authority.substr(0, close + 1);
    const absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return "must have a valid host";
      port = after.substr(1);
    }
  } else if (const size_t colon = authority.rfind(':');
             colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return "must have a host";
  if (!port.empty()) {  // "host:" alone is allowed (RFC 3986)
    const std::optional<int> value = Digits(port);
    if (!value || *value < 1 || *value > 65535) {
      return "must have a port from 1 to 65535";
    }
  }
  return "";
}

void CheckShortlink(absl::string_view shortlink, absl::string_view sms_text,
                    Violations& violations) {
  if (shortlink.empty()) {
    if (absl::StrContains(sms_text, "{shortlink1}")) {
      violations.Add("shortlink1",
                     "is required because sms_text contains {shortlink1}");
    }
    return;
  }
  if (std::string problem = ShortlinkProblem(shortlink); !problem.empty()) {
    violations.Add("shortlink1", std::move(problem));
  }
}

void CheckRequestId(absl::string_view request_id, Violations& violations) {
  if (request_id.empty()) return;  // optional
  bool ok = request_id.size() <= kMaxRequestIdChars;
  for (char c : request_id) {
    ok &=
        absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':';
  }
  if (!ok) {
    violations.Add("request_id",
                   absl::StrCat("must be 1 to ", kMaxRequestIdChars,
                                " ASCII letters, digits, '-', '_', '.' or "
                                "':' (a UUID, for example)"));
  }
}

}  // namespace

absl::StatusOr<std::string> ResolveAccount(absl::string_view requested,
                                           absl::string_view configured) {
  if (requested.empty() || requested == configured) {
    return std::string(configured);
  }
  return MakeError(
      absl::StatusCode::kPermissionDenied,
      absl::StrCat("account_code ", Quote(requested, kMaxQuotedBytes),
                   " is not allowed: this gateway serves only "
                   "its configured account (leave account_code "
                   "empty to use it)"),
      reason::kAccountNotAllowed, NothingSent());
}

absl::StatusOr<CampaignDraft> ValidateCreateRequest(
    const campaigns::v1::CreateSmsCampaignRequest& request,
    const absl::TimeZone& zone, const StartWindow& window) {
  Violations violations;
  CheckText(
      "campaign_name", request.campaign_name(), kMaxCampaignNameChars,
      [](char32_t) { return false; }, violations);
  CheckSender(request.sender(), violations);
  if (request.list_id() <= 0) {
    violations.Add(
        "list_id",
        request.list_id() == 0
            ? std::string("is required (a positive list id from "
                          "ListLists)")
            : absl::StrCat("must be positive, got ", request.list_id()));
  }
  // Line breaks and tabs are ordinary in a message text.
  CheckText(
      "sms_text", request.sms_text(), kMaxSmsTextChars,
      [](char32_t cp) { return cp == '\n' || cp == '\r' || cp == '\t'; },
      violations);
  std::string start;
  CheckStart(request, zone, window, start, violations);
  CheckShortlink(request.shortlink1(), request.sms_text(), violations);
  CheckRequestId(request.request_id(), violations);
  if (!violations.empty()) return violations.ToStatus();

  CampaignDraft draft;
  draft.campaign_name = request.campaign_name();
  draft.sender = request.sender();
  draft.list_id = request.list_id();
  draft.sms_text = request.sms_text();
  draft.start = std::move(start);
  draft.shortlink1 = request.shortlink1();
  return draft;
}

absl::StatusOr<absl::CivilMinute> ParseStartMinute(absl::string_view text) {
  const auto invalid = [&](absl::string_view why) {
    return MakeError(absl::StatusCode::kInvalidArgument,
                     absl::StrCat(Quote(text, kMaxQuotedBytes), " ", why),
                     reason::kInvalidRequest);
  };
  // Positions: "YYYY-MM-DD HH:MM"
  //             0123456789012345
  if (text.size() != 16 || text[4] != '-' || text[7] != '-' ||
      text[10] != ' ' || text[13] != ':') {
    return invalid(
        "must be formatted \"YYYY-MM-DD HH:MM\" (e.g. \"2026-02-25 10:30\")");
  }
  const std::optional<int> year = Digits(text.substr(0, 4));
  const std::optional<int> month = Digits(text.substr(5, 2));
  const std::optional<int> day = Digits(text.substr(8, 2));
  const std::optional<int> hour = Digits(text.substr(11, 2));
  const std::optional<int> minute = Digits(text.substr(14, 2));
  if (!year || !month || !day || !hour || !minute) {
    return invalid(
        "must be formatted \"YYYY-MM-DD HH:MM\" (e.g. \"2026-02-25 10:30\")");
  }
  // CivilDay normalises 2026-02-30 to 2026-03-02; a real date survives.
  const absl::CivilDay civil_day(*year, *month, *day);
  if (*year < 1 || *month < 1 || *month > 12 || civil_day.year() != *year ||
      civil_day.month() != *month || civil_day.day() != *day) {
    return invalid("is not a calendar date");
  }
  if (*hour > 23 || *minute > 59) {
    return invalid("is not a time of day (00:00 to 23:59)");
  }
  return absl::CivilMinute(*year, *month, *day, *hour, *minute);
}

}  // namespace campaign_gateway
