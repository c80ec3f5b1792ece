// The admin HTTP server (--admin_listen): GET /metrics in Prometheus' text
// format. Separate from the gRPC port so it can be scraped and firewalled on
// its own. Built on civetweb, as Debian ships it.
#ifndef CAMPAIGN_GATEWAY_SERVICE_ADMIN_SERVER_H_
#define CAMPAIGN_GATEWAY_SERVICE_ADMIN_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct mg_context;
struct mg_connection;

namespace campaign_gateway {

class AdminServer {
 public:
  // Serves `render_metrics()` at /metrics on `address` (host:port; port 0
  // picks a free one).
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(
      absl::string_view address, std::function<std::string()> render_metrics);
  ~AdminServer();

  int port() const { return port_; }

 private:
  AdminServer(std::function<std::string()> render_metrics)
      : render_metrics_(std::move(render_metrics)) {}
  static int HandleMetrics(mg_connection* connection, void* self);

  std::function<std::string()> render_metrics_;
  mg_context* context_ = nullptr;
  int port_ = 0;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_ADMIN_SERVER_H_
