#include "service/gateway.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "service/errors.h"
#include "service/rest_response.h"
#include "service/sms_preview.h"
#include "service/validate.h"

namespace campaign_gateway {
namespace {

using campaigns::v1::CreateSmsCampaignRequest;
using campaigns::v1::CreateSmsCampaignResponse;
using campaigns::v1::ListListsRequest;
using campaigns::v1::ListListsResponse;

// Delivers the first of several possible answers (the upstream's, or the
// caller's cancellation) and drops the rest.
template <typename T>
class Once {
 public:
  explicit Once(Gateway::Callback<T> done) : done_(std::move(done)) {}
  void Run(absl::StatusOr<T> result) {
    Gateway::Callback<T> done;
    {
      absl::MutexLock lock(&mu_);
      done = std::move(done_);
      done_ = nullptr;
    }
    if (done) std::move(done)(std::move(result));
  }
  bool done() const {
    absl::MutexLock lock(&mu_);
    return done_ == nullptr;
  }

 private:
  mutable absl::Mutex mu_;
  Gateway::Callback<T> done_ ABSL_GUARDED_BY(mu_);
};

// A create with an idempotency key, shared by its callbacks.
struct KeyedCreate {
  explicit KeyedCreate(Gateway::Callback<CreateSmsCampaignResponse> done)
      : once(std::move(done)) {}
  Once<CreateSmsCampaignResponse> once;
  std::atomic<bool> leading{false};  // this call sends the create
  uint64_t timer = 0;                // answers a follower at its deadline
};

// How long after its deadline a leader's claim on its key lasts: time for
// the answer to be recorded. A leader gone longer has died mid-create.
constexpr absl::Duration kLeaseGrace = absl::Seconds(2);

absl::Status KeyReusedError() {
  absl::Status status =
      MakeError(absl::StatusCode::kInvalidArgument,
                "request_id was already used for a different campaign; "
                "use a new request_id for new content",
                reason::kIdempotencyKeyReused,
                {{std::string(metadata_key::kRequestSent), "false"}});
  google::rpc::BadRequest bad_request;
  auto* violation = bad_request.add_field_violations();
  violation->set_field("request_id");
  violation->set_description("already used for different content");
  AttachBadRequest(status, bad_request);
  return status;
}

// An error that sent nothing to Connyline says so: retrying it is safe.
absl::Status Annotated(absl::Status status, bool request_may_have_been_sent) {
  if (!request_may_have_been_sent) {
    SetErrorMetadata(status, metadata_key::kRequestSent, "false");
  }
  return status;
}

// A create's outcome answers repeats of its key, unless it certainly created
// nothing: then a repeat must be free to send again.
bool Remember(const absl::StatusOr<CreateSmsCampaignResponse>& result,
              bool request_may_have_been_sent) {
  if (result.ok()) return true;
  if (!request_may_have_been_sent) return false;
  // Rate limiting turns requests away before they are processed.
  std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(result.status());
  return !(info && info->reason() == reason::kUpstreamRateLimited);
}

// validate_only's answer: the campaign as it would be sent, nothing more.
CreateSmsCampaignResponse WouldBeSent(const CampaignDraft& draft,
                                      const absl::TimeZone& zone) {
  CreateSmsCampaignResponse out;
  out.set_message("Validation passed; nothing was sent.");
  campaigns::v1::SmsCampaign& campaign = *out.mutable_campaign();
  campaign.set_campaign_name(draft.campaign_name);
  campaign.set_sender(draft.sender);
  campaign.set_list_id(draft.list_id);
  campaign.set_start(draft.start);
  if (absl::StatusOr<absl::CivilMinute> minute = ParseStartMinute(draft.start);
      minute.ok()) {
    campaign.mutable_start_time()->set_seconds(
        absl::ToUnixSeconds(absl::FromCivil(*minute, zone)));
  }
  campaign.set_time_zone(zone.name());
  return out;
}

// Checks a create and answers it at once when no upstream call is due (a
// refusal, validate_only); else returns its account and draft, with `done`
// wrapped to add the cost preview to a success (a replay's too).
std::optional<std::pair<std::string, CampaignDraft>> Prepare(
    const CreateSmsCampaignRequest& request, const GatewayOptions& options,
    Gateway::Callback<CreateSmsCampaignResponse>& done) {
  absl::StatusOr<std::string> account =
      ResolveAccount(request.account_code(), options.account_code);
  if (!account.ok()) {
    std::move(done)(account.status());
    return std::nullopt;
  }
  absl::StatusOr<CampaignDraft> draft =
      ValidateCreateRequest(request, options.time_zone,
                            {.now = absl::Now(),
                             .past_tolerance = options.start_past_tolerance,
                             .max_ahead = options.start_max_ahead});
  if (!draft.ok()) {
    std::move(done)(draft.status());
    return std::nullopt;
  }
  const campaigns::v1::SmsPreview preview = PreviewSmsText(draft->sms_text);
  if (request.validate_only()) {  // AIP-163: no send, no key stored
    CreateSmsCampaignResponse response = WouldBeSent(*draft, options.time_zone);
    *response.mutable_preview() = preview;
    std::move(done)(std::move(response));
    return std::nullopt;
  }
  done = [preview, done = std::move(done)](
             absl::StatusOr<CreateSmsCampaignResponse> result) mutable {
    if (result.ok()) *result->mutable_preview() = preview;
    std::move(done)(std::move(result));
  };
  return std::make_pair(*std::move(account), *std::move(draft));
}

absl::Status CancelledError() {
  return MakeError(absl::StatusCode::kCancelled,
                   "the call was cancelled by the caller", reason::kCancelled);
}

}  // namespace

Gateway::Gateway(GatewayOptions options, UpstreamClient& upstream,
                 IdempotencyStore& idempotency, TimerQueue& timers)
    : options_(std::move(options)),
      upstream_(upstream),
      idempotency_(idempotency),
      timers_(timers) {}

UpstreamTarget Gateway::Target() const {
  UpstreamTarget target = options_.upstream;
  if (options_.token) target.token = options_.token();
  return target;
}

void Gateway::ListLists(const ListListsRequest& request,
                        std::shared_ptr<CallContext> context,
                        Callback<ListListsResponse> done) {
  absl::StatusOr<std::string> account =
      ResolveAccount(request.account_code(), options_.account_code);
  if (!account.ok()) return std::move(done)(account.status());

  upstream_.Send(
      BuildListListsRequest(Target(), *account), std::move(context),
      {.idempotent = true},
      [done = std::move(done)](UpstreamResult result) mutable {
        if (!result.response.ok()) {
          return std::move(done)(Annotated(result.response.status(),
                                           result.request_may_have_been_sent));
        }
        std::move(done)(ParseListListsResponse(*result.response));
      });
}

void Gateway::CreateSmsCampaign(const CreateSmsCampaignRequest& request,
                                std::shared_ptr<CallContext> context,
                                Callback<CreateSmsCampaignResponse> done) {
  std::optional<std::pair<std::string, CampaignDraft>> prepared =
      Prepare(request, options_, done);
  if (!prepared.has_value()) return;
  const auto& [account, draft] = *prepared;
  HttpRequest http = BuildCreateCampaignRequest(Target(), account, draft);

  const std::string& key = request.request_id();
  if (key.empty()) {
    return SendCreate(
        std::move(http), std::move(context),
        {.idempotent = false, .abort_on_cancel = true},
        [done = std::move(done)](CreateResult result, bool) mutable {
          std::move(done)(std::move(result));
        });
  }
  std::string fingerprint = ContentFingerprint(account, http.body);
  CreateKeyed(std::move(http), key, std::move(fingerprint), std::move(context),
              std::move(done));
}

void Gateway::CreateKeyed(HttpRequest http, const std::string& key,
                          std::string fingerprint,
                          std::shared_ptr<CallContext> context,
                          Callback<CreateSmsCampaignResponse> done) {
  auto call = std::make_shared<KeyedCreate>(std::move(done));
  // The caller may go, and its own deadline holds even when gRPC knows none
  // (the default timeout lives only here). A leader's create ends by the
  // same deadline upstream, so the timer only answers a waiting follower.
  const absl::Time deadline = context->deadline;
  call->timer = timers_.RunAt(deadline, [call] {
    if (call->leading.load()) return;
    call->once.Run(MakeError(absl::StatusCode::kDeadlineExceeded,
                             "the first call with this request_id did not "
                             "finish before this call's deadline",
                             reason::kUpstreamTimeout));
  });
  // A caller that leaves takes its timer along (a huge deadline would
  // otherwise keep it queued).
  context->cancellation.SetHook([this, call] {
    timers_.Cancel(call->timer);
    call->once.Run(CancelledError());
  });
  // If this call leads, its create runs to this gateway-owned deadline,
  // whatever the caller's, and its lease covers it.
  const absl::Time upstream_deadline =
      absl::Now() + options_.keyed_upstream_timeout;
  IdempotencyStore::Claim claim{
      .key = key,
      .fingerprint = std::move(fingerprint),
      .deadline = deadline,
      .lease_until = std::max(deadline, upstream_deadline) + kLeaseGrace,
      .wanted = [call] { return !call->once.done(); }};
  idempotency_.Join(
      std::move(claim), [this, call, key, upstream_deadline,
                         http = std::move(http), context = std::move(context)](
                            IdempotencyStore::Outcome outcome) mutable {
        using Role = IdempotencyStore::Role;
        if (outcome.role == Role::kLeader) call->leading.store(true);
        // A call already answered has no timer left: it fired, or the
        // cancellation hook took it. (Past shutdown, a follower answered
        // late must not touch the timers, which may be gone.)
        if (!call->once.done()) timers_.Cancel(call->timer);
        switch (outcome.role) {
          case Role::kConflict:
            return call->once.Run(KeyReusedError());
          case Role::kUnavailable:
            return call->once.Run(std::move(outcome.result));
          case Role::kReplay:
            context->MarkReplayed();
            return call->once.Run(std::move(outcome.result));
          case Role::kLeader:
            break;
        }
        if (call->once.done()) {
          // The caller went before this call could lead: nothing was sent,
          // so the key is free again.
          return idempotency_.Finish(key, outcome.lease, CancelledError(),
                                     /*remember=*/false);
        }
        // The leader's create runs to its end even if this caller goes
        // away, so that repeats learn its outcome instead of sending again.
        SendCreate(std::move(http), std::move(context),
                   {.idempotent = false,
                    .abort_on_cancel = false,
                    .deadline = upstream_deadline},
                   [this, key, lease = std::move(outcome.lease), call](
                       CreateResult result, bool remember) {
                     // The caller hears once the store has the result, so
                     // its own repeat finds it, wherever it lands.
                     idempotency_.Finish(key, lease, result, remember,
                                         [call, result]() mutable {
                                           call->once.Run(std::move(result));
                                         });
                   });
      });
}

void Gateway::SendCreate(
    HttpRequest request, std::shared_ptr<CallContext> context,
    UpstreamClient::SendOptions options,
    absl::AnyInvocable<void(CreateResult, bool remember) &&> done) {
  upstream_.Send(
      std::move(request), std::move(context), options,
      [this, done = std::move(done)](UpstreamResult result) mutable {
        CreateResult parsed =
            result.response.ok()
                ? ParseCreateCampaignResponse(*result.response,
                                              options_.time_zone)
                : CreateResult(Annotated(result.response.status(),
                                         result.request_may_have_been_sent));
        const bool remember =
            Remember(parsed, result.request_may_have_been_sent);
        std::move(done)(std::move(parsed), remember);
      });
}

}  // namespace campaign_gateway
