#include "service/telemetry.h"

#include <string>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/scripted_transport.h"

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Telemetry Quiet() {
  return Telemetry({.version = "1.2.3", .mode = "sandbox", .log_rpcs = false});
}

TEST(TelemetryTest, CountsAndTimesRpcsByMethodAndCode) {
  Telemetry telemetry = Quiet();
  telemetry.RpcStarted("ListLists");
  EXPECT_THAT(
      telemetry.Render(),
      HasSubstr(R"(campaign_gateway_rpcs_in_flight{method="ListLists"} 1)"));
  telemetry.RpcFinished({.method = "ListLists",
                         .code = absl::StatusCode::kUnavailable,
                         .duration = absl::Milliseconds(30)});
  const std::string metrics = telemetry.Render();
  EXPECT_THAT(
      metrics,
      HasSubstr(R"(campaign_gateway_rpcs_in_flight{method="ListLists"} 0)"));
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(campaign_gateway_rpcs_total{code="UNAVAILABLE",method="ListLists"} 1)"));
  // 30 ms falls in the 0.05 bucket, not in 0.025.
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(campaign_gateway_rpc_duration_seconds_bucket{method="ListLists",le="0.025"} 0)"));
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(campaign_gateway_rpc_duration_seconds_bucket{method="ListLists",le="0.05"} 1)"));
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(campaign_gateway_build_info{mode="sandbox",version="1.2.3"} 1)"));
}

TEST(TelemetryTest, GuardEventsAndBreakerState) {
  Telemetry telemetry = Quiet();
  telemetry.GuardEvent("overloaded");
  telemetry.GuardEvent("overloaded");
  telemetry.SetBreakerOpen(true);
  const std::string metrics = telemetry.Render();
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(campaign_gateway_guard_events_total{event="overloaded"} 2)"));
  EXPECT_THAT(
      metrics,
      HasSubstr(R"(campaign_gateway_guard_events_total{event="retry"} 0)"));
  EXPECT_THAT(metrics, HasSubstr("campaign_gateway_circuit_breaker_open 1"));
}

TEST(EndpointOfTest, NamesTheTwoEndpoints) {
  EXPECT_EQ(EndpointOf("https://h/p/api/v1/acme/lists/get-all/"),
            "lists/get-all");
  EXPECT_EQ(EndpointOf("https://h/api/v1/acme/campaigns/sms/create"),
            "campaigns/sms/create");
  EXPECT_EQ(EndpointOf("https://h/api/v1/acme/other"), "other");
}

TEST(InstrumentedTransportTest, LabelsUpstreamRequestsByStatusOrFailure) {
  Telemetry telemetry = Quiet();
  int calls = 0;
  testing_util::ScriptedTransport inner([&](const HttpRequest&) -> HttpResult {
    if (++calls == 1) {
      HttpResponse response;
      response.status = 201;
      return response;
    }
    return TransportError{TransportError::Kind::kConnectFailed, "refused",
                          false};
  });
  InstrumentedTransport transport(inner, telemetry);
  for (int i = 0; i < 2; ++i) {
    absl::Notification done;
    transport.Start({"POST", "http://h/api/v1/a/campaigns/sms/create", {}, ""},
                    absl::Now() + absl::Seconds(5),
                    [&](const HttpResult&) { done.Notify(); });
    done.WaitForNotification();
  }
  const std::string metrics = telemetry.Render();
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(campaign_gateway_upstream_requests_total{endpoint="campaigns/sms/create",status="201"} 1)"));
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(campaign_gateway_upstream_requests_total{endpoint="campaigns/sms/create",status="connect_failed"} 1)"));
  EXPECT_THAT(metrics,
              HasSubstr("campaign_gateway_upstream_requests_in_flight 0"));
  EXPECT_THAT(metrics, Not(HasSubstr("lists/get-all\",status")));
}

}  // namespace
}  // namespace campaign_gateway
