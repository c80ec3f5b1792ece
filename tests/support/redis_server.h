// Runs Debian's redis-server as a child process on a free loopback port for
// tests of the Redis client: with a password (--requirepass, unique to each
// instance), no persistence, in a temporary directory of its own. Several
// test binaries may run it at once.
//
//   RedisServer redis;
//   ASSERT_TRUE(redis.status().ok()) << redis.status();
//   RedisOptions options = *ParseRedisUrl(redis.url());
//   options.password = redis.password();
//
// Restart() keeps the port, so a client can reconnect; Pause() (SIGSTOP)
// leaves the port accepting connections that nobody answers.
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_REDIS_SERVER_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_REDIS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_env.h"

namespace campaign_gateway::testing_util {

class RedisServer {
 public:
  // Starts on a free port (retrying on a port another process took first).
  RedisServer();
  // Starts on `port`, e.g. one from PickFreePort() a client already uses,
  // with `password` (a unique one when empty).
  explicit RedisServer(int port, std::string password = "");
  // Kills the server and removes its directory.
  ~RedisServer();

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // A loopback port nobody listens on right now.
  static int PickFreePort();

  // OK once the server answered AUTH and PING; why not otherwise (with its
  // output). Updated by every start.
  const absl::Status& status() const { return status_; }
  int port() const { return port_; }
  const std::string& password() const { return password_; }
  // "redis://127.0.0.1:PORT" (the password is not part of it).
  std::string url() const;

  // SIGTERM, and waits for the exit.
  void Stop();
  // SIGKILL, and waits for the exit.
  void Kill();
  // Stops it (if running) and starts it again on the same port, with the
  // same password and an empty dataset; waits until it answers.
  absl::Status Restart();
  // SIGSTOP / SIGCONT; both return once the process is in that state.
  void Pause();
  void Resume();

  // Blocking AUTH + PING on a fresh connection: whether it answered within
  // `timeout`. For tests that need to know the server is responsive.
  bool Ping(absl::Duration timeout = absl::Seconds(1)) const;

 private:
  // Starts the process on port_ and waits until it answers. Sets *collision
  // when the port turned out to be taken.
  absl::Status StartOnPort(bool* collision);

  std::string dir_;
  std::string password_;
  int port_ = 0;
  bool paused_ = false;
  std::unique_ptr<Subprocess> process_;
  absl::Status status_;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_REDIS_SERVER_H_
