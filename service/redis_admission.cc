#include "service/redis_admission.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace campaign_gateway {
namespace {

// KEYS: cool-down key, rate key prefix. ARGV: the limit per second.
// Answers {0, 0} (go), {1, ms left} (cooling down) or {2, ms to the next
// window} (over the limit).
constexpr char kAdmitScript[] = R"lua(
local cool = redis.call('PTTL', KEYS[1])
if cool > 0 then return {1, cool} end
local limit = tonumber(ARGV[1])
if limit <= 0 then return {0, 0} end
local now = redis.call('TIME')
local key = KEYS[2] .. now[1]
local n = redis.call('INCR', key)
if n == 1 then redis.call('PEXPIRE', key, 2000) end
if n > limit then
  return {2, 1000 - math.floor(tonumber(now[2]) / 1000)}
end
return {0, 0}
)lua";

// KEYS: cool-down key. ARGV: ms. Never shortens a longer cool-down.
constexpr char kCoolDownScript[] = R"lua(
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
)lua";

}  // namespace

RedisAdmission::RedisAdmission(Options options, RedisClient& redis)
    : options_(std::move(options)),
      redis_(redis),
      local_({.rate_limit = options_.rate_limit}),
      cooldown_key_(
          absl::StrCat("campaign-gateway:{", options_.account, "}:cooldown")),
      rate_key_prefix_(
          absl::StrCat("campaign-gateway:{", options_.account, "}:rate:")) {}

void RedisAdmission::Admit(absl::Time deadline, Callback done) {
  if (!redis_.connected()) {
    if (options_.on_fallback) options_.on_fallback();
    return local_.Admit(deadline, std::move(done));
  }
  redis_.Eval(
      kAdmitScript, {cooldown_key_, rate_key_prefix_},
      {absl::StrCat(options_.rate_limit)},
      std::min(deadline, absl::Now() + options_.timeout),
      [this, deadline, done = std::move(done)](
          const absl::StatusOr<RedisReply>& reply) mutable {
        const bool answered = reply.ok() && reply->elements().size() == 2;
        if (!answered) {
          if (options_.on_fallback) options_.on_fallback();
          return local_.Admit(deadline, std::move(done));
        }
        const int64_t verdict = reply->elements()[0].integer();
        const absl::Duration wait =
            absl::Milliseconds(reply->elements()[1].integer());
        if (verdict == 1) return std::move(done)(CoolingDownError(wait));
        if (verdict == 2) {
          return std::move(done)(RateLimitedError(options_.rate_limit, wait));
        }
        // A cool-down this replica saw holds even before Redis has it.
        std::move(done)(local_.CheckCoolDown());
      });
}

void RedisAdmission::CoolDown(absl::Duration retry_after,
                              absl::AnyInvocable<void() &&> done) {
  local_.CoolDown(retry_after, [] {});  // holds here even if Redis misses it
  redis_.Eval(
      kCoolDownScript, {cooldown_key_},
      {absl::StrCat(
          std::max<int64_t>(1, absl::ToInt64Milliseconds(retry_after)))},
      absl::InfiniteFuture(),
      [done = std::move(done)](const absl::StatusOr<RedisReply>&) mutable {
        std::move(done)();
      });
}

}  // namespace campaign_gateway
