#include "service/redis_idempotency_store.h"

#include <algorithm>
#include <atomic>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/errors.h"

namespace campaign_gateway {
namespace {

// KEYS: record, lease. ARGV: fingerprint, ttl ms, lease ms, lease token,
// "1" to claim (a new call) or "0" to poll (a follower). Answers {"lead"},
// {"conflict"}, {"wait"}, {"gone"} (poll: the key vanished), {"unknown"} (a
// leader's lease ended without a result; recorded as state "unknown") or
// {"done", result}.
constexpr char kJoinScript[] = R"lua(
local fp = redis.call('HGET', KEYS[1], 'fp')
local state = redis.call('HGET', KEYS[1], 'state')
local claim = ARGV[5] == '1'
if (not fp) or (claim and state == 'forgotten') then
  if not claim then return {'gone'} end
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'pending')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
  return {'lead'}
end
if fp ~= ARGV[1] then return {'conflict'} end
if state == 'unknown' then return {'unknown'} end
if state ~= 'pending' then
  return {'done', redis.call('HGET', KEYS[1], 'result')}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'wait'} end
redis.call('HSET', KEYS[1], 'state', 'unknown')
return {'unknown'}
)lua";

// KEYS: record, lease. ARGV: lease token, result, "1" to remember, ttl ms,
// forgotten ttl ms. Records the result unless the claim is no longer this
// leader's (another outcome was recorded, e.g. OUTCOME_UNKNOWN after the
// lease ended).
constexpr char kFinishScript[] = R"lua(
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('HSET', KEYS[1], 'state', 'forgotten', 'result', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
redis.call('DEL', KEYS[2])
return 1
)lua";

std::string Millis(absl::Duration d) {
  return absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

std::string NewLeaseToken() {
  thread_local absl::BitGen random;
  const uint64_t high = absl::Uniform<uint64_t>(random);
  const uint64_t low = absl::Uniform<uint64_t>(random);
  return absl::StrCat(absl::Hex(high, absl::kZeroPad16),
                      absl::Hex(low, absl::kZeroPad16));
}

}  // namespace

absl::Status OutcomeUnknownError() {
  return MakeError(
      absl::StatusCode::kAborted,
      "the first call with this request_id stopped before Connyline's answer "
      "was recorded (its gateway replica was lost mid-create): whether the "
      "campaign was created is unknown. Check in Connyline before creating "
      "it again with a new request_id",
      reason::kOutcomeUnknown,
      {{std::string(metadata_key::kRequestSent), "unknown"}});
}

absl::Status StoreUnavailableError(const absl::Status& cause) {
  absl::Status status = MakeError(
      absl::StatusCode::kUnavailable,
      absl::StrCat("the idempotency store (Redis) cannot answer, so a create "
                   "with a request_id is not sent: ",
                   cause.message()),
      reason::kIdempotencyStoreUnavailable,
      {{std::string(metadata_key::kRequestSent), "false"}});
  AttachRetryInfo(status, absl::Seconds(1));
  return status;
}

// One Join: its claim, callback and polling state. Replies run on the
// Redis client's one loop thread, so only `finished` is shared with the
// timer thread.
struct RedisIdempotencyStore::Pending {
  Claim claim;
  Callback done;
  std::string lease = NewLeaseToken();
  absl::Duration poll_interval;
  std::atomic<bool> finished{false};
  bool registered = false;  // in waiting_, to be woken by a local leader
  uint64_t timer = 0;       // the next poll
};

RedisIdempotencyStore::RedisIdempotencyStore(Options options,
                                             RedisClient& redis,
                                             TimerQueue& timers)
    : options_(std::move(options)), redis_(redis), timers_(timers) {}

std::string RedisIdempotencyStore::RecordKey(
    absl::string_view request_id) const {
  // {ACCOUNT} is a hash tag: one account's keys share a Redis Cluster slot.
  return absl::StrCat("campaign-gateway:{", options_.account,
                      "}:idem:", request_id);
}

std::string RedisIdempotencyStore::LeaseKey(
    absl::string_view request_id) const {
  return absl::StrCat("campaign-gateway:{", options_.account,
                      "}:lease:", request_id);
}

void RedisIdempotencyStore::Join(Claim claim, Callback done) {
  auto pending = std::make_shared<Pending>();
  pending->claim = std::move(claim);
  pending->done = std::move(done);
  pending->poll_interval = options_.poll_min;
  Run(std::move(pending), /*claim=*/true);
}

