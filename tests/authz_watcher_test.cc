#include "service/authz_watcher.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kPoll = absl::Milliseconds(20);

std::string Policy(const std::string& name) {
  return absl::StrCat(R"({"name": ")", name, R"(", "allow_rules": []})");
}

class AuthzWatcherTest : public ::testing::Test {
 protected:
  ~AuthzWatcherTest() override {
    std::remove(path_.c_str());
    std::remove((path_ + ".tmp").c_str());
  }
  // Replaces the file through a rename, as an atomic update does.
  void Write(const std::string& content) {
    std::ofstream(path_ + ".tmp", std::ios::trunc) << content;
    ASSERT_EQ(std::rename((path_ + ".tmp").c_str(), path_.c_str()), 0);
  }
  // The policy's name once it is `name`, or what it still is after 5 s.
  std::string WaitForName(const AuthzWatcher& watcher,
                          const std::string& name) {
    const absl::Time until = absl::Now() + absl::Seconds(5);
    while (watcher.policy()->name() != name && absl::Now() < until) {
      absl::SleepFor(kPoll);
    }
    return watcher.policy()->name();
  }

  const std::string path_ =
      absl::StrCat(testing_util::TempDir(), "/authz_watcher_test_", getpid());
};

TEST_F(AuthzWatcherTest, AMissingOrBrokenFileIsAStartupError) {
  absl::StatusOr<std::unique_ptr<AuthzWatcher>> watcher =
      AuthzWatcher::Start(path_, kPoll);
  ASSERT_FALSE(watcher.ok());
  EXPECT_THAT(
      watcher.status().message(),
      HasSubstr(absl::StrCat("cannot read --authz_policy_file '", path_, "'")));
  Write("{");
  watcher = AuthzWatcher::Start(path_, kPoll);
  ASSERT_FALSE(watcher.ok());
  EXPECT_THAT(watcher.status().message(), HasSubstr("not valid JSON"));
}

TEST_F(AuthzWatcherTest, ReloadsAChangedFileAndKeepsTheLastGoodOne) {
  Write(Policy("first"));
  absl::StatusOr<std::unique_ptr<AuthzWatcher>> watcher =
      AuthzWatcher::Start(path_, kPoll);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  EXPECT_EQ((*watcher)->policy()->name(), "first");

  Write(Policy("second"));
  EXPECT_EQ(WaitForName(**watcher, "second"), "second");

  // A broken file changes nothing; the next good one applies.
  Write("{\"name\": \"broken\"");
  absl::SleepFor(10 * kPoll);
  EXPECT_EQ((*watcher)->policy()->name(), "second");
  Write(Policy("third"));
  EXPECT_EQ(WaitForName(**watcher, "third"), "third");

  // A file that disappears keeps the last policy too.
  std::remove(path_.c_str());
  absl::SleepFor(10 * kPoll);
  EXPECT_EQ((*watcher)->policy()->name(), "third");
}

}  // namespace
}  // namespace campaign_gateway
