// Starts the real campaign-gateway binary on an ephemeral loopback port and
// waits until it listens; for end-to-end tests.
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_GATEWAY_PROCESS_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_GATEWAY_PROCESS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/subprocess.h"

namespace campaign_gateway::testing_util {

class GatewayProcess {
 public:
  // Starts `binary --listen 127.0.0.1:0 --admin_listen 127.0.0.1:0
  // --allow_insecure_upstream <flags>` (the fakes are plain HTTP; sandbox
  // mode needs "--sandbox" in `flags`); Started() tells whether it came up
  // within 20 s.
  GatewayProcess(const std::string& binary, std::vector<std::string> flags,
                 std::map<std::string, std::string> env = {});

  bool Started() const { return port_ > 0; }
  int port() const { return port_; }
  int admin_port() const { return admin_port_; }
  std::string address() const;  // "127.0.0.1:PORT"
  Subprocess& process() { return *process_; }

 private:
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
  int admin_port_ = 0;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_GATEWAY_PROCESS_H_
