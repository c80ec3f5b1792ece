#include "service/redis_client.h"

#include <atomic>
#include <functional>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/redis_server.h"

namespace campaign_gateway {
namespace {

using ::campaign_gateway::testing_util::RedisServer;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// ---------------------------------------------------------------------------
// ParseRedisUrl

struct UrlCase {
  std::string name;
  std::string url;
  // Expected on success.
  bool ok = false;
  std::string host;
  int port = 6379;
  int db = 0;
  // Expected in the error message on failure (besides "--redis_url").
  std::string error;
};

void PrintTo(const UrlCase& c, std::ostream* os) {
  *os << c.name << " (\"" << c.url << "\")";
}

UrlCase Ok(std::string name, std::string url, std::string host, int port = 6379,
           int db = 0) {
  return {std::move(name), std::move(url), true, std::move(host), port, db, ""};
}

UrlCase Bad(std::string name, std::string url, std::string error) {
  return {std::move(name), std::move(url), false, "", 0, 0, std::move(error)};
}

class ParseRedisUrlTest : public ::testing::TestWithParam<UrlCase> {};

TEST_P(ParseRedisUrlTest, Parses) {
  const UrlCase& c = GetParam();
  absl::StatusOr<RedisOptions> options = ParseRedisUrl(c.url);
  if (c.ok) {
    ASSERT_TRUE(options.ok()) << options.status();
    EXPECT_EQ(options->host, c.host);
    EXPECT_EQ(options->port, c.port);
    EXPECT_EQ(options->db, c.db);
    EXPECT_EQ(options->password, "");
    EXPECT_EQ(options->connect_timeout, absl::Seconds(1));
    EXPECT_EQ(options->command_timeout, absl::Milliseconds(500));
    return;
  }
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(options.status().message(), HasSubstr("--redis_url"));
  EXPECT_THAT(options.status().message(), HasSubstr(c.error));
  // What might be a password is never echoed.
  EXPECT_THAT(options.status().message(), Not(HasSubstr("s3cret")));
}

INSTANTIATE_TEST_SUITE_P(
    Urls, ParseRedisUrlTest,
    ::testing::Values(
        Ok("Name", "redis://localhost", "localhost"),
        Ok("NamePort", "redis://cache.internal:6380", "cache.internal", 6380),
        Ok("NamePortDb", "redis://redis-0.redis:7000/3", "redis-0.redis", 7000,
           3),
        Ok("Ipv4", "redis://10.0.0.5", "10.0.0.5"),
        Ok("TrailingSlash", "redis://h:1/", "h", 1),
        Ok("DbWithoutPort", "redis://h/15", "h", 6379, 15),
        Ok("Ipv6", "redis://[::1]:6379/2", "::1", 6379, 2),
        Ok("Ipv6NoPort", "redis://[fe80::1]", "fe80::1"),
        Ok("UpperCaseScheme", "REDIS://h:6379", "h"),
        Ok("MaxPort", "redis://h:65535", "h", 65535),
        Bad("Password", "redis://:s3cret@h:6379", "--redis_password_file"),
        Bad("UserPassword", "redis://user:s3cret@h", "--redis_password_file"),
        Bad("User", "redis://user@h", "user or password"),
        Bad("Tls", "rediss://h:6379", "TLS"),
        Bad("OtherScheme", "http://h:6379", "redis://"),
        Bad("NoScheme", "h:6379", "redis://HOST"),
        Bad("Empty", "", "redis://HOST"),
        Bad("MissingHost", "redis://:6379", "missing host"),
        Bad("NothingAfterScheme", "redis://", "missing host"),
        Bad("PortZero", "redis://h:0", "port"),
        Bad("PortTooLarge", "redis://h:65536", "port"),
        Bad("PortHuge", "redis://h:99999999999", "port"),
        Bad("PortNotNumber", "redis://h:s3cret", "port"),
        Bad("PortSigned", "redis://h:+80", "port"),
        Bad("EmptyPort", "redis://h:", "port"),
        Bad("NegativeDb", "redis://h/-1", "DB"),
        Bad("DbNotNumber", "redis://h/s3cret", "DB"),
        Bad("DbPath", "redis://h/1/2", "DB"),
        Bad("DbTooLarge", "redis://h/99999999999", "DB"),
        Bad("Query", "redis://h:6379?password=s3cret", "query"),
        Bad("Fragment", "redis://h:6379#s3cret", "query"),
        Bad("UnbracketedIpv6", "redis://::1:6379", "brackets"),
        Bad("BadIpv6", "redis://[zz::1]:6379", "IPv6"),
        Bad("UnterminatedIpv6", "redis://[::1:6379", "unterminated"),
        Bad("JunkAfterBracket", "redis://[::1]x", "redis://HOST"),
        Bad("BadHostChars", "redis://h%20st:1", "host"),
        Bad("BadIpv4", "redis://300.1.1.1", "IPv4")),
    [](const ::testing::TestParamInfo<UrlCase>& info) {
      return info.param.name;
    });

// ---------------------------------------------------------------------------
// RedisReply and the script hash

TEST(RedisReplyTest, TypesAccessorsAndDebugString) {
  const RedisReply array = RedisReply::Array(
      {RedisReply::Integer(-7), RedisReply::String(std::string("a\0b", 3)),
       RedisReply::Status("OK"), RedisReply::Error("ERR x"), RedisReply()});
  EXPECT_TRUE(array.is_array());
  ASSERT_EQ(array.elements().size(), 5u);
  EXPECT_EQ(array.elements()[0].integer(), -7);
  EXPECT_EQ(array.elements()[1].str(), std::string("a\0b", 3));
  EXPECT_TRUE(array.elements()[2].is_status());
  EXPECT_TRUE(array.elements()[3].is_error());
  EXPECT_TRUE(array.elements()[4].is_nil());
  EXPECT_EQ(array.DebugString(), R"([-7, "a\000b", +OK, -ERR x, nil])");
  // Accessors of another type give neutral values.
  EXPECT_EQ(RedisReply::String("1").integer(), 0);
  EXPECT_EQ(RedisReply::Integer(1).str(), "");
  EXPECT_TRUE(RedisReply::Integer(1).elements().empty());
  EXPECT_EQ(RedisReply::String("x"), RedisReply::String("x"));
  EXPECT_NE(RedisReply::String("x"), RedisReply::Status("x"));
  EXPECT_NE(RedisReply::Nil(), RedisReply::Array({}));
}

TEST(RedisScriptSha1Test, MatchesKnownDigests) {
  EXPECT_EQ(RedisScriptSha1(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(RedisScriptSha1("return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

// ---------------------------------------------------------------------------
// Helpers for the client tests

// Records on_state calls.
class StateLog {
 public:
  std::function<void(bool)> Callback() {
    return [this](bool connected) {
      absl::MutexLock lock(&mu_);
      events_.push_back(connected);
    };
  }
  // Waits until `count` calls were recorded; false on timeout.
  bool WaitForCount(size_t count, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return events_.size() >= count;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  std::vector<bool> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<bool> events_ ABSL_GUARDED_BY(mu_);
};

// The outcome of one asynchronous command, shared with its callback so a
// test that gives up waiting leaves nothing dangling.
struct Outcome {
  absl::Notification done;
  absl::StatusOr<RedisReply> result = absl::UnknownError("not called");
  absl::Time finished;
  std::thread::id thread;
  std::atomic<int> calls{0};
};

RedisClient::Callback Into(const std::shared_ptr<Outcome>& outcome) {
  return [outcome](absl::StatusOr<RedisReply> result) {
    outcome->result = std::move(result);
    outcome->finished = absl::Now();
    outcome->thread = std::this_thread::get_id();
    outcome->calls.fetch_add(1);
    outcome->done.Notify();
  };
}

// Waits for `outcome`, failing the test (not hanging) if it never comes.
absl::StatusOr<RedisReply> Wait(const std::shared_ptr<Outcome>& outcome,
                                absl::Duration timeout = absl::Seconds(10)) {
  if (!outcome->done.WaitForNotificationWithTimeout(timeout)) {
    ADD_FAILURE() << "the callback was not called within " << timeout;
    return absl::UnknownError("callback not called");
  }
  return outcome->result;
}

absl::StatusOr<RedisReply> Exec(RedisClient& client,
                                std::vector<std::string> argv,
                                absl::Duration deadline = absl::Seconds(5)) {
  auto outcome = std::make_shared<Outcome>();
  client.Command(std::move(argv), absl::Now() + deadline, Into(outcome));
  return Wait(outcome);
}

absl::StatusOr<RedisReply> RunEval(RedisClient& client,
                                   const std::string& script,
                                   std::vector<std::string> keys,
                                   std::vector<std::string> args) {
  auto outcome = std::make_shared<Outcome>();
  client.Eval(script, std::move(keys), std::move(args),
              absl::Now() + absl::Seconds(5), Into(outcome));
  return Wait(outcome);
}

// Options for `server`, with timeouts and backoff short enough for tests.
RedisOptions OptionsFor(const RedisServer& server, StateLog* log = nullptr) {
  absl::StatusOr<RedisOptions> options = ParseRedisUrl(server.url());
  EXPECT_TRUE(options.ok()) << options.status();
  options->password = server.password();
  options->connect_timeout = absl::Milliseconds(500);
  options->command_timeout = absl::Seconds(2);
  options->reconnect_backoff_min = absl::Milliseconds(10);
  options->reconnect_backoff_max = absl::Milliseconds(100);
  if (log != nullptr) options->on_state = log->Callback();
  return *options;
}

// How often Redis ran `command`, from INFO commandstats.
int64_t CommandCalls(RedisClient& client, const std::string& command) {
  absl::StatusOr<RedisReply> info = Exec(client, {"INFO", "commandstats"});
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return -1;
  const std::string marker = absl::StrCat("cmdstat_", command, ":calls=");
  const size_t at = info->str().find(marker);
  if (at == std::string::npos) return 0;
  const size_t start = at + marker.size();
  const size_t end = info->str().find(',', start);
  int64_t calls = -1;
  EXPECT_TRUE(absl::SimpleAtoi(info->str().substr(start, end - start), &calls));
  return calls;
}

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.status().ok()) << server_.status();
  }

  RedisServer server_;
};

// ---------------------------------------------------------------------------
// Commands and replies

TEST_F(RedisClientTest, SetGetIncrAndNil) {
  RedisClient client(OptionsFor(server_));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  EXPECT_TRUE(client.connected());
  EXPECT_TRUE(client.last_error().ok());

  EXPECT_EQ(*Exec(client, {"SET", "greeting", "hello"}),
            RedisReply::Status("OK"));
  EXPECT_EQ(*Exec(client, {"GET", "greeting"}), RedisReply::String("hello"));
  EXPECT_EQ(*Exec(client, {"INCR", "counter"}), RedisReply::Integer(1));
  EXPECT_EQ(*Exec(client, {"INCRBY", "counter", "41"}),
            RedisReply::Integer(42));
  EXPECT_EQ(*Exec(client, {"GET", "missing"}), RedisReply::Nil());
  EXPECT_EQ(*Exec(client, {"SET", "once", "1", "NX", "PX", "60000"}),
            RedisReply::Status("OK"));
  // NX on an existing key: a nil answer, not an error.
  EXPECT_EQ(*Exec(client, {"SET", "once", "2", "NX", "PX", "60000"}),
            RedisReply::Nil());
  EXPECT_EQ(*Exec(client, {"PING"}), RedisReply::Status("PONG"));
}

TEST_F(RedisClientTest, BinarySafeKeysAndValues) {
  RedisClient client(OptionsFor(server_));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  const std::string key("k\0ey\r\n", 6);
  std::string value;
  for (int i = 0; i < 256; ++i) value.push_back(static_cast<char>(i));
  value += "\r\n$3\r\nfoo\r\n";  // RESP-looking bytes stay data
  EXPECT_EQ(*Exec(client, {"SET", key, value}), RedisReply::Status("OK"));
  EXPECT_EQ(*Exec(client, {"GET", key}), RedisReply::String(value));
  EXPECT_EQ(*Exec(client, {"STRLEN", key}),
            RedisReply::Integer(static_cast<int64_t>(value.size())));
  // A large value, and an empty one.
  const std::string large(1 << 20, 'x');
  EXPECT_EQ(*Exec(client, {"SET", "large", large}), RedisReply::Status("OK"));
  EXPECT_EQ(*Exec(client, {"GET", "large"}), RedisReply::String(large));
  EXPECT_EQ(*Exec(client, {"SET", "empty", ""}), RedisReply::Status("OK"));
  EXPECT_EQ(*Exec(client, {"GET", "empty"}), RedisReply::String(""));
}

TEST_F(RedisClientTest, ArrayReplies) {
  RedisClient client(OptionsFor(server_));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  ASSERT_TRUE(Exec(client, {"RPUSH", "list", "a", "b", "c"}).ok());
  EXPECT_EQ(*Exec(client, {"LRANGE", "list", "0", "-1"}),
            RedisReply::Array({RedisReply::String("a"), RedisReply::String("b"),
                               RedisReply::String("c")}));
  EXPECT_EQ(*Exec(client, {"LRANGE", "nothing", "0", "-1"}),
            RedisReply::Array({}));
  ASSERT_TRUE(Exec(client, {"SET", "k", "v"}).ok());
  EXPECT_EQ(*Exec(client, {"MGET", "k", "missing"}),
            RedisReply::Array({RedisReply::String("v"), RedisReply::Nil()}));
  // Nested arrays, and an error as an element (not a failed command).
  absl::StatusOr<RedisReply> nested =
      Exec(client,
           {"EVAL",
            "return {1, 'two', {3, {'four'}}, redis.error_reply('bad')}", "0"});
  ASSERT_TRUE(nested.ok()) << nested.status();
  ASSERT_EQ(nested->elements().size(), 4u) << nested->DebugString();
  EXPECT_EQ(nested->elements()[0], RedisReply::Integer(1));
  EXPECT_EQ(nested->elements()[1], RedisReply::String("two"));
  EXPECT_EQ(
      nested->elements()[2],
      RedisReply::Array({RedisReply::Integer(3),
                         RedisReply::Array({RedisReply::String("four")})}));
  EXPECT_TRUE(nested->elements()[3].is_error());
  EXPECT_THAT(nested->elements()[3].str(), HasSubstr("bad"));
}

TEST_F(RedisClientTest, ErrorRepliesBecomeStatuses) {
  RedisClient client(OptionsFor(server_));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  ASSERT_TRUE(Exec(client, {"SET", "text", "abc"}).ok());

  absl::StatusOr<RedisReply> incr = Exec(client, {"INCR", "text"});
  EXPECT_EQ(incr.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(incr.status().message(),
              HasSubstr("Redis error: ERR value is not an integer"));

  absl::StatusOr<RedisReply> wrong_type = Exec(client, {"LPUSH", "text", "x"});
  EXPECT_EQ(wrong_type.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(wrong_type.status().message(), HasSubstr("WRONGTYPE"));

  absl::StatusOr<RedisReply> unknown = Exec(client, {"NOSUCHCOMMAND", "x"});
  EXPECT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown command"));

  // NOPERM maps to PERMISSION_DENIED: a user who may only PING. (AUTH on
  // the client's connection is a test shortcut; it would not survive a
  // reconnect.)
  ASSERT_TRUE(
      Exec(client, {"ACL", "SETUSER", "pinger", "on", ">pingpw", "+ping", "~*"})
          .ok());
  ASSERT_TRUE(Exec(client, {"AUTH", "pinger", "pingpw"}).ok());
  absl::StatusOr<RedisReply> denied = Exec(client, {"GET", "text"});
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied)
      << denied.status();
  EXPECT_THAT(denied.status().message(), HasSubstr("NOPERM"));

  // The connection is still fine after errors.
  EXPECT_EQ(*Exec(client, {"PING"}), RedisReply::Status("PONG"));
  EXPECT_TRUE(client.connected());
}

TEST_F(RedisClientTest, RefusesCommandsItCannotServe) {
  RedisClient client(OptionsFor(server_));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  EXPECT_EQ(Exec(client, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<RedisReply> subscribe = Exec(client, {"subscribe", "ch"});
  EXPECT_EQ(subscribe.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(subscribe.status().message(), HasSubstr("SUBSCRIBE"));
  EXPECT_EQ(Exec(client, {"MONITOR"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*Exec(client, {"PING"}), RedisReply::Status("PONG"));
}

TEST_F(RedisClientTest, SelectsTheDbOfTheUrl) {
  RedisOptions options = OptionsFor(server_);
  options.db = 3;
  RedisClient db3(options);
  ASSERT_TRUE(db3.Start(absl::Seconds(5)).ok());
  RedisClient db0(OptionsFor(server_));
  ASSERT_TRUE(db0.Start(absl::Seconds(5)).ok());

  ASSERT_TRUE(Exec(db3, {"SET", "where", "three"}).ok());
  EXPECT_EQ(*Exec(db3, {"GET", "where"}), RedisReply::String("three"));
  EXPECT_EQ(*Exec(db0, {"GET", "where"}), RedisReply::Nil());
  ASSERT_TRUE(Exec(db0, {"SELECT", "3"}).ok());
  EXPECT_EQ(*Exec(db0, {"GET", "where"}), RedisReply::String("three"));
}

TEST_F(RedisClientTest, CallbacksRunOnTheLoopThreadAndMayChainCommands) {
  RedisClient client(OptionsFor(server_));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  // Each callback sends the next command: no client lock is held.
  struct Chain {
    RedisClient* client;
    int left = 100;
    std::set<std::thread::id> threads;
    absl::Notification done;
    absl::Status failure;
    void Next() {
      client->Command({"INCR", "chain"}, absl::Now() + absl::Seconds(5),
                      [this](const absl::StatusOr<RedisReply>& reply) {
                        threads.insert(std::this_thread::get_id());
                        if (!reply.ok()) failure = reply.status();
                        if (--left == 0 || !reply.ok()) {
                          done.Notify();
                          return;
                        }
                        Next();
                      });
    }
  } chain{&client};
  chain.Next();
  ASSERT_TRUE(chain.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(chain.failure.ok()) << chain.failure;
  EXPECT_EQ(chain.left, 0);
  EXPECT_EQ(*Exec(client, {"GET", "chain"}), RedisReply::String("100"));
  // All on one thread, and not this one.
  ASSERT_EQ(chain.threads.size(), 1u);
  EXPECT_NE(*chain.threads.begin(), std::this_thread::get_id());
}

// ---------------------------------------------------------------------------
// Start: refused, unreachable, paused

TEST_F(RedisClientTest, WrongPasswordIsRefusedWithoutEchoingIt) {
  RedisOptions options = OptionsFor(server_);
  options.password = "wrong-secret-1234";
  RedisClient client(options);
  const absl::Status status = client.Start(absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), HasSubstr("Redis"));
  EXPECT_THAT(status.message(), HasSubstr("refused the password (AUTH)"));
  EXPECT_THAT(status.message(), HasSubstr("WRONGPASS"));
  EXPECT_THAT(status.message(), Not(HasSubstr("wrong-secret-1234")));
  EXPECT_THAT(status.message(), Not(HasSubstr(server_.password())));
  EXPECT_FALSE(client.connected());
  EXPECT_EQ(client.last_error().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(client.last_error().message(),
              Not(HasSubstr("wrong-secret-1234")));
  // Commands fail at once, saying why.
  absl::StatusOr<RedisReply> reply = Exec(client, {"PING"});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(reply.status().message(), HasSubstr("unreachable"));
  EXPECT_THAT(reply.status().message(), Not(HasSubstr("wrong-secret-1234")));
}

TEST_F(RedisClientTest, MissingPasswordIsReported) {
  RedisOptions options = OptionsFor(server_);
  options.password.clear();
  RedisClient client(options);
  const absl::Status status = client.Start(absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), HasSubstr("requires a password"));
  EXPECT_THAT(status.message(), HasSubstr("--redis_password_file"));
}

TEST_F(RedisClientTest, RefusedDbIsReported) {
  RedisOptions options = OptionsFor(server_);
  options.db = 5000;  // redis-server has 16
  RedisClient client(options);
  const absl::Status status = client.Start(absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("SELECT 5000"));
}

TEST(RedisClientStartTest, UnreachableAtStartThenConnectsWhenRedisComes) {
  const int port = RedisServer::PickFreePort();
  const std::string password = "late-server-password";
  StateLog log;
  RedisOptions options;
  options.port = port;
  options.password = password;
  options.reconnect_backoff_min = absl::Milliseconds(10);
  options.reconnect_backoff_max = absl::Milliseconds(100);
  options.on_state = log.Callback();
  RedisClient client(options);

  const absl::Status status = client.Start(absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("unreachable"));
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("127.0.0.1:", port)));
  EXPECT_FALSE(client.connected());

  // Not connected: a command fails at once, long before its deadline.
  const absl::Time start = absl::Now();
  absl::StatusOr<RedisReply> reply =
      Exec(client, {"PING"}, /*deadline=*/absl::Seconds(5));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(reply.status().message(), HasSubstr("Redis is unreachable"));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));

  RedisServer server(port, password);
  ASSERT_TRUE(server.status().ok()) << server.status();
  ASSERT_TRUE(log.WaitForCount(1, absl::Seconds(10)));
  EXPECT_THAT(log.events(), ElementsAre(true));
  EXPECT_TRUE(client.connected());
  EXPECT_TRUE(client.last_error().ok());
  EXPECT_EQ(*Exec(client, {"PING"}), RedisReply::Status("PONG"));
}

TEST_F(RedisClientTest, PausedRedisAtStartTimesOutTheConnect) {
  server_.Pause();
  StateLog log;
  RedisOptions options = OptionsFor(server_, &log);
  options.connect_timeout = absl::Milliseconds(300);
  RedisClient client(options);
  const absl::Time start = absl::Now();
  const absl::Status status = client.Start(absl::Seconds(5));
  const absl::Duration took = absl::Now() - start;
  // TCP connects (the kernel's backlog), but nobody answers the PING.
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("connect timeout"));
  EXPECT_GE(took, absl::Milliseconds(290));
  EXPECT_LT(took, absl::Milliseconds(300) + absl::Milliseconds(700));

  server_.Resume();
  ASSERT_TRUE(log.WaitForCount(1, absl::Seconds(10)));
  EXPECT_EQ(*Exec(client, {"PING"}), RedisReply::Status("PONG"));
}

TEST_F(RedisClientTest, StartTwiceAndCommandsOutsideTheRunningClient) {
  RedisClient client(OptionsFor(server_));
  // Before Start(): inline UNAVAILABLE.
  auto before = std::make_shared<Outcome>();
  client.Command({"PING"}, absl::Now() + absl::Seconds(1), Into(before));
  ASSERT_TRUE(before->done.HasBeenNotified());
  EXPECT_EQ(before->result.status().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  EXPECT_EQ(client.Start(absl::Seconds(1)).code(),
            absl::StatusCode::kFailedPrecondition);
  client.Stop();
  EXPECT_FALSE(client.connected());
  client.Stop();  // idempotent

  // After Stop(): inline CANCELLED.
  auto after = std::make_shared<Outcome>();
  client.Command({"PING"}, absl::Now() + absl::Seconds(1), Into(after));
  ASSERT_TRUE(after->done.HasBeenNotified());
  EXPECT_EQ(after->result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(after->thread, std::this_thread::get_id());
  EXPECT_EQ(client.Start(absl::Seconds(1)).code(),
            absl::StatusCode::kFailedPrecondition);
}

// ---------------------------------------------------------------------------
// Failures while running

TEST_F(RedisClientTest, ReconnectsAfterRedisRestartsUnderTraffic) {
  StateLog log;
  RedisClient client(OptionsFor(server_, &log));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  ASSERT_TRUE(log.WaitForCount(1, absl::Seconds(1)));

  std::atomic<bool> stop{false};
  std::atomic<int> issued{0};
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        issued.fetch_add(1);
        absl::StatusOr<RedisReply> reply =
            Exec(client, {"INCR", "traffic"}, absl::Seconds(2));
        if (reply.ok()) {
          ok.fetch_add(1);
        } else if (reply.status().code() == absl::StatusCode::kUnavailable ||
                   reply.status().code() ==
                       absl::StatusCode::kDeadlineExceeded) {
          failed.fetch_add(1);
        } else {
          unexpected.fetch_add(1);
          ADD_FAILURE() << reply.status();
        }
      }
    });
  }
  // Let traffic flow, restart Redis under it, and wait for the reconnect.
  const absl::Time warm_up = absl::Now() + absl::Seconds(10);
  while (ok.load() < 200 && absl::Now() < warm_up) std::this_thread::yield();
  ASSERT_GE(ok.load(), 200);
  ASSERT_TRUE(server_.Restart().ok()) << server_.status();
  ASSERT_TRUE(log.WaitForCount(3, absl::Seconds(10)));
  const int ok_after_reconnect = ok.load();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (ok.load() < ok_after_reconnect + 200 && absl::Now() < give_up) {
    std::this_thread::yield();
  }
  stop = true;
  for (std::thread& thread : threads) thread.join();

  EXPECT_THAT(log.events(), ElementsAre(true, false, true));
  EXPECT_TRUE(client.connected());
  EXPECT_GE(ok.load(), ok_after_reconnect + 200);
  // The restart was noticed by at least one command.
  EXPECT_GT(failed.load(), 0);
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(ok.load() + failed.load(), issued.load());
  // The new Redis started empty: only post-restart INCRs counted.
  absl::StatusOr<RedisReply> count = Exec(client, {"GET", "traffic"});
  ASSERT_TRUE(count.ok()) << count.status();
  int64_t value = 0;
  ASSERT_TRUE(absl::SimpleAtoi(count->str(), &value));
  EXPECT_GT(value, 0);
  EXPECT_LT(value, ok.load());
}

TEST_F(RedisClientTest, PausedRedisFailsCommandsByTheirDeadline) {
  StateLog log;
  RedisOptions options = OptionsFor(server_, &log);
  options.command_timeout = absl::Seconds(1);
  RedisClient client(options);
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  ASSERT_EQ(*Exec(client, {"SET", "k", "v"}), RedisReply::Status("OK"));

  server_.Pause();
  // The caller's deadline (shorter than command_timeout) ends the wait.
  auto outcome = std::make_shared<Outcome>();
  const absl::Time start = absl::Now();
  const absl::Duration deadline = absl::Milliseconds(200);
  client.Command({"GET", "k"}, start + deadline, Into(outcome));
  absl::StatusOr<RedisReply> reply = Wait(outcome);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded)
      << reply.status();
  EXPECT_GE(outcome->finished - start, deadline);
  EXPECT_LT(outcome->finished - start, deadline + absl::Milliseconds(300));

  // No answer within command_timeout: the connection counts as stuck and is
  // dropped, and reconnect attempts time out while Redis stays paused.
  ASSERT_TRUE(log.WaitForCount(2, absl::Seconds(5)));
  EXPECT_THAT(log.events(), ElementsAre(true, false));
  EXPECT_FALSE(client.connected());
  EXPECT_EQ(client.last_error().code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<RedisReply> refused = Exec(client, {"GET", "k"});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);

  server_.Resume();
  ASSERT_TRUE(log.WaitForCount(3, absl::Seconds(10)));
  EXPECT_EQ(*Exec(client, {"GET", "k"}), RedisReply::String("v"));
}

TEST_F(RedisClientTest, CommandTimeoutCapsTheDeadlineAndDropsTheConnection) {
  StateLog log;
  RedisOptions options = OptionsFor(server_, &log);
  options.command_timeout = absl::Milliseconds(300);
  RedisClient client(options);
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());

  server_.Pause();
  auto first = std::make_shared<Outcome>();
  auto second = std::make_shared<Outcome>();
  const absl::Time start = absl::Now();
  client.Command({"PING"}, start + absl::Seconds(30), Into(first));
  client.Command({"PING"}, start + absl::Seconds(30), Into(second));
  absl::StatusOr<RedisReply> reply = Wait(first);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded)
      << reply.status();
  EXPECT_GE(first->finished - start, options.command_timeout);
  EXPECT_LT(first->finished - start,
            options.command_timeout + absl::Milliseconds(300));
  // The other one ends by its own cap or with the dropped connection.
  EXPECT_THAT(Wait(second).status().code(),
              AnyOf(absl::StatusCode::kDeadlineExceeded,
                    absl::StatusCode::kUnavailable));
  EXPECT_LT(second->finished - start,
            options.command_timeout + absl::Milliseconds(300));
  ASSERT_TRUE(log.WaitForCount(2, absl::Seconds(5)));
  EXPECT_FALSE(client.connected());
  EXPECT_THAT(client.last_error().message(), HasSubstr("command timeout"));

