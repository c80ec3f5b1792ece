// Helpers shared by the libFuzzer targets: an input format, invariant checks
// that survive NDEBUG, and oracles written independently of service/ (so a
// bug in the code under test cannot hide itself in its own check).
#ifndef CAMPAIGN_GATEWAY_TESTS_FUZZ_FUZZ_COMMON_H_
#define CAMPAIGN_GATEWAY_TESTS_FUZZ_FUZZ_COMMON_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/message_differencer.h"
#include "service/errors.h"
#include "service/http_types.h"

namespace campaign_gateway::fuzz {

// Reports a broken invariant and aborts, which libFuzzer records as a crash
// with the input that caused it.
[[noreturn]] inline void Fail(const char* file, int line, const char* expr,
                              absl::string_view context) {
  std::fprintf(stderr, "%s:%d: invariant violated: %s\n  context: %.*s\n", file,
               line, expr, static_cast<int>(context.size()), context.data());
  std::abort();
}

// assert() is compiled out under NDEBUG (RelWithDebInfo); this is not.
#define FUZZ_CHECK(cond, context)                                           \
  do {                                                                      \
    if (!(cond))                                                            \
      ::campaign_gateway::fuzz::Fail(__FILE__, __LINE__, #cond, (context)); \
  } while (0)

// Well-formed UTF-8 per Unicode Table 3-7, written without service/utf8.h.
inline bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (b <= 0x7F) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      n = 1;
    } else if (b == 0xE0) {
      n = 2, lo = 0xA0;
    } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
      n = 2;
    } else if (b == 0xED) {
      n = 2, hi = 0x9F;  // no surrogates
    } else if (b == 0xF0) {
      n = 3, lo = 0x90;
    } else if (b >= 0xF1 && b <= 0xF3) {
      n = 3;
    } else if (b == 0xF4) {
      n = 3, hi = 0x8F;  // nothing past U+10FFFF
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated
    for (size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      const unsigned char min = k == 1 ? lo : 0x80;
      const unsigned char max = k == 1 ? hi : 0xBF;
      if (c < min || c > max) return false;
    }
    i += n + 1;
  }
  return true;
}

// Valid UTF-8 without C0, DEL or C1 control characters: safe to put in a
// grpc-message, a log line or a terminal. Assumes IsValidUtf8(s).
inline bool HasNoControls(absl::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x20 || b == 0x7F) return false;
    // C1 (U+0080..U+009F) is encoded as C2 80..C2 9F.
    if (b == 0xC2 && i + 1 < s.size() &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9F) {
      return false;
    }
  }
  return true;
}

inline bool IsCleanText(absl::string_view s) {
  return IsValidUtf8(s) && HasNoControls(s);
}

// Reads a fuzz input as a small HTTP response, so seeds stay readable:
//   <status>\n(<name>: <value>\n)*\n<body>
// The status line is an optional '-' and up to 6 digits (anything else reads
// as 0, "no HTTP status"); header names are lower-cased and values trimmed,
// as the transport hands them over (http_types.h). Without a blank line the
// rest is all headers and the body is empty.
inline HttpResponse ParseHttpInput(const uint8_t* data, size_t size) {
  absl::string_view rest(reinterpret_cast<const char*>(data), size);
  const auto next_line = [&rest]() {
    const size_t eol = rest.find('\n');
    absl::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol == absl::string_view::npos ? rest.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  HttpResponse response;
  absl::string_view status = next_line();
  const bool negative = !status.empty() && status.front() == '-';
  if (negative) status.remove_prefix(1);
  if (!status.empty() && status.size() <= 6 &&
      std::all_of(status.begin(), status.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    for (char c : status) response.status = response.status * 10 + (c - '0');
    if (negative) response.status = -response.status;
  }
  while (!rest.empty()) {
    const absl::string_view line = next_line();
    if (line.empty()) {
      response.body = std::string(rest);
      break;
    }
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    response.headers.emplace_back(
        absl::AsciiStrToLower(line.substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return response;
}

inline bool Is2xx(int status) { return status >= 200 && status <= 299; }

// Every error the gateway returns: non-OK, exactly the documented ErrorInfo
// (domain, UPPER_SNAKE reason, the upstream HTTP status when there was
// one), and a bounded message that is clean text. Returns the ErrorInfo.
inline google::rpc::ErrorInfo CheckGatewayError(
    const absl::Status& status, std::optional<int> http_status,
    size_t max_message_bytes = 1024) {
  const std::string context = status.ToString();
  FUZZ_CHECK(!status.ok(), context);
  const std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(status);
  FUZZ_CHECK(info.has_value(), context);
  FUZZ_CHECK(info->domain() == kErrorDomain, context);
  FUZZ_CHECK(!info->reason().empty(), context);
  for (char c : info->reason()) {
    FUZZ_CHECK((c >= 'A' && c <= 'Z') || c == '_', context);
  }
  if (http_status) {
    const auto it =
        info->metadata().find(std::string(metadata_key::kHttpStatus));
    FUZZ_CHECK(it != info->metadata().end(), context);
    FUZZ_CHECK(it->second == absl::StrCat(*http_status), context);
  }
  for (const auto& [key, value] : info->metadata()) {
    FUZZ_CHECK(IsCleanText(value), context);
  }
  if (const auto it =
          info->metadata().find(std::string(metadata_key::kUpstreamMessage));
      it != info->metadata().end()) {
    // Connyline's message is cut to 256 bytes plus "...".
    FUZZ_CHECK(!it->second.empty() && it->second.size() <= 256 + 3, context);
  }
  FUZZ_CHECK(status.message().size() <= max_message_bytes, context);
  FUZZ_CHECK(IsCleanText(status.message()), context);
  return *info;
}

// A response must survive the trip through the wire format unchanged; an
// invalid UTF-8 string field (proto3) would make the client drop it.
inline void CheckProtoRoundTrip(const google::protobuf::Message& message) {
  std::string wire;
  FUZZ_CHECK(message.SerializeToString(&wire), message.ShortDebugString());
  std::unique_ptr<google::protobuf::Message> copy(message.New());
  FUZZ_CHECK(copy->ParseFromString(wire), message.ShortDebugString());
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(message, *copy),
             message.ShortDebugString());
}

}  // namespace campaign_gateway::fuzz

#endif  // CAMPAIGN_GATEWAY_TESTS_FUZZ_FUZZ_COMMON_H_
