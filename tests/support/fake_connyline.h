// FakeConnyline: a real HTTP/1.1 server on 127.0.0.1 that plays Connyline's
// REST API (../shared/upstream) for integration tests, and can be scripted to
// misbehave (delays, dropped connections, truncated or endless answers).
//
//   FakeConnyline server;                       // listening on an ephemeral
//   port transport.Start({"GET", server.BaseUrl() +
//   "/api/v1/acme/lists/get-all/",
//                    {{"Authorization", "Bearer t"}}}, ...);
//   server.WaitForRequests(1, absl::Seconds(5));
//   EXPECT_EQ(server.Requests()[0].target, "/api/v1/acme/lists/get-all/");
//
// Replies come from, in order: the Enqueue() FIFO, else the handler
// (SetHandler), else DefaultConnyline(). One thread serves each connection,
// so slow replies never hold up other connections; keep-alive is supported.
// Request bodies must use Content-Length (chunked uploads are answered 501).
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_FAKE_CONNYLINE_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_FAKE_CONNYLINE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace campaign_gateway::testing_util {

// One request as the server received it.
struct RecordedRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, e.g. "/api/v1/acme/lists/get-all/"
  // In arrival order; names lower-cased, values with surrounding blanks
  // trimmed.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // byte-exact
  // Which accepted connection carried it (1 for the first connection).
  int connection = 0;

  // The first header named `name` (lower-case), if any.
  std::optional<std::string> Header(absl::string_view name) const;
  // `target` without its query string.
  absl::string_view Path() const;
};

// What the server does with a request.
struct Reply {
  enum class Action {
    // Answer with status, headers and body.
    kRespond,
    // Close the connection without sending a single byte.
    kCloseWithoutAnswer,
    // Send the status line and headers announcing the full body, then half of
    // the body (64 filler bytes if `body` is empty), then reset the
    // connection (RST).
    kResetMidBody,
    // Like kResetMidBody but, instead of resetting, keep the connection open
    // without sending more until the client goes away or the server stops.
    kNeverEnd,
  };

  int status = 200;
  // Sent as given. Content-Length is added unless present here (a given one
  // is sent as is, even if it lies) or `chunked` is set.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Waited before acting (after the request was recorded). Other connections
  // are not held up; Stop() or the client going away ends the wait.
  absl::Duration delay = absl::ZeroDuration();
  Action action = Action::kRespond;
  // Send the body with Transfer-Encoding: chunked, so the client cannot know
  // its length in advance.
  bool chunked = false;
  // If non-zero, an interim 1xx response (e.g. 100 or 103) carrying
  // `interim_headers` precedes the real one.
  int interim_status = 0;
  std::vector<std::pair<std::string, std::string>> interim_headers;
};

// A JSON reply, with Content-Type: application/json.
Reply JsonReply(int status, std::string json);

// A loopback port on which nothing listens, for connection-refused tests.
// The socket stays bound (never listening) for the object's lifetime: a
// connect is refused at once, and no parallel test or server can take the
// port meanwhile (a released port can be, and a frozen listener there turns
// "refused" into a hang).
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:PORT".
  std::string Url() const;

 private:
  int fd_ = -1;
  int port_ = 0;
};

class FakeConnyline {
 public:
  using Handler = std::function<Reply(const RecordedRequest&)>;

  // Starts listening on 127.0.0.1 on an ephemeral port; aborts the test
  // binary if it cannot.
  FakeConnyline();
  ~FakeConnyline();  // Stop()

  FakeConnyline(const FakeConnyline&) = delete;
  FakeConnyline& operator=(const FakeConnyline&) = delete;

  int Port() const { return port_; }
  // "http://127.0.0.1:PORT", no trailing slash.
  std::string BaseUrl() const;

  // Replaces the handler; may be called at any time, from any thread. It is
  // called on connection threads, possibly concurrently, without any server
  // lock held, so it may block or call the server's methods. nullptr restores
  // DefaultConnyline.
  void SetHandler(Handler handler);
  // Queues a reply for the next request received, ahead of the handler.
  // Queued replies go to requests in the order Requests() lists them, so
  // after WaitForRequests(n) the first n requests have taken theirs.
  void Enqueue(Reply reply);

  // Connyline as documented:
  //   GET  /api/v1/{acc}/lists/get-all/      200 {"data":[{"list_id":123,...}]}
  //   POST /api/v1/{acc}/campaigns/sms/create
  //        201 {"success":true,"message":"SMS Campaign created successfully.",
  //             "data":{campaign_name, sender, list_id, "start": start+":00",
  //                     "created_at":"2026-02-24 09:15:00"}}
  // Without "Authorization: Bearer ..." both answer 400 "NO Token Found."; a
  // create whose JSON lacks a field (or has the wrong type) answers 400
  // "Necessary data is missing."; anything else 404.
  static Reply DefaultConnyline(const RecordedRequest& request);

  // Every request fully received so far, in arrival order.
  std::vector<RecordedRequest> Requests() const;
  int RequestCount() const;
  // True once at least `n` requests were received; false after `timeout`.
  bool WaitForRequests(int n, absl::Duration timeout) const;
  // TCP connections accepted so far.
  int ConnectionCount() const;
  // The peak number of requests received and not yet answered at once.
  int MaxConcurrentRequests() const;
  // Requests whose client went away before the reply was fully sent (the
  // visible effect of a client-side cancel or timeout).
  int AbandonedRequestCount() const;
  bool WaitForAbandonedRequests(int n, absl::Duration timeout) const;

  // Stops listening, ends every connection (including pending delays and
  // kNeverEnd replies) and joins all threads. Idempotent.
  void Stop();

 private:
  struct Connection {
    std::thread thread;
    std::atomic<bool> finished{false};
  };

  void AcceptLoop();
  void Serve(int fd, int connection_id, std::atomic<bool>* finished);
  // Records `request` and picks its reply (queue, handler, default).
  Reply Record(const RecordedRequest& request);
  // Sends `reply`; false if the connection must be closed afterwards.
  bool Answer(int fd, const RecordedRequest& request, const Reply& reply);
  void FinishRequest(bool abandoned);

  int listen_fd_ = -1;
  // Readable once Stop() begins; every blocking wait also polls it.
  int stop_fd_ = -1;
  int port_ = 0;
  std::thread accept_thread_;

  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  Handler handler_ ABSL_GUARDED_BY(mu_);
  std::deque<Reply> queued_ ABSL_GUARDED_BY(mu_);
  std::vector<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::list<Connection> connections_ ABSL_GUARDED_BY(mu_);
  int connection_count_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int abandoned_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_FAKE_CONNYLINE_H_
