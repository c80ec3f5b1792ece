// Step 1 and the last step of the flow: the gRPC callback service. It turns
// each call into a CallContext (deadline, cancellation), hands it to the
// Gateway, and turns the result into a gRPC status with
// grpc-status-details-bin. No gRPC thread ever waits on the network.
#ifndef CAMPAIGN_GATEWAY_SERVICE_GRPC_SERVICE_H_
#define CAMPAIGN_GATEWAY_SERVICE_GRPC_SERVICE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/byte_buffer.h"
#include "service/authz_watcher.h"
#include "service/gateway.h"
#include "service/telemetry.h"

namespace campaign_gateway {

// absl::Status (with detail payloads) → grpc::Status whose error_details is
// the serialized google.rpc.Status.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The call's request id: the caller's x-request-id when it is a sane token
// (1-128 printable ASCII characters), else a new random UUID.
std::string RequestIdFor(absl::string_view caller_request_id);

// Who may call, and the trail of what they did.
struct CallerChecks {
  // Applied to every call before any other work; null: everyone may call
  // every method. Must outlive the service.
  const AuthzWatcher* authz = nullptr;
  // One JSON "audit" log line per create and per refused call.
  bool audit = true;
};

// The caller as its client certificate names it (gRPC's auth context).
struct CallerIdentity {
  bool authenticated = false;           // a verified client certificate
  std::vector<std::string> principals;  // URI SANs, then DNS SANs
  // The one name logs and idempotency keys use: the first principal, else
  // the certificate's common name; empty when not authenticated.
  std::string principal;
};
CallerIdentity CallerOf(const grpc::ServerContextBase& context);

// Both methods are raw: the service parses each request itself, so bytes
// that are no valid request get INVALID_ARGUMENT (gRPC 1.51's typed callback
// handler would answer UNIMPLEMENTED before the service saw them).
class CampaignServiceImpl final
    : public campaigns::v1::CampaignService::WithRawCallbackMethod_ListLists<
          campaigns::v1::CampaignService::
              WithRawCallbackMethod_CreateSmsCampaign<
                  campaigns::v1::CampaignService::CallbackService>> {
 public:
  // `gateway` and `telemetry` must outlive the service. Calls without a
  // deadline get `default_timeout`.
  CampaignServiceImpl(Gateway& gateway, Telemetry& telemetry,
                      absl::Duration default_timeout, CallerChecks checks = {});

  grpc::ServerUnaryReactor* ListLists(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;

  grpc::ServerUnaryReactor* CreateSmsCampaign(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;

 private:
  Gateway& gateway_;
  Telemetry& telemetry_;
  const absl::Duration default_timeout_;
  const CallerChecks checks_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_GRPC_SERVICE_H_
