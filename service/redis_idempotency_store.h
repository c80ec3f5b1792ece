// The idempotency store shared by every replica: request_id keys live in
// Redis, so a repeat that lands on another pod, or after a restart, gets the
// first call's result instead of sending again (README, "Exactly-once
// creation"). Each operation is one Lua script, so it is atomic in Redis.
//
// Per key, namespaced by account (two accounts may share one Redis):
//   campaign-gateway:{ACCOUNT}:idem:REQUEST_ID   a hash: fp (content
//       fingerprint), state (pending | done | forgotten | unknown), result (a
//       serialised google.rpc.Status); TTL --idempotency_ttl
//   campaign-gateway:{ACCOUNT}:lease:REQUEST_ID  the leader's token; expires
//       soon after the leader's deadline. A pending key whose lease is gone
//       had a leader that died mid-create: it becomes OUTCOME_UNKNOWN.
// Followers poll (20 ms doubling to 100 ms) until the key is done or their
// deadline; those on the leader's own replica are woken as soon as its
// result is stored. Any Redis failure fails the claim closed: kUnavailable,
// nothing is sent.
#ifndef CAMPAIGN_GATEWAY_SERVICE_REDIS_IDEMPOTENCY_STORE_H_
#define CAMPAIGN_GATEWAY_SERVICE_REDIS_IDEMPOTENCY_STORE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/idempotency_store.h"
#include "service/redis_client.h"
#include "service/timer.h"

namespace campaign_gateway {

class RedisIdempotencyStore final : public IdempotencyStore {
 public:
  struct Options {
    std::string account;  // namespaces the keys
    absl::Duration ttl = absl::Hours(24);
    // A follower's polling interval: doubles from min to max.
    absl::Duration poll_min = absl::Milliseconds(20);
    absl::Duration poll_max = absl::Milliseconds(100);
    // How long a forgotten key (a failure that sent nothing) still answers
    // the followers that waited for it; new claims take it over at once.
    absl::Duration forgotten_ttl = absl::Seconds(10);
  };
  // `redis` and `timers` must outlive the store.
  RedisIdempotencyStore(Options options, RedisClient& redis,
                        TimerQueue& timers);

  void Join(Claim claim, Callback done) override;
  using IdempotencyStore::Finish;
  void Finish(absl::string_view key, absl::string_view lease,
              const Result& result, bool remember,
              absl::AnyInvocable<void() &&> recorded) override;
  int writes_in_flight() const override { return writes_in_flight_.load(); }

  // The keys of `request_id` (for tests and operators).
  std::string RecordKey(absl::string_view request_id) const;
  std::string LeaseKey(absl::string_view request_id) const;

 private:
  struct Pending;
  void Run(std::shared_ptr<Pending> pending, bool claim);
  void OnReply(std::shared_ptr<Pending> pending,
               absl::StatusOr<RedisReply> reply);
  void Unregister(const Pending& pending);
  void WakeWaiters(const std::string& key);

  const Options options_;
  RedisClient& redis_;
  TimerQueue& timers_;
  std::atomic<int> writes_in_flight_{0};
  // Followers polling on this replica, by request_id.
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<std::weak_ptr<Pending>>> waiting_
      ABSL_GUARDED_BY(mu_);
};

// The answer to repeats of a key whose leader died mid-create: ABORTED,
// OUTCOME_UNKNOWN, request_sent=unknown.
absl::Status OutcomeUnknownError();
// A shared store that cannot answer: UNAVAILABLE,
// IDEMPOTENCY_STORE_UNAVAILABLE, request_sent=false.
absl::Status StoreUnavailableError(const absl::Status& cause);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_REDIS_IDEMPOTENCY_STORE_H_
