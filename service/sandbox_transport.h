// Sandbox mode's upstream: an in-process simulation of Connyline at the HTTP
// level, so sandbox calls take the very same translation path as real ones.
// It answers like Connyline's documentation says, records accepted campaigns
// in memory, and never sends an SMS.
#ifndef CAMPAIGN_GATEWAY_SERVICE_SANDBOX_TRANSPORT_H_
#define CAMPAIGN_GATEWAY_SERVICE_SANDBOX_TRANSPORT_H_

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/http_types.h"

namespace campaign_gateway {

// The token the gateway presents to its sandbox (not a secret).
inline constexpr absl::string_view kSandboxToken = "sandbox-token";

struct SandboxList {
  int64_t list_id;
  std::string name;
};

// The sandbox's contact lists.
const std::vector<SandboxList>& SandboxLists();

// Pure: Connyline's answer to `request` at local time `now` (tests use it
// directly). Accepted creates are appended to `*accepted` as their JSON body.
HttpResponse SimulateConnyline(const HttpRequest& request,
                               const absl::TimeZone& zone, absl::Time now,
                               std::vector<std::string>* accepted);

class SandboxTransport final : public HttpTransport {
 public:
  explicit SandboxTransport(absl::TimeZone zone);
  ~SandboxTransport() override;

  uint64_t Start(HttpRequest request, absl::Time deadline,
                 Callback done) override;
  void Cancel(uint64_t id) override;

  // JSON bodies of the campaigns accepted so far (the most recent 1,000).
  std::vector<std::string> AcceptedCampaigns() const;

 private:
  struct Pending {
    uint64_t id;
    HttpRequest request;
    absl::Time deadline;
    Callback done;
  };
  void Run();

  const absl::TimeZone zone_;
  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint64_t> cancelled_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> accepted_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_SANDBOX_TRANSPORT_H_
