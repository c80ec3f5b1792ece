#include "service/status_mapping.h"

#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/errors.h"
#include "tests/support/status_matchers.h"

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using testing_util::HasErrorInfo;

// A fixed "now" so HTTP-date Retry-After values are deterministic.
const absl::Time kNow =
    absl::FromUnixSeconds(784111777);  // 1994-11-06 08:49:37Z

std::string JsonError(absl::string_view message) {
  return absl::StrCat(R"({"success": false, "message": ")", message, R"("})");
}

std::optional<std::string> Metadata(const absl::Status& status,
                                    absl::string_view key) {
  const std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(status);
  if (!info) return std::nullopt;
  const auto it = info->metadata().find(std::string(key));
  if (it == info->metadata().end()) return std::nullopt;
  return it->second;
}

// ---- The whole HTTP status table ----

struct HttpRow {
  std::string name;
  int status;
  std::string body;
  std::optional<std::string> retry_after;  // the Retry-After header
  absl::StatusCode code;
  absl::string_view reason;
  std::optional<std::string> upstream_message;  // expected metadata
  std::optional<absl::Duration> retry_delay;    // expected RetryInfo
};

void PrintTo(const HttpRow& row, std::ostream* os) { *os << row.name; }

class HttpStatusTableTest : public ::testing::TestWithParam<HttpRow> {};

