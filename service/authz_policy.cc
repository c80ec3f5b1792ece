#include "service/authz_policy.h"

#include <algorithm>
#include <initializer_list>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace campaign_gateway {
namespace {

using Json = nlohmann::json;
using Pattern = AuthzPolicy::Pattern;
using Rule = AuthzPolicy::Rule;

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, what));
}

// Refuses any member not in `known`: a misspelt "alow_rules" must not
// silently turn into an empty policy.
absl::Status OnlyKnownFields(const Json& object, absl::string_view where,
                             std::initializer_list<absl::string_view> known) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return Invalid(where, absl::StrCat("unknown field \"", key, "\""));
    }
  }
  return absl::OkStatus();
}

// gRPC's GetMatcherType: "*" alone, "*suffix", "prefix*", else exact.
Pattern ToPattern(const std::string& value) {
  if (value == "*") return {Pattern::Kind::kAny, ""};
  if (absl::StartsWith(value, "*")) {
    return {Pattern::Kind::kSuffix, value.substr(1)};
  }
  if (absl::EndsWith(value, "*")) {
    return {Pattern::Kind::kPrefix, value.substr(0, value.size() - 1)};
  }
  return {Pattern::Kind::kExact, value};
}

absl::StatusOr<std::vector<Pattern>> ParseStrings(const Json& json,
                                                  absl::string_view field) {
  if (!json.is_array()) {
    return Invalid("", absl::StrCat("\"", field, "\" is not an array"));
  }
  std::vector<Pattern> patterns;
  for (size_t i = 0; i < json.size(); ++i) {
    if (!json[i].is_string()) {
      return Invalid("",
                     absl::StrCat("\"", field, "\" ", i, ": is not a string"));
    }
    patterns.push_back(ToPattern(json[i].get<std::string>()));
  }
  return patterns;
}

absl::StatusOr<AuthzPolicy::HeaderRule> ParseHeader(const Json& json) {
  if (!json.is_object()) return Invalid("", "is not an object");
  if (absl::Status s = OnlyKnownFields(json, "", {"key", "values"}); !s.ok()) {
    return s;
  }
  auto key = json.find("key");
  if (key == json.end()) return Invalid("", "\"key\" is not present");
  if (!key->is_string()) return Invalid("", "\"key\" is not a string");
  // gRPC metadata keys are lower case; gRPC refuses pseudo-headers, its own
  // grpc-* headers and host, which callers do not control.
  const std::string name = absl::AsciiStrToLower(key->get<std::string>());
  if (name.empty() || absl::StartsWith(name, ":") ||
      absl::StartsWith(name, "grpc-") || name == "host") {
    return Invalid("", absl::StrCat("unsupported \"key\" \"", name, "\""));
  }
  auto values = json.find("values");
  if (values == json.end()) return Invalid("", "\"values\" is not present");
  absl::StatusOr<std::vector<Pattern>> patterns =
      ParseStrings(*values, "values");
  if (!patterns.ok()) return patterns.status();
  if (patterns->empty()) return Invalid("", "\"values\" list is empty");
  return AuthzPolicy::HeaderRule{name, *std::move(patterns)};
}

