// Small text helpers shared by the translation steps: UTF-8 decoding,
// control characters, quoting for messages and strict digit parsing.
#ifndef CAMPAIGN_GATEWAY_SERVICE_TEXT_H_
#define CAMPAIGN_GATEWAY_SERVICE_TEXT_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace campaign_gateway {

// Length of the well-formed UTF-8 sequence at the start of `s` (its code
// point in `cp`), or 0 when malformed: truncated, overlong, a surrogate or
// beyond U+10FFFF.
inline size_t DecodeUtf8(absl::string_view s, char32_t& cp) {
  if (s.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t len;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, min = 0x80, cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, min = 0x800, cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (s.size() < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// C0, DEL and C1: invisible in an SMS, a campaign list or a log line, and a
// sign of corrupted input.
inline bool IsControl(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

// `value` for a message: C-escaped, so control bytes and invalid UTF-8 stay
// visible and harmless, in double quotes, and at most `max_bytes` of it
// ("..." inside the quotes when cut).
inline std::string Quote(absl::string_view value, size_t max_bytes) {
  return absl::StrCat("\"", absl::CHexEscape(value.substr(0, max_bytes)),
                      value.size() > max_bytes ? "...\"" : "\"");
}

// The value of `text` when it is 1 to 9 ASCII digits (no sign, no blanks,
// no overflow), else nullopt.
inline std::optional<int> Digits(absl::string_view text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  return value;
}

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_TEXT_H_
