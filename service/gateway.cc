#include "service/gateway.h"

#include <utility>

#include "service/rest_response.h"
#include "service/status_mapping.h"
#include "service/validate.h"

namespace campaign_gateway {

using campaigns::v1::CreateSmsCampaignRequest;
using campaigns::v1::CreateSmsCampaignResponse;
using campaigns::v1::ListListsRequest;
using campaigns::v1::ListListsResponse;

Gateway::Gateway(GatewayOptions options, HttpTransport& transport)
    : options_(std::move(options)), transport_(transport) {}

void Gateway::ListLists(const ListListsRequest& request,
                        std::shared_ptr<CallContext> context,
                        Callback<ListListsResponse> done) {
  absl::StatusOr<std::string> account =
      ResolveAccount(request.account_code(), options_.account_code);
  if (!account.ok()) return std::move(done)(account.status());

  Send(BuildListListsRequest(options_.upstream, *account), std::move(context),
       [done = std::move(done)](absl::StatusOr<HttpResponse> answer) mutable {
         if (!answer.ok()) return std::move(done)(answer.status());
         std::move(done)(ParseListListsResponse(*answer));
       });
}

void Gateway::CreateSmsCampaign(const CreateSmsCampaignRequest& request,
                                std::shared_ptr<CallContext> context,
                                Callback<CreateSmsCampaignResponse> done) {
  absl::StatusOr<std::string> account =
      ResolveAccount(request.account_code(), options_.account_code);
  if (!account.ok()) return std::move(done)(account.status());
  absl::StatusOr<CampaignDraft> draft =
      ValidateCreateRequest(request, options_.time_zone);
  if (!draft.ok()) return std::move(done)(draft.status());

  Send(BuildCreateCampaignRequest(options_.upstream, *account, *draft),
       std::move(context),
       [this,
        done = std::move(done)](absl::StatusOr<HttpResponse> answer) mutable {
         if (!answer.ok()) return std::move(done)(answer.status());
         std::move(done)(
             ParseCreateCampaignResponse(*answer, options_.time_zone));
       });
}

void Gateway::Send(
    HttpRequest request, std::shared_ptr<CallContext> context,
    absl::AnyInvocable<void(absl::StatusOr<HttpResponse>) &&> done) {
  for (const auto& header : context->propagated_headers) {
    request.headers.push_back(header);
  }
  const absl::Time started = absl::Now();
  const uint64_t id = transport_.Start(
      std::move(request), context->deadline,
      [context, started, done = std::move(done)](HttpResult result) mutable {
        context->cancellation.ClearHook();
        if (auto* error = std::get_if<TransportError>(&result)) {
          context->RecordUpstream(0, absl::Now() - started);
          return std::move(done)(MapTransportError(*error));
        }
        auto& response = std::get<HttpResponse>(result);
        context->RecordUpstream(response.status, absl::Now() - started);
        std::move(done)(std::move(response));
      });
  // Set after Start(): a call cancelled before this line cancels at once.
  context->cancellation.SetHook([this, id] { transport_.Cancel(id); });
}

}  // namespace campaign_gateway
