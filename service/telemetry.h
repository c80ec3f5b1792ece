// Observability of the flow: Prometheus metrics (prometheus-cpp, served on
// the admin port) and one JSON log line per RPC. Telemetry never sees
// request contents, so it cannot leak the token or an SMS text.
#ifndef CAMPAIGN_GATEWAY_SERVICE_TELEMETRY_H_
#define CAMPAIGN_GATEWAY_SERVICE_TELEMETRY_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "service/call_context.h"
#include "service/http_types.h"
#include "service/log.h"

namespace campaign_gateway {

// What the log line and the metrics say about one finished RPC.
struct RpcRecord {
  std::string method;  // e.g. "CreateSmsCampaign"
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string reason;  // the ErrorInfo reason of a failure
  std::string request_id;
  std::string idempotency_key;  // the create's request_id field, if any
  bool replayed = false;        // answered from the idempotency store
  absl::Duration duration;
  UpstreamOutcome upstream;
};

class Telemetry {
 public:
  struct Options {
    std::string version;
    std::string mode;  // "sandbox" or "connyline"
    bool log_rpcs = true;
  };
  explicit Telemetry(Options options);

  void RpcStarted(absl::string_view method);
  void RpcFinished(const RpcRecord& record);
  void UpstreamStarted();
  // `status` is the HTTP status, or the transport error's name.
  void UpstreamFinished(absl::string_view endpoint, absl::string_view status,
                        absl::Duration latency);
  // Guards' decisions: "overloaded", "circuit_open", "rate_limited",
  // "cooling_down", "retry", "admission_local_fallback".
  void GuardEvent(absl::string_view event);
  void SetBreakerOpen(bool open);
  void SetStoreUp(bool up);
  // A call the authorization policy refused.
  void AuthzDenied(absl::string_view method);

  std::shared_ptr<prometheus::Registry> registry() { return registry_; }
  // The text exposition of every metric (what /metrics serves).
  std::string Render() const;

 private:
  const Options options_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& rpcs_;
  prometheus::Family<prometheus::Histogram>& rpc_duration_;
  prometheus::Family<prometheus::Gauge>& rpcs_in_flight_;
  prometheus::Family<prometheus::Counter>& upstream_requests_;
  prometheus::Family<prometheus::Histogram>& upstream_duration_;
  prometheus::Gauge& upstream_in_flight_;
  prometheus::Family<prometheus::Counter>& guard_events_;
  prometheus::Gauge& breaker_open_;
  prometheus::Gauge& store_up_;
  prometheus::Family<prometheus::Counter>& authz_denials_;
};

// The endpoint label of a Connyline URL: "lists/get-all",
// "campaigns/sms/create" or "other".
std::string EndpointOf(absl::string_view url);

// Wraps a transport to count and time every upstream request.
class InstrumentedTransport final : public HttpTransport {
 public:
  InstrumentedTransport(HttpTransport& inner, Telemetry& telemetry)
      : inner_(inner), telemetry_(telemetry) {}

  uint64_t Start(HttpRequest request, absl::Time deadline,
                 Callback done) override;
  void Cancel(uint64_t id) override { inner_.Cancel(id); }

 private:
  // Logs a transport error's detail (libcurl's words, with the upstream's
  // address, kept out of callers' messages), at most one line per second.
  void LogTransportError(const TransportError& error);

  HttpTransport& inner_;
  Telemetry& telemetry_;
  LogRateLimit log_limit_{absl::Seconds(1)};
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_TELEMETRY_H_
