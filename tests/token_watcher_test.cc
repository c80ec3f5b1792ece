#include "service/token_watcher.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/secret_volume.h"
#include "tests/support/test_env.h"

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Made-up tokens of the documented length; not real credentials.
constexpr char kTokenA[] =
    "tokenAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
constexpr char kTokenB[] =
    "tokenBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

TEST(RotatedTokenTest, TakesANewValidToken) {
  auto rotated = RotatedToken(absl::StrCat(kTokenB, "\n"), kTokenA, "/t");
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(*rotated, kTokenB);
}

TEST(RotatedTokenTest, TheSameTokenIsNoChange) {
  auto rotated = RotatedToken(absl::StrCat(kTokenA, "\r\n"), kTokenA, "/t");
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(*rotated, std::nullopt);
  // Even one of another length, which only warned at startup.
  auto short_one = RotatedToken("SECRETshort", "SECRETshort", "/t");
  ASSERT_TRUE(short_one.ok());
  EXPECT_EQ(*short_one, std::nullopt);
}

TEST(RotatedTokenTest, RefusesInvalidTokensWithoutQuotingThem) {
  for (const std::string& bad :
       {std::string("SECRET with space 00000000000000000000000000000000000"),
        std::string("SECRETshort"), std::string(""),
        absl::StrCat("SECRET", kTokenB)}) {
    auto rotated = RotatedToken(bad, kTokenA, "/run/token");
    ASSERT_FALSE(rotated.ok()) << bad;
    EXPECT_THAT(rotated.status().message(), HasSubstr("/run/token"));
    EXPECT_THAT(rotated.status().message(), Not(HasSubstr("SECRET")));
  }
}

using testing_util::SecretVolume;

// Polls `watcher` until it holds `want` or 5 s pass.
bool WaitForToken(const TokenWatcher& watcher, const std::string& want) {
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (absl::Now() < until) {
    if (watcher.token() == want) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

TEST(TokenWatcherTest, FollowsAKubernetesSymlinkSwap) {
  SecretVolume volume;
  ASSERT_TRUE(volume.Publish(absl::StrCat(kTokenA, "\n")));
  TokenWatcher watcher(
      {.path = volume.path(), .interval = absl::Milliseconds(20)}, kTokenA);
  EXPECT_EQ(watcher.token(), kTokenA);
  ASSERT_TRUE(volume.Publish(absl::StrCat(kTokenB, "\n")));
  EXPECT_TRUE(WaitForToken(watcher, kTokenB));
}

TEST(TokenWatcherTest, FollowsAReplacedFileAndKeepsTheTokenOnABadOne) {
  const std::string path =
      absl::StrCat(testing_util::TempDir(), "/token-", getpid(), "-",
                   absl::ToUnixNanos(absl::Now()));
  std::ofstream(path) << kTokenA;
  TokenWatcher watcher({.path = path, .interval = absl::Milliseconds(20)},
                       kTokenA);
  std::ofstream(path) << "not a token";
  absl::SleepFor(absl::Milliseconds(200));  // ten polls
  EXPECT_EQ(watcher.token(), kTokenA);
  std::filesystem::remove(path);  // gone for a while: still the old token
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(watcher.token(), kTokenA);
  const std::string next = path + ".next";
  std::ofstream(next) << kTokenB << "\n";
  std::filesystem::rename(next, path);
  EXPECT_TRUE(WaitForToken(watcher, kTokenB));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace campaign_gateway
