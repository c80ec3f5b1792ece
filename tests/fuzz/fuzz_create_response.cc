// Fuzzes ParseCreateCampaignResponse with whatever Connyline (or a proxy in
// front of it) might answer to campaigns/sms/create, read in a zone with
// DST transitions. Input: see ParseHttpInput.
#include <cstddef>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.pb.h"
#include "service/rest_response.h"
#include "tests/fuzz/fuzz_common.h"

namespace campaign_gateway::fuzz {
namespace {

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

// The Timestamp must be the moment the Y-m-d H:i:s text names in the zone,
// checked with absl's own parser and formatter rather than the gateway's:
// the text formats back exactly, except in a DST gap, where the skipped
// local time maps to the transition.
void CheckTime(const std::string& text, const google::protobuf::Timestamp& time,
               const std::string& context) {
  FUZZ_CHECK(time.nanos() == 0, context);
  FUZZ_CHECK(text.size() == 19 && text[10] == ' ', context);
  std::string iso = text;
  iso[10] = 'T';
  absl::CivilSecond civil;
  FUZZ_CHECK(absl::ParseCivilTime(iso, &civil), context);
  FUZZ_CHECK(civil.year() >= 1 && civil.year() <= 9999, context);
  const absl::Time instant = absl::FromUnixSeconds(time.seconds());
  const absl::TimeZone::TimeInfo info = Zone().At(civil);
  if (info.kind == absl::TimeZone::TimeInfo::SKIPPED) {
    FUZZ_CHECK(instant == info.trans, context);
  } else {
    FUZZ_CHECK(absl::FormatTime("%E4Y-%m-%d %H:%M:%S", instant, Zone()) == text,
               context);
  }
}

void Run(const HttpResponse& response) {
  const absl::StatusOr<campaigns::v1::CreateSmsCampaignResponse> result =
      ParseCreateCampaignResponse(response, Zone());
  if (result.ok()) {
    const std::string context = result->ShortDebugString();
    FUZZ_CHECK(Is2xx(response.status), context);
    const campaigns::v1::SmsCampaign& campaign = result->campaign();
    FUZZ_CHECK(campaign.list_id() > 0, context);
    CheckTime(campaign.start(), campaign.start_time(), context);
    CheckTime(campaign.created_at(), campaign.create_time(), context);
    CheckProtoRoundTrip(*result);
    return;
  }
  const std::string context = result.status().ToString();
  CheckGatewayError(result.status(), response.status);
  if (Is2xx(response.status)) {
    const absl::StatusCode code = result.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInternal ||
                   code == absl::StatusCode::kInvalidArgument ||
                   code == absl::StatusCode::kUnauthenticated,
               context);
    // After a 2xx the campaign probably exists: an unreadable answer must
    // say so, or someone retries and the SMS goes out twice.
    if (code == absl::StatusCode::kInternal) {
      FUZZ_CHECK(absl::StrContains(result.status().message(),
                                   "the campaign may have been created"),
                 context);
    }
  }
}

}  // namespace
}  // namespace campaign_gateway::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  campaign_gateway::fuzz::Zone();  // load once, outside the timed runs
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  campaign_gateway::fuzz::Run(
      campaign_gateway::fuzz::ParseHttpInput(data, size));
  return 0;
}
