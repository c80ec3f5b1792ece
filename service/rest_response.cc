#include "service/rest_response.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "nlohmann/json.hpp"
#include "service/errors.h"
#include "service/excerpt.h"
#include "service/status_mapping.h"
#include "service/text.h"

namespace campaign_gateway {
namespace {

using Json = nlohmann::json;

// Upstream values quoted in messages are escaped and cut to this.
constexpr size_t kMaxQuotedBytes = 40;

bool Is2xx(int status) { return status >= 200 && status <= 299; }

// INTERNAL / UPSTREAM_BAD_RESPONSE: Connyline said "success" in a shape we
// cannot read. `problem` says what was wrong.
absl::Status BadResponse(const HttpResponse& response,
                         absl::string_view problem,
                         absl::string_view consequence = "") {
  return MakeError(
      absl::StatusCode::kInternal,
      absl::StrCat("Connyline answered HTTP ", response.status,
                   " with an unexpected body: ", problem, consequence),
      reason::kUpstreamBadResponse,
      {{std::string(metadata_key::kHttpStatus),
        absl::StrCat(response.status)}});
}

// The body as a JSON object, or what is wrong with it (quoting a short
// sanitised excerpt, since such bodies are usually proxy pages). Parsing
// never throws: a discarded value marks a syntax error.
absl::StatusOr<Json> ParseObject(const HttpResponse& response) {
  if (absl::StripAsciiWhitespace(response.body).empty()) {
    return absl::InvalidArgumentError("it is empty");
  }
  if (!JsonDepthWithin(response.body, kMaxJsonDepth)) {
    return absl::InvalidArgumentError(
        absl::StrCat("it nests deeper than ", kMaxJsonDepth, " levels"));
  }
  Json json = Json::parse(response.body, /*cb=*/nullptr,
                          /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "it is not JSON: \"", SanitizedExcerpt(response.body), "\""));
  }
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "it is not a JSON object: \"", SanitizedExcerpt(response.body), "\""));
  }
  return json;
}

// A list id as Connyline may send it: a positive JSON integer, or a string
// of decimal digits (PHP backends often serialise ids as strings).
std::optional<int64_t> ListIdValue(const Json& value) {
  if (value.is_number_unsigned()) {
    const uint64_t id = value.get<uint64_t>();
    if (id == 0 ||
        id > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(id);
  }
  if (value.is_number_integer()) {
    const int64_t id = value.get<int64_t>();
    return id > 0 ? std::optional<int64_t>(id) : std::nullopt;
  }
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    int64_t id = 0;
    if (text.empty() || text.size() > 19 ||
        !std::all_of(text.begin(), text.end(),
                     [](char c) {
                       return absl::ascii_isdigit(
                           static_cast<unsigned char>(c));
                     }) ||
        !absl::SimpleAtoi(text, &id) || id <= 0) {
      return std::nullopt;
    }
    return id;
  }
  return std::nullopt;
}

// Reads fields of Connyline's JSON, remembering the first problem (named by
// its JSON path, e.g. "data[2].list_id is missing") instead of throwing.
class FieldReader {
 public:
  const std::string& problem() const { return problem_; }
  bool ok() const { return problem_.empty(); }

  void Fail(std::string problem) {
    if (problem_.empty()) problem_ = std::move(problem);
  }

  // The member `key` of `object`; nullptr (and a problem) when missing.
  const Json* Member(const Json& object, const std::string& key,
                     absl::string_view path) {
    const auto it = object.find(key);
    if (it == object.end()) {
      Fail(absl::StrCat(path, " is missing"));
      return nullptr;
    }
    return &*it;
  }

  std::string String(const Json& object, const std::string& key,
                     absl::string_view path) {
    const Json* value = Member(object, key, path);
    if (value == nullptr) return "";
    if (!value->is_string()) {
      Fail(absl::StrCat(path, " is not a string"));
      return "";
    }
    return value->get<std::string>();
  }

  int64_t ListId(const Json& object, absl::string_view path) {
    const Json* value = Member(object, "list_id", path);
    if (value == nullptr) return 0;
    const std::optional<int64_t> id = ListIdValue(*value);
    if (!id) {
      Fail(absl::StrCat(path, " is not a positive integer"));
      return 0;
    }
    return *id;
  }

  // A "YYYY-MM-DD HH:MM:SS" member, copied into `text` and read in `zone`.
  void Time(const Json& object, const std::string& key, absl::string_view path,
            const absl::TimeZone& zone, std::string& text,
            google::protobuf::Timestamp& time) {
    text = String(object, key, path);
    if (!ok()) return;
    const absl::StatusOr<absl::Time> parsed = ParseConnylineTime(text, zone);
    if (!parsed.ok()) {
      Fail(absl::StrCat(path, " ", parsed.status().message()));
      return;
    }
    time.set_seconds(absl::ToUnixSeconds(*parsed));
    time.set_nanos(0);
  }

 private:
  std::string problem_;
};

// Connyline's "message", "" when absent or null; a problem when it is
// something else.
std::string MessageOf(const Json& body, FieldReader& reader) {
  const auto it = body.find("message");
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_string()) {
    reader.Fail("message is not a string");
    return "";
  }
  return it->get<std::string>();
}

// "success": false turns a 2xx into the error table's 400 row, with
// Connyline's message. The real status is kept for ErrorInfo.
std::optional<absl::Status> SuccessFalse(const HttpResponse& response,
                                         const Json& body) {
  const auto it = body.find("success");
  if (it == body.end() || !it->is_boolean() || it->get<bool>()) {
    return std::nullopt;
  }
  const auto message = body.find("message");
  return MapHttpError(response.status,
                      message != body.end() && message->is_string()
                          ? message->get<std::string>()
                          : std::string(),
                      std::nullopt);
}

}  // namespace

