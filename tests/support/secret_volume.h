// A directory laid out like a Kubernetes Secret volume, for tests of token
// rotation: `token` -> `..data/token`, `..data` -> `..vN/` (the kubelet
// re-points `..data` atomically on every update of the Secret).
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_SECRET_VOLUME_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_SECRET_VOLUME_H_

#include <stdio.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/test_env.h"

namespace campaign_gateway::testing_util {

class SecretVolume {
 public:
  SecretVolume()
      : dir_(absl::StrCat(TempDir(), "/secret-", getpid(), "-",
                          absl::ToUnixNanos(absl::Now()))) {
    std::filesystem::create_directories(dir_);
    std::filesystem::create_symlink("..data/token", dir_ + "/token");
  }
  ~SecretVolume() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  SecretVolume(const SecretVolume&) = delete;
  SecretVolume& operator=(const SecretVolume&) = delete;

  // The path a pod is given (a symlink chain).
  std::string path() const { return dir_ + "/token"; }

  // What the kubelet does: the new content in a new directory, a new
  // `..data` link beside the old one, renamed over it. False on failure.
  bool Publish(const std::string& content) {
    const std::string version = absl::StrCat("..v", ++versions_);
    std::filesystem::create_directory(dir_ + "/" + version);
    std::ofstream(dir_ + "/" + version + "/token", std::ios::binary) << content;
    std::filesystem::create_symlink(version, dir_ + "/..data_tmp");
    return ::rename((dir_ + "/..data_tmp").c_str(),
                    (dir_ + "/..data").c_str()) == 0;
  }

 private:
  const std::string dir_;
  int versions_ = 0;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_SECRET_VOLUME_H_
