// A unary call whose request message is given as raw bytes, for requests no
// generated stub can send (unparseable protobuf).
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_RAW_CALL_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_RAW_CALL_H_

#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"

namespace campaign_gateway::testing_util {

// Calls `method` ("/package.Service/Method") with `bytes` as the request
// message, a 10 s deadline, and returns the status. Fails the test if no
// answer comes at all within 15 s.
grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel,
                          const std::string& method, const std::string& bytes);

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_RAW_CALL_H_