TEST_P(HttpStatusTableTest, MapsResponse) {
  const HttpRow& row = GetParam();
  HttpResponse response;
  response.status = row.status;
  response.body = row.body;
  if (row.retry_after)
    response.headers.emplace_back("retry-after", *row.retry_after);

  const absl::Status status = MapHttpErrorResponse(response, kNow);

  EXPECT_THAT(status, HasErrorInfo(row.code, row.reason));
  EXPECT_EQ(Metadata(status, metadata_key::kHttpStatus),
            absl::StrCat(row.status));
  EXPECT_EQ(Metadata(status, metadata_key::kUpstreamMessage),
            row.upstream_message);
  EXPECT_THAT(std::string(status.message()), StartsWith("Connyline"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(absl::StrCat("HTTP ", row.status)));
  if (row.upstream_message) {
    EXPECT_THAT(std::string(status.message()),
                HasSubstr(*row.upstream_message));
  }

  const std::optional<google::rpc::RetryInfo> retry = GetRetryInfo(status);
  ASSERT_EQ(retry.has_value(), row.retry_delay.has_value()) << status;
  if (row.retry_delay) {
    EXPECT_EQ(absl::Seconds(retry->retry_delay().seconds()) +
                  absl::Nanoseconds(retry->retry_delay().nanos()),
              *row.retry_delay);
  }
}

using Code = absl::StatusCode;

INSTANTIATE_TEST_SUITE_P(
    WholeTable, HttpStatusTableTest,
    ::testing::Values(
        HttpRow{"Http400NoToken", 400, JsonError("NO Token Found."),
                std::nullopt, Code::kUnauthenticated,
                reason::kUpstreamUnauthenticated, "NO Token Found.",
                std::nullopt},
        HttpRow{"Http400InvalidTokenAnyCase", 400,
                JsonError("Invalid TOKEN supplied"), std::nullopt,
                Code::kUnauthenticated, reason::kUpstreamUnauthenticated,
                "Invalid TOKEN supplied", std::nullopt},
        HttpRow{"Http400Other", 400, JsonError("Necessary data is missing."),
                std::nullopt, Code::kInvalidArgument,
                reason::kUpstreamRejectedRequest, "Necessary data is missing.",
                std::nullopt},
        HttpRow{"Http400HtmlMentioningTokenIsNotAuth", 400,
                "<html><body>bad token</body></html>", std::nullopt,
                Code::kInvalidArgument, reason::kUpstreamRejectedRequest,
                std::nullopt, std::nullopt},
        HttpRow{"Http401", 401, JsonError("Unauthenticated."), std::nullopt,
                Code::kUnauthenticated, reason::kUpstreamUnauthenticated,
                "Unauthenticated.", std::nullopt},
        HttpRow{"Http402", 402, JsonError("Insufficient credit."), std::nullopt,
                Code::kFailedPrecondition, reason::kUpstreamPaymentRequired,
                "Insufficient credit.", std::nullopt},
        HttpRow{"Http403", 403, JsonError("Forbidden."), std::nullopt,
                Code::kPermissionDenied, reason::kUpstreamPermissionDenied,
                "Forbidden.", std::nullopt},
        HttpRow{"Http404", 404, "", std::nullopt, Code::kNotFound,
                reason::kUpstreamNotFound, std::nullopt, std::nullopt},
        HttpRow{"Http405", 405, "", std::nullopt, Code::kInternal,
                reason::kUpstreamProtocolError, std::nullopt, std::nullopt},
        HttpRow{"Http406", 406, "", std::nullopt, Code::kInternal,
                reason::kUpstreamProtocolError, std::nullopt, std::nullopt},
        HttpRow{"Http408", 408, "", std::nullopt, Code::kDeadlineExceeded,
                reason::kUpstreamTimeout, std::nullopt, std::nullopt},
        HttpRow{"Http409", 409, JsonError("Duplicate campaign."), std::nullopt,
                Code::kAlreadyExists, reason::kUpstreamConflict,
                "Duplicate campaign.", std::nullopt},
        HttpRow{"Http413", 413, "", std::nullopt, Code::kInvalidArgument,
                reason::kUpstreamRejectedRequest, std::nullopt, std::nullopt},
        HttpRow{"Http415", 415, "", std::nullopt, Code::kInternal,
                reason::kUpstreamProtocolError, std::nullopt, std::nullopt},
        HttpRow{"Http418OtherClientError", 418, "I'm a teapot", std::nullopt,
                Code::kFailedPrecondition, reason::kUpstreamClientError,
                std::nullopt, std::nullopt},
        HttpRow{"Http451OtherClientError", 451, "", std::nullopt,
                Code::kFailedPrecondition, reason::kUpstreamClientError,
                std::nullopt, std::nullopt},
        HttpRow{"Http422", 422,
                R"({"message": "The sender field is invalid.", "errors": {}})",
                std::nullopt, Code::kInvalidArgument,
                reason::kUpstreamRejectedRequest,
                "The sender field is invalid.", std::nullopt},
        HttpRow{"Http429WithoutRetryAfter", 429, "", std::nullopt,
                Code::kResourceExhausted, reason::kUpstreamRateLimited,
                std::nullopt, std::nullopt},
        HttpRow{"Http429WithRetryAfterSeconds", 429,
                JsonError("Too Many Attempts."), "30", Code::kResourceExhausted,
                reason::kUpstreamRateLimited, "Too Many Attempts.",
                absl::Seconds(30)},
        HttpRow{"Http429WithRetryAfterDate", 429, "",
                "Sun, 06 Nov 1994 08:50:37 GMT", Code::kResourceExhausted,
                reason::kUpstreamRateLimited, std::nullopt, absl::Seconds(60)},
        HttpRow{"Http429WithBadRetryAfter", 429, "", "soon",
                Code::kResourceExhausted, reason::kUpstreamRateLimited,
                std::nullopt, std::nullopt},
        HttpRow{"Http500", 500, JsonError("Server Error"), std::nullopt,
                Code::kInternal, reason::kUpstreamInternalError, "Server Error",
                std::nullopt},
        HttpRow{"Http500IgnoresRetryAfter", 500, "", "10", Code::kInternal,
                reason::kUpstreamInternalError, std::nullopt, std::nullopt},
        HttpRow{"Http501", 501, "", std::nullopt, Code::kUnavailable,
                reason::kUpstreamUnavailable, std::nullopt, std::nullopt},
        HttpRow{"Http502", 502,
                "<html><head><title>502 Bad Gateway</title></head></html>",
                std::nullopt, Code::kUnavailable, reason::kUpstreamUnavailable,
                std::nullopt, std::nullopt},
        HttpRow{"Http503", 503, "", std::nullopt, Code::kUnavailable,
                reason::kUpstreamUnavailable, std::nullopt, std::nullopt},
        HttpRow{"Http503WithRetryAfter", 503, "", "120", Code::kUnavailable,
                reason::kUpstreamUnavailable, std::nullopt, absl::Seconds(120)},
        HttpRow{"Http504", 504, "", std::nullopt, Code::kDeadlineExceeded,
                reason::kUpstreamTimeout, std::nullopt, std::nullopt},
        HttpRow{"Http599", 599, "", std::nullopt, Code::kUnavailable,
                reason::kUpstreamUnavailable, std::nullopt, std::nullopt},
        HttpRow{"Http302", 302, "", std::nullopt, Code::kUnavailable,
                reason::kUpstreamUnavailable, std::nullopt, std::nullopt},
        HttpRow{"Http101", 101, "", std::nullopt, Code::kUnavailable,
                reason::kUpstreamUnavailable, std::nullopt, std::nullopt},
        HttpRow{"Http200SuccessFalse", 200,
                JsonError("Necessary data is missing."), std::nullopt,
                Code::kInvalidArgument, reason::kUpstreamRejectedRequest,
                "Necessary data is missing.", std::nullopt},
        HttpRow{"Http201SuccessFalseToken", 201, JsonError("NO Token Found."),
                std::nullopt, Code::kUnauthenticated,
                reason::kUpstreamUnauthenticated, "NO Token Found.",
                std::nullopt}),
    [](const ::testing::TestParamInfo<HttpRow>& info) {
      return info.param.name;
    });

TEST(MapHttpErrorTest, DocumentedMessageReadsClearly) {
  const absl::Status status =
      MapHttpError(400, "Necessary data is missing.", std::nullopt);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "Connyline rejected the request (HTTP 400): Necessary data is "
            "missing.");
}

