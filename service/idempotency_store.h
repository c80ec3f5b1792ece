// Exactly-once campaign creation: the results of creates by their
// idempotency key (CreateSmsCampaignRequest.request_id). The first call with
// a key leads and sends the create; concurrent repeats wait for its result;
// later repeats get the remembered result; the same key with other content
// is refused.
//
// The store is an interface: InMemoryIdempotencyStore serves one process
// (the default, sandbox mode, tests); RedisIdempotencyStore is shared by
// every replica (see README, "Exactly-once creation").
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

  // A create's claim on its key.
  struct Claim {
    std::string key;          // the request_id
    std::string fingerprint;  // ContentFingerprint() of what it creates
    // A follower waits for the first call's result until then.
    absl::Time deadline = absl::InfiniteFuture();
    // The longest a leader may take to Finish(). A shared store answers
    // repeats with OUTCOME_UNKNOWN once a lease ends without a result: the
    // leader's process died mid-create, so whether it sent is not known.
    absl::Time lease_until = absl::InfiniteFuture();
    // Whether the caller still waits: a follower that is no longer wanted
    // (its caller left) stops waiting early.
    std::function<bool()> wanted = [] { return true; };
  };
  enum class Role {
    kLeader,       // send the create, then call Finish() with `lease`
    kReplay,       // `result` is the first call's: send nothing
    kConflict,     // the key belongs to other content
    kUnavailable,  // the store cannot answer (`result` says why): send nothing
  };
  struct Outcome {
    Role role = Role::kUnavailable;
    Result result = absl::UnknownError("no result");
    std::string lease;  // kLeader: the token Finish() takes
  };
  using Callback = absl::AnyInvocable<void(Outcome) &&>;

  virtual ~IdempotencyStore() = default;

  // Runs `done` exactly once: inline or on another thread. A follower of a
  // leader still at work gets kReplay when the leader finishes, or an error
  // once `claim.deadline` has passed (stores may give up there or leave the
  // deadline to the caller).
  virtual void Join(Claim claim, Callback done) = 0;
  // Completes the leader of `key`: followers get `result`. With `remember`
  // the result answers repeats for the TTL; without, the key is forgotten,
  // so a repeat sends again (for failures that sent nothing). Never blocks;
  // a shared store that cannot record it lets the lease answer for it.
  // `recorded` runs once the store has it (or failed to), inline or on
  // another thread: answering the leader's caller then means that caller's
  // own repeat, wherever it lands, finds the result.
  virtual void Finish(absl::string_view key, absl::string_view lease,
                      const Result& result, bool remember,
                      absl::AnyInvocable<void() &&> recorded) = 0;
  void Finish(absl::string_view key, absl::string_view lease,
              const Result& result, bool remember) {
    Finish(key, lease, result, remember, [] {});
  }
  // Finish() writes not yet acknowledged (shutdown waits for them).
  virtual int writes_in_flight() const { return 0; }
};

// A create's result as bytes and back (a google.rpc.Status whose first
// detail is the response when OK), for stores that keep results outside the
// process.
std::string SerializeResult(const IdempotencyStore::Result& result);
IdempotencyStore::Result ParseResult(absl::string_view bytes);

// A stable fingerprint (SHA-256, hex) of a create's content.
std::string ContentFingerprint(absl::string_view account_code,
                               absl::string_view body);

class InMemoryIdempotencyStore final : public IdempotencyStore {
 public:
  struct Options {
    absl::Duration ttl = absl::Hours(24);
    // Memory for keys and their results, counted as the heap holds them
    // (table slots, strings, allocator overheads). When it is full of
    // unexpired keys, a new key is refused (RESOURCE_EXHAUSTED,
    // IDEMPOTENCY_STORE_FULL, nothing sent): a live key is never evicted,
    // since its repeat would then send a second create. Expired keys go.
    size_t max_bytes = 64 << 20;
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };
  explicit InMemoryIdempotencyStore(Options options);

  void Join(Claim claim, Callback done) override;
  using IdempotencyStore::Finish;
  void Finish(absl::string_view key, absl::string_view lease,
              const Result& result, bool remember,
              absl::AnyInvocable<void() &&> recorded) override;

  // The memory the store accounts for (what max_bytes bounds).
  size_t bytes() const;
  size_t size() const;

 private:
  struct Entry {
    std::string fingerprint;
    bool done = false;
    Result result;
    std::vector<Callback> waiters;
    absl::Time expires;
    size_t bytes = 0;
    std::list<std::string>::iterator order;  // in done_order_ once done
  };
  using Entries = absl::flat_hash_map<std::string, Entry>;
  // The leader's outcome: remembered, or the key forgotten.
  void RecordLocked(Entries::iterator it, const Result& result, bool remember)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops expired keys only.
  void EvictLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  size_t BytesLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static size_t TableBytes(size_t capacity);
  // The refusal of a new key while the store is full.
  absl::Status FullError(absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  Entries entries_ ABSL_GUARDED_BY(mu_);
  // Keys of finished entries, oldest first (TTLs are equal, so this is also
  // expiry order).
  std::list<std::string> done_order_ ABSL_GUARDED_BY(mu_);
  // Per-entry heap bytes; the table's own slots are added by BytesLocked().
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_IDEMPOTENCY_STORE_H_
