#include "service/config.h"

#include <cstdlib>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
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
    unsetenv("CAMPAIGN_GATEWAY_UPSTREM_URL");
    unsetenv("CAMPAIGN_GATEWAY_REDIS_URL");
    unsetenv("CAMPAIGN_GATEWAY_REDIS_PASSWORD_FILE");
    unsetenv("CAMPAIGN_GATEWAY_UPSTREAM_RATE_LIMIT");
  }
  absl::FlagSaver saver_;  // every test starts from the defaults
};

TEST_F(LoadConfigTest, RefusesToGuessSandboxMode) {
  absl::StatusOr<Config> config = LoadConfig();
  EXPECT_THAT(config.status().message(),
              HasSubstr("--upstream_url is required"));
}

TEST_F(LoadConfigTest, SandboxModeWhenAskedFor) {
  absl::SetFlag(&FLAGS_sandbox, true);
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->sandbox());
  EXPECT_EQ(config->account_code, "sandbox");
  EXPECT_EQ(config->listen, "0.0.0.0:50051");
  EXPECT_EQ(config->time_zone_name, "UTC");
  EXPECT_EQ(config->default_timeout, absl::Seconds(10));
}

TEST_F(LoadConfigTest, SandboxModeIgnoresTheTokenFileWithAWarning) {
  absl::SetFlag(&FLAGS_sandbox, true);
  absl::SetFlag(&FLAGS_token_file, "/nonexistent/token");
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->sandbox());
  ASSERT_EQ(config->warnings.size(), 1u);
  EXPECT_THAT(config->warnings[0], HasSubstr("token file is not read"));
}

TEST_F(LoadConfigTest, SandboxAndAnUpstreamExcludeEachOther) {
  absl::SetFlag(&FLAGS_sandbox, true);
  absl::SetFlag(&FLAGS_upstream_url, "https://connyline.test");
  absl::SetFlag(&FLAGS_account_code, "acme");
  setenv("CONNYLINE_TOKEN", kToken56, 1);
  EXPECT_THAT(LoadConfig().status().message(),
              HasSubstr("--sandbox contradicts"));
}

TEST_F(LoadConfigTest, PlainHttpUpstreamOnlyWhenAllowed) {
  absl::SetFlag(&FLAGS_upstream_url, "http://127.0.0.1:8080");
  absl::SetFlag(&FLAGS_account_code, "acme");
  setenv("CONNYLINE_TOKEN", kToken56, 1);
  EXPECT_THAT(LoadConfig().status().message(),
              HasSubstr("--upstream_url is plain http://"));
  absl::SetFlag(&FLAGS_allow_insecure_upstream, true);
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->upstream_url, "http://127.0.0.1:8080");
}

TEST(EditDistanceTest, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("abc", ""), 3u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("upstream_url", "upstream_url"), 0u);
  EXPECT_EQ(EditDistance("upstrem_url", "upstream_url"), 1u);    // insertion
  EXPECT_EQ(EditDistance("upsstream_url", "upstream_url"), 1u);  // deletion
  EXPECT_EQ(EditDistance("upstreem_url", "upstream_url"), 1u);   // substitution
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
}

TEST(ClosestNameTest, PicksTheNearestCandidate) {
  const std::vector<std::string> flags = {"account_code", "time_zone",
                                          "token_file", "upstream_url"};
  EXPECT_EQ(ClosestName("upstream_ur", flags), "upstream_url");
  EXPECT_EQ(ClosestName("tokenfile", flags), "token_file");
  EXPECT_EQ(ClosestName("timezone", flags), "time_zone");
  EXPECT_EQ(ClosestName("anything", {}), "");
}