absl::StatusOr<campaigns::v1::ListListsResponse> ParseListListsResponse(
    const HttpResponse& response) {
  if (!Is2xx(response.status)) {
    return MapHttpErrorResponse(response, absl::Now());
  }
  absl::StatusOr<Json> body = ParseObject(response);
  if (!body.ok()) return BadResponse(response, body.status().message());
  if (std::optional<absl::Status> error = SuccessFalse(response, *body)) {
    return *std::move(error);
  }

  FieldReader reader;
  campaigns::v1::ListListsResponse out;
  // "success" is not documented for this endpoint; if sent it must be sane.
  if (const auto it = body->find("success");
      it != body->end() && !it->is_boolean()) {
    reader.Fail("success is not a boolean");
  }
  const Json* data = reader.Member(*body, "data", "data");
  if (data != nullptr && !data->is_array()) reader.Fail("data is not an array");
  if (!reader.ok()) return BadResponse(response, reader.problem());

  for (size_t i = 0; i < data->size() && reader.ok(); ++i) {
    const Json& entry = (*data)[i];
    const std::string path = absl::StrCat("data[", i, "]");
    if (!entry.is_object()) {
      reader.Fail(absl::StrCat(path, " is not an object"));
      break;
    }
    campaigns::v1::ContactList* list = out.add_lists();
    list->set_list_id(reader.ListId(entry, absl::StrCat(path, ".list_id")));
    list->set_name(reader.String(entry, "name", absl::StrCat(path, ".name")));
  }
  if (!reader.ok()) return BadResponse(response, reader.problem());
  return out;
}

absl::StatusOr<campaigns::v1::CreateSmsCampaignResponse>
ParseCreateCampaignResponse(const HttpResponse& response,
                            const absl::TimeZone& zone) {
  if (!Is2xx(response.status)) {
    return MapHttpErrorResponse(response, absl::Now());
  }
  // Past a 2xx the campaign probably exists: say so, so that nobody
  // "fixes" an unreadable answer by scheduling the SMS a second time.
  constexpr absl::string_view kMayExist =
      " (the campaign may have been created; check before retrying)";
  absl::StatusOr<Json> body = ParseObject(response);
  if (!body.ok()) {
    return BadResponse(response, body.status().message(), kMayExist);
  }
  if (std::optional<absl::Status> error = SuccessFalse(response, *body)) {
    return *std::move(error);
  }

  FieldReader reader;
  if (const Json* success = reader.Member(*body, "success", "success");
      success != nullptr && (!success->is_boolean() || !success->get<bool>())) {
    reader.Fail("success is not true");
  }
  campaigns::v1::CreateSmsCampaignResponse out;
  out.set_message(MessageOf(*body, reader));
  const Json* data = reader.Member(*body, "data", "data");
  if (data != nullptr && !data->is_object()) {
    reader.Fail("data is not an object");
  }
  if (!reader.ok()) return BadResponse(response, reader.problem(), kMayExist);

  campaigns::v1::SmsCampaign& campaign = *out.mutable_campaign();
  campaign.set_campaign_name(
      reader.String(*data, "campaign_name", "data.campaign_name"));
  campaign.set_sender(reader.String(*data, "sender", "data.sender"));
  campaign.set_list_id(reader.ListId(*data, "data.list_id"));
  reader.Time(*data, "start", "data.start", zone, *campaign.mutable_start(),
              *campaign.mutable_start_time());
  reader.Time(*data, "created_at", "data.created_at", zone,
              *campaign.mutable_created_at(), *campaign.mutable_create_time());
  if (!reader.ok()) return BadResponse(response, reader.problem(), kMayExist);
  campaign.set_time_zone(zone.name());
  return out;
}

bool JsonDepthWithin(absl::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

absl::StatusOr<absl::Time> ParseConnylineTime(absl::string_view text,
                                              const absl::TimeZone& zone) {
  const auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(text, kMaxQuotedBytes), " ", why));
  };
  // Positions: "YYYY-MM-DD HH:MM:SS"
  //             0123456789012345678
  if (text.size() != 19 || text[4] != '-' || text[7] != '-' ||
      text[10] != ' ' || text[13] != ':' || text[16] != ':') {
    return invalid("is not a \"YYYY-MM-DD HH:MM:SS\" time");
  }
  const std::optional<int> year = Digits(text.substr(0, 4));
  const std::optional<int> month = Digits(text.substr(5, 2));
  const std::optional<int> day = Digits(text.substr(8, 2));
  const std::optional<int> hour = Digits(text.substr(11, 2));
  const std::optional<int> minute = Digits(text.substr(14, 2));
  const std::optional<int> second = Digits(text.substr(17, 2));
  if (!year || !month || !day || !hour || !minute || !second) {
    return invalid("is not a \"YYYY-MM-DD HH:MM:SS\" time");
  }
  const absl::CivilSecond civil(*year, *month, *day, *hour, *minute, *second);
  if (*year < 1 || civil.year() != *year || civil.month() != *month ||
      civil.day() != *day || civil.hour() != *hour ||
      civil.minute() != *minute || civil.second() != *second) {
    return invalid("is not a real date and time");
  }
  // Around a DST change absl::FromCivil resolves a skipped local time to
  // the transition instant and a repeated one to its first occurrence.
  return absl::FromCivil(civil, zone);
}

}  // namespace campaign_gateway
