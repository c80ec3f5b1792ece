// Observability of the flow: Prometheus metrics and one JSON log line per
// RPC. Telemetry never sees request contents, so it cannot leak the token or
// an SMS text.
#ifndef CAMPAIGN_GATEWAY_SERVICE_TELEMETRY_H_
#define CAMPAIGN_GATEWAY_SERVICE_TELEMETRY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/call_context.h"
#include "service/http_types.h"
#include "service/metrics.h"

namespace campaign_gateway {

// What the log line and the metrics say about one finished RPC.
struct RpcRecord {
  std::string method;  // e.g. "CreateSmsCampaign"
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string reason;  // the ErrorInfo reason of a failure
  std::string request_id;
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
  // `status` is the HTTP status, or the transport error's name.
  void UpstreamFinished(absl::string_view endpoint, absl::string_view status,
                        absl::Duration latency);
  void UpstreamStarted();

  MetricsRegistry& registry() { return registry_; }

 private:
  const Options options_;
  MetricsRegistry registry_;
  Family<Counter>& rpcs_;
  Family<Histogram>& rpc_duration_;
  Family<Gauge>& rpcs_in_flight_;
  Family<Counter>& upstream_requests_;
  Family<Histogram>& upstream_duration_;
  Family<Gauge>& upstream_in_flight_;
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
  HttpTransport& inner_;
  Telemetry& telemetry_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_TELEMETRY_H_
