#include "tests/support/test_env.h"

#include <cstdlib>
#include <string>

namespace campaign_gateway::testing_util {

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  if (dir != nullptr && *dir != '\0') return dir;
  dir = std::getenv("TMPDIR");
  return (dir != nullptr && *dir != '\0') ? dir : "/tmp";
}

}  // namespace campaign_gateway::testing_util
