// Makes Debian's uninstrumented absl::Mutex, CondVar, Notification and
// BlockingCounter visible to ThreadSanitizer. Loaded with LD_PRELOAD, it
// interposes their out-of-line members, calls the real ones (RTLD_NEXT) and
// reports each acquire and release through TSan's annotation API, as absl
// does itself when built with -fsanitize=thread. Without it TSan sees no
// synchronisation in absl::Mutex at all and reports every guarded access as
// a race. Inert in processes without TSan (the hooks are weak).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

#pragma weak __tsan_mutex_pre_lock
#pragma weak __tsan_mutex_post_lock
#pragma weak __tsan_mutex_pre_unlock
#pragma weak __tsan_mutex_post_unlock
#pragma weak __tsan_mutex_destroy
#pragma weak __tsan_acquire
#pragma weak __tsan_release

#define SHIM_STR2(x) #x
#define SHIM_STR(x) SHIM_STR2(x)

namespace {

constexpr unsigned kWrite = 0;
constexpr unsigned kRead = __tsan_mutex_read_lock;
constexpr unsigned kTry = __tsan_mutex_try_lock;
constexpr unsigned kTryFailed = __tsan_mutex_try_lock_failed;

bool TsanLoaded() { return &__tsan_mutex_pre_lock != nullptr; }

// absl's members call each other through the PLT (AwaitWithTimeout calls
// AwaitWithDeadline, ...), so they reach this shim again: only the
// outermost call on a thread is reported to TSan.
thread_local int depth = 0;

class Outermost {
 public:
  Outermost() : outermost_(depth++ == 0 && TsanLoaded()) {}
  ~Outermost() { --depth; }
  Outermost(const Outermost&) = delete;
  Outermost& operator=(const Outermost&) = delete;
  explicit operator bool() const { return outermost_; }

 private:
  bool outermost_;
};

// The real function absl::<inline namespace>::`name` (mangled, without the
// namespace prefix), found after this library in the lookup order.
template <typename Fn>
Fn Real(const char* name, bool is_const = false) {
  const std::string ns = SHIM_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string symbol = std::string(is_const ? "_ZNK" : "_ZN") + "4absl" +
                             std::to_string(ns.size()) + ns + name;
  void* fn = dlsym(RTLD_NEXT, symbol.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan absl shim: %s not found\n", symbol.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

// How `mu` is held now (absl's kMuWriter bit): Await and CondVar::Wait work
// in either mode and must release and reacquire in the same one.
unsigned HeldMode(const absl::Mutex* mu) {
  const auto word = reinterpret_cast<const std::atomic<intptr_t>*>(mu)->load(
      std::memory_order_relaxed);
  return (word & 0x0008) != 0 ? kWrite : kRead;
}

// Lock, LockWhen...: `lock` acquires `mu`. TSan ignores the accesses in
// between (a Condition is evaluated with the mutex held).
template <typename Lock>
auto Acquire(void* mu, unsigned mode, Lock lock) {
  const Outermost tsan;
  if (tsan) __tsan_mutex_pre_lock(mu, mode);
  auto result = lock();
  if (tsan) __tsan_mutex_post_lock(mu, mode, 0);
  return result;
}

// Unlock: the release comes first, since once `unlock` ran another thread
// may acquire. Other threads' Conditions, which absl evaluates inside
// Unlock with the mutex still held, fall in the ignored span.
template <typename Unlock>
void Release(void* mu, unsigned mode, Unlock unlock) {
  const Outermost tsan;
  if (tsan) __tsan_mutex_pre_unlock(mu, mode);
  unlock();
  if (tsan) __tsan_mutex_post_unlock(mu, mode);
}

// Await and CondVar::Wait: release, block, reacquire.
template <typename Wait>
auto ReleaseAndReacquire(const absl::Mutex* mu, Wait wait) {
  const Outermost tsan;
  const unsigned mode = tsan ? HeldMode(mu) : kWrite;
  void* const m = const_cast<absl::Mutex*>(mu);
  if (tsan) __tsan_mutex_pre_unlock(m, mode);
  auto result = wait();
  if (tsan) {
    __tsan_mutex_post_unlock(m, mode);
    __tsan_mutex_pre_lock(m, mode);
    __tsan_mutex_post_lock(m, mode, 0);
  }
  return result;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

using Cond = const Condition&;

Mutex::~Mutex() {
  static const auto real = Real<void (*)(Mutex*)>("5MutexD1Ev");
  real(this);
  if (TsanLoaded()) __tsan_mutex_destroy(this, __tsan_mutex_not_static);
}

void Mutex::Lock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex4LockEv");
  Acquire(this, kWrite, [&] { return real(this), 0; });
}

void Mutex::ReaderLock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  Acquire(this, kRead, [&] { return real(this), 0; });
}

bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  const Outermost tsan;
  if (!tsan) return real(this);
  __tsan_mutex_pre_lock(this, kTry);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, locked ? kTry : kTry | kTryFailed, 0);
  return locked;
}