  server_.Resume();
  ASSERT_TRUE(log.WaitForCount(3, absl::Seconds(10)));
  EXPECT_EQ(*Exec(client, {"PING"}), RedisReply::Status("PONG"));
  EXPECT_EQ(first->calls.load(), 1);
  EXPECT_EQ(second->calls.load(), 1);
}

TEST_F(RedisClientTest, LateReplyAfterTheDeadlineIsIgnored) {
  RedisClient client(OptionsFor(server_));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  ASSERT_TRUE(Exec(client, {"SET", "k", "after"}).ok());
  // A script that keeps Redis busy for 150 ms, given 30 ms.
  const std::string busy = R"(
    local start = redis.call('TIME')
    while true do
      local now = redis.call('TIME')
      if (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 150000 then
        return 'late'
      end
    end)";
  auto slow = std::make_shared<Outcome>();
  auto next = std::make_shared<Outcome>();
  client.Command({"EVAL", busy, "0"}, absl::Now() + absl::Milliseconds(30),
                 Into(slow));
  client.Command({"GET", "k"}, absl::Now() + absl::Seconds(5), Into(next));
  EXPECT_EQ(Wait(slow).status().code(), absl::StatusCode::kDeadlineExceeded);
  // The late 'late' answer is not mistaken for GET's.
  EXPECT_EQ(*Wait(next), RedisReply::String("after"));
  EXPECT_TRUE(next->finished - slow->finished > absl::Milliseconds(50));
  EXPECT_EQ(slow->calls.load(), 1);
  EXPECT_TRUE(client.connected());
  EXPECT_EQ(*Exec(client, {"PING"}), RedisReply::Status("PONG"));
}

TEST_F(RedisClientTest, ManyConcurrentCommandsFromSeveralThreads) {
  RedisClient client(OptionsFor(server_));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  absl::Mutex mu;
  std::set<int64_t> values;
  int done = 0;
  int failures = 0;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        client.Command({"INCR", "shared"}, absl::Now() + absl::Seconds(10),
                       [&](absl::StatusOr<RedisReply> reply) {
                         absl::MutexLock lock(&mu);
                         ++done;
                         if (reply.ok() && reply->is_integer()) {
                           values.insert(reply->integer());
                         } else {
                           ++failures;
                         }
                       });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  {
    absl::MutexLock lock(&mu);
    auto all_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return done == kThreads * kPerThread;
    };
    ASSERT_TRUE(
        mu.AwaitWithTimeout(absl::Condition(&all_done), absl::Seconds(20)));
    EXPECT_EQ(failures, 0);
    // Every INCR answered once, with its own value.
    EXPECT_EQ(values.size(), static_cast<size_t>(kThreads * kPerThread));
    EXPECT_EQ(*values.begin(), 1);
    EXPECT_EQ(*values.rbegin(), kThreads * kPerThread);
  }
  EXPECT_EQ(*Exec(client, {"GET", "shared"}),
            RedisReply::String(absl::StrCat(kThreads * kPerThread)));
}

