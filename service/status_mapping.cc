#include "service/status_mapping.h"

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "service/errors.h"
#include "service/excerpt.h"
#include "service/http_date.h"
#include "service/rest_response.h"

namespace campaign_gateway {
namespace {

// Connyline's "message" is echoed into ErrorInfo metadata and the status
// message; an unbounded or binary one must not reach callers or logs as is.
constexpr size_t kMaxUpstreamMessageBytes = 256;
// Error bodies larger than this are only excerpted, never parsed as JSON:
// Connyline's JSON errors are tiny, and a proxy may send megabytes.
constexpr size_t kMaxJsonErrorBodyBytes = size_t{64} * 1024;

// ---- The HTTP status table (README "Errors") ----

// One row: Connyline's HTTP status, the gRPC code and ErrorInfo reason it
// becomes, and the start of the status message ("<summary> (HTTP n)").
struct HttpErrorRow {
  int http_status;
  absl::StatusCode code;
  absl::string_view reason;
  absl::string_view summary;
};

using Code = absl::StatusCode;

constexpr HttpErrorRow kHttpErrors[] = {
    // Bad Request: the request broke one of Connyline's rules. A 2xx with
    // "success": false reads as this row; see also the token rule.
    {400, Code::kInvalidArgument, reason::kUpstreamRejectedRequest,
     "Connyline rejected the request"},
    // Unauthorized: the gateway's API token is wrong or missing.
    {401, Code::kUnauthenticated, reason::kUpstreamUnauthenticated,
     "Connyline did not accept the gateway's API token"},
    // Payment Required: the account has no credit left.
    {402, Code::kFailedPrecondition, reason::kUpstreamPaymentRequired,
     "Connyline requires payment on the account"},
    // Forbidden.
    {403, Code::kPermissionDenied, reason::kUpstreamPermissionDenied,
     "Connyline denied access to the account"},
    // Not Found.
    {404, Code::kNotFound, reason::kUpstreamNotFound,
     "Connyline has no such account or resource"},
    // Method Not Allowed: a gateway bug (see the protocol error rule).
    {405, Code::kInternal, reason::kUpstreamProtocolError,
     "Connyline did not accept the gateway's request format"},
    // Not Acceptable: a gateway bug.
    {406, Code::kInternal, reason::kUpstreamProtocolError,
     "Connyline did not accept the gateway's request format"},
    // Request Timeout.
    {408, Code::kDeadlineExceeded, reason::kUpstreamTimeout,
     "Connyline timed out"},
    // Conflict.
    {409, Code::kAlreadyExists, reason::kUpstreamConflict,
     "Connyline reported a conflict"},
    // Content Too Large.
    {413, Code::kInvalidArgument, reason::kUpstreamRejectedRequest,
     "Connyline rejected the request"},
    // Unsupported Media Type: a gateway bug.
    {415, Code::kInternal, reason::kUpstreamProtocolError,
     "Connyline did not accept the gateway's request format"},
    // Unprocessable Content: Connyline's validation of the fields failed.
    {422, Code::kInvalidArgument, reason::kUpstreamRejectedRequest,
     "Connyline rejected the request"},
    // Too Many Requests: RetryInfo from Retry-After.
    {429, Code::kResourceExhausted, reason::kUpstreamRateLimited,
     "Connyline is rate-limiting the gateway"},
    // Internal Server Error.
    {500, Code::kInternal, reason::kUpstreamInternalError,
     "Connyline failed with an internal error"},
    // Bad Gateway: as any other 5xx.
    {502, Code::kUnavailable, reason::kUpstreamUnavailable,
     "Connyline is unavailable"},
    // Service Unavailable: RetryInfo from Retry-After.
    {503, Code::kUnavailable, reason::kUpstreamUnavailable,
     "Connyline is unavailable"},
    // Gateway Timeout.
    {504, Code::kDeadlineExceeded, reason::kUpstreamTimeout,
     "Connyline timed out"},
};

// The table's row for `http_status`, or the row of its range.
HttpErrorRow FindRow(int http_status) {
  for (const HttpErrorRow& row : kHttpErrors) {
    if (row.http_status == http_status) return row;
  }
  // Other 4xx.
  if (http_status >= 400 && http_status <= 499) {
    return {http_status, Code::kFailedPrecondition,
            reason::kUpstreamClientError, "Connyline refused the request"};
  }
  // Other 5xx.
  if (http_status >= 500 && http_status <= 599) {
    return {http_status, Code::kUnavailable, reason::kUpstreamUnavailable,
            "Connyline is unavailable"};
  }
  // 1xx, 3xx (redirects are not followed) and non-HTTP codes: whatever
  // answered is not Connyline's API as documented, typically a proxy or
  // maintenance page in front of it, or a moved endpoint. Like a 502 the
  // request was most likely not handled, so UNAVAILABLE; the message points
  // at the configuration in case it persists.
  return {http_status, Code::kUnavailable, reason::kUpstreamUnavailable,
          "Connyline answered with an unexpected status"};
}

bool MentionsToken(absl::string_view message) {
  return absl::StrContains(absl::AsciiStrToLower(message), "token");
}

// The row for an answer with `http_status` and Connyline's `message`, after
// the table's special rules, and the summary that starts the status message.
std::pair<HttpErrorRow, std::string> Classify(int http_status,
                                              absl::string_view message) {
  // A 2xx with "success": false reads as a 400.
  const bool success_false = http_status >= 200 && http_status <= 299;
  int row_status = success_false ? 400 : http_status;
  // The token rule: Connyline answers a missing or wrong token with 400
  // "NO Token Found.".
  if (row_status == 400 && MentionsToken(message)) row_status = 401;
  const HttpErrorRow row = FindRow(row_status);
  std::string summary = absl::StrCat(
      row.summary, " (HTTP ", http_status,
      row_status == 400 && success_false ? ", success: false" : "", ")");
  // The protocol error rule: the gateway sent a method or content type
  // Connyline does not take, a bug on our side, not the caller's.
  if (row.reason == reason::kUpstreamProtocolError) {
    absl::StrAppend(&summary, "; this is a gateway bug");
  }
  // The redirect rule: a 3xx usually means a wrong or moved upstream URL.
  if (http_status >= 300 && http_status <= 399) {
    absl::StrAppend(&summary,
                    "; redirects are not followed, check the upstream URL");
  }
  return {row, std::move(summary)};
}

// The Retry-After rule: advice worth passing on as RetryInfo only for these.
bool TakesRetryInfo(int http_status) {
  return http_status == 429 || http_status == 503;
}

// The single place the table becomes a status. `json_message` is Connyline's
// own "message" (goes to ErrorInfo); `body_excerpt` quotes a body that had
// none. Both are already sanitised.
absl::Status BuildHttpError(int http_status, absl::string_view json_message,
                            absl::string_view body_excerpt,
                            std::optional<absl::Duration> retry_after) {
  auto [row, message] = Classify(http_status, json_message);
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
      body.size() > kMaxJsonErrorBodyBytes ||
      !JsonDepthWithin(body, kMaxJsonDepth)) {
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
  const std::string message =
      SanitizedText(upstream_message, kMaxUpstreamMessageBytes);
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
        SanitizedText(*json_message, kMaxUpstreamMessageBytes);
    if (!message.empty()) {
      return BuildHttpError(response.status, message, "", retry_after);
    }
  }
  return BuildHttpError(response.status, "", SanitizedExcerpt(response.body),
                        retry_after);
}

absl::Status MapTransportError(const TransportError& error) {
  const TransportRow row = ClassifyTransport(error.kind);
  // error.detail (libcurl's words) names Connyline's host, address and port:
  // internal topology, so it goes to the JSON log (InstrumentedTransport),
  // never to the caller.
  return MakeError(row.code, std::string(row.summary), row.reason,
                   {{std::string(metadata_key::kTransportError),
                     std::string(TransportErrorName(error.kind))}});
}

}  // namespace campaign_gateway
