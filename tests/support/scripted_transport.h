// An in-memory HttpTransport for unit tests of the logic class: records
// every request and completes it, on its own thread, with whatever the test
// scripts. Honours the HttpTransport contract (never completes inside
// Start(), exactly one callback per request).
#ifndef CAMPAIGN_GATEWAY_TESTS_SUPPORT_SCRIPTED_TRANSPORT_H_
#define CAMPAIGN_GATEWAY_TESTS_SUPPORT_SCRIPTED_TRANSPORT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "service/http_types.h"

namespace campaign_gateway::testing_util {

class ScriptedTransport final : public HttpTransport {
 public:
  struct Started {
    uint64_t id;
    HttpRequest request;
    absl::Time deadline;
  };

  // Answers every request with `answer(request)`; with hold(true) requests
  // wait until Release() or Cancel().
  explicit ScriptedTransport(
      std::function<HttpResult(const HttpRequest&)> answer);
  ~ScriptedTransport() override;

  uint64_t Start(HttpRequest request, absl::Time deadline,
                 Callback done) override;
  void Cancel(uint64_t id) override;

  void Hold(bool hold);
  void ReleaseAll();
  std::vector<Started> started() const;
  std::vector<uint64_t> cancelled() const;
  // Waits until `n` requests were started.
  bool WaitForStarted(size_t n, absl::Duration timeout) const;

 private:
  struct Pending {
    uint64_t id;
    HttpRequest request;
    Callback done;
    bool cancelled = false;
  };
  void Run();

  std::function<HttpResult(const HttpRequest&)> answer_;
  mutable absl::Mutex mu_;
  std::deque<Pending> ready_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> held_ ABSL_GUARDED_BY(mu_);
  std::vector<Started> started_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> cancelled_ ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::thread worker_;
};

}  // namespace campaign_gateway::testing_util

#endif  // CAMPAIGN_GATEWAY_TESTS_SUPPORT_SCRIPTED_TRANSPORT_H_
