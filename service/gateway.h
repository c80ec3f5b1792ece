// The logic class: one method per RPC, running the flow validate → translate
// → HTTP out (through the UpstreamClient's guards) → translate back. It knows
// nothing of gRPC's transport (so it is unit-testable with a scripted
// HttpTransport) and nothing of libcurl.
#ifndef CAMPAIGN_GATEWAY_SERVICE_GATEWAY_H_
#define CAMPAIGN_GATEWAY_SERVICE_GATEWAY_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.pb.h"
#include "service/call_context.h"
#include "service/idempotency_store.h"
#include "service/rest_request.h"
#include "service/timer.h"
#include "service/upstream_client.h"

namespace campaign_gateway {

struct GatewayOptions {
  std::string account_code;  // the only account this gateway serves
  absl::TimeZone time_zone;  // Connyline's local time
  UpstreamTarget upstream;
  // A create with a request_id runs on after its caller leaves (so that a
  // repeat learns its outcome), under this gateway-owned upstream timeout
  // instead of the caller's deadline.
  absl::Duration keyed_upstream_timeout = absl::Seconds(10);
  // A create's start must fall within [now - this, now + start_max_ahead].
  absl::Duration start_past_tolerance = absl::Minutes(5);
  absl::Duration start_max_ahead = absl::Hours(730 * 24);
  // When set, the token for each request (it may be rotated while serving),
  // in place of upstream.token. Called on any thread.
  std::function<std::string()> token;
};

class Gateway {
 public:
  template <typename Response>
  using Callback = absl::AnyInvocable<void(absl::StatusOr<Response>) &&>;

  // `upstream`, `idempotency` and `timers` must outlive the Gateway.
  Gateway(GatewayOptions options, UpstreamClient& upstream,
          IdempotencyStore& idempotency, TimerQueue& timers);

  // Each runs `done` exactly once: inline for requests rejected before any
  // upstream call, else on a transport or timer thread. Never blocks.
  void ListLists(const campaigns::v1::ListListsRequest& request,
                 std::shared_ptr<CallContext> context,
                 Callback<campaigns::v1::ListListsResponse> done);
  void CreateSmsCampaign(
      const campaigns::v1::CreateSmsCampaignRequest& request,
      std::shared_ptr<CallContext> context,
      Callback<campaigns::v1::CreateSmsCampaignResponse> done);

 private:
  using CreateResult = absl::StatusOr<campaigns::v1::CreateSmsCampaignResponse>;
  // A create with an idempotency key: joins the store, then leads (sends),
  // replays, or is refused.
  void CreateKeyed(HttpRequest http, const std::string& key,
                   std::string fingerprint,
                   std::shared_ptr<CallContext> context,
                   Callback<campaigns::v1::CreateSmsCampaignResponse> done);
  // Sends a create and translates the answer; `done` also learns whether the
  // outcome should be remembered for the idempotency key.
  void SendCreate(
      HttpRequest request, std::shared_ptr<CallContext> context,
      UpstreamClient::SendOptions options,
      absl::AnyInvocable<void(CreateResult, bool remember) &&> done);

  // options_.upstream with the current token.
  UpstreamTarget Target() const;

  const GatewayOptions options_;
  UpstreamClient& upstream_;
  IdempotencyStore& idempotency_;
  TimerQueue& timers_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_GATEWAY_H_
