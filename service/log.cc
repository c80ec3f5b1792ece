#include "service/log.h"

#include <cstdio>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace campaign_gateway {

void LogJson(absl::string_view level, absl::string_view message,
             const nlohmann::json& fields) {
  nlohmann::ordered_json line;
  line["ts"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                absl::UTCTimeZone());
  line["level"] = std::string(level);
  line["msg"] = std::string(message);
  for (const auto& [key, value] : fields.items()) line[key] = value;
  // Replace rather than throw on invalid UTF-8 from the outside world.
  std::string text =
      line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  // One fwrite per line: stdio locks the stream for the whole call.
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace campaign_gateway
