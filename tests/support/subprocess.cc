#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

extern char** environ;

namespace campaign_gateway::testing_util {

Subprocess::Subprocess(std::vector<std::string> argv,
                       std::map<std::string, std::string> env) {
  std::map<std::string, std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    environment[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  for (auto& entry : env) {
    if (entry.second.empty()) {
      environment.erase(entry.first);
    } else {
      environment[entry.first] = std::move(entry.second);
    }
  }
  std::vector<std::string> env_strings;
  env_strings.reserve(environment.size());
  for (const auto& [key, value] : environment) {
    env_strings.push_back(absl::StrCat(key, "=", value));
  }
  std::vector<char*> c_env;
  c_env.reserve(env_strings.size() + 1);
  for (std::string& s : env_strings) c_env.push_back(s.data());
  c_env.push_back(nullptr);
  std::vector<char*> c_argv;
  c_argv.reserve(argv.size() + 1);
  for (std::string& s : argv) c_argv.push_back(s.data());
  c_argv.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The test runner may block signals; the child must see SIGTERM.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  const int rc = posix_spawn(&pid_, c_argv[0], &actions, &attr, c_argv.data(),
                             c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw std::runtime_error(
        absl::StrCat("cannot start ", argv[0], ": ", std::strerror(rc)));
  }
  stdout_reader_ = std::thread([this, fd = out_pipe[0]] { Reader(fd, true); });
  stderr_reader_ = std::thread([this, fd = err_pipe[0]] { Reader(fd, false); });
}

Subprocess::~Subprocess() {
  if (!exit_code_) {
    Signal(SIGKILL);
    Wait(absl::Seconds(10));
  }
  stdout_reader_.join();
  stderr_reader_.join();
}

void Subprocess::Reader(int fd, bool is_stdout) {
  char buffer[4096];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    absl::MutexLock lock(&mu_);
    if (!is_stdout) {
      stderr_.append(buffer, n);
      continue;
    }
    partial_stdout_.append(buffer, n);
    size_t newline;
    while ((newline = partial_stdout_.find('\n')) != std::string::npos) {
      stdout_lines_.push_back(partial_stdout_.substr(0, newline));
      partial_stdout_.erase(0, newline + 1);
    }
  }
  close(fd);
  absl::MutexLock lock(&mu_);
  if (is_stdout && !partial_stdout_.empty()) {
    stdout_lines_.push_back(std::move(partial_stdout_));
    partial_stdout_.clear();
  }
  --open_streams_;
}

std::optional<std::string> Subprocess::WaitForStdoutLine(
    const std::function<bool(const std::string&)>& match,
    absl::Duration timeout) {
  size_t checked = 0;
  std::optional<std::string> found;
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (; checked < stdout_lines_.size(); ++checked) {
      if (match(stdout_lines_[checked])) {
        found = stdout_lines_[checked];
        return true;
      }
    }
    return open_streams_ == 0;
  };
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return found;
}

void Subprocess::Signal(int signal) {
  if (pid_ > 0 && !exit_code_) kill(pid_, signal);
}

std::optional<int> Subprocess::Wait(absl::Duration timeout) {
  if (exit_code_) return exit_code_;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ =
          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::vector<std::string> Subprocess::StdoutLines() const {
  absl::MutexLock lock(&mu_);
  return stdout_lines_;
}

std::string Subprocess::Stderr() const {
  absl::MutexLock lock(&mu_);
  return stderr_;
}

std::string Subprocess::AllOutput() const {
  absl::MutexLock lock(&mu_);
  return absl::StrCat(absl::StrJoin(stdout_lines_, "\n"), "\n", partial_stdout_,
                      stderr_);
}

RunResult RunProgram(std::vector<std::string> argv,
                     std::map<std::string, std::string> env,
                     absl::Duration timeout) {
  Subprocess process(std::move(argv), std::move(env));
  std::optional<int> code = process.Wait(timeout);
  if (!code) {
    process.Signal(SIGKILL);
    code = process.Wait(absl::Seconds(10));
  }
  // Let the readers drain what the child wrote before it exited.
  process.WaitForStdoutLine([](const std::string&) { return false; },
                            absl::Seconds(5));
  RunResult result;
  result.exit_code = code.value_or(-1);
  result.stdout_text = absl::StrJoin(process.StdoutLines(), "\n");
  result.stderr_text = process.Stderr();
  return result;
}

}  // namespace campaign_gateway::testing_util