absl::Status ParseRequest(const Json& json, Rule& rule) {
  if (!json.is_object()) return Invalid("", "\"request\" is not an object");
  if (absl::Status s =
          OnlyKnownFields(json, "\"request\": ", {"paths", "headers"});
      !s.ok()) {
    return s;
  }
  if (auto paths = json.find("paths"); paths != json.end()) {
    absl::StatusOr<std::vector<Pattern>> patterns =
        ParseStrings(*paths, "paths");
    if (!patterns.ok()) return patterns.status();
    rule.paths = *std::move(patterns);
  }
  if (auto headers = json.find("headers"); headers != json.end()) {
    if (!headers->is_array()) return Invalid("", "\"headers\" is not an array");
    for (size_t i = 0; i < headers->size(); ++i) {
      absl::StatusOr<AuthzPolicy::HeaderRule> header =
          ParseHeader((*headers)[i]);
      if (!header.ok()) {
        return Invalid(absl::StrCat("\"headers\" ", i, ": "),
                       header.status().message());
      }
      rule.headers.push_back(*std::move(header));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Rule> ParseRule(const Json& json) {
  if (!json.is_object()) return Invalid("", "is not an object");
  if (absl::Status s = OnlyKnownFields(json, "", {"name", "source", "request"});
      !s.ok()) {
    return s;
  }
  Rule rule;
  auto name = json.find("name");
  if (name == json.end()) return Invalid("", "\"name\" is not present");
  if (!name->is_string()) return Invalid("", "\"name\" is not a string");
  rule.name = name->get<std::string>();
  if (auto source = json.find("source"); source != json.end()) {
    if (!source->is_object()) return Invalid("", "\"source\" is not an object");
    if (absl::Status s =
            OnlyKnownFields(*source, "\"source\": ", {"principals"});
        !s.ok()) {
      return s;
    }
    if (auto principals = source->find("principals");
        principals != source->end()) {
      absl::StatusOr<std::vector<Pattern>> patterns =
          ParseStrings(*principals, "principals");
      if (!patterns.ok()) return patterns.status();
      rule.principals = *std::move(patterns);
    }
  }
  if (auto request = json.find("request"); request != json.end()) {
    if (absl::Status s = ParseRequest(*request, rule); !s.ok()) return s;
  }
  return rule;
}

absl::StatusOr<std::vector<Rule>> ParseRules(const Json& json,
                                             absl::string_view field) {
  if (!json.is_array()) {
    return Invalid("", absl::StrCat("\"", field, "\" is not an array"));
  }
  std::vector<Rule> rules;
  for (size_t i = 0; i < json.size(); ++i) {
    absl::StatusOr<Rule> rule = ParseRule(json[i]);
    if (!rule.ok()) {
      return Invalid(absl::StrCat(field, " ", i, ": "),
                     rule.status().message());
    }
    rules.push_back(*std::move(rule));
  }
  return rules;
}

bool AnyMatches(const std::vector<Pattern>& patterns, absl::string_view s) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [s](const Pattern& p) { return p.Matches(s); });
}

bool PrincipalMatches(const Rule& rule, const AuthzRequest& request) {
  if (rule.principals.empty()) return true;
  // Only a verified certificate names a principal, even for "*".
  if (!request.authenticated) return false;
  for (const Pattern& pattern : rule.principals) {
    if (pattern.kind == Pattern::Kind::kAny) return true;
    for (const std::string& principal : request.principals) {
      if (pattern.Matches(principal)) return true;
    }
  }
  return false;
}

// gRPC joins repeated metadata values with ',' before matching; an absent
// header matches nothing.
bool HeaderMatches(const AuthzPolicy::HeaderRule& header,
                   const AuthzRequest& request) {
  std::vector<absl::string_view> values;
  for (const auto& [key, value] : request.headers) {
    if (key == header.key) values.push_back(value);
  }
  if (values.empty()) return false;
  return AnyMatches(header.values, absl::StrJoin(values, ","));
}

bool RuleMatches(const Rule& rule, const AuthzRequest& request) {
  if (!PrincipalMatches(rule, request)) return false;
  if (!rule.paths.empty() && !AnyMatches(rule.paths, request.path)) {
    return false;
  }
  return std::all_of(rule.headers.begin(), rule.headers.end(),
                     [&request](const AuthzPolicy::HeaderRule& header) {
                       return HeaderMatches(header, request);
                     });
}

const Rule* FirstMatch(const std::vector<Rule>& rules,
                       const AuthzRequest& request) {
  for (const Rule& rule : rules) {
    if (RuleMatches(rule, request)) return &rule;
  }
  return nullptr;
}

}  // namespace

bool AuthzPolicy::Pattern::Matches(absl::string_view s) const {
  switch (kind) {
    case Kind::kAny:
      return true;
    case Kind::kExact:
      return s == value;
    case Kind::kPrefix:
      return absl::StartsWith(s, value);
    case Kind::kSuffix:
      return absl::EndsWith(s, value);
  }
  return false;
}

absl::StatusOr<AuthzPolicy> AuthzPolicy::Parse(absl::string_view text) {
  if (text.size() > kMaxBytes) {
    return Invalid(
        "", absl::StrCat("the policy is larger than ", kMaxBytes, " bytes"));
  }
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Invalid("", "the policy is not valid JSON");
  if (!json.is_object()) return Invalid("", "the policy is not an object");
  if (absl::Status s =
          OnlyKnownFields(json, "", {"name", "deny_rules", "allow_rules"});
      !s.ok()) {
    return s;
  }
  AuthzPolicy policy;
  auto name = json.find("name");
  if (name == json.end()) return Invalid("", "\"name\" is not present");
  if (!name->is_string()) return Invalid("", "\"name\" is not a string");
  policy.name_ = name->get<std::string>();
  if (auto deny = json.find("deny_rules"); deny != json.end()) {
    absl::StatusOr<std::vector<Rule>> rules = ParseRules(*deny, "deny_rules");
    if (!rules.ok()) return rules.status();
    policy.deny_rules_ = *std::move(rules);
  }
  auto allow = json.find("allow_rules");
  if (allow == json.end()) return Invalid("", "\"allow_rules\" is not present");
  absl::StatusOr<std::vector<Rule>> rules = ParseRules(*allow, "allow_rules");
  if (!rules.ok()) return rules.status();
  policy.allow_rules_ = *std::move(rules);
  for (const auto* list : {&policy.deny_rules_, &policy.allow_rules_}) {
    for (const Rule& rule : *list) {
      for (const HeaderRule& header : rule.headers) {
        auto& names = policy.header_names_;
        if (std::find(names.begin(), names.end(), header.key) == names.end()) {
          names.push_back(header.key);
        }
      }
    }
  }
  return policy;
}

AuthzPolicy::Decision AuthzPolicy::Evaluate(const AuthzRequest& request) const {
  if (const Rule* rule = FirstMatch(deny_rules_, request)) {
    return {.allowed = false, .rule = rule->name};
  }
  if (const Rule* rule = FirstMatch(allow_rules_, request)) {
    return {.allowed = true, .rule = rule->name};
  }
  return {};
}

}  // namespace campaign_gateway
