#include "service/status_mapping.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "nlohmann/json.hpp"
#include "service/errors.h"
#include "service/text.h"

namespace campaign_gateway {
namespace {

// Connyline's "message" is echoed into ErrorInfo metadata and the status
// message; an unbounded or binary one must not reach callers or logs as is.
constexpr size_t kMaxUpstreamMessageBytes = 256;
// Error bodies larger than this are only excerpted, never parsed as JSON:
// Connyline's JSON errors are tiny, and a proxy may send megabytes.
constexpr size_t kMaxJsonErrorBodyBytes = 64 * 1024;
// A Retry-After beyond this is a misconfigured server, not advice to follow.
constexpr absl::Duration kMaxRetryAfter = absl::Hours(1);

// ---- Excerpts ----

// Builds an excerpt code point by code point: whitespace runs become one
// space, the result never exceeds `max_bytes` and is cut only between code
// points, with "..." appended when anything was left out.
class ExcerptWriter {
 public:
  explicit ExcerptWriter(size_t max_bytes) : max_bytes_(max_bytes) {}

  bool full() const { return full_; }
  void Space() { pending_space_ = true; }

  // Appends one code point's bytes; false (and the writer is full) when
  // they no longer fit.
  bool Append(absl::string_view bytes) {
    if (full_) return false;
    const bool space = pending_space_ && !out_.empty();
    if (out_.size() + (space ? 1 : 0) + bytes.size() > max_bytes_) {
      full_ = true;
      return false;
    }
    if (space) out_ += ' ';
    pending_space_ = false;
    out_.append(bytes.data(), bytes.size());
    return true;
  }

  std::string Finish() && {
    if (full_) out_ += "...";
    return std::move(out_);
  }

