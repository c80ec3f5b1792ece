#include "service/log.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "grpc/support/log.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_env.h"

namespace campaign_gateway {
namespace {

// Runs `write` with stdout redirected to a file; returns what it wrote.
template <typename Write>
std::string CaptureStdout(Write write) {
  const std::string path =
      testing_util::TempDir() + "/log_test_" + std::to_string(getpid());
  std::fflush(stdout);
  const int saved = dup(STDOUT_FILENO);
  EXPECT_NE(std::freopen(path.c_str(), "w", stdout), nullptr);
  write();
  std::fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::remove(path.c_str());
  return text.str();
}

TEST(LogRateLimitTest, OneLinePerIntervalWithTheCountOfThoseHeldBack) {
  LogRateLimit limit(absl::Seconds(1));
  const absl::Time start = absl::FromUnixSeconds(1000);
  int64_t suppressed = -1;
  EXPECT_TRUE(limit.Allow(start, &suppressed));
  EXPECT_EQ(suppressed, 0);
  EXPECT_FALSE(limit.Allow(start + absl::Milliseconds(500), &suppressed));
  EXPECT_FALSE(limit.Allow(start + absl::Milliseconds(999), &suppressed));
  EXPECT_TRUE(limit.Allow(start + absl::Seconds(1), &suppressed));
  EXPECT_EQ(suppressed, 2);
  EXPECT_TRUE(limit.Allow(start + absl::Seconds(3), &suppressed));
  EXPECT_EQ(suppressed, 0);
}

TEST(LogJsonTest, WritesOneJsonObjectPerLine) {
  const std::string out = CaptureStdout([] {
    LogJson("info", "listening", {{"port", 50051}});
    LogJson("warning", "second\nline", {{"k", "v"}});
  });
  std::istringstream lines(out);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  nlohmann::json first = nlohmann::json::parse(line);
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["msg"], "listening");
  EXPECT_EQ(first["port"], 50051);
  EXPECT_EQ(first["ts"].get<std::string>().size(), 24u);  // ...T..:..:..mmmZ
  ASSERT_TRUE(std::getline(lines, line));
  // A newline inside a message stays escaped: still one line.
  EXPECT_EQ(nlohmann::json::parse(line)["msg"], "second\nline");
  EXPECT_FALSE(std::getline(lines, line));
}

TEST(LogJsonTest, InvalidUtf8FromOutsideIsReplacedNotFatal) {
  const std::string out =
      CaptureStdout([] { LogJson("info", "bad \xff\xfe bytes"); });
  nlohmann::json json = nlohmann::json::parse(out);
  EXPECT_NE(json["msg"].get<std::string>().find("bad "), std::string::npos);
}

TEST(SendLibraryLogsToJsonTest, GrpcLinesBecomeJsonOnStdout) {
  SendLibraryLogsToJson();
  // What grpc_init() does first; until then gRPC logs nothing.
  gpr_log_verbosity_init();
  const std::string out =
      CaptureStdout([] { gpr_log(GPR_ERROR, "grpc says %d", 42); });
  const nlohmann::json json = nlohmann::json::parse(out);
  EXPECT_EQ(json["level"], "error");
  EXPECT_EQ(json["msg"], "grpc says 42");
  EXPECT_EQ(json["source"], "grpc");
}

// Any caller can make libprotobuf complain (invalid UTF-8 in a string
// field): one line, then silence for a minute.
TEST(SendLibraryLogsToJsonTest, ProtobufLinesAreJsonAtMostOnceAMinute) {
  SendLibraryLogsToJson();
  const std::string out = CaptureStdout([] {
    GOOGLE_LOG(ERROR) << "first";
    GOOGLE_LOG(ERROR) << "second";
  });
  std::istringstream lines(out);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line)) << out;
  const nlohmann::json json = nlohmann::json::parse(line);
  EXPECT_EQ(json["level"], "error");
  EXPECT_EQ(json["msg"], "first");
  EXPECT_EQ(json["source"], "protobuf");
  EXPECT_EQ(json["suppressed_since_last"], 0);
  EXPECT_FALSE(std::getline(lines, line)) << out;
}

}  // namespace
}  // namespace campaign_gateway
