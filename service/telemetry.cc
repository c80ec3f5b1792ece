#include "service/telemetry.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/log.h"

namespace campaign_gateway {

Telemetry::Telemetry(Options options)
    : options_(std::move(options)),
      rpcs_(registry_.AddCounter("campaign_gateway_rpcs_total",
                                 "RPCs handled, by method and gRPC code.",
                                 {"method", "code"})),
      rpc_duration_(registry_.AddHistogram(
          "campaign_gateway_rpc_duration_seconds",
          "Time from receiving an RPC to finishing it, by method.", {"method"},
          LatencyBuckets())),
      rpcs_in_flight_(registry_.AddGauge("campaign_gateway_rpcs_in_flight",
                                         "RPCs being handled now, by method.",
                                         {"method"})),
      upstream_requests_(registry_.AddCounter(
          "campaign_gateway_upstream_requests_total",
          "Requests to Connyline, by endpoint and HTTP status (or transport "
          "error).",
          {"endpoint", "status"})),
      upstream_duration_(registry_.AddHistogram(
          "campaign_gateway_upstream_request_duration_seconds",
          "Latency of requests to Connyline, by endpoint.", {"endpoint"},
          LatencyBuckets())),
      upstream_in_flight_(
          registry_.AddGauge("campaign_gateway_upstream_requests_in_flight",
                             "Requests to Connyline under way now.")) {
  registry_
      .AddGauge("campaign_gateway_build_info",
                "Always 1; the labels say what is running.",
                {"version", "mode"})
      .With({options_.version, options_.mode})
      .Set(1);
  // Known series exist from the start, so dashboards see zeros, not gaps.
  for (const char* method : {"ListLists", "CreateSmsCampaign"}) {
    rpcs_in_flight_.With({method});
    rpcs_.With({method, "OK"});
  }
}

void Telemetry::RpcStarted(absl::string_view method) {
  rpcs_in_flight_.With({std::string(method)}).Add(1);
}

void Telemetry::RpcFinished(const RpcRecord& record) {
  const std::string code = absl::StatusCodeToString(record.code);
  rpcs_in_flight_.With({record.method}).Add(-1);
  rpcs_.With({record.method, code}).Increment();
  rpc_duration_.With({record.method})
      .Observe(absl::ToDoubleSeconds(record.duration));
  if (!options_.log_rpcs) return;
  nlohmann::json fields = {
      {"method", record.method},
      {"code", code},
      {"request_id", record.request_id},
      {"duration_ms", absl::ToDoubleMilliseconds(record.duration)},
      {"upstream_status", record.upstream.http_status},
      {"upstream_attempts", record.upstream.attempts},
      {"upstream_ms", absl::ToDoubleMilliseconds(record.upstream.latency)},
  };
  if (!record.reason.empty()) fields["reason"] = record.reason;
  LogJson(record.code == absl::StatusCode::kOk ? "info" : "warning", "rpc",
          fields);
}

void Telemetry::UpstreamStarted() { upstream_in_flight_.With({}).Add(1); }

void Telemetry::UpstreamFinished(absl::string_view endpoint,
                                 absl::string_view status,
                                 absl::Duration latency) {
  upstream_in_flight_.With({}).Add(-1);
  upstream_requests_.With({std::string(endpoint), std::string(status)})
      .Increment();
  upstream_duration_.With({std::string(endpoint)})
      .Observe(absl::ToDoubleSeconds(latency));
}

std::string EndpointOf(absl::string_view url) {
  if (absl::EndsWith(url, "/lists/get-all/")) return "lists/get-all";
  if (absl::EndsWith(url, "/campaigns/sms/create")) {
    return "campaigns/sms/create";
  }
  return "other";
}

uint64_t InstrumentedTransport::Start(HttpRequest request, absl::Time deadline,
                                      Callback done) {
  std::string endpoint = EndpointOf(request.url);
  const absl::Time started = absl::Now();
  telemetry_.UpstreamStarted();
  return inner_.Start(
      std::move(request), deadline,
      [this, endpoint = std::move(endpoint), started,
       done = std::move(done)](HttpResult result) mutable {
        const std::string status =
            std::holds_alternative<HttpResponse>(result)
                ? absl::StrCat(std::get<HttpResponse>(result).status)
                : std::string(TransportErrorName(
                      std::get<TransportError>(result).kind));
        telemetry_.UpstreamFinished(endpoint, status, absl::Now() - started);
        std::move(done)(std::move(result));
      });
}

}  // namespace campaign_gateway
