#include "service/grpc_service.h"

#include <chrono>
#include <memory>
#include <utility>

#include "absl/time/clock.h"
#include "grpcpp/support/error_details.h"
#include "service/errors.h"

namespace campaign_gateway {
namespace {

using campaigns::v1::CreateSmsCampaignRequest;
using campaigns::v1::CreateSmsCampaignResponse;
using campaigns::v1::ListListsRequest;
using campaigns::v1::ListListsResponse;

// One unary call. Owns the CallContext the Gateway sees; forwards gRPC's
// cancellation to it and deletes itself when gRPC is done with the call.
class UnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  UnaryReactor(grpc::CallbackServerContext* server_context,
               absl::Duration default_timeout)
      : context_(std::make_shared<CallContext>()) {
    const auto deadline = server_context->deadline();
    context_->deadline =
        deadline == std::chrono::system_clock::time_point::max()
            ? absl::Now() + default_timeout
            : absl::FromChrono(deadline);
  }

  std::shared_ptr<CallContext> context() const { return context_; }

  // Copies `result` into `*response` (when OK) and finishes the call.
  template <typename Response>
  void Complete(absl::StatusOr<Response> result, Response* response) {
    if (result.ok()) {
      *response = *std::move(result);
      Finish(grpc::Status::OK);
    } else {
      Finish(ToGrpcStatus(result.status()));
    }
  }

  void OnCancel() override { context_->cancellation.Cancel(); }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<CallContext> context_;
};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  grpc::Status out;
  grpc::SetErrorDetails(ToRpcStatus(status), &out);
  return out;
}

CampaignServiceImpl::CampaignServiceImpl(Gateway& gateway,
                                         absl::Duration default_timeout)
    : gateway_(gateway), default_timeout_(default_timeout) {}

grpc::ServerUnaryReactor* CampaignServiceImpl::ListLists(
    grpc::CallbackServerContext* context, const ListListsRequest* request,
    ListListsResponse* response) {
  auto* reactor = new UnaryReactor(context, default_timeout_);
  gateway_.ListLists(*request, reactor->context(),
                     [reactor, response](absl::StatusOr<ListListsResponse> r) {
                       reactor->Complete(std::move(r), response);
                     });
  return reactor;
}

grpc::ServerUnaryReactor* CampaignServiceImpl::CreateSmsCampaign(
    grpc::CallbackServerContext* context,
    const CreateSmsCampaignRequest* request,
    CreateSmsCampaignResponse* response) {
  auto* reactor = new UnaryReactor(context, default_timeout_);
  gateway_.CreateSmsCampaign(
      *request, reactor->context(),
      [reactor, response](absl::StatusOr<CreateSmsCampaignResponse> r) {
        reactor->Complete(std::move(r), response);
      });
  return reactor;
}

}  // namespace campaign_gateway