// ---------------------------------------------------------------------------
// Scripts

TEST_F(RedisClientTest, EvalUsesEvalshaAndFallsBackToEvalOnNoscript) {
  RedisClient client(OptionsFor(server_));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  const std::string script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  const std::string sha = RedisScriptSha1(script);

  // Not cached yet: EVALSHA gets NOSCRIPT, EVAL runs (and caches) it.
  EXPECT_EQ(*RunEval(client, script, {"counter"}, {"5"}),
            RedisReply::Integer(5));
  EXPECT_EQ(CommandCalls(client, "evalsha"), 1);
  EXPECT_EQ(CommandCalls(client, "eval"), 1);
  EXPECT_EQ(*Exec(client, {"SCRIPT", "EXISTS", sha}),
            RedisReply::Array({RedisReply::Integer(1)}));

  // Cached: EVALSHA alone.
  EXPECT_EQ(*RunEval(client, script, {"counter"}, {"5"}),
            RedisReply::Integer(10));
  EXPECT_EQ(CommandCalls(client, "evalsha"), 2);
  EXPECT_EQ(CommandCalls(client, "eval"), 1);

  // Flushed (as by a Redis restart): the fallback again.
  EXPECT_EQ(*Exec(client, {"SCRIPT", "FLUSH"}), RedisReply::Status("OK"));
  EXPECT_EQ(*RunEval(client, script, {"counter"}, {"5"}),
            RedisReply::Integer(15));
  EXPECT_EQ(CommandCalls(client, "evalsha"), 3);
  EXPECT_EQ(CommandCalls(client, "eval"), 2);

  // Binary-safe keys and arguments, and several of each.
  EXPECT_EQ(
      *RunEval(client, "return {KEYS[1], KEYS[2], ARGV[1]}",
               {std::string("a\0", 2), "b"}, {"\r\n"}),
      RedisReply::Array({RedisReply::String(std::string("a\0", 2)),
                         RedisReply::String("b"), RedisReply::String("\r\n")}));
}

