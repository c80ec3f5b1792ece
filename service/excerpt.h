// Short, printable excerpts of text from outside (error bodies, upstream
// messages, transport details) for status messages and logs. Pure; no I/O.
#ifndef CAMPAIGN_GATEWAY_SERVICE_EXCERPT_H_
#define CAMPAIGN_GATEWAY_SERVICE_EXCERPT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace campaign_gateway {

// At most `max_bytes` of `body`, with control characters and invalid UTF-8
// replaced and whitespace runs collapsed, "..." appended when cut; HTML tags
// are stripped so a proxy's error page reads as its text.
std::string SanitizedExcerpt(absl::string_view body, size_t max_bytes = 160);

// SanitizedExcerpt for text that is never markup (Connyline's JSON
// "message", a transport error's detail): tags and entities stay as written.
std::string SanitizedText(absl::string_view text, size_t max_bytes);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_EXCERPT_H_
