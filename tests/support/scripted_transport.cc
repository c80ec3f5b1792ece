#include "tests/support/scripted_transport.h"

#include <utility>

namespace campaign_gateway::testing_util {

ScriptedTransport::ScriptedTransport(
    std::function<HttpResult(const HttpRequest&)> answer)
    : answer_(std::move(answer)), worker_([this] { Run(); }) {}

ScriptedTransport::~ScriptedTransport() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (Pending& p : held_) {
      p.cancelled = true;
      ready_.push_back(std::move(p));
    }
    held_.clear();
  }
  worker_.join();
}

uint64_t ScriptedTransport::Start(HttpRequest request, absl::Time deadline,
                                  Callback done) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  started_.push_back({id, request, deadline});
  Pending pending{id, std::move(request), std::move(done)};
  (hold_ ? held_ : ready_).push_back(std::move(pending));
  return id;
}

void ScriptedTransport::Cancel(uint64_t id) {
  absl::MutexLock lock(&mu_);
  cancelled_.push_back(id);
  for (auto it = held_.begin(); it != held_.end(); ++it) {
    if (it->id == id) {
      it->cancelled = true;
      ready_.push_back(std::move(*it));
      held_.erase(it);
      return;
    }
  }
}

void ScriptedTransport::Hold(bool hold) {
  absl::MutexLock lock(&mu_);
  hold_ = hold;
}

void ScriptedTransport::ReleaseAll() {
  absl::MutexLock lock(&mu_);
  for (Pending& p : held_) ready_.push_back(std::move(p));
  held_.clear();
}

std::vector<ScriptedTransport::Started> ScriptedTransport::started() const {
  absl::MutexLock lock(&mu_);
  return started_;
}

std::vector<uint64_t> ScriptedTransport::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

bool ScriptedTransport::WaitForStarted(size_t n, absl::Duration timeout) const {
  auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return started_.size() >= n;
  };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

void ScriptedTransport::Run() {
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !ready_.empty() || (stopping_ && held_.empty());
  };
  while (true) {
    Pending pending;
    {
      absl::MutexLock lock(&mu_, absl::Condition(&ready));
      if (ready_.empty()) return;
      pending = std::move(ready_.front());
      ready_.pop_front();
    }
    if (pending.cancelled) {
      std::move(pending.done)(
          TransportError{TransportError::Kind::kCancelled, "cancelled", true});
    } else {
      std::move(pending.done)(answer_(pending.request));
    }
  }
}

}  // namespace campaign_gateway::testing_util
