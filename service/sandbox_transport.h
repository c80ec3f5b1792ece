// Sandbox mode's upstream: an in-process simulation of Connyline at the HTTP
// level, so sandbox calls take the very same translation path as real ones.
// It answers like Connyline's documentation says, records accepted campaigns
// in memory, and never sends an SMS. Creates on the fault lists (990000 + an
// HTTP status) fail the way Connyline would, so callers can test their error
// handling without a Connyline account.
#ifndef CAMPAIGN_GATEWAY_SERVICE_SANDBOX_TRANSPORT_H_
#define CAMPAIGN_GATEWAY_SERVICE_SANDBOX_TRANSPORT_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <utility>
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

// A create on one of these list ids fails as if Connyline had answered HTTP
// `list_id - 990000` (README "Sandbox fault lists"). Two are special:
inline constexpr int64_t kSandboxFaultListBase = 990000;
// ... never answered: the call's deadline decides (DEADLINE_EXCEEDED);
inline constexpr int64_t kSandboxSilentList = 990504;
// ... answered 201 with a body that is not the documented JSON.
inline constexpr int64_t kSandboxMalformedList = 990999;
// The Retry-After of the sandbox's 429, in seconds.
inline constexpr int kSandboxRetryAfterSeconds = 30;

// Pure: Connyline's answer to `request` at local time `now` (tests use it
// directly), or nullopt for a request Connyline never answers. Accepted
// creates are appended to `*accepted` as their JSON body.
std::optional<HttpResponse> SimulateConnyline(
    const HttpRequest& request, const absl::TimeZone& zone, absl::Time now,
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

  // Requests held unanswered (the silent fault list) until their deadline,
  // their Cancel() or the transport's end.
  size_t Unanswered() const;

 private:
  struct Pending {
    uint64_t id;
    HttpRequest request;
    absl::Time deadline;
    Callback done;
  };
  void Run();
  // Answers a request taken from the queue, or holds it (silent list).
  void Answer(Pending pending, bool cancelled);
  // Takes the held requests that are due (cancelled, past their deadline,
  // or all when stopping) out of `held_`, with the error each gets.
  std::vector<std::pair<Pending, TransportError>> TakeDueHeld(absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time EarliestHeldDeadline() const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const absl::TimeZone zone_;
  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<Pending> held_ ABSL_GUARDED_BY(mu_);  // never answered
  absl::flat_hash_set<uint64_t> cancelled_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> accepted_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t answering_ ABSL_GUARDED_BY(mu_) = 0;  // taken from queue_, not done
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_SANDBOX_TRANSPORT_H_
