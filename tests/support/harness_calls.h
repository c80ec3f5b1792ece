// Calls through a Harness (tests/support/gateway_harness.h) over the wire,
// bounded so that none can hang a test, and the Connyline behaviour and
// harness options the over-the-wire tests share (resilience_test,
// exactly_once_test, grpc_service_test).
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_HARNESS_CALLS_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_HARNESS_CALLS_H_

#include <cstddef>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tests/support/fake_connyline.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/status_matchers.h"

namespace campaign_gateway::testing_util {

// A call still running this long after its own deadline has hung.
inline constexpr absl::Duration kHangBound = absl::Seconds(20);
// Deadlines meant to pass while Connyline works on the request. Long
// enough that the request surely reaches Connyline first, also on a loaded
// 2-core machine (at 300 ms it sometimes did not).
inline constexpr absl::Duration kShortDeadline = absl::Seconds(1);

// ---- Harness options ----

inline HarnessOptions WithDefaultTimeout(absl::Duration timeout) {
  HarnessOptions options;
  options.default_timeout = timeout;
  return options;
}

inline HarnessOptions WithUpstream(UpstreamOptions upstream) {
  HarnessOptions options;
  options.upstream = std::move(upstream);
  return options;
}

inline HarnessOptions WithMaxInflight(int max_inflight) {
  HarnessOptions options;
  options.upstream.max_inflight = max_inflight;
  return options;
}

inline HarnessOptions WithMaxResponseBytes(size_t bytes) {
  HarnessOptions options;
  options.transport.max_response_bytes = bytes;
  return options;
}

inline HarnessOptions WithCaFile(std::string ca_file) {
  HarnessOptions options;
  options.transport.ca_file = std::move(ca_file);
  return options;
}

// ---- Connyline's behaviour ----

// The documented answer, `delay` late.
FakeConnyline::Handler Delayed(absl::Duration delay);
// `reply` to every request.
FakeConnyline::Handler Always(Reply reply);

// ---- Calls ----

enum class Rpc { kListLists, kCreate };

std::string RpcName(Rpc rpc);
// Readable parameters in test output.
void PrintTo(Rpc rpc, std::ostream* os);

// The documented answer to `rpc` (a create of ValidCreate()), as Connyline
// sends it.
Reply Documented(Rpc rpc);

// One asynchronous call; shared with its callback, so that it outlives
// whichever of the two finishes last.
struct AsyncCall {
  grpc::ClientContext context;
  campaigns::v1::ListListsRequest list_request;
  campaigns::v1::CreateSmsCampaignRequest create_request;
  campaigns::v1::ListListsResponse lists;
  campaigns::v1::CreateSmsCampaignResponse created;
  grpc::Status status;
  absl::Time started;
  absl::Time finished;
  absl::Notification done;

  absl::Duration elapsed() const { return finished - started; }
};

// Starts `rpc` (a create sends `create`). `timeout` is the caller's
// deadline; InfiniteDuration sends none (the gateway's default applies).
std::shared_ptr<AsyncCall> Start(
    campaigns::v1::CampaignService::Stub& stub, Rpc rpc,
    absl::Duration timeout = absl::Seconds(10),
    const campaigns::v1::CreateSmsCampaignRequest& create = ValidCreate());

// Waits for every call until `bound`; a call still running then has hung:
// it fails the test, and is cancelled so the test can go on.
void WaitAll(const std::vector<std::shared_ptr<AsyncCall>>& calls,
             absl::Duration bound);

// Start() and wait: a call still running kHangBound past its deadline
// fails the test.
std::shared_ptr<AsyncCall> Call(
    campaigns::v1::CampaignService::Stub& stub, Rpc rpc,
    absl::Duration timeout = absl::Seconds(10),
    const campaigns::v1::CreateSmsCampaignRequest& create = ValidCreate());

std::shared_ptr<AsyncCall> Create(
    campaigns::v1::CampaignService::Stub& stub,
    const campaigns::v1::CreateSmsCampaignRequest& request,
    absl::Duration timeout = absl::Seconds(10));

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_HARNESS_CALLS_H_
