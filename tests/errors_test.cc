#include "service/errors.h"

#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "campaigns/v1/error_reason.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/any.pb.h"
#include "gtest/gtest.h"

namespace campaign_gateway {
namespace {

using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr absl::string_view kErrorInfoUrl =
    "type.googleapis.com/google.rpc.ErrorInfo";
constexpr absl::string_view kBadRequestUrl =
    "type.googleapis.com/google.rpc.BadRequest";
constexpr absl::string_view kRetryInfoUrl =
    "type.googleapis.com/google.rpc.RetryInfo";

google::rpc::BadRequest TwoViolations() {
  google::rpc::BadRequest bad_request;
  auto* first = bad_request.add_field_violations();
  first->set_field("sender");
  first->set_description("is required");
  auto* second = bad_request.add_field_violations();
  second->set_field("list_id");
  second->set_description("must be positive, got -1");
  return bad_request;
}

TEST(MakeErrorTest, CarriesCodeMessageAndErrorInfo) {
  const absl::Status status = MakeError(
      absl::StatusCode::kNotFound, "no such list", reason::kUpstreamNotFound,
      {{"http_status", "404"}, {"upstream_message", "Not found."}});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "no such list");
  const std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "UPSTREAM_NOT_FOUND");
  EXPECT_EQ(info->domain(), "campaign-gateway.connyline");
  EXPECT_THAT(info->metadata(),
              UnorderedElementsAre(Pair("http_status", "404"),
                                   Pair("upstream_message", "Not found.")));
}

TEST(MakeErrorTest, MetadataIsOptional) {
  const std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(
      MakeError(absl::StatusCode::kCancelled, "gone", reason::kCancelled));
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->metadata().empty());
}

TEST(MakeErrorTest, ReasonsAreUpperSnakeCase) {
  for (absl::string_view r : reason::kAll) {
    EXPECT_THAT(std::string(r), ::testing::MatchesRegex("[A-Z][A-Z_]*[A-Z]"));
  }
}

// The error contract: the reasons the gateway emits are exactly the values
// of the API's ErrorReason enum (but its zero value), names for strings.
TEST(ErrorReasonTest, ReasonsAreExactlyTheEnumsValueNames) {
  std::set<std::string> from_enum;
  const google::protobuf::EnumDescriptor* descriptor =
      campaigns::v1::ErrorReason_descriptor();
  for (int i = 0; i < descriptor->value_count(); ++i) {
    if (descriptor->value(i)->number() == 0) continue;
    from_enum.insert(descriptor->value(i)->name());
  }
  std::set<std::string> from_code;
  for (absl::string_view r : reason::kAll) from_code.emplace(r);
  EXPECT_EQ(from_code.size(), reason::kAll.size()) << "a reason is repeated";
  EXPECT_EQ(from_code, from_enum);
  EXPECT_EQ(descriptor->FindValueByNumber(0)->name(),
            "ERROR_REASON_UNSPECIFIED");
}

// reason::kAll lists every constant of namespace reason in errors.h, so the
// check above covers a reason added to the header but not to kAll.
TEST(ErrorReasonTest, AllListsEveryReasonConstantOfTheHeader) {
  std::ifstream header(ERRORS_HEADER);
  ASSERT_TRUE(header) << ERRORS_HEADER;
  const std::string text((std::istreambuf_iterator<char>(header)),
                         std::istreambuf_iterator<char>());
  const size_t begin = text.find("namespace reason {");
  const size_t end = text.find("}  // namespace reason");
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  const std::regex constant(
      R"re(inline constexpr absl::string_view (k\w+) =\s*"([A-Z_]+)")re");
  std::set<std::string> declared;
  const std::string block = text.substr(begin, end - begin);
  for (auto it = std::sregex_iterator(block.begin(), block.end(), constant);
       it != std::sregex_iterator(); ++it) {
    declared.insert((*it)[2].str());
  }
  std::set<std::string> listed;
  for (absl::string_view r : reason::kAll) listed.emplace(r);
  EXPECT_GE(declared.size(), 24u);
  EXPECT_EQ(declared, listed);
}

TEST(GetDetailsTest, AbsentDetailsAreNullopt) {
  const absl::Status plain = absl::InternalError("plain");
  EXPECT_FALSE(GetErrorInfo(plain).has_value());
  EXPECT_FALSE(GetBadRequest(plain).has_value());
  EXPECT_FALSE(GetRetryInfo(plain).has_value());
  EXPECT_FALSE(GetErrorInfo(absl::OkStatus()).has_value());
}

TEST(AttachTest, BadRequestRoundTrips) {
  absl::Status status = MakeError(absl::StatusCode::kInvalidArgument, "invalid",
                                  reason::kInvalidRequest);
  AttachBadRequest(status, TwoViolations());
  const std::optional<google::rpc::BadRequest> bad_request =
      GetBadRequest(status);
  ASSERT_TRUE(bad_request.has_value());
  ASSERT_EQ(bad_request->field_violations_size(), 2);
  EXPECT_EQ(bad_request->field_violations(0).field(), "sender");
  EXPECT_EQ(bad_request->field_violations(1).description(),
            "must be positive, got -1");
  // Attaching does not disturb the ErrorInfo.
  EXPECT_EQ(GetErrorInfo(status)->reason(), "INVALID_REQUEST");
}

TEST(AttachTest, RetryInfoRoundTripsWithNanos) {
  absl::Status status = MakeError(absl::StatusCode::kResourceExhausted,
                                  "slow down", reason::kUpstreamRateLimited);
  AttachRetryInfo(status, absl::Seconds(3) + absl::Milliseconds(250));
  const std::optional<google::rpc::RetryInfo> retry = GetRetryInfo(status);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->retry_delay().seconds(), 3);
  EXPECT_EQ(retry->retry_delay().nanos(), 250000000);
}

