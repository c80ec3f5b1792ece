// Fuzzes request validation and its hand-off to the REST body: the input
// is a CreateSmsCampaignRequest in protobuf wire format (what gRPC would
// hand the service); bytes that do not parse fill the fields directly, so
// that invalid UTF-8 reaches validation too. An accepted request must turn
// into a JSON body that reads back to exactly the same values, with text
// byte-exact. ParseStartMinute also gets the raw bytes.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "nlohmann/json.hpp"
#include "service/rest_request.h"
#include "service/validate.h"
#include "tests/fuzz/fuzz_common.h"

namespace campaign_gateway::fuzz {
namespace {

using campaigns::v1::CreateSmsCampaignRequest;

constexpr absl::string_view kConfiguredAccount = "ACME01";

const absl::TimeZone& Zone() {
  static const absl::TimeZone* const zone = [] {
    auto* z = new absl::TimeZone;
    if (!absl::LoadTimeZone("Europe/Athens", z)) {
      std::fprintf(stderr, "cannot load Europe/Athens (install tzdata)\n");
      std::abort();
    }
    return z;
  }();
  return *zone;
}

void FillFromBytes(const uint8_t* data, size_t size,
                   CreateSmsCampaignRequest& request) {
  FuzzedDataProvider in(data, size);
  request.set_account_code(in.ConsumeRandomLengthString(32));
  request.set_campaign_name(in.ConsumeRandomLengthString(256));
  request.set_sender(in.ConsumeRandomLengthString(24));
  request.set_list_id(in.ConsumeIntegral<int64_t>());
  request.set_sms_text(in.ConsumeRandomLengthString(2048));
  if (in.ConsumeBool()) {
    request.mutable_start_time()->set_seconds(in.ConsumeIntegral<int64_t>());
    request.mutable_start_time()->set_nanos(in.ConsumeIntegral<int32_t>());
  }
  if (in.ConsumeBool()) request.set_start(in.ConsumeRandomLengthString(20));
  request.set_shortlink1(in.ConsumeRemainingBytesAsString());
}

// The JSON body holds no \u escape: text goes out byte-exact, and
// validation lets no control character through that would need one.
bool HasUnicodeEscape(absl::string_view json) {
  for (size_t i = 0; i + 1 < json.size(); ++i) {
    if (json[i] != '\\') continue;
    if (json[i + 1] == 'u') return true;
    ++i;  // skip the escaped character
  }
  return false;
}

// {base}/api/v1/{account}/campaigns/sms/create with the account as one
// percent-encoded segment that decodes back to the account code.
void CheckUrl(const std::string& url, const std::string& base,
              const std::string& account) {
  const std::string context = absl::StrCat(url, " account=", account);
  const std::string prefix = base + "/api/v1/";
  const std::string suffix = "/campaigns/sms/create";
  FUZZ_CHECK(absl::StartsWith(url, prefix) && absl::EndsWith(url, suffix) &&
                 url.size() >= prefix.size() + suffix.size(),
             context);
  const absl::string_view segment = absl::string_view(url).substr(
      prefix.size(), url.size() - prefix.size() - suffix.size());
  FUZZ_CHECK(segment != "." && segment != "..", context);
  std::string decoded;
  for (size_t i = 0; i < segment.size(); ++i) {
    const char c = segment[i];
    if (c == '%') {
      FUZZ_CHECK(
          i + 2 < segment.size() &&
              absl::ascii_isxdigit(
                  static_cast<unsigned char>(segment[i + 1])) &&
              absl::ascii_isxdigit(static_cast<unsigned char>(segment[i + 2])),
          context);
      decoded += static_cast<char>(
          std::stoi(std::string(segment.substr(i + 1, 2)), nullptr, 16));
      i += 2;
      continue;
    }
    FUZZ_CHECK(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                   c == '.' || c == '_' || c == '~',
               context);
    decoded += c;
  }
  FUZZ_CHECK(decoded == account, context);
}

void CheckAccepted(const CreateSmsCampaignRequest& request,
                   const CampaignDraft& draft) {
  const std::string context = request.ShortDebugString();
  FUZZ_CHECK(draft.campaign_name == request.campaign_name(), context);
  FUZZ_CHECK(draft.sender == request.sender(), context);
  FUZZ_CHECK(draft.list_id == request.list_id() && draft.list_id > 0, context);
  FUZZ_CHECK(draft.sms_text == request.sms_text(), context);
  FUZZ_CHECK(draft.shortlink1 == request.shortlink1(), context);
  for (const std::string* text :
       {&draft.campaign_name, &draft.sms_text, &draft.shortlink1}) {
    FUZZ_CHECK(IsValidUtf8(*text), context);
  }
  FUZZ_CHECK(!draft.sender.empty() && draft.sender.size() <= 16, context);
  for (char c : draft.sender) {
    FUZZ_CHECK(absl::ascii_isalnum(static_cast<unsigned char>(c)), context);
  }
  // Exactly one of start and start_time, and start is the local minute.
  FUZZ_CHECK(request.start().empty() != !request.has_start_time(), context);
  if (!request.start().empty()) {
    FUZZ_CHECK(draft.start == request.start(), context);
  } else {
    FUZZ_CHECK(request.start_time().seconds() % 60 == 0 &&
                   request.start_time().nanos() == 0,
               context);
    FUZZ_CHECK(
        draft.start ==
            absl::FormatTime(
                "%E4Y-%m-%d %H:%M",
                absl::FromUnixSeconds(request.start_time().seconds()), Zone()),
        context);
  }
  FUZZ_CHECK(ParseStartMinute(draft.start).ok(), context);
  if (!draft.shortlink1.empty()) {
    FUZZ_CHECK(absl::StartsWithIgnoreCase(draft.shortlink1, "http://") ||
                   absl::StartsWithIgnoreCase(draft.shortlink1, "https://"),
               context);
  } else {
    FUZZ_CHECK(!absl::StrContains(draft.sms_text, "{shortlink1}"), context);
  }

  // The REST request: the body reads back to the same values.
  const UpstreamTarget target{"https://connyline.example/prefix", "t0k3n",
                              "campaign-gateway/fuzz"};
  const HttpRequest http =
      BuildCreateCampaignRequest(target, request.account_code(), draft);
  const std::string body_context = absl::StrCat(context, "\nbody: ", http.body);
  FUZZ_CHECK(http.method == "POST", body_context);
  CheckUrl(http.url, target.base_url, request.account_code());
  FUZZ_CHECK(!HasUnicodeEscape(http.body), body_context);
  const nlohmann::json json =
      nlohmann::json::parse(http.body, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(json.is_object() && json.size() == 6, body_context);
  const auto string_field = [&](const char* key) -> std::string {
    const auto it = json.find(key);
    FUZZ_CHECK(it != json.end() && it->is_string(), body_context);
    return it->get<std::string>();
  };
  FUZZ_CHECK(string_field("campaign_name") == draft.campaign_name,
             body_context);
  FUZZ_CHECK(string_field("sender") == draft.sender, body_context);
  FUZZ_CHECK(string_field("sms_text") == draft.sms_text, body_context);
  FUZZ_CHECK(string_field("start") == draft.start, body_context);
  FUZZ_CHECK(string_field("shortlink1") == draft.shortlink1, body_context);
  const auto list_id = json.find("list_id");
  FUZZ_CHECK(list_id != json.end() && list_id->is_number_integer() &&
                 list_id->get<int64_t>() == draft.list_id,
             body_context);
}

void CheckRejected(const absl::Status& status) {
  // Every violation is quoted in the message; allow for all of them.
  const google::rpc::ErrorInfo info =
      CheckGatewayError(status, std::nullopt, /*max_message_bytes=*/4096);
  const std::string context = status.ToString();
  FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument, context);
  FUZZ_CHECK(info.reason() == reason::kInvalidRequest, context);
  const std::optional<google::rpc::BadRequest> bad = GetBadRequest(status);
  FUZZ_CHECK(bad.has_value() && bad->field_violations_size() > 0, context);
  for (const auto& violation : bad->field_violations()) {
    // Each violation names a real field of the request.
    FUZZ_CHECK(CreateSmsCampaignRequest::descriptor()->FindFieldByName(
                   violation.field()) != nullptr,
               context);
    FUZZ_CHECK(!violation.description().empty() &&
                   IsCleanText(violation.description()),
               context);
  }
}

void CheckStartMinute(absl::string_view text) {
  const absl::StatusOr<absl::CivilMinute> minute = ParseStartMinute(text);
  if (!minute.ok()) {
    CheckGatewayError(minute.status(), std::nullopt);
    return;
  }
  // Strict: only the exact canonical spelling of a real minute parses.
  FUZZ_CHECK(absl::StrFormat("%04d-%02d-%02d %02d:%02d", minute->year(),
                             minute->month(), minute->day(), minute->hour(),
                             minute->minute()) == text,
             std::string(text));
}

void Run(const uint8_t* data, size_t size) {
  CreateSmsCampaignRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) {
    request.Clear();
    FillFromBytes(data, size, request);
  }
  const absl::StatusOr<CampaignDraft> draft =
      ValidateCreateRequest(request, Zone(),
                            // No bounds: the window has unit tests.
                            {.now = absl::UnixEpoch(),
                             .past_tolerance = absl::InfiniteDuration(),
                             .max_ahead = absl::InfiniteDuration()});
  if (draft.ok()) {
    CheckAccepted(request, *draft);
  } else {
    CheckRejected(draft.status());
  }

  const absl::StatusOr<std::string> account =
      ResolveAccount(request.account_code(), kConfiguredAccount);
  const bool allowed = request.account_code().empty() ||
                       request.account_code() == kConfiguredAccount;
  FUZZ_CHECK(account.ok() == allowed, request.account_code());
  if (account.ok()) {
    FUZZ_CHECK(*account == kConfiguredAccount, request.account_code());
  } else {
    FUZZ_CHECK(account.status().code() == absl::StatusCode::kPermissionDenied,
               account.status().ToString());
    CheckGatewayError(account.status(), std::nullopt);
  }

  CheckStartMinute(
      absl::string_view(reinterpret_cast<const char*>(data), size));
}

}  // namespace
}  // namespace campaign_gateway::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Most mutations are not valid wire format or not UTF-8; protobuf would
  // log each one.
  google::protobuf::SetLogHandler(nullptr);
  campaign_gateway::fuzz::Zone();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  campaign_gateway::fuzz::Run(data, size);
  return 0;
}
