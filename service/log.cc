#include "service/log.h"

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "grpc/support/log.h"

namespace campaign_gateway {
namespace {

void LogGrpc(gpr_log_func_args* args) {
  const char* level = args->severity == GPR_LOG_SEVERITY_ERROR  ? "error"
                      : args->severity == GPR_LOG_SEVERITY_INFO ? "info"
                                                                : "debug";
  LogJson(level, args->message,
          {{"source", "grpc"}, {"file", args->file}, {"line", args->line}});
}

// At most one line a minute (see SendLibraryLogsToJson()).
void LogProtobuf(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  // Never destroyed: library threads may still log while the process exits.
  static LogRateLimit* const limit = new LogRateLimit(absl::Minutes(1));
  int64_t dropped = 0;
  if (!limit->Allow(absl::Now(), &dropped)) return;
  LogJson(level >= google::protobuf::LOGLEVEL_ERROR ? "error" : "warning",
          message,
          {{"source", "protobuf"},
           {"file", file},
           {"line", line},
           {"suppressed_since_last", dropped}});
}

}  // namespace

bool LogRateLimit::Allow(absl::Time now, int64_t* suppressed) {
  absl::MutexLock lock(&mu_);
  if (now - last_ < interval_) {
    ++suppressed_;
    return false;
  }
  last_ = now;
  *suppressed = std::exchange(suppressed_, 0);
  return true;
}

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

void SendLibraryLogsToJson() {
  gpr_set_log_function(LogGrpc);
  google::protobuf::SetLogHandler(LogProtobuf);
}

}  // namespace campaign_gateway
