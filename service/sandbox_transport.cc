#include "service/sandbox_transport.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace campaign_gateway {
namespace {

using nlohmann::json;

constexpr size_t kMaxAccepted = 1000;

HttpResponse JsonResponse(int status, const json& body) {
  HttpResponse response;
  response.status = status;
  response.headers.emplace_back("content-type", "application/json");
  response.body = body.dump();
  return response;
}

HttpResponse Failure(int status, absl::string_view message) {
  return JsonResponse(status,
                      {{"success", false}, {"message", std::string(message)}});
}

bool HasBearer(const HttpRequest& request) {
  for (const auto& [name, value] : request.headers) {
    if (absl::EqualsIgnoreCase(name, "authorization")) {
      return value == absl::StrCat("Bearer ", kSandboxToken);
    }
  }
  return false;
}

// The path after "/api/v1/{account}/", or nullopt.
std::optional<std::string> ApiPath(absl::string_view url) {
  const size_t api = url.find("/api/v1/");
  if (api == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = url.substr(api + 8);
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos || slash == 0) return std::nullopt;
  return std::string(rest.substr(slash + 1));
}

bool NonEmptyString(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() &&
         !it->get_ref<const std::string&>().empty();
}

// The fault lists: Connyline's answer for HTTP status `list_id - 990000`,
// shaped as its documented error bodies. Connyline documents only 400's
// messages; the others are plausible ones, marked as the sandbox's.
struct FaultRow {
  int http_status;
  absl::string_view message;
};

constexpr FaultRow kFaults[] = {
    {400, "Necessary data is missing."},
    {401, "Unauthenticated."},
    {402, "Insufficient credit."},
    {403, "Forbidden."},
    {404, "List not found."},
    {409, "Conflict: a campaign like this one already exists."},
    {429, "Too Many Requests."},
    {500, "Server Error."},
    {503, "Service Unavailable."},
};

// The answer of fault list `list_id`, or nullopt for any other list. The
// silent list is not here: it has no answer at all.
std::optional<HttpResponse> FaultAnswer(int64_t list_id) {
  if (list_id == kSandboxMalformedList) {
    // A 2xx whose body is cut short, as a proxy or a crash mid-write leaves.
    HttpResponse response;
    response.status = 201;
    response.headers.emplace_back("content-type", "application/json");
    response.body =
        R"({"success": true, "message": "SMS Campaign created successfully.", "data": {"campaign_name": )";
    return response;
  }
  for (const FaultRow& row : kFaults) {
    if (list_id != kSandboxFaultListBase + row.http_status) continue;
    HttpResponse response = Failure(
        row.http_status,
        absl::StrCat(row.message, " (sandbox fault list ", list_id, ")"));
    if (row.http_status == 429) {
      response.headers.emplace_back("retry-after",
                                    absl::StrCat(kSandboxRetryAfterSeconds));
    }
    return response;
  }
  return std::nullopt;
}

// A create on the silent list: Connyline takes it and never answers.
bool IsSilent(const HttpRequest& request) {
  json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  return body.is_object() && body.contains("list_id") &&
         body["list_id"].is_number_integer() &&
         body["list_id"].get<int64_t>() == kSandboxSilentList;
}

HttpResponse CreateCampaign(const HttpRequest& request,
                            const absl::TimeZone& zone, absl::Time now,
                            std::vector<std::string>* accepted) {
  json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object() ||
      !NonEmptyString(body, "campaign_name") ||
      !NonEmptyString(body, "sender") || !NonEmptyString(body, "sms_text") ||
      !NonEmptyString(body, "start") || !body.contains("list_id") ||
      !body["list_id"].is_number_integer()) {
    return Failure(400, "Necessary data is missing.");
  }
  const int64_t list_id = body["list_id"].get<int64_t>();
  if (std::optional<HttpResponse> fault = FaultAnswer(list_id)) {
    return *std::move(fault);
  }
  bool known = false;
  for (const SandboxList& list : SandboxLists())
    known |= list.list_id == list_id;
  if (!known) return Failure(404, "List not found.");

  if (accepted != nullptr) accepted->push_back(body.dump());
  return JsonResponse(
      201,
      {{"success", true},
       {"message", "SMS Campaign created successfully."},
       {"data",
        {{"campaign_name", body["campaign_name"]},
         {"sender", body["sender"]},
         {"list_id", list_id},
         {"start", absl::StrCat(body["start"].get<std::string>(), ":00")},
         {"created_at", absl::FormatTime("%Y-%m-%d %H:%M:%S", now, zone)}}}});
}

}  // namespace

const std::vector<SandboxList>& SandboxLists() {
  static const auto* lists = new std::vector<SandboxList>{
      {123, "2026 Clients"},
      {124, "Newsletter subscribers"},
      {125, "VIP customers"},
  };
  return *lists;
}

