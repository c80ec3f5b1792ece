#include "service/token_watcher.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/config.h"
#include "service/log.h"

namespace campaign_gateway {

absl::StatusOr<std::optional<std::string>> RotatedToken(
    absl::string_view raw, absl::string_view current, absl::string_view path) {
  absl::StatusOr<std::string> token =
      CheckToken(raw, absl::StrCat("--token_file '", path, "'"), nullptr);
  if (!token.ok()) return token.status();
  // The current one (even of another length, which only warned at start).
  if (*token == current) return std::nullopt;
  if (token->size() != kExpectedTokenLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the API token from --token_file '", path, "' has ", token->size(),
        " characters; Connyline's tokens have ", kExpectedTokenLength));
  }
  return *std::move(token);
}

TokenWatcher::TokenWatcher(Options options, std::string token)
    : options_(std::move(options)), token_(std::move(token)) {
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.interval)) Poll();
  });
}

TokenWatcher::~TokenWatcher() {
  stop_.Notify();
  thread_.join();
}

std::string TokenWatcher::token() const {
  absl::MutexLock lock(&mu_);
  return token_;
}

void TokenWatcher::Poll() {
  // Opening the path anew follows the symlink chain as it is now, so an
  // atomically re-pointed `..data` is seen whole, old or new.
  std::ifstream in(options_.path, std::ios::binary);
  if (!in) {
    if (!unreadable_) {
      LogJson("error", "cannot read the token file; keeping the current token",
              {{"token_file", options_.path}});
    }
    unreadable_ = true;
    return;
  }
  unreadable_ = false;
  std::ostringstream content;
  content << in.rdbuf();
  std::string raw = content.str();
  if (raw == last_raw_) return;
  last_raw_ = std::move(raw);
  absl::StatusOr<std::optional<std::string>> rotated =
      RotatedToken(last_raw_, token(), options_.path);
  if (!rotated.ok()) {
    LogJson("error",
            "the token file changed but holds no valid token; keeping the "
            "current token",
            {{"token_file", options_.path},
             {"error", std::string(rotated.status().message())}});
    return;
  }
  if (!rotated->has_value()) return;
  {
    absl::MutexLock lock(&mu_);
    token_ = **std::move(rotated);
  }
  LogJson("info", "API token rotated: the new token is used from now on",
          {{"token_file", options_.path}});
}

}  // namespace campaign_gateway