bool Mutex::ReaderTryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  const Outermost tsan;
  if (!tsan) return real(this);
  __tsan_mutex_pre_lock(this, kRead | kTry);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, kRead | kTry | (locked ? 0 : kTryFailed), 0);
  return locked;
}

void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex6UnlockEv");
  Release(this, kWrite, [&] { real(this); });
}

void Mutex::ReaderUnlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  Release(this, kRead, [&] { real(this); });
}

void Mutex::LockWhen(Cond cond) {
  static const auto real =
      Real<void (*)(Mutex*, Cond)>("5Mutex8LockWhenERKNS0_9ConditionE");
  Acquire(this, kWrite, [&] { return real(this, cond), 0; });
}

void Mutex::ReaderLockWhen(Cond cond) {
  static const auto real =
      Real<void (*)(Mutex*, Cond)>("5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Acquire(this, kRead, [&] { return real(this, cond), 0; });
}

bool Mutex::LockWhenWithTimeout(Cond cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, Cond, Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Acquire(this, kWrite, [&] { return real(this, cond, timeout); });
}

bool Mutex::ReaderLockWhenWithTimeout(Cond cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, Cond, Duration)>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Acquire(this, kRead, [&] { return real(this, cond, timeout); });
}

bool Mutex::LockWhenWithDeadline(Cond cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, Cond, Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Acquire(this, kWrite, [&] { return real(this, cond, deadline); });
}

bool Mutex::ReaderLockWhenWithDeadline(Cond cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, Cond, Time)>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Acquire(this, kRead, [&] { return real(this, cond, deadline); });
}

void Mutex::Await(Cond cond) {
  static const auto real =
      Real<void (*)(Mutex*, Cond)>("5Mutex5AwaitERKNS0_9ConditionE");
  ReleaseAndReacquire(this, [&] { return real(this, cond), 0; });
}

bool Mutex::AwaitWithTimeout(Cond cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, Cond, Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return ReleaseAndReacquire(this, [&] { return real(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(Cond cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, Cond, Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return ReleaseAndReacquire(this, [&] { return real(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  static const auto real =
      Real<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  ReleaseAndReacquire(mu, [&] { return real(this, mu), 0; });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return ReleaseAndReacquire(mu, [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return ReleaseAndReacquire(mu, [&] { return real(this, mu, deadline); });
}

// Notification: Notify releases; the waits and the inline HasBeenNotified()
// (an instrumented acquire load of notified_yet_, which follows the mutex)
// acquire.
static_assert(sizeof(Notification) == sizeof(Mutex) + sizeof(intptr_t));

void Notification::Notify() {
  static const auto real =
      Real<void (*)(Notification*)>("12Notification6NotifyEv");
  if (TsanLoaded()) {
    __tsan_release(this);
    __tsan_release(reinterpret_cast<char*>(this) + sizeof(Mutex));
  }
  real(this);
}

void Notification::WaitForNotification() const {
  static const auto real = Real<void (*)(const Notification*)>(
      "12Notification19WaitForNotificationEv", /*is_const=*/true);
  real(this);
  if (TsanLoaded()) __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static const auto real = Real<bool (*)(const Notification*, Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE", true);
  const bool notified = real(this, timeout);
  if (TsanLoaded()) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static const auto real = Real<bool (*)(const Notification*, Time)>(
      "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE", true);
  const bool notified = real(this, deadline);
  if (TsanLoaded()) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

// BlockingCounter: each DecrementCount releases, Wait acquires them all.
bool BlockingCounter::DecrementCount() {
  static const auto real =
      Real<bool (*)(BlockingCounter*)>("15BlockingCounter14DecrementCountEv");
  if (TsanLoaded()) __tsan_release(this);
  return real(this);
}

void BlockingCounter::Wait() {
  static const auto real =
      Real<void (*)(BlockingCounter*)>("15BlockingCounter4WaitEv");
  real(this);
  if (TsanLoaded()) __tsan_acquire(this);
}

ABSL_NAMESPACE_END
}  // namespace absl
