// The HTTP-to-gRPC error table (README "Errors"). Pure; no I/O.
#ifndef CAMPAIGN_GATEWAY_SERVICE_STATUS_MAPPING_H_
#define CAMPAIGN_GATEWAY_SERVICE_STATUS_MAPPING_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/http_types.h"

namespace campaign_gateway {

// The error for an upstream answer that is not a success: a non-2xx status,
// or a 2xx with "success": false (pass 400 as `http_status` then).
// `upstream_message` is Connyline's "message" when it sent one, else a
// sanitised excerpt of the body. `retry_after` comes from Retry-After.
absl::Status MapHttpError(int http_status, absl::string_view upstream_message,
                          std::optional<absl::Duration> retry_after);

// MapHttpError for a whole non-2xx response: extracts the message from a
// JSON body or a short sanitised excerpt of any other body, and Retry-After.
absl::Status MapHttpErrorResponse(const HttpResponse& response, absl::Time now);

// The error for a request that got no complete answer.
absl::Status MapTransportError(const TransportError& error);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_STATUS_MAPPING_H_
