#include "service/upstream_client.h"

#include <optional>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/errors.h"
#include "service/http_date.h"
#include "service/status_mapping.h"

namespace campaign_gateway {

struct UpstreamClient::Call {
  HttpRequest request;
  std::shared_ptr<CallContext> context;
  SendOptions options;
  Callback done;
  // The caller's deadline, or the gateway's own (options.deadline).
  absl::Time deadline;
  int attempts = 0;
  bool maybe_sent = false;  // by any attempt so far
  // The previous attempt's result: what a refused retry answers with.
  std::optional<HttpResult> last;
};

namespace {

// What the breaker counts against Connyline: no answer, or a 5xx.
bool IsUpstreamFailure(const HttpResult& result) {
  if (std::get_if<TransportError>(&result) != nullptr) return true;
  return std::get<HttpResponse>(result).status >= 500;
}

// Connyline's cool-down: a 429's Retry-After.
std::optional<absl::Duration> CoolDownOf(const HttpResult& result,
                                         absl::Time now) {
  const auto* response = std::get_if<HttpResponse>(&result);
  if (response == nullptr || response->status != 429) return std::nullopt;
  const std::optional<std::string> value = response->Header("retry-after");
  if (!value.has_value()) return std::nullopt;
  std::optional<absl::Duration> retry_after = ParseRetryAfter(*value, now);
  if (!retry_after.has_value() || *retry_after <= absl::ZeroDuration()) {
    return std::nullopt;
  }
  return retry_after;
}

}  // namespace

UpstreamClient::UpstreamClient(UpstreamOptions options,
                               HttpTransport& transport, TimerQueue& timers)
    : options_(std::move(options)),
      transport_(transport),
      timers_(timers),
      breaker_(options_.breaker),
      budget_(options_.retry_budget_ratio, options_.retry_budget_max_tokens) {}

void UpstreamClient::Send(HttpRequest request,
                          std::shared_ptr<CallContext> context,
                          SendOptions options, Callback done) {
  if (inflight_.fetch_add(1) >= options_.max_inflight) {
    inflight_.fetch_sub(1);
    Notify("overloaded");
    absl::Status status = MakeError(
        absl::StatusCode::kResourceExhausted,
        absl::StrCat("the gateway is at its limit of ", options_.max_inflight,
                     " requests in flight to Connyline; retry shortly"),
        reason::kOverloaded);
    AttachRetryInfo(status, absl::Seconds(1));
    return std::move(done)({std::move(status), false});
  }
  budget_.RecordRequest();
  for (const auto& header : context->propagated_headers) {
    request.headers.push_back(header);
  }
  const absl::Time deadline = options.deadline.value_or(context->deadline);
  auto call =
      std::make_shared<Call>(Call{std::move(request), std::move(context),
                                  options, std::move(done), deadline});
  Attempt(std::move(call));
}

void UpstreamClient::Attempt(std::shared_ptr<Call> call) {
  if (options_.admission == nullptr) return Dispatch(std::move(call));
  const absl::Time deadline = call->deadline;
  options_.admission->Admit(deadline, [this, call](absl::Status s) mutable {
    if (s.ok()) return Dispatch(std::move(call));
    Refuse(std::move(call), std::move(s));
  });
}

void UpstreamClient::Refuse(std::shared_ptr<Call> call, absl::Status status) {
  if (call->last.has_value()) {
    // A retry held back: the caller learns what the last attempt got.
    HttpResult last = *std::move(call->last);
    return Finish(std::move(call), std::move(last));
  }
  const auto info = GetErrorInfo(status);
  Notify(info && info->reason() == reason::kRateLimited ? "rate_limited"
                                                        : "cooling_down");
  std::move(call->done)({std::move(status), call->maybe_sent});
  call.reset();
  inflight_.fetch_sub(1);  // last, as in Finish()
}

void UpstreamClient::Dispatch(std::shared_ptr<Call> call) {
  const CircuitBreaker::Admission admission = breaker_.Admit(absl::Now());
  if (!admission.allowed) {
    Notify("circuit_open");
    absl::Status status = MakeError(
        absl::StatusCode::kUnavailable,
        "Connyline is failing; the gateway's circuit breaker is open and "
        "calls fail fast until a probe succeeds",
        reason::kCircuitOpen);
    AttachRetryInfo(status, admission.retry_after);
    std::move(call->done)({std::move(status), call->maybe_sent});
    call.reset();
    inflight_.fetch_sub(1);  // last, as in Finish()
    return;
  }
  ++call->attempts;
  const uint64_t id = transport_.Start(
      call->request, call->deadline,
      [this, call, probe = admission.probe,
       started = absl::Now()](HttpResult result) mutable {
        call->context->cancellation.ClearHook();
        const auto* response = std::get_if<HttpResponse>(&result);
        call->context->RecordUpstream(response ? response->status : 0,
                                      absl::Now() - started);
        OnResult(std::move(call), probe, started, std::move(result));
      });
  if (call->options.abort_on_cancel) {
    // Set after Start(): a call cancelled before this line cancels at once.
    call->context->cancellation.SetHook([this, id] { transport_.Cancel(id); });
  }
}

bool UpstreamClient::CountsInBreaker(const Call& call, absl::Time started,
                                     const HttpResult& result) const {
  const auto* error = std::get_if<TransportError>(&result);
  if (error == nullptr) return true;
  // The caller's cancellation says nothing about Connyline.
  if (error->kind == TransportError::Kind::kCancelled) return false;
  // Nor does a timeout at the caller's own deadline when it was shorter
  // than the gateway would have waited.
  if (error->kind == TransportError::Kind::kTimeout &&
      !call.options.deadline.has_value()) {
    return call.deadline - started >= options_.breaker_min_timeout;
  }
  return true;
}

void UpstreamClient::OnResult(std::shared_ptr<Call> call, bool probe,
                              absl::Time started, HttpResult result) {
  const absl::Time now = absl::Now();
  const auto* error = std::get_if<TransportError>(&result);
  call->maybe_sent |= error == nullptr || error->request_may_have_been_sent;
  if (!CountsInBreaker(*call, started, result)) {
    breaker_.Release(probe);
  } else {
    breaker_.Record(!IsUpstreamFailure(result), probe, now);
  }
  if (options_.on_breaker_state) {
    options_.on_breaker_state(breaker_.state() == CircuitBreaker::State::kOpen);
  }

  if (const auto retry_after = CoolDownOf(result, now);
      retry_after.has_value() && options_.admission != nullptr) {
    // Connyline's request to slow down holds for every replica. It is
    // recorded before the caller learns of it, so that the caller's next
    // call, wherever it lands, is held back too. (A 429 is never retried.)
    options_.admission->CoolDown(
        *retry_after,
        [this, call = std::move(call), result = std::move(result)]() mutable {
          Finish(std::move(call), std::move(result));
        });
    return;
  }
  const bool retry = call->attempts < options_.retry.max_attempts &&
                     IsRetryable(result, call->options.idempotent) &&
                     !(call->options.abort_on_cancel &&
                       call->context->cancellation.cancelled());
  if (retry) {
    thread_local absl::BitGen random;
    const absl::Time at =
        now + Backoff(options_.retry, call->attempts - 1, random);
    // Only retry when the retry can still finish: leave at least as long as
    // the backoff itself before the deadline.
    if (at + (at - now) < call->deadline && budget_.TryRetry()) {
      retries_.fetch_add(1);
      Notify("retry");
      call->last = std::move(result);
      timers_.RunAt(at, [this, call]() mutable { Attempt(std::move(call)); });
      return;
    }
  }
  Finish(std::move(call), std::move(result));
}

void UpstreamClient::Notify(absl::string_view event) {
  if (options_.on_event) options_.on_event(event);
}

void UpstreamClient::Finish(std::shared_ptr<Call> call, HttpResult result) {
  if (auto* error = std::get_if<TransportError>(&result)) {
    std::move(call->done)({MapTransportError(*error), call->maybe_sent});
  } else {
    std::move(call->done)({std::move(std::get<HttpResponse>(result)), true});
  }
  call.reset();
  // Last: shutdown waits for inflight() == 0 before destroying what `done`
  // and the call's captures use (the gateway, the idempotency store).
  inflight_.fetch_sub(1);
}

}  // namespace campaign_gateway