 private:
  size_t max_bytes_;
  std::string out_;
  bool pending_space_ = false;
  bool full_ = false;
};

// The few entities that make proxy error pages readable; others stay as
// written.
std::optional<absl::string_view> DecodeEntity(absl::string_view text,
                                              size_t& consumed) {
  static constexpr std::pair<absl::string_view, absl::string_view> kEntities[] =
      {{"&amp;", "&"}, {"&lt;", "<"},   {"&gt;", ">"},  {"&quot;", "\""},
       {"&#39;", "'"}, {"&apos;", "'"}, {"&nbsp;", " "}};
  for (const auto& [entity, replacement] : kEntities) {
    if (absl::StartsWith(text, entity)) {
      consumed = entity.size();
      return replacement;
    }
  }
  return std::nullopt;
}

// The first `needle` (which starts with '<') in `text` at or after `from`,
// ignoring ASCII case.
size_t FindIgnoreCase(absl::string_view text, absl::string_view needle,
                      size_t from) {
  for (size_t j = text.find('<', from); j != absl::string_view::npos;
       j = text.find('<', j + 1)) {
    if (absl::StartsWithIgnoreCase(text.substr(j), needle)) return j;
  }
  return absl::string_view::npos;
}

bool StartsWithTagName(absl::string_view text, absl::string_view name) {
  return text.size() > name.size() && absl::StartsWithIgnoreCase(text, name) &&
         !absl::ascii_isalnum(static_cast<unsigned char>(text[name.size()]));
}

// Sanitises `text` into at most `max_bytes` (+ "..."). With `strip_html`,
// tags are dropped (script and style with their content) and common
// entities decoded. Linear in the input, and it stops as soon as the
// excerpt is full, so a 10 MB body costs no more than its first bytes.
std::string Sanitize(absl::string_view text, size_t max_bytes,
                     bool strip_html) {
  ExcerptWriter writer(max_bytes);
  bool no_more_tag_ends = false;  // no '>' left: every '<' is literal
  size_t i = 0;
  while (i < text.size() && !writer.full()) {
    const char c = text[i];
    if (strip_html && c == '<' && !no_more_tag_ends && i + 1 < text.size() &&
        (absl::ascii_isalpha(static_cast<unsigned char>(text[i + 1])) ||
         text[i + 1] == '/' || text[i + 1] == '!' || text[i + 1] == '?')) {
      const size_t end = text.find('>', i);
      if (end == absl::string_view::npos) {
        // A comment cut off by the end of a truncated page ends the text;
        // otherwise this '<' is literal.
        if (text[i + 1] == '!') break;
        no_more_tag_ends = true;  // handle this '<' again, as text
        continue;
      }
      size_t next = end + 1;
      for (absl::string_view raw : {"script", "style"}) {
        if (StartsWithTagName(text.substr(i + 1), raw)) {
          // Code is not text: skip to the closing tag (stripped next round).
          next = std::min(FindIgnoreCase(text, absl::StrCat("</", raw), next),
                          text.size());
        }
      }
      i = next;
      writer.Space();
      continue;
    }
    if (strip_html && c == '&') {
      size_t consumed = 0;
      if (auto decoded = DecodeEntity(text.substr(i), consumed)) {
        if (*decoded == " ") {
          writer.Space();
        } else {
          writer.Append(*decoded);
        }
        i += consumed;
        continue;
      }
    }
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      writer.Space();
      ++i;
      continue;
    }
    char32_t cp = 0;
    const size_t len = DecodeUtf8(text.substr(i), cp);
    if (len == 0) {
      writer.Append("\xEF\xBF\xBD");  // U+FFFD for each invalid byte
      ++i;
      continue;
    }
    if (cp == 0x85 || cp == 0xA0) {
      writer.Space();
    } else if (!IsControl(cp)) {
      writer.Append(text.substr(i, len));
    }
    i += len;
  }
  return std::move(writer).Finish();
}

bool LooksLikeMarkup(absl::string_view body) {
  const absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(body);
  return !trimmed.empty() && trimmed.front() == '<';
}

// ---- The status table ----

struct Row {
  absl::StatusCode code;
  absl::string_view reason;
  std::string summary;  // "Connyline ... (HTTP n)"
};

bool MentionsToken(absl::string_view message) {
  return absl::StrContains(absl::AsciiStrToLower(message), "token");
}

Row Classify(int http_status, absl::string_view upstream_message) {
  const std::string http = absl::StrCat("(HTTP ", http_status, ")");
  const bool is_2xx = http_status >= 200 && http_status <= 299;
  if (is_2xx || http_status == 400) {
    // Connyline answers a missing or wrong token with 400 "NO Token Found.".
    if (MentionsToken(upstream_message)) {
      return {absl::StatusCode::kUnauthenticated,
              reason::kUpstreamUnauthenticated,
              absl::StrCat("Connyline did not accept the gateway's API token ",
                           http)};
    }
    return {absl::StatusCode::kInvalidArgument,
            reason::kUpstreamRejectedRequest,
            is_2xx ? absl::StrCat("Connyline rejected the request (HTTP ",
                                  http_status, ", success: false)")
                   : absl::StrCat("Connyline rejected the request ", http)};
  }
  switch (http_status) {
    case 413:
    case 422:
      return {absl::StatusCode::kInvalidArgument,
              reason::kUpstreamRejectedRequest,
              absl::StrCat("Connyline rejected the request ", http)};
    case 401:
      return {absl::StatusCode::kUnauthenticated,
              reason::kUpstreamUnauthenticated,
              absl::StrCat("Connyline did not accept the gateway's API token ",
                           http)};
    case 402:
      return {absl::StatusCode::kFailedPrecondition,
              reason::kUpstreamPaymentRequired,
              absl::StrCat("Connyline requires payment on the account ", http)};
    case 403:
      return {absl::StatusCode::kPermissionDenied,
              reason::kUpstreamPermissionDenied,
              absl::StrCat("Connyline denied access to the account ", http)};
    case 404:
      return {absl::StatusCode::kNotFound, reason::kUpstreamNotFound,
              absl::StrCat("Connyline has no such account or resource ", http)};
    case 408:
    case 504:
      return {absl::StatusCode::kDeadlineExceeded, reason::kUpstreamTimeout,
              absl::StrCat("Connyline timed out ", http)};
    case 409:
      return {absl::StatusCode::kAlreadyExists, reason::kUpstreamConflict,
              absl::StrCat("Connyline reported a conflict ", http)};
    case 429:
      return {absl::StatusCode::kResourceExhausted,
              reason::kUpstreamRateLimited,
              absl::StrCat("Connyline is rate-limiting the gateway ", http)};
    case 405:
    case 406:
    case 415:
      // The gateway sent a method or content type Connyline does not take:
      // a bug on our side, not the caller's.
      return {absl::StatusCode::kInternal, reason::kUpstreamProtocolError,
              absl::StrCat("Connyline did not accept the gateway's request "
                           "format ",
                           http, "; this is a gateway bug")};
    case 500:
      return {absl::StatusCode::kInternal, reason::kUpstreamInternalError,
              absl::StrCat("Connyline failed with an internal error ", http)};
    default:
      break;
  }
  if (http_status >= 400 && http_status <= 499) {
    return {absl::StatusCode::kFailedPrecondition, reason::kUpstreamClientError,
            absl::StrCat("Connyline refused the request ", http)};
  }
  if (http_status >= 500 && http_status <= 599) {
    return {absl::StatusCode::kUnavailable, reason::kUpstreamUnavailable,
            absl::StrCat("Connyline is unavailable ", http)};
  }
  // 1xx, 3xx (redirects are not followed) and non-HTTP codes: whatever
  // answered is not Connyline's API as documented, typically a proxy or
  // maintenance page in front of it, or a moved endpoint. Like a 502 the
  // request was most likely not handled, so UNAVAILABLE; the message points
  // at the configuration in case it persists.
  std::string summary =
      absl::StrCat("Connyline answered with an unexpected status ", http);
  if (http_status >= 300 && http_status <= 399) {
    absl::StrAppend(&summary,
                    "; redirects are not followed, check the upstream URL");
  }
  return {absl::StatusCode::kUnavailable, reason::kUpstreamUnavailable,
          std::move(summary)};
}

// Whether `retry_after` is advice worth passing on for this status.
bool TakesRetryInfo(int http_status) {
  return http_status == 429 || http_status == 503;
}

// The single place the table becomes a status. `json_message` is Connyline's
// own "message" (goes to ErrorInfo); `body_excerpt` quotes a body that had
// none. Both are already sanitised.
absl::Status BuildHttpError(int http_status, absl::string_view json_message,
                            absl::string_view body_excerpt,
                            std::optional<absl::Duration> retry_after) {
  Row row = Classify(http_status, json_message);
  std::string message = std::move(row.summary);
  std::map<std::string, std::string> metadata = {
      {std::string(metadata_key::kHttpStatus), absl::StrCat(http_status)}};
  if (!json_message.empty()) {
    absl::StrAppend(&message, ": ", json_message);
    metadata.emplace(std::string(metadata_key::kUpstreamMessage),
                     std::string(json_message));
  } else if (!body_excerpt.empty()) {
    absl::StrAppend(&message, "; response body: \"", body_excerpt, "\"");
  }
  const bool retry_info =
      retry_after.has_value() && TakesRetryInfo(http_status);
  if (retry_info) {
    absl::StrAppend(&message, " (retry after ",
                    absl::FormatDuration(*retry_after), ")");
  }
  absl::Status status = MakeError(row.code, message, row.reason, metadata);
  if (retry_info) AttachRetryInfo(status, *retry_after);
  return status;
}

// Connyline's "message" from a JSON error body, if there is one.
std::optional<std::string> JsonMessage(absl::string_view body) {
  const absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(body);
  if (trimmed.empty() || trimmed.front() != '{' ||
      body.size() > kMaxJsonErrorBodyBytes) {
    return std::nullopt;
  }
  const nlohmann::json json =
      nlohmann::json::parse(body.begin(), body.end(), nullptr,
                            /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  const auto it = json.find("message");
  if (it == json.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// ---- Retry-After ----

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

// ---- Transport errors ----

struct TransportRow {
  absl::StatusCode code;
  absl::string_view reason;
  absl::string_view summary;
};

TransportRow ClassifyTransport(TransportError::Kind kind) {
  using Kind = TransportError::Kind;
  switch (kind) {
    case Kind::kConnectFailed:
      return {absl::StatusCode::kUnavailable, reason::kUpstreamUnavailable,
              "Cannot connect to Connyline"};
    case Kind::kNameResolution:
      return {absl::StatusCode::kUnavailable, reason::kUpstreamUnavailable,
              "Cannot resolve Connyline's host name"};
    case Kind::kTls:
      return {absl::StatusCode::kUnavailable, reason::kUpstreamUnavailable,
              "The TLS connection to Connyline failed"};
    case Kind::kTimeout:
      return {absl::StatusCode::kDeadlineExceeded, reason::kUpstreamTimeout,
              "Connyline did not answer before the deadline"};
    case Kind::kConnectionLost:
      return {absl::StatusCode::kUnavailable, reason::kUpstreamUnavailable,
              "The connection to Connyline was lost before a complete answer"};
    case Kind::kResponseTooLarge:
      return {absl::StatusCode::kInternal, reason::kUpstreamBadResponse,
              "Connyline's answer exceeded the gateway's size limit"};
    case Kind::kCancelled:
      return {absl::StatusCode::kCancelled, reason::kCancelled,
              "The call was cancelled and the request to Connyline aborted"};
    case Kind::kOther:
      break;
  }
  return {absl::StatusCode::kUnavailable, reason::kUpstreamUnavailable,
          "The request to Connyline failed"};
}

}  // namespace

absl::Status MapHttpError(int http_status, absl::string_view upstream_message,
                          std::optional<absl::Duration> retry_after) {
  const std::string message = Sanitize(
      upstream_message, kMaxUpstreamMessageBytes, /*strip_html=*/false);
  return BuildHttpError(http_status, message, /*body_excerpt=*/"", retry_after);
}

absl::Status MapHttpErrorResponse(const HttpResponse& response,
                                  absl::Time now) {
  std::optional<absl::Duration> retry_after;
  if (std::optional<std::string> header = response.Header("retry-after")) {
    retry_after = ParseRetryAfter(*header, now);
  }
  if (std::optional<std::string> json_message = JsonMessage(response.body)) {
    const std::string message =
        Sanitize(*json_message, kMaxUpstreamMessageBytes, /*strip_html=*/false);
    if (!message.empty()) {
      return BuildHttpError(response.status, message, "", retry_after);
    }
  }
  return BuildHttpError(response.status, "", SanitizedExcerpt(response.body),
                        retry_after);
}

absl::Status MapTransportError(const TransportError& error) {
  const TransportRow row = ClassifyTransport(error.kind);
  std::string message(row.summary);
  const std::string detail =
      Sanitize(error.detail, kMaxUpstreamMessageBytes, /*strip_html=*/false);
  if (!detail.empty()) absl::StrAppend(&message, ": ", detail);
  return MakeError(row.code, message, row.reason,
                   {{std::string(metadata_key::kTransportError),
                     std::string(TransportErrorName(error.kind))}});
}

std::string SanitizedExcerpt(absl::string_view body, size_t max_bytes) {
  return Sanitize(body, max_bytes, /*strip_html=*/LooksLikeMarkup(body));
}

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
