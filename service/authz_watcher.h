// The --authz_policy_file, kept current: read and checked once at start (a
// broken file is a startup error), then polled on a thread of its own; a
// changed file (new inode, size or mtime, following symlinks, so the
// Kubernetes ConfigMap `..data` swap counts) is parsed and, when valid,
// replaces the policy for the next call. A broken new file is logged and the
// last good policy stays.
#ifndef CAMPAIGN_GATEWAY_SERVICE_AUTHZ_WATCHER_H_
#define CAMPAIGN_GATEWAY_SERVICE_AUTHZ_WATCHER_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "service/authz_policy.h"

namespace campaign_gateway {

// Reads and parses a policy file; the error names `flag` and the path.
absl::StatusOr<AuthzPolicy> LoadAuthzPolicyFile(const std::string& path,
                                                absl::string_view flag);

class AuthzWatcher final {
 public:
  // Kubelet syncs ConfigMap volumes within about a minute; checking every
  // second costs one stat() and applies the change within seconds of it.
  static constexpr absl::Duration kPollInterval = absl::Seconds(1);

  static absl::StatusOr<std::unique_ptr<AuthzWatcher>> Start(
      std::string path, absl::Duration poll_interval = kPollInterval);
  ~AuthzWatcher();  // stops polling

  AuthzWatcher(const AuthzWatcher&) = delete;
  AuthzWatcher& operator=(const AuthzWatcher&) = delete;

  // The policy in force; never null.
  std::shared_ptr<const AuthzPolicy> policy() const;

 private:
  // What tells that the file changed.
  struct Identity {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const Identity&) const = default;
  };
  static Identity IdentityOf(const std::string& path);

  AuthzWatcher(std::string path, absl::Duration poll_interval);
  void Poll();

  const std::string path_;
  const absl::Duration poll_interval_;
  Identity seen_;  // only the polling thread touches it after Start()
  mutable absl::Mutex mu_;
  std::shared_ptr<const AuthzPolicy> policy_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_AUTHZ_WATCHER_H_
