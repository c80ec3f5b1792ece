// The API token from --token_file, re-read while serving: a rotated Secret
// (the file replaced, or Kubernetes re-pointing its `..data` symlink) is used
// from the next request on, without a restart.
#ifndef CAMPAIGN_GATEWAY_SERVICE_TOKEN_WATCHER_H_
#define CAMPAIGN_GATEWAY_SERVICE_TOKEN_WATCHER_H_

#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace campaign_gateway {

// What a changed token file means (pure): the token to use from now on, or
// nullopt when it is the current one, or an error (never quoting the value)
// when it is no valid token, in which case the current one stays. A rotated
// token must have Connyline's documented length: a shorter one is most
// likely a file caught half-written.
absl::StatusOr<std::optional<std::string>> RotatedToken(
    absl::string_view raw, absl::string_view current, absl::string_view path);

class TokenWatcher final {
 public:
  struct Options {
    std::string path;  // followed through symlinks on every read
    absl::Duration interval = absl::Seconds(1);
  };

  // `token` is the one already read (and checked) from `options.path`.
  TokenWatcher(Options options, std::string token);
  ~TokenWatcher();  // stops the polling thread

  TokenWatcher(const TokenWatcher&) = delete;
  TokenWatcher& operator=(const TokenWatcher&) = delete;

  // The current token; any thread.
  std::string token() const;

 private:
  // One look at the file: on a change of its content, checks and takes the
  // new token or logs why not (one line per change, never the token).
  void Poll();

  const Options options_;
  mutable absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  // Polling thread only.
  std::string last_raw_;
  bool unreadable_ = false;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_TOKEN_WATCHER_H_
