#include "service/authz_watcher.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/log.h"

namespace campaign_gateway {

absl::StatusOr<AuthzPolicy> LoadAuthzPolicyFile(const std::string& path,
                                                absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read --", flag, " '", path, "' (missing or not readable)"));
  }
  std::ostringstream content;
  content << in.rdbuf();
  absl::StatusOr<AuthzPolicy> policy = AuthzPolicy::Parse(content.str());
  if (!policy.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " '", path, "' is not a valid gRPC authorization policy: ",
        policy.status().message()));
  }
  return policy;
}

absl::StatusOr<std::unique_ptr<AuthzWatcher>> AuthzWatcher::Start(
    std::string path, absl::Duration poll_interval) {
  std::unique_ptr<AuthzWatcher> watcher(
      new AuthzWatcher(std::move(path), poll_interval));
  // The identity first: a change while reading is seen at the next poll.
  watcher->seen_ = IdentityOf(watcher->path_);
  absl::StatusOr<AuthzPolicy> policy =
      LoadAuthzPolicyFile(watcher->path_, "authz_policy_file");
  if (!policy.ok()) return policy.status();
  watcher->policy_ = std::make_shared<const AuthzPolicy>(*std::move(policy));
  watcher->thread_ = std::thread([w = watcher.get()] {
    while (!w->stop_.WaitForNotificationWithTimeout(w->poll_interval_)) {
      w->Poll();
    }
  });
  return watcher;
}

AuthzWatcher::AuthzWatcher(std::string path, absl::Duration poll_interval)
    : path_(std::move(path)), poll_interval_(poll_interval) {}

AuthzWatcher::~AuthzWatcher() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const AuthzPolicy> AuthzWatcher::policy() const {
  absl::MutexLock lock(&mu_);
  return policy_;
}

AuthzWatcher::Identity AuthzWatcher::IdentityOf(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return {};
  return {.device = st.st_dev,
          .inode = st.st_ino,
          .size = st.st_size,
          .mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                      st.st_mtim.tv_nsec};
}

void AuthzWatcher::Poll() {
  const Identity now = IdentityOf(path_);
  if (now == seen_) return;
  seen_ = now;
  absl::StatusOr<AuthzPolicy> policy =
      LoadAuthzPolicyFile(path_, "authz_policy_file");
  if (!policy.ok()) {
    // Once per change of the file, not once per poll.
    LogJson(
        "error",
        "authorization policy not reloaded: the new file is broken; the "
        "last good policy stays in force",
        {{"file", path_}, {"error", std::string(policy.status().message())}});
    return;
  }
  LogJson("info", "authorization policy reloaded",
          {{"file", path_},
           {"policy", policy->name()},
           {"deny_rules", policy->deny_rules().size()},
           {"allow_rules", policy->allow_rules().size()}});
  auto next = std::make_shared<const AuthzPolicy>(*std::move(policy));
  absl::MutexLock lock(&mu_);
  policy_ = std::move(next);
}

}  // namespace campaign_gateway
