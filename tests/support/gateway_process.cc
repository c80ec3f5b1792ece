#include "tests/support/gateway_process.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace campaign_gateway::testing_util {

GatewayProcess::GatewayProcess(const std::string& binary,
                               std::vector<std::string> flags,
                               std::map<std::string, std::string> env) {
  // The tests' Connyline fakes speak plain HTTP on loopback.
  std::vector<std::string> argv = {binary, "--listen=127.0.0.1:0",
                                   "--admin_listen=127.0.0.1:0",
                                   "--allow_insecure_upstream"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  process_ = std::make_unique<Subprocess>(std::move(argv), std::move(env));
  std::optional<std::string> line = process_->WaitForStdoutLine(
      [](const std::string& l) {
        return l.find("\"msg\":\"listening\"") != std::string::npos;
      },
      absl::Seconds(20));
  if (!line) return;
  nlohmann::json json = nlohmann::json::parse(*line, nullptr, false);
  if (json.is_object() && json.contains("port") && json["port"].is_number()) {
    port_ = json["port"].get<int>();
    admin_port_ = json.value("admin_port", 0);
  }
}

std::string GatewayProcess::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

}  // namespace campaign_gateway::testing_util
