#include "service/sandbox_transport.h"

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

HttpResponse SimulateConnyline(const HttpRequest& request,
                               const absl::TimeZone& zone, absl::Time now,
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
}

std::vector<std::string> SandboxTransport::AcceptedCampaigns() const {
  absl::MutexLock lock(&mu_);
  return accepted_;
}

void SandboxTransport::Run() {
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  };
  while (true) {
    Pending pending;
    bool cancelled = false;
    std::vector<std::string> accepted;
    {
      absl::MutexLock lock(&mu_, absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, nothing left
      pending = std::move(queue_.front());
      queue_.pop_front();
      cancelled = cancelled_.erase(pending.id) > 0 || stopping_;
    }
    if (cancelled) {
      std::move(pending.done)(
          TransportError{TransportError::Kind::kCancelled, "cancelled", false});
      continue;
    }
    const absl::Time now = absl::Now();
    if (now >= pending.deadline) {
      std::move(pending.done)(TransportError{TransportError::Kind::kTimeout,
                                             "deadline passed", false});
      continue;
    }
    HttpResponse response =
        SimulateConnyline(pending.request, zone_, now, &accepted);
    if (!accepted.empty()) {
      absl::MutexLock lock(&mu_);
      for (std::string& body : accepted) accepted_.push_back(std::move(body));
      if (accepted_.size() > kMaxAccepted) {
        accepted_.erase(accepted_.begin(),
                        accepted_.end() - static_cast<long>(kMaxAccepted));
      }
    }
    std::move(pending.done)(std::move(response));
  }
}

}  // namespace campaign_gateway
