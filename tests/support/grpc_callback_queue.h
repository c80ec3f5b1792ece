// gRPC 1.51 serves the callback API of every channel and server in a process
// from one global completion queue with its own threads, counted by its
// users: when the last one goes (as at the end of each test) it is shut down
// and deleted, and the next test builds a new one. That teardown races inside
// gRPC: rarely, a double free in grpc_cq_internal_unref on one of its
// threads, or "assertion failed: prior > 0" (both seen in shuffled runs under
// load). A channel that has made one callback call holds a reference for the
// whole run, so the queue is built once and torn down when the run ends.
//
// Use in a test file:
//   const ::testing::Environment* const kKeepQueue =
//       ::testing::AddGlobalTestEnvironment(NewKeepGrpcCallbackQueue());
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_GRPC_CALLBACK_QUEUE_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_GRPC_CALLBACK_QUEUE_H_

#include "gtest/gtest.h"

namespace campaign_gateway::testing_util {

::testing::Environment* NewKeepGrpcCallbackQueue();

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_GRPC_CALLBACK_QUEUE_H_
