// Per-method authorization in gRPC's documented SDK authorization-policy JSON
// (gRFC A43): `name`, `deny_rules`, `allow_rules`, each rule with a `name`,
// `source.principals` and `request.paths` / `request.headers`. Debian's gRPC
// 1.51 ships no policy provider library, so this is the same format
// evaluated in our code: pure, no I/O (authz_watcher.h reads the file).
//
// Semantics, as gRPC's rbac_translator and matchers define them:
//   - a value "*" matches anything, "foo*" is a prefix, "*foo" a suffix,
//     anything else is exact;
//   - within a rule, principals are OR-ed, paths are OR-ed, headers are
//     AND-ed (the values of one header OR-ed), and source AND request must
//     both match; a missing or empty list matches everything;
//   - a principal rule matches only an authenticated peer (a verified client
//     certificate), against its URI SANs and DNS SANs;
//   - deny rules first (any match denies), then allow rules (any match
//     allows); no match denies.
// Stricter than gRPC where that only turns a typo into an error: unknown
// fields are refused.
#ifndef CAMPAIGN_GATEWAY_SERVICE_AUTHZ_POLICY_H_
#define CAMPAIGN_GATEWAY_SERVICE_AUTHZ_POLICY_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace campaign_gateway {

// What one call presents to the policy.
struct AuthzRequest {
  // The peer presented a client certificate that was verified.
  bool authenticated = false;
  // Its URI SANs (SPIFFE IDs), then its DNS SANs.
  std::vector<std::string> principals;
  // "/package.Service/Method".
  std::string path;
  // Request metadata (lower-case keys); only those in header_names() matter.
  std::vector<std::pair<std::string, std::string>> headers;
};

class AuthzPolicy final {
 public:
  // One of the policy's string patterns.
  struct Pattern {
    enum class Kind { kAny, kExact, kPrefix, kSuffix };
    Kind kind = Kind::kExact;
    std::string value;
    bool Matches(absl::string_view s) const;
  };
  struct HeaderRule {
    std::string key;  // lower case
    std::vector<Pattern> values;
  };
  struct Rule {
    std::string name;
    std::vector<Pattern> principals;  // empty: any peer
    std::vector<Pattern> paths;       // empty: any method
    std::vector<HeaderRule> headers;  // empty: any metadata
  };
  struct Decision {
    bool allowed = false;
    // The deciding rule's name; empty when no rule matched (default deny).
    std::string rule;
  };

  // Larger policy files are refused (a policy is a few rules).
  static constexpr size_t kMaxBytes = 1 << 20;

  // The error says what is wrong and where ("allow_rules 0: ...").
  static absl::StatusOr<AuthzPolicy> Parse(absl::string_view json);

  Decision Evaluate(const AuthzRequest& request) const;

  const std::string& name() const { return name_; }
  // The header keys some rule looks at.
  const std::vector<std::string>& header_names() const { return header_names_; }
  const std::vector<Rule>& deny_rules() const { return deny_rules_; }
  const std::vector<Rule>& allow_rules() const { return allow_rules_; }

 private:
  AuthzPolicy() = default;

  std::string name_;
  std::vector<Rule> deny_rules_;
  std::vector<Rule> allow_rules_;
  std::vector<std::string> header_names_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_AUTHZ_POLICY_H_
