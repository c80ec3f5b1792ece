// The HTTP boundary: what the translation layer hands to a transport and
// what it gets back. No libcurl and no gRPC here, so translation is testable
// without either.
#ifndef CAMPAIGN_GATEWAY_SERVICE_HTTP_TYPES_H_
#define CAMPAIGN_GATEWAY_SERVICE_HTTP_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace campaign_gateway {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // "GET" or "POST"
  std::string url;     // absolute, e.g. https://connyline.net/api/v1/x/...
  HttpHeaders headers;
  std::string body;  // sent as is; empty for GET
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;  // names lower-cased, values trimmed
  std::string body;

  // The first header named `name` (lower-case), if any.
  std::optional<std::string> Header(absl::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return value;
    }
    return std::nullopt;
  }
};

// A request that got no complete HTTP answer.
struct TransportError {
  enum class Kind {
    kConnectFailed,     // refused or unreachable; nothing was sent
    kNameResolution,    // DNS failure; nothing was sent
    kTls,               // handshake or certificate failure
    kTimeout,           // the deadline passed before a complete answer
    kConnectionLost,    // reset or closed mid-exchange
    kResponseTooLarge,  // the answer exceeded the configured cap
    kCancelled,         // the caller cancelled
    kOther,
  };
  Kind kind = Kind::kOther;
  std::string detail;  // human-readable cause, never holds secrets
  // False only when the transport knows no byte of the request left this
  // process; a create may be retried only then.
  bool request_may_have_been_sent = true;
};

using HttpResult = std::variant<HttpResponse, TransportError>;

// The stable lower_snake name of a failure kind, for error metadata, metric
// labels and logs.
inline absl::string_view TransportErrorName(TransportError::Kind kind) {
  switch (kind) {
    case TransportError::Kind::kConnectFailed:
      return "connect_failed";
    case TransportError::Kind::kNameResolution:
      return "name_resolution";
    case TransportError::Kind::kTls:
      return "tls";
    case TransportError::Kind::kTimeout:
      return "timeout";
    case TransportError::Kind::kConnectionLost:
      return "connection_lost";
    case TransportError::Kind::kResponseTooLarge:
      return "response_too_large";
    case TransportError::Kind::kCancelled:
      return "cancelled";
    case TransportError::Kind::kOther:
      break;
  }
  return "other";
}

// Sends HTTP requests asynchronously. Implementations: CurlTransport (real
// network) and SandboxTransport (in-process Connyline simulation).
class HttpTransport {
 public:
  using Callback = absl::AnyInvocable<void(HttpResult) &&>;

  virtual ~HttpTransport() = default;

  // Starts `request`; `done` runs exactly once, on a transport thread and
  // never inside Start(). After `deadline` the result is a kTimeout error.
  // Returns an id for Cancel().
  virtual uint64_t Start(HttpRequest request, absl::Time deadline,
                         Callback done) = 0;

  // Aborts request `id`; its callback gets kCancelled unless it already
  // completed. Unknown or finished ids are ignored. Thread-safe.
  virtual void Cancel(uint64_t id) = 0;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_HTTP_TYPES_H_
