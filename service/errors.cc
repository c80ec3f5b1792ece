#include "service/errors.h"

#include <string>

#include "absl/strings/cord.h"
#include "google/protobuf/any.pb.h"

namespace campaign_gateway {
namespace {

constexpr absl::string_view kTypeUrlPrefix = "type.googleapis.com/";

template <typename Message>
std::string TypeUrl() {
  return absl::StrCat(kTypeUrlPrefix, Message::descriptor()->full_name());
}

template <typename Message>
void Attach(absl::Status& status, const Message& detail) {
  if (status.ok()) return;
  status.SetPayload(TypeUrl<Message>(), absl::Cord(detail.SerializeAsString()));
}

template <typename Message>
std::optional<Message> Get(const absl::Status& status) {
  auto payload = status.GetPayload(TypeUrl<Message>());
  if (!payload) return std::nullopt;
  Message detail;
  if (!detail.ParseFromString(std::string(*payload))) return std::nullopt;
  return detail;
}

}  // namespace

absl::Status MakeError(absl::StatusCode code, absl::string_view message,
                       absl::string_view reason,
                       const std::map<std::string, std::string>& metadata) {
  absl::Status status(code, message);
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(reason));
  info.set_domain(std::string(kErrorDomain));
  for (const auto& [key, value] : metadata) {
    (*info.mutable_metadata())[key] = value;
  }
  Attach(status, info);
  return status;
}

void AttachBadRequest(absl::Status& status,
                      const google::rpc::BadRequest& bad_request) {
  Attach(status, bad_request);
}

void AttachRetryInfo(absl::Status& status, absl::Duration retry_delay) {
  google::rpc::RetryInfo info;
  const int64_t nanos = absl::ToInt64Nanoseconds(retry_delay);
  info.mutable_retry_delay()->set_seconds(nanos / 1000000000);
  info.mutable_retry_delay()->set_nanos(
      static_cast<int32_t>(nanos % 1000000000));
  Attach(status, info);
}

void SetErrorMetadata(absl::Status& status, absl::string_view key,
                      absl::string_view value) {
  std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(status);
  if (!info) return;
  (*info->mutable_metadata())[std::string(key)] = std::string(value);
  Attach(status, *info);
}

std::optional<google::rpc::ErrorInfo> GetErrorInfo(const absl::Status& status) {
  return Get<google::rpc::ErrorInfo>(status);
}

std::optional<google::rpc::BadRequest> GetBadRequest(
    const absl::Status& status) {
  return Get<google::rpc::BadRequest>(status);
}

std::optional<google::rpc::RetryInfo> GetRetryInfo(const absl::Status& status) {
  return Get<google::rpc::RetryInfo>(status);
}

google::rpc::Status ToRpcStatus(const absl::Status& status) {
  google::rpc::Status out;
  out.set_code(static_cast<int32_t>(status.code()));
  out.set_message(std::string(status.message()));
  // ErrorInfo first: clients that read only details[0] see the reason.
  const std::string error_info_url = TypeUrl<google::rpc::ErrorInfo>();
  if (auto payload = status.GetPayload(error_info_url)) {
    google::protobuf::Any* any = out.add_details();
    any->set_type_url(error_info_url);
    any->set_value(std::string(*payload));
  }
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& value) {
    if (url == error_info_url) return;
    google::protobuf::Any* any = out.add_details();
    any->set_type_url(std::string(url));
    any->set_value(std::string(value));
  });
  return out;
}

absl::Status FromRpcStatus(const google::rpc::Status& status) {
  if (status.code() == 0) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(status.code()),
                   status.message());
  for (const google::protobuf::Any& any : status.details()) {
    out.SetPayload(any.type_url(), absl::Cord(any.value()));
  }
  return out;
}

}  // namespace campaign_gateway
