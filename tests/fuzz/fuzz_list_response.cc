// Fuzzes ParseListListsResponse with whatever Connyline (or a proxy in
// front of it) might answer to lists/get-all. Input: see ParseHttpInput.
#include <cstddef>
#include <cstdint>

#include "campaigns/v1/campaign_service.pb.h"
#include "service/rest_response.h"
#include "tests/fuzz/fuzz_common.h"

namespace campaign_gateway::fuzz {
namespace {

void Run(const HttpResponse& response) {
  const absl::StatusOr<campaigns::v1::ListListsResponse> result =
      ParseListListsResponse(response);
  if (result.ok()) {
    const std::string context = result->ShortDebugString();
    FUZZ_CHECK(Is2xx(response.status), context);
    for (const campaigns::v1::ContactList& list : result->lists()) {
      FUZZ_CHECK(list.list_id() > 0, context);
    }
    CheckProtoRoundTrip(*result);
    return;
  }
  CheckGatewayError(result.status(), response.status);
  if (Is2xx(response.status)) {
    // An unreadable body is INTERNAL; "success": false is the 400 row.
    const absl::StatusCode code = result.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInternal ||
                   code == absl::StatusCode::kInvalidArgument ||
                   code == absl::StatusCode::kUnauthenticated,
               result.status().ToString());
  }
}

}  // namespace
}  // namespace campaign_gateway::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  campaign_gateway::fuzz::Run(
      campaign_gateway::fuzz::ParseHttpInput(data, size));
  return 0;
}