void RedisIdempotencyStore::Run(std::shared_ptr<Pending> pending, bool claim) {
  const Claim& c = pending->claim;
  const absl::Duration lease = c.lease_until - absl::Now();
  redis_.Eval(kJoinScript, {RecordKey(c.key), LeaseKey(c.key)},
              {c.fingerprint, Millis(options_.ttl), Millis(lease),
               pending->lease, claim ? "1" : "0"},
              c.deadline,
              [this, pending](absl::StatusOr<RedisReply> reply) mutable {
                OnReply(std::move(pending), std::move(reply));
              });
}

void RedisIdempotencyStore::OnReply(std::shared_ptr<Pending> pending,
                                    absl::StatusOr<RedisReply> reply) {
  auto finish = [this, &pending](Outcome outcome) {
    if (pending->finished.exchange(true)) return;
    if (pending->registered) Unregister(*pending);
    std::move(pending->done)(std::move(outcome));
  };
  if (pending->finished.load()) return;  // a woken poll answered first
  if (!reply.ok()) {
    return finish({.role = Role::kUnavailable,
                   .result = StoreUnavailableError(reply.status())});
  }
  const std::vector<RedisReply>& fields = reply->elements();
  const std::string verdict = fields.empty() ? "" : fields[0].str();
  if (verdict == "lead") {
    return finish({.role = Role::kLeader, .lease = pending->lease});
  }
  if (verdict == "conflict") return finish({.role = Role::kConflict});
  if (verdict == "unknown") {
    return finish({.role = Role::kReplay, .result = OutcomeUnknownError()});
  }
  if (verdict == "done" && fields.size() == 2) {
    return finish(
        {.role = Role::kReplay, .result = ParseResult(fields[1].str())});
  }
  if (verdict == "gone") {  // forgotten and expired: try to lead
    return Run(std::move(pending), /*claim=*/true);
  }
  if (verdict != "wait") {
    return finish(
        {.role = Role::kUnavailable,
         .result = StoreUnavailableError(absl::InternalError(
             absl::StrCat("unexpected answer ", reply->DebugString())))});
  }
  // A leader is at work: ask again later, while the caller still waits.
  const absl::Time now = absl::Now();
  if (now >= pending->claim.deadline || !pending->claim.wanted()) {
    return finish(
        {.role = Role::kUnavailable,
         .result = absl::DeadlineExceededError(
             "the first call with this request_id is still running")});
  }
  if (!pending->registered) {
    // A leader on this replica wakes it the moment its result is stored.
    absl::MutexLock lock(&mu_);
    waiting_[pending->claim.key].push_back(pending);
    pending->registered = true;
  }
  const absl::Time at =
      std::min(now + pending->poll_interval, pending->claim.deadline);
  pending->poll_interval =
      std::min(pending->poll_interval * 2, options_.poll_max);
  pending->timer = timers_.RunAt(at, [this, pending]() mutable {
    if (!pending->finished.load()) Run(std::move(pending), /*claim=*/false);
  });
}

void RedisIdempotencyStore::Unregister(const Pending& pending) {
  absl::MutexLock lock(&mu_);
  auto it = waiting_.find(pending.claim.key);
  if (it == waiting_.end()) return;
  std::erase_if(it->second, [&pending](const std::weak_ptr<Pending>& w) {
    auto p = w.lock();
    return p == nullptr || p.get() == &pending;
  });
  if (it->second.empty()) waiting_.erase(it);
}

void RedisIdempotencyStore::WakeWaiters(const std::string& key) {
  std::vector<std::weak_ptr<Pending>> woken;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiting_.find(key);
    if (it == waiting_.end()) return;
    woken = std::move(it->second);
    waiting_.erase(it);
  }
  for (const std::weak_ptr<Pending>& w : woken) {
    std::shared_ptr<Pending> pending = w.lock();
    if (pending == nullptr || pending->finished.load()) continue;
    pending->registered = false;
    timers_.Cancel(pending->timer);
    Run(std::move(pending), /*claim=*/false);
  }
}

void RedisIdempotencyStore::Finish(absl::string_view key,
                                   absl::string_view lease,
                                   const Result& result, bool remember,
                                   absl::AnyInvocable<void() &&> recorded) {
  // If this write is lost, the lease ends and repeats get OUTCOME_UNKNOWN;
  // never a second POST.
  writes_in_flight_.fetch_add(1);
  redis_.Eval(
      kFinishScript, {RecordKey(key), LeaseKey(key)},
      {std::string(lease), SerializeResult(result), remember ? "1" : "0",
       Millis(options_.ttl), Millis(options_.forgotten_ttl)},
      absl::InfiniteFuture(),
      [this, key = std::string(key), recorded = std::move(recorded)](
          const absl::StatusOr<RedisReply>&) mutable {
        std::move(recorded)();
        // Followers here need not wait for their next poll.
        WakeWaiters(key);
        writes_in_flight_.fetch_sub(1);
      });
}

}  // namespace campaign_gateway