TEST(MapHttpErrorTest, SuccessFalsePassedAs400MatchesTheTable) {
  const absl::Status status =
      MapHttpError(400, "NO Token Found.", std::nullopt);
  EXPECT_THAT(status, HasErrorInfo(absl::StatusCode::kUnauthenticated,
                                   reason::kUpstreamUnauthenticated));
  EXPECT_EQ(Metadata(status, metadata_key::kUpstreamMessage),
            "NO Token Found.");
}

TEST(MapHttpErrorTest, EmptyMessageAddsNoMetadata) {
  const absl::Status status = MapHttpError(403, "", std::nullopt);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Metadata(status, metadata_key::kUpstreamMessage), std::nullopt);
  EXPECT_EQ(Metadata(status, metadata_key::kHttpStatus), "403");
}

TEST(MapHttpErrorTest, RetryInfoOnlyWhereTheTableSaysSo) {
  EXPECT_TRUE(GetRetryInfo(MapHttpError(429, "", absl::Seconds(5))));
  EXPECT_TRUE(GetRetryInfo(MapHttpError(503, "", absl::Seconds(5))));
  EXPECT_FALSE(GetRetryInfo(MapHttpError(502, "", absl::Seconds(5))));
  EXPECT_FALSE(GetRetryInfo(MapHttpError(400, "", absl::Seconds(5))));
}

TEST(MapHttpErrorTest, RetryDelayIsInTheMessage) {
  const absl::Status status = MapHttpError(429, "Slow down", absl::Seconds(30));
  EXPECT_THAT(std::string(status.message()), HasSubstr("retry after 30s"));
}

TEST(MapHttpErrorTest, UpstreamMessageIsSanitisedAndCapped) {
  const std::string huge(100000, 'x');
  const absl::Status status =
      MapHttpError(400, absl::StrCat("bad\x01\n\tinput ", huge), std::nullopt);
  const std::optional<std::string> message =
      Metadata(status, metadata_key::kUpstreamMessage);
  ASSERT_TRUE(message.has_value());
  EXPECT_THAT(*message, StartsWith("bad input xxx"));
  EXPECT_LE(message->size(), 256u + 3);
  EXPECT_THAT(*message, testing::EndsWith("..."));
  EXPECT_LT(status.message().size(), 400u);
}

TEST(MapHttpErrorTest, JsonMessageKeepsAngleBrackets) {
  // A JSON message is text, not markup: "<" must survive.
  HttpResponse response{
      422, {}, R"({"message": "list_id must be < 5 and > 0"})"};
  EXPECT_EQ(Metadata(MapHttpErrorResponse(response, kNow),
                     metadata_key::kUpstreamMessage),
            "list_id must be < 5 and > 0");
}

// ---- Bodies that are not Connyline's JSON ----

TEST(MapHttpErrorResponseTest, HtmlPageIsQuotedAsText) {
  HttpResponse response;
  response.status = 502;
  response.body =
      "<html>\r\n<head><title>502 Bad Gateway</title>"
      "<style>body{color:red}</style></head>\r\n<body>\r\n<center><h1>502 "
      "Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
      "<script>alert('x')</script></body>\r\n</html>\r\n";
  const absl::Status status = MapHttpErrorResponse(response, kNow);
  EXPECT_EQ(status.message(),
            "Connyline is unavailable (HTTP 502); response body: \"502 Bad "
            "Gateway 502 Bad Gateway nginx\"");
  EXPECT_EQ(Metadata(status, metadata_key::kUpstreamMessage), std::nullopt);
}

TEST(MapHttpErrorResponseTest, JsonWithoutMessageIsExcerpted) {
  HttpResponse response{401, {}, R"({"error": "invalid_client"})"};
  const absl::Status status = MapHttpErrorResponse(response, kNow);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(status.message()), HasSubstr("invalid_client"));
  EXPECT_EQ(Metadata(status, metadata_key::kUpstreamMessage), std::nullopt);
}

