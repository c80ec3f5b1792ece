// Runs a program as a child process for end-to-end tests: captures its
// stdout and stderr line by line, lets a test wait for a line, signal it and
// collect its exit code. The child is killed if the test forgets it.
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_SUBPROCESS_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace campaign_gateway::testing_util {

class Subprocess {
 public:
  // Starts `argv[0]` with `argv`; `env` entries are added to (or replace
  // those of) this process's environment, and an empty value removes one.
  Subprocess(std::vector<std::string> argv,
             std::map<std::string, std::string> env = {});
  ~Subprocess();

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // The first stdout line satisfying `match`, waiting up to `timeout`;
  // nullopt on timeout or when the child exits first.
  std::optional<std::string> WaitForStdoutLine(
      const std::function<bool(const std::string&)>& match,
      absl::Duration timeout);

  void Signal(int signal);
  pid_t pid() const { return pid_; }
  // The exit code (128 + signal when killed by one), or nullopt when it has
  // not exited within `timeout` (it is then left running).
  std::optional<int> Wait(absl::Duration timeout);

  std::vector<std::string> StdoutLines() const;
  std::string Stderr() const;
  std::string AllOutput() const;

 private:
  void Reader(int fd, bool is_stdout);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  mutable absl::Mutex mu_;
  std::vector<std::string> stdout_lines_ ABSL_GUARDED_BY(mu_);
  std::string partial_stdout_ ABSL_GUARDED_BY(mu_);
  std::string stderr_ ABSL_GUARDED_BY(mu_);
  int open_streams_ ABSL_GUARDED_BY(mu_) = 2;
  std::thread stdout_reader_;
  std::thread stderr_reader_;
};

// Runs a program to completion (bounded by `timeout`, then killed).
struct RunResult {
  int exit_code = -1;
  std::string stdout_text;
  std::string stderr_text;
};
RunResult RunProgram(std::vector<std::string> argv,
                     std::map<std::string, std::string> env = {},
                     absl::Duration timeout = absl::Seconds(30));

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_SUBPROCESS_H_
