#include "service/telemetry.h"

#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "prometheus/text_serializer.h"
#include "service/log.h"

namespace campaign_gateway {
namespace {

// Latency buckets in seconds, 1 ms to 30 s.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,  0.5,    1,     2.5,  5,     10,   30};
  return *buckets;
}

}  // namespace

Telemetry::Telemetry(Options options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()),
      rpcs_(prometheus::BuildCounter()
                .Name("campaign_gateway_rpcs_total")
                .Help("RPCs handled, by method and gRPC code.")
                .Register(*registry_)),
      rpc_duration_(
          prometheus::BuildHistogram()
              .Name("campaign_gateway_rpc_duration_seconds")
              .Help("Time from receiving an RPC to finishing it, by method.")
              .Register(*registry_)),
      rpcs_in_flight_(prometheus::BuildGauge()
                          .Name("campaign_gateway_rpcs_in_flight")
                          .Help("RPCs being handled now, by method.")
                          .Register(*registry_)),
      upstream_requests_(
          prometheus::BuildCounter()
              .Name("campaign_gateway_upstream_requests_total")
              .Help("Requests to Connyline, by endpoint and HTTP status (or "
                    "transport error).")
              .Register(*registry_)),
      upstream_duration_(
          prometheus::BuildHistogram()
              .Name("campaign_gateway_upstream_request_duration_seconds")
              .Help("Latency of requests to Connyline, by endpoint.")
              .Register(*registry_)),
      upstream_in_flight_(
          prometheus::BuildGauge()
              .Name("campaign_gateway_upstream_requests_in_flight")
              .Help("Requests to Connyline under way now.")
              .Register(*registry_)
              .Add({})),
      guard_events_(prometheus::BuildCounter()
                        .Name("campaign_gateway_guard_events_total")
                        .Help("Guards' decisions, by event: calls refused "
                              "(overloaded, circuit_open, rate_limited, "
                              "cooling_down), retries, and admission decided "
                              "locally while Redis was unreachable.")
                        .Register(*registry_)),
      breaker_open_(prometheus::BuildGauge()
                        .Name("campaign_gateway_circuit_breaker_open")
                        .Help("1 while the upstream circuit breaker is open.")
                        .Register(*registry_)
                        .Add({})),
      store_up_(prometheus::BuildGauge()
                    .Name("campaign_gateway_idempotency_store_up")
                    .Help("1 while the idempotency store answers (Redis "
                          "connected; always 1 for the per-process store).")
                    .Register(*registry_)
                    .Add({})),
      authz_denials_(prometheus::BuildCounter()
                         .Name("campaign_gateway_authz_denials_total")
                         .Help("Calls the authorization policy refused "
                               "(PERMISSION_DENIED, CALLER_NOT_ALLOWED), by "
                               "method.")
                         .Register(*registry_)) {
  store_up_.Set(1);
  prometheus::BuildGauge()
      .Name("campaign_gateway_build_info")
      .Help("Always 1; the labels say what is running.")
      .Register(*registry_)
      .Add({{"version", options_.version}, {"mode", options_.mode}})
      .Set(1);
  // Known series exist from the start, so dashboards see zeros, not gaps.
  for (const char* method : {"ListLists", "CreateSmsCampaign"}) {
    authz_denials_.Add({{"method", method}});
    rpcs_in_flight_.Add({{"method", method}});
    rpcs_.Add({{"method", method}, {"code", "OK"}});
  }
  for (const char* event : {"overloaded", "circuit_open", "retry"}) {
    guard_events_.Add({{"event", event}});
  }
}

void Telemetry::RpcStarted(absl::string_view method) {
  rpcs_in_flight_.Add({{"method", std::string(method)}}).Increment();
}

void Telemetry::RpcFinished(const RpcRecord& record) {
  const std::string code = absl::StatusCodeToString(record.code);
  rpcs_in_flight_.Add({{"method", record.method}}).Decrement();
  rpcs_.Add({{"method", record.method}, {"code", code}}).Increment();
  rpc_duration_.Add({{"method", record.method}}, LatencyBuckets())
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
  if (!record.idempotency_key.empty()) {
    fields["idempotency_key"] = record.idempotency_key;
    fields["replayed"] = record.replayed;
  }
  LogJson(record.code == absl::StatusCode::kOk ? "info" : "warning", "rpc",
          fields);
}

void Telemetry::UpstreamStarted() { upstream_in_flight_.Increment(); }

void Telemetry::UpstreamFinished(absl::string_view endpoint,
                                 absl::string_view status,
                                 absl::Duration latency) {
  upstream_in_flight_.Decrement();
  upstream_requests_
      .Add({{"endpoint", std::string(endpoint)},
            {"status", std::string(status)}})
      .Increment();
  upstream_duration_
      .Add({{"endpoint", std::string(endpoint)}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

void Telemetry::GuardEvent(absl::string_view event) {
  guard_events_.Add({{"event", std::string(event)}}).Increment();
}

void Telemetry::SetBreakerOpen(bool open) { breaker_open_.Set(open ? 1 : 0); }

void Telemetry::SetStoreUp(bool up) { store_up_.Set(up ? 1 : 0); }

void Telemetry::AuthzDenied(absl::string_view method) {
  authz_denials_.Add({{"method", std::string(method)}}).Increment();
}

std::string Telemetry::Render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
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
        if (const auto* error = std::get_if<TransportError>(&result);
            error != nullptr &&
            error->kind != TransportError::Kind::kCancelled) {
          LogTransportError(*error);
        }
        std::move(done)(std::move(result));
      });
}

void InstrumentedTransport::LogTransportError(const TransportError& error) {
  int64_t suppressed = 0;
  if (!log_limit_.Allow(absl::Now(), &suppressed)) return;
  LogJson("warning", "upstream transport error",
          {{"transport_error", std::string(TransportErrorName(error.kind))},
           {"detail", error.detail},
           {"suppressed_since_last", suppressed}});
}

}  // namespace campaign_gateway
