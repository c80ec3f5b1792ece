#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_TEST_ENV_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_TEST_ENV_H_

#include <string>

namespace campaign_gateway::testing_util {

// A directory tests may write to (TEST_TMPDIR, TMPDIR or /tmp).
std::string TempDir();

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_TEST_ENV_H_