TEST(CheckEnvironmentNamesTest, RefusesAnUnknownVariableNamingTheClosestFlag) {
  const std::vector<std::string> flags = {"token_file", "upstream_url"};
  EXPECT_TRUE(
      CheckEnvironmentNames({"PATH", "HOME", "CAMPAIGN_GATEWAY_UPSTREAM_URL",
                             "CAMPAIGN_GATEWAY_TOKEN_FILE"},
                            flags)
          .ok());
  absl::Status status =
      CheckEnvironmentNames({"PATH", "CAMPAIGN_GATEWAY_UPSTREM_URL"}, flags);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "unknown environment variable CAMPAIGN_GATEWAY_UPSTREM_URL: no "
            "flag has that name; did you mean --upstream_url "
            "(CAMPAIGN_GATEWAY_UPSTREAM_URL)?");
  // Kubernetes service links inject such names (enableServiceLinks: false).
  EXPECT_FALSE(
      CheckEnvironmentNames({"CAMPAIGN_GATEWAY_SERVICE_HOST"}, flags).ok());
  // Other prefixes are not ours to judge.
  EXPECT_TRUE(CheckEnvironmentNames({"CAMPAIGN_GATEWAYX_FOO"}, flags).ok());
}

TEST_F(LoadConfigTest, AnUnknownVariableStopsTheEnvironmentBeingApplied) {
  setenv("CAMPAIGN_GATEWAY_UPSTREM_URL", "https://connyline.test", 1);
  absl::Status status = ApplyEnvironmentToFlags();
  EXPECT_THAT(status.message(), HasSubstr("did you mean --upstream_url "
                                          "(CAMPAIGN_GATEWAY_UPSTREAM_URL)?"));
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

// Issue 7's names are the contract: the three variables reach the shared
// store's options, and the password file loses one trailing newline.
TEST_F(LoadConfigTest, RedisSettingsFromTheEnvironment) {
  const std::string path =
      absl::StrCat(testing_util::TempDir(), "/redis-password-", getpid());
  std::ofstream(path) << "s3cret pass\n";
  setenv("CAMPAIGN_GATEWAY_REDIS_URL", "redis://cache.internal:6380/2", 1);
  setenv("CAMPAIGN_GATEWAY_REDIS_PASSWORD_FILE", path.c_str(), 1);
  setenv("CAMPAIGN_GATEWAY_UPSTREAM_RATE_LIMIT", "40", 1);
  ASSERT_TRUE(ApplyEnvironmentToFlags().ok());
  absl::SetFlag(&FLAGS_sandbox, true);
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->redis.has_value());
  EXPECT_EQ(config->redis->host, "cache.internal");
  EXPECT_EQ(config->redis->port, 6380);
  EXPECT_EQ(config->redis->db, 2);
  EXPECT_EQ(config->redis->password, "s3cret pass");
  EXPECT_EQ(config->redis_url, "redis://cache.internal:6380/2");
  EXPECT_EQ(config->upstream_rate_limit, 40);
}

TEST_F(LoadConfigTest, WithoutARedisUrlTheStoreIsPerProcess) {
  absl::SetFlag(&FLAGS_sandbox, true);
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->redis.has_value());
  EXPECT_EQ(config->upstream_rate_limit, 0);
}

