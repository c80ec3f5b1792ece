#include "service/rest_request.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace campaign_gateway {
namespace {

// One path segment: RFC 3986 unreserved characters pass, every other byte
// becomes %XX, so an account code can never add a segment or a query. "."
// and ".." are encoded too, or clients would resolve them as dot-segments.
std::string PercentEncodeSegment(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const bool dot_segment = text == "." || text == "..";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(byte) || c == '-' || (c == '.' && !dot_segment) ||
        c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0x0F];
    }
  }
  return out;
}

std::string AccountUrl(const UpstreamTarget& target,
                       absl::string_view account_code, absl::string_view path) {
  return absl::StrCat(target.base_url, "/api/v1/",
                      PercentEncodeSegment(account_code), path);
}

HttpHeaders CommonHeaders(const UpstreamTarget& target) {
  return {
      {"Authorization", absl::StrCat("Bearer ", target.token)},
      {"Accept", "application/json"},
      {"User-Agent", target.user_agent},
  };
}

}  // namespace

HttpRequest BuildListListsRequest(const UpstreamTarget& target,
                                  absl::string_view account_code) {
  HttpRequest request;
  request.method = "GET";
  request.url = AccountUrl(target, account_code, "/lists/get-all/");
  request.headers = CommonHeaders(target);
  return request;
}

HttpRequest BuildCreateCampaignRequest(const UpstreamTarget& target,
                                       absl::string_view account_code,
                                       const CampaignDraft& draft) {
  // ordered_json keeps the documented field order; list_id stays an integer.
  nlohmann::ordered_json body = {
      {"campaign_name", draft.campaign_name},
      {"sender", draft.sender},
      {"list_id", draft.list_id},
      {"sms_text", draft.sms_text},
      {"start", draft.start},
      {"shortlink1", draft.shortlink1},
  };
  HttpRequest request;
  request.method = "POST";
  request.url = AccountUrl(target, account_code, "/campaigns/sms/create");
  request.headers = CommonHeaders(target);
  request.headers.emplace_back("Content-Type", "application/json");
  // Text goes out byte-exact (no \u escapes). Validation guarantees UTF-8;
  // `replace` only keeps dump() from throwing if that were ever bypassed.
  request.body = body.dump(-1, ' ', /*ensure_ascii=*/false,
                           nlohmann::ordered_json::error_handler_t::replace);
  return request;
}

}  // namespace campaign_gateway
