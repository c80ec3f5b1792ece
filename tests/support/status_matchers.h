// What the tests share about requests and the errors that come back: a
// valid CreateSmsCampaignRequest, the google.rpc details of a failed call
// decoded, and HasErrorInfo(), a gmock matcher in the spirit of
// google-cloud-cpp's StatusIs:
//
//   EXPECT_THAT(status, HasErrorInfo(grpc::StatusCode::UNAVAILABLE,
//                                    "UPSTREAM_UNAVAILABLE"));
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_STATUS_MATCHERS_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_STATUS_MATCHERS_H_

#include <optional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.pb.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "grpcpp/support/status.h"

namespace campaign_gateway::testing_util {

// "YYYY-MM-DD 10:30" 30 days from now (in `zone`): inside the gateway's
// start window, and never in a DST change (those happen at night).
std::string FutureStart(const absl::TimeZone& zone = absl::UTCTimeZone());

// The documented example request (starting at FutureStart()), valid as is;
// `request_id` is its idempotency key ("" for none).
campaigns::v1::CreateSmsCampaignRequest ValidCreate(
    std::string request_id = "");

// A failed call's status with its grpc-status-details-bin decoded.
struct Failure {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  // grpc-status-details-bin is there, parses, and repeats the code.
  bool has_details = false;
  int error_infos = 0;
  google::rpc::ErrorInfo info;  // the last one
  std::optional<google::rpc::RetryInfo> retry;
  std::optional<google::rpc::BadRequest> bad_request;

  // ErrorInfo metadata `key`, or "<absent>".
  std::string Meta(const std::string& key) const;
};

// Never fails: what is missing stays empty (check with HasErrorInfo()).
Failure Decode(const grpc::Status& status);

// Matches a status with `code` that carries exactly one ErrorInfo, of the
// gateway's domain (kErrorDomain), with `reason`. A grpc::Status carries it
// in grpc-status-details-bin, which must parse and repeat the code.
::testing::Matcher<const grpc::Status&> HasErrorInfo(grpc::StatusCode code,
                                                     absl::string_view reason);
::testing::Matcher<const absl::Status&> HasErrorInfo(absl::StatusCode code,
                                                     absl::string_view reason);

// "UNAVAILABLE", "DEADLINE_EXCEEDED", ...
std::string CodeName(grpc::StatusCode code);

}  // namespace campaign_gateway::testing_util

namespace grpc {
// gtest finds a printer by argument-dependent lookup only, so it has to be
// here: without it a failed expectation on a grpc::Status prints its bytes.
// Prints "UNAVAILABLE: message [N bytes of details]".
void PrintTo(const Status& status, std::ostream* os);
}  // namespace grpc

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_STATUS_MATCHERS_H_
