#include "tests/support/status_matchers.h"

#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "google/rpc/status.pb.h"
#include "service/errors.h"

namespace campaign_gateway::testing_util {
namespace {

using ::testing::MatchResultListener;

void DescribeWant(std::ostream* os, absl::string_view code,
                  absl::string_view reason) {
  *os << "has code " << code << " and exactly one ErrorInfo, " << kErrorDomain
      << "/" << reason;
}

void DescribeNot(std::ostream* os, absl::string_view code,
                 absl::string_view reason) {
  *os << "doesn't have code " << code << " with exactly one ErrorInfo, "
      << kErrorDomain << "/" << reason;
}

// Explains a mismatch of the ErrorInfo in `infos` details of a status.
bool MatchErrorInfo(int infos, const google::rpc::ErrorInfo& info,
                    absl::string_view reason, MatchResultListener* listener) {
  if (infos != 1) {
    *listener << "which has " << infos << " ErrorInfo details";
    return false;
  }
  if (info.domain() != kErrorDomain || info.reason() != reason) {
    *listener << "whose ErrorInfo is " << info.domain() << "/" << info.reason();
    return false;
  }
  return true;
}

class GrpcHasErrorInfo
    : public ::testing::MatcherInterface<const grpc::Status&> {
 public:
  GrpcHasErrorInfo(grpc::StatusCode code, absl::string_view reason)
      : code_(code), reason_(reason) {}

  bool MatchAndExplain(const grpc::Status& status,
                       MatchResultListener* listener) const override {
    if (status.error_code() != code_) {
      *listener << "whose code is " << CodeName(status.error_code());
      return false;
    }
    if (status.error_details().empty()) {
      *listener << "which has no grpc-status-details-bin";
      return false;
    }
    google::rpc::Status details;
    if (!details.ParseFromString(status.error_details())) {
      *listener << "whose grpc-status-details-bin is not a google.rpc.Status";
      return false;
    }
    if (details.code() != status.error_code()) {
      *listener << "whose grpc-status-details-bin has code "
                << CodeName(static_cast<grpc::StatusCode>(details.code()));
      return false;
    }
    const Failure failure = Decode(status);
    return MatchErrorInfo(failure.error_infos, failure.info, reason_, listener);
  }

  void DescribeTo(std::ostream* os) const override {
    DescribeWant(os, CodeName(code_), reason_);
  }
  void DescribeNegationTo(std::ostream* os) const override {
    DescribeNot(os, CodeName(code_), reason_);
  }

 private:
  const grpc::StatusCode code_;
  const std::string reason_;
};

class AbslHasErrorInfo
    : public ::testing::MatcherInterface<const absl::Status&> {
 public:
  AbslHasErrorInfo(absl::StatusCode code, absl::string_view reason)
      : code_(code), reason_(reason) {}

  bool MatchAndExplain(const absl::Status& status,
                       MatchResultListener* listener) const override {
    if (status.code() != code_) {
      *listener << "whose code is " << absl::StatusCodeToString(status.code());
      return false;
    }
    // Payloads are keyed by type URL: there is at most one ErrorInfo.
    const std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(status);
    return MatchErrorInfo(info.has_value() ? 1 : 0,
                          info.value_or(google::rpc::ErrorInfo()), reason_,
                          listener);
  }

  void DescribeTo(std::ostream* os) const override {
    DescribeWant(os, absl::StatusCodeToString(code_), reason_);
  }
  void DescribeNegationTo(std::ostream* os) const override {
    DescribeNot(os, absl::StatusCodeToString(code_), reason_);
  }

 private:
  const absl::StatusCode code_;
  const std::string reason_;
};

}  // namespace

std::string FutureStart(const absl::TimeZone& zone) {
  const absl::CivilDay day =
      absl::ToCivilDay(absl::Now() + absl::Hours(30 * 24), zone);
  return absl::FormatCivilTime(
             absl::CivilMinute(day.year(), day.month(), day.day(), 10, 30))
      .replace(10, 1, " ");
}

campaigns::v1::CreateSmsCampaignRequest ValidCreate(std::string request_id) {
  campaigns::v1::CreateSmsCampaignRequest request;
  request.set_campaign_name("Spring promo");
  request.set_sender("MYSHOP");
  request.set_list_id(123);
  request.set_sms_text("Hello! {shortlink1}");
  request.set_start(FutureStart());
  request.set_shortlink1("https://www.example.com/promo");
  request.set_request_id(std::move(request_id));
  return request;
}

std::string Failure::Meta(const std::string& key) const {
  auto it = info.metadata().find(key);
  return it == info.metadata().end() ? "<absent>" : it->second;
}

Failure Decode(const grpc::Status& status) {
  Failure failure;
  failure.code = status.error_code();
  failure.message = status.error_message();
  google::rpc::Status details;
  if (status.error_details().empty() ||
      !details.ParseFromString(status.error_details())) {
    return failure;
  }
  failure.has_details = details.code() == status.error_code();
  for (const auto& any : details.details()) {
    google::rpc::RetryInfo retry;
    google::rpc::BadRequest bad_request;
    if (any.UnpackTo(&failure.info)) {
      ++failure.error_infos;
    } else if (any.UnpackTo(&retry)) {
      failure.retry = retry;
    } else if (any.UnpackTo(&bad_request)) {
      failure.bad_request = bad_request;
    }
  }
  return failure;
}

::testing::Matcher<const grpc::Status&> HasErrorInfo(grpc::StatusCode code,
                                                     absl::string_view reason) {
  return ::testing::MakeMatcher(new GrpcHasErrorInfo(code, reason));
}

::testing::Matcher<const absl::Status&> HasErrorInfo(absl::StatusCode code,
                                                     absl::string_view reason) {
  return ::testing::MakeMatcher(new AbslHasErrorInfo(code, reason));
}

std::string CodeName(grpc::StatusCode code) {
  // gRPC's codes are absl's, number for number.
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

}  // namespace campaign_gateway::testing_util

namespace grpc {

void PrintTo(const Status& status, std::ostream* os) {
  *os << campaign_gateway::testing_util::CodeName(status.error_code());
  if (!status.error_message().empty()) {
    *os << ": " << absl::CHexEscape(status.error_message());
  }
  if (!status.error_details().empty()) {
    *os << " [" << status.error_details().size() << " bytes of details]";
  }
}

}  // namespace grpc
