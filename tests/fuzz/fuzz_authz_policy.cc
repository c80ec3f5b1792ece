// Fuzzes AuthzPolicy::Parse (the --authz_policy_file an operator, or whoever
// can write its ConfigMap, provides) and Evaluate. Input: the policy JSON,
// optionally followed by a NUL byte and lines describing one call: its path,
// then its principals; a first line "-" marks it unauthenticated.
// Invariants: Parse fails only with INVALID_ARGUMENT and a message; a parsed
// policy decides every call as an oracle written here from gRPC's rules
// (deny first, then allow; "*" any, "x*" prefix, "*x" suffix) decides it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "service/authz_policy.h"
#include "tests/fuzz/fuzz_common.h"

namespace campaign_gateway::fuzz {
namespace {

// The pattern's original text, as the policy spelt it.
std::string Spelling(const AuthzPolicy::Pattern& p) {
  using Kind = AuthzPolicy::Pattern::Kind;
  switch (p.kind) {
    case Kind::kAny:
      return "*";
    case Kind::kPrefix:
      return p.value + "*";
    case Kind::kSuffix:
      return "*" + p.value;
    case Kind::kExact:
      return p.value;
  }
  return "";
}

// gRPC's GetMatcherType applied to the spelling, independently of
// authz_policy.cc.
bool OracleMatch(const AuthzPolicy::Pattern& p, const std::string& s) {
  const std::string text = Spelling(p);
  if (text == "*") return true;
  if (!text.empty() && text.front() == '*') {
    const std::string suffix = text.substr(1);
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  if (!text.empty() && text.back() == '*') {
    const std::string prefix = text.substr(0, text.size() - 1);
    return s.compare(0, prefix.size(), prefix) == 0;
  }
  return s == text;
}

bool OracleRule(const AuthzPolicy::Rule& rule, const AuthzRequest& request) {
  bool principal = rule.principals.empty();
  for (const auto& p : rule.principals) {
    if (!request.authenticated) break;
    if (p.kind == AuthzPolicy::Pattern::Kind::kAny) principal = true;
    for (const std::string& name : request.principals) {
      principal = principal || OracleMatch(p, name);
    }
  }
  bool path = rule.paths.empty();
  for (const auto& p : rule.paths) path = path || OracleMatch(p, request.path);
  // The calls built here carry no metadata, so a header rule never matches.
  return principal && path && rule.headers.empty();
}

void Run(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string policy_text = input.substr(0, nul);
  absl::StatusOr<AuthzPolicy> policy = AuthzPolicy::Parse(policy_text);
  if (!policy.ok()) {
    FUZZ_CHECK(policy.status().code() == absl::StatusCode::kInvalidArgument,
               policy.status().ToString());
    FUZZ_CHECK(!policy.status().message().empty(), policy_text);
    return;
  }
  std::vector<AuthzRequest> calls;
  calls.push_back({.authenticated = false, .path = "/"});
  if (nul != std::string::npos) {
    std::vector<std::string> lines =
        absl::StrSplit(input.substr(nul + 1), '\n');
    AuthzRequest call;
    call.authenticated = !(lines.size() > 0 && lines[0] == "-");
    if (!call.authenticated) lines.erase(lines.begin());
    if (!lines.empty()) {
      call.path = lines[0];
      call.principals.assign(lines.begin() + 1, lines.end());
    }
    calls.push_back(call);
    // The same call with each principal the policy names.
    for (const auto* rules : {&policy->deny_rules(), &policy->allow_rules()}) {
      for (const auto& rule : *rules) {
        for (const auto& p : rule.principals) {
          AuthzRequest named = call;
          named.authenticated = true;
          named.principals.push_back(p.value);
          calls.push_back(std::move(named));
        }
      }
    }
  }
  for (const AuthzRequest& call : calls) {
    const AuthzPolicy::Decision decision = policy->Evaluate(call);
    bool denied = false;
    for (const auto& rule : policy->deny_rules()) {
      denied = denied || OracleRule(rule, call);
    }
    bool allowed = false;
    for (const auto& rule : policy->allow_rules()) {
      allowed = allowed || OracleRule(rule, call);
    }
    FUZZ_CHECK(decision.allowed == (!denied && allowed),
               absl::StrCat(policy_text, " path=", call.path));
  }
}

}  // namespace
}  // namespace campaign_gateway::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  campaign_gateway::fuzz::Run(data, size);
  return 0;
}