TEST_F(RedisClientTest, EvalErrorsBecomeStatuses) {
  RedisClient client(OptionsFor(server_));
  ASSERT_TRUE(client.Start(absl::Seconds(5)).ok());
  absl::StatusOr<RedisReply> runtime =
      RunEval(client, "return redis.call('NOSUCHCOMMAND')", {}, {});
  EXPECT_FALSE(runtime.ok());
  EXPECT_THAT(runtime.status().message(), HasSubstr("Redis error"));
  absl::StatusOr<RedisReply> syntax = RunEval(client, "return (", {}, {});
  EXPECT_FALSE(syntax.ok());
  EXPECT_THAT(syntax.status().message(), HasSubstr("Redis error"));
  EXPECT_THAT(syntax.status().message(), Not(HasSubstr("NOSCRIPT")));
  EXPECT_EQ(*Exec(client, {"PING"}), RedisReply::Status("PONG"));
}

// ---------------------------------------------------------------------------
// Shutdown

TEST_F(RedisClientTest, DestructionCancelsCommandsInFlight) {
  RedisOptions options = OptionsFor(server_);
  options.command_timeout = absl::Seconds(30);
  auto client = std::make_unique<RedisClient>(options);
  ASSERT_TRUE(client->Start(absl::Seconds(5)).ok());
  server_.Pause();  // nothing will be answered
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < 100; ++i) {
    outcomes.push_back(std::make_shared<Outcome>());
    client->Command({"INCR", "never"}, absl::Now() + absl::Seconds(30),
                    Into(outcomes.back()));
  }
  const absl::Time start = absl::Now();
  client.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  for (const std::shared_ptr<Outcome>& outcome : outcomes) {
    ASSERT_TRUE(outcome->done.HasBeenNotified());
    EXPECT_EQ(outcome->calls.load(), 1);
    EXPECT_EQ(outcome->result.status().code(), absl::StatusCode::kCancelled);
  }
}

