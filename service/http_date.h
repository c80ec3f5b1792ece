// Retry-After and the HTTP-date it may carry (RFC 9110 10.2.3, 5.6.7).
// Pure; no I/O.
#ifndef CAMPAIGN_GATEWAY_SERVICE_HTTP_DATE_H_
#define CAMPAIGN_GATEWAY_SERVICE_HTTP_DATE_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace campaign_gateway {

// Retry-After as delta-seconds or an HTTP-date relative to `now`.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time now);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_HTTP_DATE_H_
