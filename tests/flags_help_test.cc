#include "service/flags_help.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(std::string, help_test_name, "x y",
          "A string flag of this file, whose help is long enough to be "
          "wrapped over more than one line of the eighty columns a terminal "
          "shows at least.");
ABSL_FLAG(int, help_test_count, 7, "An int flag of this file.");

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::vector<std::string> kThisFile = {"tests/flags_help_test.cc"};

TEST(FlagsHelpTest, ListsTheFlagsOfTheGivenFilesByName) {
  const std::string help = FlagsHelp("usage: me", kThisFile);
  EXPECT_EQ(help.rfind("usage: me\n", 0), 0u) << help;
  const size_t count = help.find("  --help_test_count (default: 7)\n");
  const size_t name = help.find("  --help_test_name (default: \"x y\")\n");
  ASSERT_NE(count, std::string::npos) << help;
  ASSERT_NE(name, std::string::npos) << help;
  EXPECT_LT(count, name);
  EXPECT_THAT(help, HasSubstr("      An int flag of this file.\n"));
}

TEST(FlagsHelpTest, LeavesOutOtherFilesFlags) {
  // gtest's own flags are defined elsewhere.
  EXPECT_THAT(FlagsHelp("usage", kThisFile), Not(HasSubstr("gtest")));
  EXPECT_THAT(FlagsHelp("usage", {"no/such/file.cc"}),
              Not(HasSubstr("--help_test")));
}

TEST(FlagsHelpTest, WrapsHelpAtEightyColumns) {
  const std::string help = FlagsHelp("usage", kThisFile);
  int help_lines = 0;
  for (absl::string_view line : absl::StrSplit(help, '\n')) {
    EXPECT_LE(line.size(), 80u) << line;
    help_lines += absl::StartsWith(line, "      ");
  }
  EXPECT_GE(help_lines, 3);  // two for the long one, one for the short
}

TEST(AsksForHelpTest, PlainHelpOnlyBeforeTheEndOfFlags) {
  auto asks = [](std::vector<const char*> argv) {
    argv.insert(argv.begin(), "prog");
    return AsksForHelp(static_cast<int>(argv.size()), argv.data());
  };
  EXPECT_TRUE(asks({"--help"}));
  EXPECT_TRUE(asks({"-help"}));
  EXPECT_TRUE(asks({"--listen=:0", "--help"}));
  EXPECT_FALSE(asks({}));
  EXPECT_FALSE(asks({"--helpfull"}));
  EXPECT_FALSE(asks({"--help=listen"}));
  EXPECT_FALSE(asks({"--", "--help"}));
  EXPECT_FALSE(asks({"help"}));
}

}  // namespace
}  // namespace campaign_gateway