std::optional<HttpResponse> SimulateConnyline(
    const HttpRequest& request, const absl::TimeZone& zone, absl::Time now,
    std::vector<std::string>* accepted) {
  if (!HasBearer(request)) return Failure(400, "NO Token Found.");
  const std::optional<std::string> path = ApiPath(request.url);
  if (path && *path == "lists/get-all/" && request.method == "GET") {
    json data = json::array();
    for (const SandboxList& list : SandboxLists()) {
      data.push_back({{"list_id", list.list_id}, {"name", list.name}});
    }
    return JsonResponse(200, {{"data", std::move(data)}});
  }
  if (path && *path == "campaigns/sms/create" && request.method == "POST") {
    if (IsSilent(request)) return std::nullopt;
    return CreateCampaign(request, zone, now, accepted);
  }
  return Failure(404, "Not found.");
}

SandboxTransport::SandboxTransport(absl::TimeZone zone)
    : zone_(zone), worker_([this] { Run(); }) {}

SandboxTransport::~SandboxTransport() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  worker_.join();
}

uint64_t SandboxTransport::Start(HttpRequest request, absl::Time deadline,
                                 Callback done) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  queue_.push_back({id, std::move(request), deadline, std::move(done)});
  return id;
}

void SandboxTransport::Cancel(uint64_t id) {
  absl::MutexLock lock(&mu_);
  for (const Pending& pending : queue_) {
    if (pending.id == id) {
      cancelled_.insert(id);
      return;
    }
  }
  // Being answered: held next (silent list), it must still end now.
  bool known = id == answering_;
  for (const Pending& pending : held_) known |= pending.id == id;
  if (known) cancelled_.insert(id);  // wakes Run() for a held one
}

std::vector<std::string> SandboxTransport::AcceptedCampaigns() const {
  absl::MutexLock lock(&mu_);
  return accepted_;
}

size_t SandboxTransport::Unanswered() const {
  absl::MutexLock lock(&mu_);
  return held_.size();
}

absl::Time SandboxTransport::EarliestHeldDeadline() const {
  absl::Time earliest = absl::InfiniteFuture();
  for (const Pending& pending : held_) {
    earliest = std::min(earliest, pending.deadline);
  }
  return earliest;
}

std::vector<std::pair<SandboxTransport::Pending, TransportError>>
SandboxTransport::TakeDueHeld(absl::Time now) {
  std::vector<std::pair<Pending, TransportError>> due;
  for (auto it = held_.begin(); it != held_.end();) {
    // The request reached "Connyline" (which may act on it): every ending
    // says it may have been sent, as a real unanswered request would.
    std::optional<TransportError> error;
    if (cancelled_.erase(it->id) > 0 || stopping_) {
      error =
          TransportError{TransportError::Kind::kCancelled, "cancelled", true};
    } else if (now >= it->deadline) {
      error = TransportError{TransportError::Kind::kTimeout,
                             "no answer before the deadline", true};
    }
    if (!error.has_value()) {
      ++it;
      continue;
    }
    due.emplace_back(std::move(*it), *std::move(error));
    it = held_.erase(it);
  }
  return due;
}

void SandboxTransport::Run() {
  // cancelled_ holds only ids still queued or held: non-empty with an empty
  // queue means a held request was cancelled.
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty() || !cancelled_.empty();
  };
  while (true) {
    std::optional<Pending> next;
    bool cancelled = false;
    std::vector<std::pair<Pending, TransportError>> due;
    {
      absl::MutexLock lock(&mu_);
      // Held requests end at their deadline, so wake for the earliest.
      mu_.AwaitWithDeadline(absl::Condition(&ready), EarliestHeldDeadline());
      due = TakeDueHeld(absl::Now());
      if (!queue_.empty()) {
        next = std::move(queue_.front());
        queue_.pop_front();
        cancelled = cancelled_.erase(next->id) > 0 || stopping_;
        answering_ = next->id;
      } else if (stopping_ && due.empty()) {
        return;  // nothing queued, nothing held
      }
    }
    for (auto& [pending, error] : due) {
      std::move(pending.done)(std::move(error));
    }
    if (next.has_value()) Answer(*std::move(next), cancelled);
  }
}

void SandboxTransport::Answer(Pending pending, bool cancelled) {
  const absl::Time now = absl::Now();
  std::vector<std::string> accepted;
  std::optional<HttpResult> result;
  if (cancelled) {
    result =
        TransportError{TransportError::Kind::kCancelled, "cancelled", false};
  } else if (now >= pending.deadline) {
    result = TransportError{TransportError::Kind::kTimeout, "deadline passed",
                            false};
  } else if (std::optional<HttpResponse> response =
                 SimulateConnyline(pending.request, zone_, now, &accepted)) {
    result = *std::move(response);
  }
  {
    absl::MutexLock lock(&mu_);
    answering_ = 0;
    if (!result.has_value()) {
      // Never answered: held until Run() ends it (a Cancel() that came in
      // meanwhile is already in cancelled_, and ends it at once).
      held_.push_back(std::move(pending));
      return;
    }
    cancelled_.erase(pending.id);  // too late: answered all the same
    for (std::string& body : accepted) accepted_.push_back(std::move(body));
    if (accepted_.size() > kMaxAccepted) {
      accepted_.erase(accepted_.begin(),
                      accepted_.end() - static_cast<long>(kMaxAccepted));
    }
  }
  std::move(pending.done)(*std::move(result));
}

}  // namespace campaign_gateway
