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

namespace campaign_gateway {
namespace {

// Connyline's "message" is echoed into ErrorInfo metadata and the status
// message; an unbounded or binary one must not reach callers or logs as is.
constexpr size_t kMaxUpstreamMessageBytes = 256;
// Error bodies larger than this are only excerpted, never parsed as JSON:
// Connyline's JSON errors are tiny, and a proxy may send megabytes.
constexpr size_t kMaxJsonErrorBodyBytes = 64 * 1024;

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
  std::string message(row.summary);
  const std::string detail =
      SanitizedText(error.detail, kMaxUpstreamMessageBytes);
  if (!detail.empty()) absl::StrAppend(&message, ": ", detail);
  return MakeError(row.code, message, row.reason,
                   {{std::string(metadata_key::kTransportError),
                     std::string(TransportErrorName(error.kind))}});
}

}  // namespace campaign_gateway