TEST_F(LoadConfigTest, RedisRefusalsNameTheFlagButNeverThePassword) {
  absl::SetFlag(&FLAGS_sandbox, true);
  absl::SetFlag(&FLAGS_redis_url, "redis://:hunter2@cache:6379");
  absl::Status status = LoadConfig().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--redis_url"));
  EXPECT_THAT(status.message(), Not(HasSubstr("hunter2")));

  absl::SetFlag(&FLAGS_redis_url, "redis://cache:6379");
  const std::string empty =
      absl::StrCat(testing_util::TempDir(), "/redis-empty-", getpid());
  std::ofstream(empty) << "\n";
  absl::SetFlag(&FLAGS_redis_password_file, empty);
  status = LoadConfig().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--redis_password_file '" + empty));
  EXPECT_THAT(status.message(), HasSubstr("is empty"));
  EXPECT_THAT(status.message(), Not(HasSubstr("--redis_url")));
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

// Each refusal names the one flag at fault (and no other), with its value.
struct BadFlag {
  std::string flag;
  std::string value;
  // Checked only once an upstream (or the sandbox) is configured.
  bool in_sandbox = false;
};
void PrintTo(const BadFlag& bad, std::ostream* os) {
  *os << "--" << bad.flag << "=" << bad.value;
}

class LoadConfigBadFlagTest : public LoadConfigTest,
                              public ::testing::WithParamInterface<BadFlag> {};

TEST_P(LoadConfigBadFlagTest, NamesOnlyThatFlag) {
  const BadFlag& bad = GetParam();
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(bad.flag);
  ASSERT_NE(flag, nullptr);
  std::string error;
  ASSERT_TRUE(flag->ParseFrom(bad.value, &error)) << error;
  if (bad.in_sandbox) absl::SetFlag(&FLAGS_sandbox, true);
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(config.status().message());
  // The flag's whole name ("--redis_url: ..." too), not a longer one's start.
  const std::string named = absl::StrCat("--", bad.flag);
  const size_t at = message.find(named);
  ASSERT_NE(at, std::string::npos) << message;
  const size_t end = at + named.size();
  EXPECT_TRUE(end == message.size() ||
              !(absl::ascii_isalnum(static_cast<unsigned char>(message[end])) ||
                message[end] == '_'))
      << message;
  // Exactly one flag is named.
  EXPECT_EQ(message.find("--"), message.rfind("--")) << message;
}

INSTANTIATE_TEST_SUITE_P(
    EveryCheckedFlag, LoadConfigBadFlagTest,
    ::testing::Values(
        BadFlag{"listen", "50051"}, BadFlag{"admin_listen", "nowhere"},
        BadFlag{"default_timeout", "0s"}, BadFlag{"shutdown_drain", "-1s"},
        BadFlag{"shutdown_timeout", "-1s"}, BadFlag{"max_connection_age", "0s"},
        BadFlag{"max_connection_age_grace", "-1s"},
        BadFlag{"keepalive_min_time", "0s"}, BadFlag{"upstream_shards", "0"},
        BadFlag{"upstream_shards", "65"}, BadFlag{"max_inflight", "0"},
        BadFlag{"upstream_max_response_bytes", "1023"},
        BadFlag{"max_request_bytes", "10"}, BadFlag{"max_header_bytes", "10"},
        BadFlag{"idempotency_ttl", "0s"},
        BadFlag{"idempotency_max_bytes", "-1"},
        BadFlag{"retry_max_attempts", "0"},
        BadFlag{"retry_budget_ratio", "-0.5"},
        BadFlag{"breaker_failure_threshold", "0"},
        BadFlag{"breaker_open_duration", "0s"},
        BadFlag{"upstream_ca_file", "/nonexistent/ca.pem"},
        BadFlag{"upstream_http2", "h3"},
        BadFlag{"upstream_max_connections", "-1"},
        BadFlag{"start_past_tolerance", "-1s"},
        BadFlag{"start_max_ahead", "0s"},
        BadFlag{"upstream_url", "http://connyline.test"},
        BadFlag{"upstream_url", ""},
        BadFlag{"token_file", "/run/secrets/token"},
        BadFlag{"account_code", "acme"},
        BadFlag{"upstream_url", "ftp://connyline.test"},
        BadFlag{"max_connection_idle", "0s"},
        BadFlag{"max_connection_idle", "9999h"},
        BadFlag{"handshake_timeout", "0s"},
        BadFlag{"max_concurrent_streams", "0"},
        BadFlag{"grpc_memory_limit_bytes", "1024"},
        BadFlag{"keyed_upstream_timeout", "0s"}, BadFlag{"admin_threads", "1"},
        BadFlag{"upstream_rate_limit", "-1"},
        BadFlag{"redis_password_file", "/run/secrets/redis/password"},
        BadFlag{"admin_request_timeout", "0s"},
        BadFlag{"health_listen", "nowhere", true},
        BadFlag{"tls_client_ca_file", "/nonexistent/ca.pem", true},
        BadFlag{"authz_policy_file", "/nonexistent/policy.json", true},
        BadFlag{"time_zone", "Nowhere/Special"},
        BadFlag{"redis_url", "redis://cache:99999"}),
    [](const ::testing::TestParamInfo<BadFlag>& info) {
      return absl::StrCat(info.param.flag, "_", info.index);
    });

}  // namespace
}  // namespace campaign_gateway
