// Exactly-once campaign creation: the results of creates by their
// idempotency key (CreateSmsCampaignRequest.request_id). The first call with
// a key leads and sends the create; concurrent repeats wait for its result;
// later repeats get the remembered result; the same key with other content
// is refused.
//
// The store is an interface so a shared store (e.g. Redis) can serve several
// replicas without touching the Gateway; today's InMemoryIdempotencyStore is
// per process (see README, "Exactly-once creation").
#ifndef CAMPAIGN_GATEWAY_SERVICE_IDEMPOTENCY_STORE_H_
#define CAMPAIGN_GATEWAY_SERVICE_IDEMPOTENCY_STORE_H_

#include <cstddef>
#include <functional>
#include <list>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.pb.h"

namespace campaign_gateway {

class IdempotencyStore {
 public:
  using Result = absl::StatusOr<campaigns::v1::CreateSmsCampaignResponse>;
  using Waiter = absl::AnyInvocable<void(const Result&) &&>;
  enum class Role {
    kLeader,    // send the create, then call Finish()
    kFollower,  // `waiter` gets the leader's result (at once if known)
    kConflict,  // the key belongs to other content; `waiter` is dropped
  };

  virtual ~IdempotencyStore() = default;

  // `fingerprint` identifies the content (equal content, equal fingerprint).
  virtual Role Join(absl::string_view key, absl::string_view fingerprint,
                    Waiter waiter) = 0;
  // Completes the leader of `key`: every waiter gets `result`. With
  // `remember` the result answers repeats for the TTL; without, the key is
  // forgotten, so a repeat sends again (for failures that sent nothing).
  virtual void Finish(absl::string_view key, const Result& result,
                      bool remember) = 0;
};

// A stable fingerprint (SHA-256, hex) of a create's content.
std::string ContentFingerprint(absl::string_view account_code,
                               absl::string_view body);

class InMemoryIdempotencyStore final : public IdempotencyStore {
 public:
  struct Options {
    absl::Duration ttl = absl::Hours(24);
    // Remembered results beyond this are evicted, oldest first. Keys in
    // flight are never evicted (they are bounded by --max_inflight).
    size_t max_bytes = 64 << 20;
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };
  explicit InMemoryIdempotencyStore(Options options);

  Role Join(absl::string_view key, absl::string_view fingerprint,
            Waiter waiter) override;
  void Finish(absl::string_view key, const Result& result,
              bool remember) override;

  size_t bytes() const;
  size_t size() const;

 private:
  struct Entry {
    std::string fingerprint;
    bool done = false;
    Result result;
    std::vector<Waiter> waiters;
    absl::Time expires;
    size_t bytes = 0;
    std::list<std::string>::iterator order;  // in done_order_ once done
  };
  void EvictLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Keys of finished entries, oldest first (TTLs are equal, so this is also
  // expiry order).
  std::list<std::string> done_order_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_IDEMPOTENCY_STORE_H_
