#include "service/authz_policy.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace campaign_gateway {
namespace {

using ::testing::HasSubstr;

constexpr char kCreate[] = "/campaigns.v1.CampaignService/CreateSmsCampaign";
constexpr char kList[] = "/campaigns.v1.CampaignService/ListLists";
constexpr char kScheduler[] =
    "spiffe://cluster.local/ns/campaigns/sa/scheduler";

// The policy of the production overlay, and of the README.
constexpr char kPolicy[] = R"json({
  "name": "campaign-gateway",
  "deny_rules": [
    {"name": "no-retired", "source": {"principals": ["*/sa/retired"]}}
  ],
  "allow_rules": [
    {"name": "scheduler-creates",
     "source": {"principals": ["spiffe://cluster.local/ns/campaigns/sa/scheduler"]},
     "request": {"paths": ["/campaigns.v1.CampaignService/*"]}},
    {"name": "dashboards-read",
     "source": {"principals": ["*.dashboards.svc.cluster.local"]},
     "request": {"paths": ["/campaigns.v1.CampaignService/ListLists"]}},
    {"name": "ops-with-ticket",
     "source": {"principals": ["*"]},
     "request": {"paths": ["*/ListLists"],
                 "headers": [{"key": "X-Ticket", "values": ["OPS-*"]}]}}
  ]
})json";

struct Case {
  std::string label;
  AuthzRequest request;
  bool allowed;
  std::string rule;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.label; }

AuthzRequest Peer(std::vector<std::string> principals, std::string path,
                  bool authenticated = true) {
  return {.authenticated = authenticated,
          .principals = std::move(principals),
          .path = std::move(path)};
}

class EvaluateTest : public ::testing::TestWithParam<Case> {};

TEST_P(EvaluateTest, DecidesAsGrpcWould) {
  absl::StatusOr<AuthzPolicy> policy = AuthzPolicy::Parse(kPolicy);
  ASSERT_TRUE(policy.ok()) << policy.status();
  const AuthzPolicy::Decision decision = policy->Evaluate(GetParam().request);
  EXPECT_EQ(decision.allowed, GetParam().allowed);
  EXPECT_EQ(decision.rule, GetParam().rule);
}

AuthzRequest WithHeaders(
    AuthzRequest request,
    std::vector<std::pair<std::string, std::string>> headers) {
  request.headers = std::move(headers);
  return request;
}

INSTANTIATE_TEST_SUITE_P(
    Table, EvaluateTest,
    ::testing::Values(
        Case{"ExactSpiffeIdAndPrefixPath", Peer({kScheduler}, kCreate), true,
             "scheduler-creates"},
        Case{"SpiffeIdAmongOtherSans",
             Peer({"spiffe://other", kScheduler, "scheduler.local"}, kList),
             true, "scheduler-creates"},
        Case{"ExactMeansExact", Peer({std::string(kScheduler) + "x"}, kCreate),
             false, ""},
        Case{"PathPrefixIsNotAnotherService",
             Peer({kScheduler}, "/grpc.health.v1.Health/Check"), false, ""},
        Case{"SuffixDnsSanMayList",
             Peer({"grafana.dashboards.svc.cluster.local"}, kList), true,
             "dashboards-read"},
        Case{"SuffixDnsSanMayNotCreate",
             Peer({"grafana.dashboards.svc.cluster.local"}, kCreate), false,
             ""},
        Case{"DenyWinsOverAllow",
             Peer({kScheduler, "spiffe://cluster.local/ns/x/sa/retired"},
                  kCreate),
             false, "no-retired"},
        Case{"UnauthenticatedMatchesNoPrincipal",
             Peer({kScheduler}, kCreate, /*authenticated=*/false), false, ""},
        Case{"StarIsAnyAuthenticatedPeerWithTheHeader",
             WithHeaders(Peer({}, kList), {{"x-ticket", "OPS-42"}}), true,
             "ops-with-ticket"},
        Case{"StarNeedsAuthentication",
             WithHeaders(Peer({}, kList, /*authenticated=*/false),
                         {{"x-ticket", "OPS-42"}}),
             false, ""},
        Case{"HeaderValueMustMatch",
             WithHeaders(Peer({"someone"}, kList), {{"x-ticket", "DEV-1"}}),
             false, ""},
        // gRPC joins repeated values with ',' before matching.
        Case{"RepeatedHeaderValuesAreJoined",
             WithHeaders(Peer({"someone"}, kList),
                         {{"x-ticket", "OPS-1"}, {"x-ticket", "DEV-2"}}),
             true, "ops-with-ticket"},
        Case{"NoMatchDenies", Peer({}, kCreate), false, ""}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return info.param.label;
    });

TEST(AuthzPolicyTest, TheProductionOverlaysPolicyAllowsOnlyTheScheduler) {
  std::ifstream in(PRODUCTION_POLICY);
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<AuthzPolicy> policy = AuthzPolicy::Parse(text.str());
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->Evaluate(Peer({kScheduler}, kCreate)).allowed);
  EXPECT_TRUE(policy->Evaluate(Peer({kScheduler}, kList)).allowed);
  EXPECT_FALSE(
      policy->Evaluate(Peer({"spiffe://cluster.local/ns/x/sa/y"}, kCreate))
          .allowed);
  EXPECT_FALSE(policy->Evaluate(Peer({kScheduler}, kCreate, false)).allowed);
}

