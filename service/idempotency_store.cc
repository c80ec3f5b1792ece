#include "service/idempotency_store.h"

#include <openssl/sha.h>

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/status.pb.h"
#include "service/errors.h"

namespace campaign_gateway {
namespace {

// glibc malloc's footprint for a request of `n` bytes: 16-byte aligned
// chunks with an 8-byte header, 32 bytes at least.
size_t MallocBytes(size_t n) {
  return std::max<size_t>(32, (n + 8 + 15) & ~size_t{15});
}

// A string's heap block (short strings live inside the object).
size_t HeapBytes(const std::string& s) {
  constexpr size_t kInline = 15;  // libstdc++'s small-string buffer
  return s.capacity() > kInline ? MallocBytes(s.capacity() + 1) : 0;
}

// A result's heap beyond the Entry that holds it: the response's strings
// and sub-messages, or an error's shared representation and payloads.
size_t ResultBytes(const IdempotencyStore::Result& result) {
  if (result.ok()) {
    // SpaceUsedLong() counts the message itself (already in the table
    // slot), and overcounts its heap parts by about half (a whole
    // std::string per field, short ones included; measured by
    // idempotency_store_test's AccountingMatchesTheHeap); plus malloc's
    // overhead for a few blocks.
    constexpr size_t kBlocks = 4;
    return (result->SpaceUsedLong() - sizeof(*result)) * 2 / 3 + kBlocks * 16;
  }
  // absl's StatusRep (refcount, code, message, payload vector).
  constexpr size_t kStatusRep = 72;
  size_t bytes = MallocBytes(kStatusRep + result.status().message().size());
  result.status().ForEachPayload(
      [&](absl::string_view url, const absl::Cord& value) {
        // A payload: its URL string and a Cord's flat node.
        constexpr size_t kCordNode = 32;
        bytes += MallocBytes(url.size() + 1) +
                 MallocBytes(kCordNode + value.size()) + 2 * sizeof(void*);
      });
  return bytes;
}

// The entry's heap beyond its table slot: the key (in the map, and again in
// the expiry list's node) and the fingerprint.
size_t KeyBytes(const std::string& key, const std::string& fingerprint) {
  constexpr size_t kListNode = 2 * sizeof(void*) + sizeof(std::string);
  return 2 * HeapBytes(key) + MallocBytes(kListNode) + HeapBytes(fingerprint);
}

}  // namespace

size_t InMemoryIdempotencyStore::TableBytes(size_t capacity) {
  // One slot and one control byte per bucket, full or not.
  return MallocBytes(capacity * (sizeof(Entries::value_type) + 1));
}

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
      // Room for the key, a typical result, and the table once it grows
      // for one more key (absl's tables grow at 7/8 full to 2n+1).
      constexpr size_t kResultReserve = 512;
      size_t capacity = entries_.capacity();
      if (entries_.size() + 1 > capacity - capacity / 8) {
        capacity = 2 * capacity + 1;
      }
      if (bytes_ + KeyBytes(claim.key, claim.fingerprint) + kResultReserve +
              TableBytes(capacity) >
          options_.max_bytes) {
        outcome.result = FullError(options_.now());
      } else {
        Entry& entry = entries_[claim.key];
        entry.fingerprint = std::move(claim.fingerprint);
        entry.bytes = KeyBytes(claim.key, entry.fingerprint);
        bytes_ += entry.bytes;
        outcome.role = Role::kLeader;
      }
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
}

void InMemoryIdempotencyStore::EvictLocked(absl::Time now) {
  while (!done_order_.empty()) {
    auto it = entries_.find(done_order_.front());
    if (it->second.expires > now) break;
    bytes_ -= it->second.bytes;
    entries_.erase(it);
    done_order_.pop_front();
  }
}

size_t InMemoryIdempotencyStore::BytesLocked() const {
  return bytes_ + TableBytes(entries_.capacity());
}

absl::Status InMemoryIdempotencyStore::FullError(absl::Time now) const {
  absl::Status status = MakeError(
      absl::StatusCode::kResourceExhausted,
      "the gateway's request_id store is full of unexpired keys; retry with "
      "the same request_id later (nothing was sent)",
      reason::kIdempotencyStoreFull);
  SetErrorMetadata(status, metadata_key::kRequestSent, "false");
  // The oldest remembered key frees its room first.
  absl::Duration wait = absl::Seconds(1);
  if (!done_order_.empty()) {
    wait = std::max(wait,
                    entries_.find(done_order_.front())->second.expires - now);
  }
  AttachRetryInfo(status, wait);
  return status;
}

size_t InMemoryIdempotencyStore::bytes() const {
  absl::MutexLock lock(&mu_);
  return BytesLocked();
}

size_t InMemoryIdempotencyStore::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace campaign_gateway