TEST(AttachTest, RetryInfoOfAnHour) {
  absl::Status status = MakeError(absl::StatusCode::kUnavailable, "down",
                                  reason::kUpstreamUnavailable);
  AttachRetryInfo(status, absl::Hours(1));
  EXPECT_EQ(GetRetryInfo(status)->retry_delay().seconds(), 3600);
  EXPECT_EQ(GetRetryInfo(status)->retry_delay().nanos(), 0);
}

TEST(AttachTest, AttachingToOkIsANoOp) {
  absl::Status ok = absl::OkStatus();
  AttachBadRequest(ok, TwoViolations());
  AttachRetryInfo(ok, absl::Seconds(1));
  EXPECT_TRUE(ok.ok());
  EXPECT_FALSE(GetBadRequest(ok).has_value());
  EXPECT_FALSE(GetRetryInfo(ok).has_value());
}

TEST(ToRpcStatusTest, CodeMessageAndErrorInfoFirst) {
  // Attach the others first: ErrorInfo must still lead the details.
  absl::Status status =
      MakeError(absl::StatusCode::kInvalidArgument,
                "invalid CreateSmsCampaignRequest: sender: is required",
                reason::kInvalidRequest);
  AttachRetryInfo(status, absl::Seconds(2));
  AttachBadRequest(status, TwoViolations());

  const google::rpc::Status rpc = ToRpcStatus(status);
  EXPECT_EQ(rpc.code(), 3);  // INVALID_ARGUMENT
  EXPECT_EQ(rpc.message(),
            "invalid CreateSmsCampaignRequest: sender: is required");
  ASSERT_EQ(rpc.details_size(), 3);
  EXPECT_EQ(rpc.details(0).type_url(), kErrorInfoUrl);

  std::vector<std::string> urls;
  for (const google::protobuf::Any& any : rpc.details()) {
    urls.push_back(any.type_url());
  }
  EXPECT_THAT(urls, UnorderedElementsAre(std::string(kErrorInfoUrl),
                                         std::string(kBadRequestUrl),
                                         std::string(kRetryInfoUrl)));

  // Every Any unpacks to what was attached.
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(rpc.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "INVALID_REQUEST");
  EXPECT_EQ(info.domain(), kErrorDomain);
  for (const google::protobuf::Any& any : rpc.details()) {
    if (any.type_url() == kBadRequestUrl) {
      google::rpc::BadRequest bad_request;
      ASSERT_TRUE(any.UnpackTo(&bad_request));
      EXPECT_EQ(bad_request.field_violations_size(), 2);
    } else if (any.type_url() == kRetryInfoUrl) {
      google::rpc::RetryInfo retry;
      ASSERT_TRUE(any.UnpackTo(&retry));
      EXPECT_EQ(retry.retry_delay().seconds(), 2);
    }
  }
}

TEST(ToRpcStatusTest, SerialisedStatusParsesBack) {
  // What grpc-status-details-bin carries must survive the wire.
  absl::Status status =
      MakeError(absl::StatusCode::kUnauthenticated, "token rejected",
                reason::kUpstreamUnauthenticated, {{"http_status", "401"}});
  const std::string wire = ToRpcStatus(status).SerializeAsString();
  google::rpc::Status parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  EXPECT_EQ(parsed.code(), 16);  // UNAUTHENTICATED
  EXPECT_EQ(parsed.message(), "token rejected");
  ASSERT_EQ(parsed.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(parsed.details(0).UnpackTo(&info));
  EXPECT_EQ(info.metadata().at("http_status"), "401");
}

TEST(ToRpcStatusTest, OkHasNoDetails) {
  const google::rpc::Status rpc = ToRpcStatus(absl::OkStatus());
  EXPECT_EQ(rpc.code(), 0);
  EXPECT_EQ(rpc.details_size(), 0);
}

TEST(ToRpcStatusTest, PlainStatusKeepsCodeAndMessage) {
  const google::rpc::Status rpc = ToRpcStatus(absl::UnavailableError("down"));
  EXPECT_EQ(rpc.code(), 14);
  EXPECT_EQ(rpc.message(), "down");
  EXPECT_EQ(rpc.details_size(), 0);
}

TEST(FromRpcStatusTest, RoundTripsCodeMessageAndEveryDetail) {
  absl::Status status =
      MakeError(absl::StatusCode::kResourceExhausted, "slow down",
                reason::kUpstreamRateLimited, {{"request_sent", "false"}});
  AttachRetryInfo(status, absl::Seconds(7));
  const absl::Status back = FromRpcStatus(ToRpcStatus(status));
  EXPECT_EQ(back.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(back.message(), "slow down");
  ASSERT_TRUE(GetErrorInfo(back).has_value());
  EXPECT_EQ(GetErrorInfo(back)->reason(), "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(GetErrorInfo(back)->metadata().at("request_sent"), "false");
  ASSERT_TRUE(GetRetryInfo(back).has_value());
  EXPECT_EQ(GetRetryInfo(back)->retry_delay().seconds(), 7);
  EXPECT_EQ(ToRpcStatus(back).details_size(), 2);
}

TEST(FromRpcStatusTest, CodeZeroIsOk) {
  google::rpc::Status rpc;
  rpc.set_message("ignored");
  EXPECT_TRUE(FromRpcStatus(rpc).ok());
}

}  // namespace
}  // namespace campaign_gateway
