// Step 3 of the flow: translate a validated call into Connyline's documented
// REST request. Pure; no I/O.
#ifndef CAMPAIGN_GATEWAY_SERVICE_REST_REQUEST_H_
#define CAMPAIGN_GATEWAY_SERVICE_REST_REQUEST_H_

#include <string>

#include "absl/strings/string_view.h"
#include "service/http_types.h"
#include "service/validate.h"

namespace campaign_gateway {

// Where and how to reach Connyline.
struct UpstreamTarget {
  std::string base_url;    // scheme://host[:port][/prefix], no trailing '/'
  std::string token;       // the bearer token; never logged
  std::string user_agent;  // e.g. "campaign-gateway/0.1.0"
};

// GET {base}/api/v1/{account}/lists/get-all/
HttpRequest BuildListListsRequest(const UpstreamTarget& target,
                                  absl::string_view account_code);

// POST {base}/api/v1/{account}/campaigns/sms/create with a JSON body of
// exactly the six documented fields (list_id a JSON integer).
HttpRequest BuildCreateCampaignRequest(const UpstreamTarget& target,
                                       absl::string_view account_code,
                                       const CampaignDraft& draft);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_REST_REQUEST_H_
