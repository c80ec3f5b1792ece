// The whole server side of the gateway, assembled as main.cc does, in
// process on 127.0.0.1:0 with a real gRPC client: CurlTransport (behind a
// RoutingTransport) → InstrumentedTransport → UpstreamClient → Gateway →
// CampaignServiceImpl. For integration tests against a loopback Connyline.
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_GATEWAY_HARNESS_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_GATEWAY_HARNESS_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "service/curl_transport.h"
#include "service/gateway.h"
#include "service/grpc_service.h"
#include "service/idempotency_store.h"
#include "service/telemetry.h"
#include "service/timer.h"
#include "service/upstream_client.h"

namespace campaign_gateway::testing_util {

// A made-up token of the documented length; not a real credential.
inline constexpr char kHarnessToken[] =
    "testtokenCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC";

// Sends what the gateway addresses to `from` (its configured base URL) to
// wherever RouteTo() points: lets a test bring "Connyline" up on a new port
// while the gateway keeps its configuration, as after a restart.
class RoutingTransport final : public HttpTransport {
 public:
  RoutingTransport(HttpTransport& inner, std::string from)
      : inner_(inner), from_(from), to_(std::move(from)) {}

  void RouteTo(std::string to) {
    absl::MutexLock lock(&mu_);
    to_ = std::move(to);
  }
  uint64_t Start(HttpRequest request, absl::Time deadline,
                 Callback done) override {
    {
      absl::MutexLock lock(&mu_);
      if (absl::StartsWith(request.url, from_)) {
        request.url = absl::StrCat(to_, request.url.substr(from_.size()));
      }
    }
    return inner_.Start(std::move(request), deadline, std::move(done));
  }
  void Cancel(uint64_t id) override { inner_.Cancel(id); }

 private:
  HttpTransport& inner_;
  const std::string from_;
  absl::Mutex mu_;
  std::string to_ ABSL_GUARDED_BY(mu_);
};

struct HarnessOptions {
  HarnessOptions() { transport.shards = 2; }

  absl::Duration default_timeout = absl::Seconds(10);
  UpstreamOptions upstream;
  CurlTransportOptions transport;
};

class Harness {
 public:
  explicit Harness(std::string base_url, HarnessOptions options = {})
      : transport_(std::make_unique<CurlTransport>(options.transport)),
        routing_(*transport_, base_url),
        telemetry_({.version = "test", .mode = "connyline", .log_rpcs = false}),
        instrumented_(routing_, telemetry_),
        timers_(std::make_unique<TimerQueue>()),
        upstream_(options.upstream, instrumented_, *timers_),
        gateway_(GatewayOptions{.account_code = "acme",
                                .time_zone = absl::UTCTimeZone(),
                                .upstream = {std::move(base_url), kHarnessToken,
                                             "campaign-gateway/0.1.0"}},
                 upstream_, store_, *timers_),
        service_(gateway_, telemetry_, options.default_timeout) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
    stub_ = campaigns::v1::CampaignService::NewStub(channel_);
  }

  ~Harness() {
    server_->Shutdown();
    // An upstream request may outlive its RPC (a leader create whose caller
    // went away runs on). End such requests while everything their
    // callbacks touch is still alive: pending retries first, then the
    // transport, which cancels what is left. (main.cc waits for them
    // instead; resilience_test's ShutdownTest runs the binary through that.)
    timers_.reset();
    transport_.reset();
  }

  campaigns::v1::CampaignService::Stub& stub() { return *stub_; }
  UpstreamClient& upstream() { return upstream_; }
  Telemetry& telemetry() { return telemetry_; }
  InMemoryIdempotencyStore& store() { return store_; }
  void RouteTo(std::string base_url) { routing_.RouteTo(std::move(base_url)); }

 private:
  std::unique_ptr<CurlTransport> transport_;
  RoutingTransport routing_;
  Telemetry telemetry_;
  InstrumentedTransport instrumented_;
  std::unique_ptr<TimerQueue> timers_;
  UpstreamClient upstream_;
  InMemoryIdempotencyStore store_{{}};
  Gateway gateway_;
  CampaignServiceImpl service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<campaigns::v1::CampaignService::Stub> stub_;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_GATEWAY_HARNESS_H_
