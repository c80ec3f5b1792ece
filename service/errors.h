// The error model shared by every step: an absl::Status whose payloads are
// google.rpc detail messages (ErrorInfo, BadRequest, RetryInfo), keyed by
// their type URL. grpc_service.cc turns it into grpc-status-details-bin.
#ifndef CAMPAIGN_GATEWAY_SERVICE_ERRORS_H_
#define CAMPAIGN_GATEWAY_SERVICE_ERRORS_H_

#include <array>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace campaign_gateway {

// The ErrorInfo domain of every error this service returns.
inline constexpr absl::string_view kErrorDomain = "campaign-gateway.connyline";

// ErrorInfo reasons. Callers branch on these, so they never change meaning.
// Each is the name of a value of campaigns.v1.ErrorReason
// (proto/campaigns/v1/error_reason.proto, which documents it); a new reason
// goes in both, and in kAll below (errors_test checks the three agree).
namespace reason {
inline constexpr absl::string_view kInvalidRequest = "INVALID_REQUEST";
inline constexpr absl::string_view kAccountNotAllowed = "ACCOUNT_NOT_ALLOWED";
inline constexpr absl::string_view kUpstreamRejectedRequest =
    "UPSTREAM_REJECTED_REQUEST";
inline constexpr absl::string_view kUpstreamUnauthenticated =
    "UPSTREAM_UNAUTHENTICATED";
inline constexpr absl::string_view kUpstreamPaymentRequired =
    "UPSTREAM_PAYMENT_REQUIRED";
inline constexpr absl::string_view kUpstreamPermissionDenied =
    "UPSTREAM_PERMISSION_DENIED";
inline constexpr absl::string_view kUpstreamNotFound = "UPSTREAM_NOT_FOUND";
inline constexpr absl::string_view kUpstreamTimeout = "UPSTREAM_TIMEOUT";
inline constexpr absl::string_view kUpstreamConflict = "UPSTREAM_CONFLICT";
inline constexpr absl::string_view kUpstreamRateLimited =
    "UPSTREAM_RATE_LIMITED";
inline constexpr absl::string_view kUpstreamProtocolError =
    "UPSTREAM_PROTOCOL_ERROR";
inline constexpr absl::string_view kUpstreamClientError =
    "UPSTREAM_CLIENT_ERROR";
inline constexpr absl::string_view kUpstreamInternalError =
    "UPSTREAM_INTERNAL_ERROR";
inline constexpr absl::string_view kUpstreamUnavailable =
    "UPSTREAM_UNAVAILABLE";
inline constexpr absl::string_view kUpstreamBadResponse =
    "UPSTREAM_BAD_RESPONSE";
inline constexpr absl::string_view kCancelled = "CANCELLED";
inline constexpr absl::string_view kOverloaded = "OVERLOADED";
inline constexpr absl::string_view kCircuitOpen = "CIRCUIT_OPEN";
inline constexpr absl::string_view kIdempotencyKeyReused =
    "IDEMPOTENCY_KEY_REUSED";
// The gateway's own --upstream_rate_limit (Connyline's 429 and the shared
// cool-down after it are kUpstreamRateLimited).
inline constexpr absl::string_view kRateLimited = "RATE_LIMITED";
// A create with a request_id whose first call's fate is unknown: its leader
// stopped (a pod killed mid-create) without recording Connyline's answer.
inline constexpr absl::string_view kOutcomeUnknown = "OUTCOME_UNKNOWN";
// The shared idempotency store cannot answer; nothing was sent.
inline constexpr absl::string_view kIdempotencyStoreUnavailable =
    "IDEMPOTENCY_STORE_UNAVAILABLE";
// The caller's mTLS principal is not allowed by the authorization policy.
inline constexpr absl::string_view kCallerNotAllowed = "CALLER_NOT_ALLOWED";
// The per-process idempotency store is full of unexpired keys: a new key is
// refused rather than a live one evicted; nothing was sent.
inline constexpr absl::string_view kIdempotencyStoreFull =
    "IDEMPOTENCY_STORE_FULL";

// Every reason above.
inline constexpr std::array kAll = {
    kInvalidRequest,
    kAccountNotAllowed,
    kUpstreamRejectedRequest,
    kUpstreamUnauthenticated,
    kUpstreamPaymentRequired,
    kUpstreamPermissionDenied,
    kUpstreamNotFound,
    kUpstreamTimeout,
    kUpstreamConflict,
    kUpstreamRateLimited,
    kUpstreamProtocolError,
    kUpstreamClientError,
    kUpstreamInternalError,
    kUpstreamUnavailable,
    kUpstreamBadResponse,
    kCancelled,
    kOverloaded,
    kCircuitOpen,
    kIdempotencyKeyReused,
    kRateLimited,
    kOutcomeUnknown,
    kIdempotencyStoreUnavailable,
    kCallerNotAllowed,
    kIdempotencyStoreFull,
};
}  // namespace reason

// ErrorInfo metadata keys.
namespace metadata_key {
inline constexpr absl::string_view kHttpStatus = "http_status";
inline constexpr absl::string_view kUpstreamMessage = "upstream_message";
inline constexpr absl::string_view kTransportError = "transport_error";
// "false" when no byte of the request reached Connyline: safe to retry.
// Every refusal the gateway makes before sending carries it.
inline constexpr absl::string_view kRequestSent = "request_sent";
}  // namespace metadata_key

// Returns a non-OK status carrying one ErrorInfo{reason, kErrorDomain,
// metadata}. `code` must not be kOk.
absl::Status MakeError(absl::StatusCode code, absl::string_view message,
                       absl::string_view reason,
                       const std::map<std::string, std::string>& metadata = {});

// Attach further details to a non-OK status (no-op on OK).
void AttachBadRequest(absl::Status& status,
                      const google::rpc::BadRequest& bad_request);
void AttachRetryInfo(absl::Status& status, absl::Duration retry_delay);
// Adds (or replaces) one ErrorInfo metadata entry (no-op without ErrorInfo).
void SetErrorMetadata(absl::Status& status, absl::string_view key,
                      absl::string_view value);

// Read the details back; nullopt when absent.
std::optional<google::rpc::ErrorInfo> GetErrorInfo(const absl::Status& status);
std::optional<google::rpc::BadRequest> GetBadRequest(
    const absl::Status& status);
std::optional<google::rpc::RetryInfo> GetRetryInfo(const absl::Status& status);

// The canonical google.rpc.Status of `status`: code, message and every
// detail payload as a google.protobuf.Any.
google::rpc::Status ToRpcStatus(const absl::Status& status);
// The inverse: the same code, message and detail payloads.
absl::Status FromRpcStatus(const google::rpc::Status& status);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_ERRORS_H_
