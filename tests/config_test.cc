#include "service/config.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kToken56[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123";

TEST(NormaliseUpstreamUrlTest, AcceptsHttpAndHttpsWithPrefix) {
  EXPECT_EQ(*NormaliseUpstreamUrl("https://connyline.net/"),
            "https://connyline.net");
  EXPECT_EQ(*NormaliseUpstreamUrl("http://127.0.0.1:8080/prefix//"),
            "http://127.0.0.1:8080/prefix");
  EXPECT_EQ(*NormaliseUpstreamUrl("HTTPS://Connyline.net"),
            "HTTPS://Connyline.net");
}

TEST(NormaliseUpstreamUrlTest, RejectsOtherSchemesHostlessAndQueries) {
  for (const char* url :
       {"ftp://x", "connyline.net", "https://", "https:///path",
        "https://x/a b", "https://x/?q=1", "https://x/#f"}) {
    EXPECT_FALSE(NormaliseUpstreamUrl(url).ok()) << url;
  }
}

TEST(CheckAccountCodeTest, AllowsOnlyPathSafeCharacters) {
  EXPECT_TRUE(CheckAccountCode("acme-01_x.y").ok());
  EXPECT_FALSE(CheckAccountCode("").ok());
  EXPECT_FALSE(CheckAccountCode("a/b").ok());
  EXPECT_FALSE(CheckAccountCode("a b").ok());
  EXPECT_FALSE(CheckAccountCode(std::string(65, 'a')).ok());
}

TEST(CheckTokenTest, DropsExactlyOneTrailingNewline) {
  std::vector<std::string> warnings;
  EXPECT_EQ(*CheckToken(absl::StrCat(kToken56, "\n"), "f", &warnings),
            kToken56);
  EXPECT_EQ(*CheckToken(absl::StrCat(kToken56, "\r\n"), "f", &warnings),
            kToken56);
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_FALSE(CheckToken(absl::StrCat(kToken56, "\n\n"), "f", &warnings).ok());
}

TEST(CheckTokenTest, RejectsWhitespaceAndControlCharactersWithoutEchoingIt) {
  for (const std::string& bad :
       {std::string("SECRET token"), std::string("SECRET\ttoken"),
        std::string(" SECRET"), std::string("SECRET\x7f"),
        std::string("SECRET\x01"), std::string("SE\nCRET")}) {
    absl::StatusOr<std::string> token = CheckToken(bad, "CONNYLINE_TOKEN", {});
    ASSERT_FALSE(token.ok());
    EXPECT_THAT(token.status().message(), HasSubstr("CONNYLINE_TOKEN"));
    EXPECT_THAT(token.status().message(), Not(HasSubstr("SECRET")));
  }
  EXPECT_FALSE(CheckToken("", "f", nullptr).ok());
  EXPECT_FALSE(CheckToken("\n", "f", nullptr).ok());
}

TEST(CheckTokenTest, OtherLengthsOnlyWarn) {
  std::vector<std::string> warnings;
  EXPECT_EQ(*CheckToken("SECRETshort", "f", &warnings), "SECRETshort");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("11 characters"));
  EXPECT_THAT(warnings[0], Not(HasSubstr("SECRET")));
}

TEST(CheckListenAddressTest, WantsHostAndPort) {
  EXPECT_TRUE(CheckListenAddress("0.0.0.0:50051", "listen").ok());
  EXPECT_TRUE(CheckListenAddress("[::]:0", "listen").ok());
  EXPECT_FALSE(CheckListenAddress("50051", "listen").ok());
  EXPECT_FALSE(CheckListenAddress(":50051", "listen").ok());
  EXPECT_FALSE(CheckListenAddress("host:99999", "listen").ok());
  EXPECT_FALSE(CheckListenAddress("host:http", "listen").ok());
}

class LoadConfigTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("CONNYLINE_TOKEN");
    unsetenv("CAMPAIGN_GATEWAY_DEFAULT_TIMEOUT");
  }
  absl::FlagSaver saver_;  // every test starts from the defaults
};

TEST_F(LoadConfigTest, DefaultsToSandboxMode) {
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->sandbox());
  EXPECT_EQ(config->account_code, "sandbox");
  EXPECT_EQ(config->listen, "0.0.0.0:50051");
  EXPECT_EQ(config->time_zone_name, "UTC");
  EXPECT_EQ(config->default_timeout, absl::Seconds(10));
}

TEST_F(LoadConfigTest, ReadsTheTokenFileOverTheEnvironment) {
  const std::string path =
      absl::StrCat(testing_util::TempDir(), "/token-", getpid());
  std::ofstream(path) << kToken56 << "\n";
  setenv("CONNYLINE_TOKEN", "from-environment", 1);
  absl::SetFlag(&FLAGS_upstream_url, "https://connyline.test/");
  absl::SetFlag(&FLAGS_account_code, "acme");
  absl::SetFlag(&FLAGS_token_file, path);
  absl::SetFlag(&FLAGS_time_zone, "Europe/Athens");
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->token, kToken56);
  EXPECT_EQ(config->upstream_url, "https://connyline.test");
  EXPECT_EQ(config->time_zone.name(), "Europe/Athens");
  EXPECT_THAT(config->warnings, IsEmpty());
}

TEST_F(LoadConfigTest, EnvironmentSetsFlags) {
  setenv("CAMPAIGN_GATEWAY_DEFAULT_TIMEOUT", "3s", 1);
  ASSERT_TRUE(ApplyEnvironmentToFlags().ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_default_timeout), absl::Seconds(3));
  setenv("CAMPAIGN_GATEWAY_DEFAULT_TIMEOUT", "soon", 1);
  absl::Status status = ApplyEnvironmentToFlags();
  EXPECT_THAT(status.message(), HasSubstr("CAMPAIGN_GATEWAY_DEFAULT_TIMEOUT"));
}

TEST_F(LoadConfigTest, RefusesAnUpstreamWithoutToken) {
  absl::SetFlag(&FLAGS_upstream_url, "https://connyline.test");
  absl::SetFlag(&FLAGS_account_code, "acme");
  EXPECT_THAT(LoadConfig().status().message(), HasSubstr("no API token"));
}

TEST_F(LoadConfigTest, RefusesUnknownTimeZonesAndBadDurations) {
  absl::SetFlag(&FLAGS_time_zone, "Nowhere/Special");
  EXPECT_THAT(LoadConfig().status().message(),
              HasSubstr("unknown --time_zone 'Nowhere/Special'"));
  absl::SetFlag(&FLAGS_time_zone, "UTC");
  absl::SetFlag(&FLAGS_default_timeout, absl::ZeroDuration());
  EXPECT_THAT(LoadConfig().status().message(), HasSubstr("--default_timeout"));
}

}  // namespace
}  // namespace campaign_gateway
