#include "service/idempotency_store.h"

#include <openssl/sha.h>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/status.pb.h"
#include "service/errors.h"

namespace campaign_gateway {
namespace {

// Map node, strings and bookkeeping per entry, roughly.
constexpr size_t kEntryOverhead = 160;

size_t ResultBytes(const IdempotencyStore::Result& result) {
  if (result.ok()) return result->ByteSizeLong();
  size_t bytes = result.status().message().size();
  result.status().ForEachPayload(
      [&](absl::string_view url, const absl::Cord& value) {
        bytes += url.size() + value.size();
      });
  return bytes;
}

}  // namespace

std::string ContentFingerprint(absl::string_view account_code,
                               absl::string_view body) {
  // Length-prefixed, so no two (account, body) pairs share an input.
  const std::string input =
      absl::StrCat(account_code.size(), ":", account_code, body);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(),
         digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string SerializeResult(const IdempotencyStore::Result& result) {
  if (!result.ok()) return ToRpcStatus(result.status()).SerializeAsString();
  google::rpc::Status status;
  status.add_details()->PackFrom(*result);
  return status.SerializeAsString();
}

IdempotencyStore::Result ParseResult(absl::string_view bytes) {
  google::rpc::Status status;
  if (!status.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("a stored result does not parse");
  }
  if (status.code() != 0) return FromRpcStatus(status);
  campaigns::v1::CreateSmsCampaignResponse response;
  if (status.details_size() != 1 || !status.details(0).UnpackTo(&response)) {
    return absl::DataLossError("a stored result holds no response");
  }
  return response;
}

InMemoryIdempotencyStore::InMemoryIdempotencyStore(Options options)
    : options_(std::move(options)) {}

void InMemoryIdempotencyStore::Join(Claim claim, Callback done) {
  Outcome outcome;
  {
    absl::MutexLock lock(&mu_);
    EvictLocked(options_.now());
    auto it = entries_.find(claim.key);
    if (it == entries_.end()) {
      Entry& entry = entries_[claim.key];
      entry.fingerprint = std::move(claim.fingerprint);
      entry.bytes =
          kEntryOverhead + 2 * claim.key.size() + entry.fingerprint.size();
      bytes_ += entry.bytes;
      outcome.role = Role::kLeader;
    } else if (it->second.fingerprint != claim.fingerprint) {
      outcome.role = Role::kConflict;
    } else if (!it->second.done) {
      it->second.waiters.push_back(std::move(done));
      return;
    } else {
      outcome.role = Role::kReplay;
      outcome.result = it->second.result;
    }
  }
  std::move(done)(std::move(outcome));
}

void InMemoryIdempotencyStore::Finish(absl::string_view key,
                                      absl::string_view /*lease*/,
                                      const Result& result, bool remember,
                                      absl::AnyInvocable<void() &&> recorded) {
  std::vector<Callback> waiters;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    // Only the leader's claim, once: a stale Finish changes nothing.
    if (it != entries_.end() && !it->second.done) {
      waiters = std::move(it->second.waiters);
      RecordLocked(it, result, remember);
    }
  }
  // Outside the lock: waiters finish RPCs and may call back into the store.
  std::move(recorded)();
  for (Callback& waiter : waiters) {
    std::move(waiter)({.role = Role::kReplay, .result = result});
  }
}

void InMemoryIdempotencyStore::RecordLocked(Entries::iterator it,
                                            const Result& result,
                                            bool remember) {
  Entry& entry = it->second;
  if (!remember) {
    bytes_ -= entry.bytes;
    entries_.erase(it);
    return;
  }
  const absl::Time now = options_.now();
  entry.done = true;
  entry.result = result;
  entry.expires = now + options_.ttl;
  const size_t result_bytes = ResultBytes(result);
  entry.bytes += result_bytes;
  bytes_ += result_bytes;
  entry.order = done_order_.insert(done_order_.end(), it->first);
  EvictLocked(now);
}

void InMemoryIdempotencyStore::EvictLocked(absl::Time now) {
  while (!done_order_.empty()) {
    auto it = entries_.find(done_order_.front());
    const bool expired = it->second.expires <= now;
    if (!expired && bytes_ <= options_.max_bytes) break;
    bytes_ -= it->second.bytes;
    entries_.erase(it);
    done_order_.pop_front();
  }
}

size_t InMemoryIdempotencyStore::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

size_t InMemoryIdempotencyStore::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace campaign_gateway