TEST_F(RedisClientTest, DestructionUnderLoadCallsEveryCallbackOnce) {
  auto client = std::make_unique<RedisClient>(OptionsFor(server_));
  ASSERT_TRUE(client->Start(absl::Seconds(5)).ok());
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < 2000; ++i) {
    outcomes.push_back(std::make_shared<Outcome>());
    client->Command({"INCR", "load"}, absl::Now() + absl::Seconds(10),
                    Into(outcomes.back()));
  }
  client.reset();
  int ok = 0;
  for (const std::shared_ptr<Outcome>& outcome : outcomes) {
    ASSERT_TRUE(outcome->done.HasBeenNotified());
    EXPECT_EQ(outcome->calls.load(), 1);
    if (outcome->result.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(outcome->result.status().code(), absl::StatusCode::kCancelled);
    }
  }
  // What Redis counted is what the client reported done, or more (commands
  // it ran whose answers the shutdown did not wait for).
  RedisClient check(OptionsFor(server_));
  ASSERT_TRUE(check.Start(absl::Seconds(5)).ok());
  absl::StatusOr<RedisReply> count = Exec(check, {"GET", "load"});
  ASSERT_TRUE(count.ok());
  int64_t value = 0;
  if (!count->is_nil()) {
    ASSERT_TRUE(absl::SimpleAtoi(count->str(), &value));
  }
  EXPECT_GE(value, ok);
}

}  // namespace
}  // namespace campaign_gateway
