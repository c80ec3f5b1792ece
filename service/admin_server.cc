#include "service/admin_server.h"

#include <civetweb.h>

#include <mutex>

#include "absl/strings/str_cat.h"

namespace campaign_gateway {
namespace {

// civetweb wants a host:port without brackets for IPv4 and "[::]:port" for
// IPv6; both are what --admin_listen already holds.
std::once_flag init_once;

}  // namespace

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    absl::string_view address, std::function<std::string()> render_metrics) {
  std::call_once(init_once, [] { mg_init_library(0); });
  std::unique_ptr<AdminServer> server(
      new AdminServer(std::move(render_metrics)));
  const std::string ports(address);
  const char* options[] = {
      "listening_ports",    ports.c_str(), "num_threads", "2",
      "request_timeout_ms", "10000",       nullptr};
  mg_callbacks callbacks{};
  // civetweb prints its own errors to stderr unless told otherwise.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  server->context_ = mg_start(&callbacks, nullptr, options);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on --admin_listen '", address, "'"));
  }
  mg_server_port port{};
  if (mg_get_server_ports(server->context_, 1, &port) < 1) {
    return absl::UnavailableError("admin server started without a port");
  }
  server->port_ = port.port;
  mg_set_request_handler(server->context_, "/metrics$", &HandleMetrics,
                         server.get());
  return server;
}

AdminServer::~AdminServer() {
  if (context_ != nullptr) mg_stop(context_);
}

int AdminServer::HandleMetrics(mg_connection* connection, void* self) {
  const mg_request_info* info = mg_get_request_info(connection);
  if (std::string_view(info->request_method) != "GET") {
    mg_send_http_error(connection, 405, "%s", "only GET");
    return 405;
  }
  const std::string body = static_cast<AdminServer*>(self)->render_metrics_();
  mg_send_http_ok(connection, "text/plain; version=0.0.4; charset=utf-8",
                  body.size());
  mg_write(connection, body.data(), body.size());
  return 200;
}

}  // namespace campaign_gateway