TEST(MapHttpErrorResponseTest, TenMegabyteBodyGivesShortMessage) {
  HttpResponse response{500, {}, std::string(10 << 20, 'A')};
  const absl::Status status = MapHttpErrorResponse(response, kNow);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_LT(status.message().size(), 300u);
  EXPECT_THAT(std::string(status.message()), HasSubstr("AAAA...\""));
}

TEST(MapHttpErrorResponseTest, HugeJsonMessageIsCapped) {
  HttpResponse response{400, {}, JsonError(std::string(10 << 20, 'm'))};
  const absl::Status status = MapHttpErrorResponse(response, kNow);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(status.message().size(), 400u);
}

TEST(MapHttpErrorResponseTest, RedirectPointsAtConfiguration) {
  HttpResponse response{301, {{"location", "https://elsewhere/"}}, ""};
  EXPECT_EQ(MapHttpErrorResponse(response, kNow).message(),
            "Connyline answered with an unexpected status (HTTP 301); "
            "redirects are not followed, check the upstream URL");
}

TEST(MapHttpErrorResponseTest, EmptyBodyGivesTheSummaryOnly) {
  HttpResponse response{404, {}, ""};
  EXPECT_EQ(MapHttpErrorResponse(response, kNow).message(),
            "Connyline has no such account or resource (HTTP 404)");
}

// ---- Transport errors ----

struct TransportRow {
  TransportError::Kind kind;
  absl::StatusCode code;
  absl::string_view reason;
  std::string name;
};

void PrintTo(const TransportRow& row, std::ostream* os) { *os << row.name; }

class TransportErrorTest : public ::testing::TestWithParam<TransportRow> {};

TEST_P(TransportErrorTest, Maps) {
  const TransportRow& row = GetParam();
  // libcurl's words name the upstream's address: never shown to callers.
  const absl::Status status = MapTransportError(
      {row.kind,
       "Failed to connect to connyline.internal port 8443 after 3 ms: "
       "Couldn't connect to server (10.1.2.3)",
       true});
  EXPECT_THAT(status, HasErrorInfo(row.code, row.reason));
  EXPECT_EQ(Metadata(status, metadata_key::kTransportError), row.name);
  EXPECT_EQ(Metadata(status, metadata_key::kHttpStatus), std::nullopt);
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr("Connyline"));
  EXPECT_THAT(message, Not(HasSubstr("connyline.internal")));
  EXPECT_THAT(message, Not(HasSubstr("8443")));
  EXPECT_THAT(message, Not(HasSubstr("10.1.2.3")));
  EXPECT_FALSE(GetRetryInfo(status));
}

using Kind = TransportError::Kind;

INSTANTIATE_TEST_SUITE_P(
    AllKinds, TransportErrorTest,
    ::testing::Values(
        TransportRow{Kind::kConnectFailed, Code::kUnavailable,
                     reason::kUpstreamUnavailable, "connect_failed"},
        TransportRow{Kind::kNameResolution, Code::kUnavailable,
                     reason::kUpstreamUnavailable, "name_resolution"},
        TransportRow{Kind::kTls, Code::kUnavailable,
                     reason::kUpstreamUnavailable, "tls"},
        TransportRow{Kind::kTimeout, Code::kDeadlineExceeded,
                     reason::kUpstreamTimeout, "timeout"},
        TransportRow{Kind::kConnectionLost, Code::kUnavailable,
                     reason::kUpstreamUnavailable, "connection_lost"},
        TransportRow{Kind::kResponseTooLarge, Code::kInternal,
                     reason::kUpstreamBadResponse, "response_too_large"},
        TransportRow{Kind::kCancelled, Code::kCancelled, reason::kCancelled,
                     "cancelled"},
        TransportRow{Kind::kOther, Code::kUnavailable,
                     reason::kUpstreamUnavailable, "other"}),
    [](const ::testing::TestParamInfo<TransportRow>& info) {
      return info.param.name;
    });

TEST(MapTransportErrorTest, EmptyDetailReadsCleanly) {
  EXPECT_EQ(MapTransportError({Kind::kTimeout, "", true}).message(),
            "Connyline did not answer before the deadline");
}

TEST(MapTransportErrorTest, TheDetailStaysOutOfTheMessage) {
  EXPECT_EQ(MapTransportError({Kind::kConnectFailed,
                               "Failed to connect to 10.0.0.7 port 443", true})
                .message(),
            "Cannot connect to Connyline");
}

}  // namespace
}  // namespace campaign_gateway
