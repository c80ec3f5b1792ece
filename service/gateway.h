// The logic class: one method per RPC, running the flow validate → translate
// → HTTP out → translate back. It knows nothing of gRPC's transport (so it is
// unit-testable with a scripted HttpTransport) and nothing of libcurl.
#ifndef CAMPAIGN_GATEWAY_SERVICE_GATEWAY_H_
#define CAMPAIGN_GATEWAY_SERVICE_GATEWAY_H_

#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.pb.h"
#include "service/call_context.h"
#include "service/http_types.h"
#include "service/rest_request.h"

namespace campaign_gateway {

struct GatewayOptions {
  std::string account_code;  // the only account this gateway serves
  absl::TimeZone time_zone;  // Connyline's local time
  UpstreamTarget upstream;
};

class Gateway {
 public:
  template <typename Response>
  using Callback = absl::AnyInvocable<void(absl::StatusOr<Response>) &&>;

  // `transport` must outlive the Gateway.
  Gateway(GatewayOptions options, HttpTransport& transport);

  // Each runs `done` exactly once: inline for requests rejected before any
  // upstream call, else on a transport thread. Never blocks.
  void ListLists(const campaigns::v1::ListListsRequest& request,
                 std::shared_ptr<CallContext> context,
                 Callback<campaigns::v1::ListListsResponse> done);
  void CreateSmsCampaign(
      const campaigns::v1::CreateSmsCampaignRequest& request,
      std::shared_ptr<CallContext> context,
      Callback<campaigns::v1::CreateSmsCampaignResponse> done);

 private:
  // Sends `request` bounded by the call's deadline and cancellation; `done`
  // gets the answer or the mapped transport error.
  void Send(HttpRequest request, std::shared_ptr<CallContext> context,
            absl::AnyInvocable<void(absl::StatusOr<HttpResponse>) &&> done);

  const GatewayOptions options_;
  HttpTransport& transport_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_GATEWAY_H_