TEST(AuthzPolicyTest, RulesWithoutSourceOrRequestMatchEveryone) {
  absl::StatusOr<AuthzPolicy> policy =
      AuthzPolicy::Parse(R"({"name": "p", "allow_rules": [{"name": "all"}]})");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->Evaluate(Peer({}, kCreate, false)).allowed);
  policy = AuthzPolicy::Parse(R"({"name": "p", "allow_rules": [
      {"name": "empty", "source": {"principals": []},
       "request": {"paths": [], "headers": []}}]})");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->Evaluate(Peer({}, kCreate, false)).allowed);
}

TEST(AuthzPolicyTest, EmptyAllowRulesDenyEverything) {
  absl::StatusOr<AuthzPolicy> policy =
      AuthzPolicy::Parse(R"({"name": "p", "allow_rules": []})");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_FALSE(policy->Evaluate(Peer({kScheduler}, kCreate)).allowed);
}

TEST(AuthzPolicyTest, ListsTheHeadersItReadsInLowerCase) {
  absl::StatusOr<AuthzPolicy> policy = AuthzPolicy::Parse(kPolicy);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->name(), "campaign-gateway");
  EXPECT_THAT(policy->header_names(), ::testing::ElementsAre("x-ticket"));
}

TEST(PatternTest, WildcardsAsGrpcDefinesThem) {
  using Kind = AuthzPolicy::Pattern::Kind;
  const AuthzPolicy::Pattern any{Kind::kAny, ""};
  const AuthzPolicy::Pattern prefix{Kind::kPrefix, "ab"};
  const AuthzPolicy::Pattern suffix{Kind::kSuffix, "yz"};
  const AuthzPolicy::Pattern exact{Kind::kExact, "a*b"};
  EXPECT_TRUE(any.Matches(""));
  EXPECT_TRUE(prefix.Matches("abc"));
  EXPECT_FALSE(prefix.Matches("xab"));
  EXPECT_TRUE(suffix.Matches("xyz"));
  EXPECT_FALSE(suffix.Matches("yzx"));
  // A '*' inside a value is a literal character.
  EXPECT_TRUE(exact.Matches("a*b"));
  EXPECT_FALSE(exact.Matches("axb"));
}

struct BadPolicy {
  std::string label;
  std::string json;
  std::string error;
};
void PrintTo(const BadPolicy& bad, std::ostream* os) { *os << bad.label; }

class ParseErrorTest : public ::testing::TestWithParam<BadPolicy> {};

TEST_P(ParseErrorTest, SaysWhatAndWhere) {
  absl::StatusOr<AuthzPolicy> policy = AuthzPolicy::Parse(GetParam().json);
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(policy.status().message(), HasSubstr(GetParam().error));
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseErrorTest,
    ::testing::Values(
        BadPolicy{"NotJson", "{", "not valid JSON"},
        BadPolicy{"NotAnObject", "[]", "not an object"},
        BadPolicy{"NoName", R"({"allow_rules": []})",
                  "\"name\" is not present"},
        BadPolicy{"NoAllowRules", R"({"name": "p"})",
                  "\"allow_rules\" is not present"},
        BadPolicy{"MisspeltField",
                  R"({"name": "p", "allow_rules": [], "deny_rule": []})",
                  "unknown field \"deny_rule\""},
        BadPolicy{"RuleWithoutName", R"({"name": "p", "allow_rules": [{}]})",
                  "allow_rules 0: \"name\" is not present"},
        BadPolicy{"PrincipalNotString",
                  R"({"name": "p", "deny_rules": [{"name": "r",
                      "source": {"principals": [1]}}], "allow_rules": []})",
                  "deny_rules 0: \"principals\" 0: is not a string"},
        BadPolicy{"PathsNotArray",
                  R"({"name": "p", "allow_rules": [{"name": "r",
                      "request": {"paths": "/x"}}]})",
                  "\"paths\" is not an array"},
        BadPolicy{"PseudoHeader",
                  R"({"name": "p", "allow_rules": [{"name": "r",
                      "request": {"headers": [{"key": ":path",
                      "values": ["x"]}]}}]})",
                  "unsupported \"key\" \":path\""},
        BadPolicy{"GrpcHeader",
                  R"({"name": "p", "allow_rules": [{"name": "r",
                      "request": {"headers": [{"key": "grpc-timeout",
                      "values": ["x"]}]}}]})",
                  "unsupported \"key\""},
        BadPolicy{"EmptyHeaderValues",
                  R"({"name": "p", "allow_rules": [{"name": "r",
                      "request": {"headers": [{"key": "a",
                      "values": []}]}}]})",
                  "\"values\" list is empty"},
        BadPolicy{"TooLarge",
                  absl::StrCat(R"({"name": ")",
                               std::string(AuthzPolicy::kMaxBytes, 'x'),
                               R"(", "allow_rules": []})"),
                  "larger than"}),
    [](const ::testing::TestParamInfo<BadPolicy>& info) {
      return info.param.label;
    });

}  // namespace
}  // namespace campaign_gateway
