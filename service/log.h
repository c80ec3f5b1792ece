// Structured logs: one JSON object per line on stdout, written whole, so
// log collectors never see interleaved lines. Callers never pass secrets.
#ifndef CAMPAIGN_GATEWAY_SERVICE_LOG_H_
#define CAMPAIGN_GATEWAY_SERVICE_LOG_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace campaign_gateway {

// Writes {"ts": RFC 3339 UTC, "level": level, "msg": message, ...fields}.
void LogJson(absl::string_view level, absl::string_view message,
             const nlohmann::json& fields = nlohmann::json::object());

// Lets one line through per interval and counts the others, so that an
// event anyone can repeat costs one line and a count, not a flood.
class LogRateLimit final {
 public:
  explicit LogRateLimit(absl::Duration interval) : interval_(interval) {}

  // True if a line may be written at `now`; `*suppressed` is then how many
  // were held back since the last one.
  bool Allow(absl::Time now, int64_t* suppressed);

 private:
  const absl::Duration interval_;
  absl::Mutex mu_;
  absl::Time last_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

// Sends gRPC's and libprotobuf's own log lines to LogJson too (stdout), so
// stderr carries only the one-line reason of a refusal to start. libprotobuf
// logs what any caller can provoke (invalid UTF-8 in a string field), so its
// lines are written at most once a minute, with a count of those dropped.
// Call once, early in main().
void SendLibraryLogsToJson();

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_LOG_H_
