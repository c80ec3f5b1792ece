// Fuzzes the error side of the translation: MapHttpErrorResponse on any
// status, headers (Retry-After included) and body; SanitizedExcerpt at
// several sizes; ParseRetryAfter; MapHttpError and MapTransportError with
// arbitrary upstream text. Input: see ParseHttpInput.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "service/excerpt.h"
#include "service/http_date.h"
#include "service/status_mapping.h"
#include "tests/fuzz/fuzz_common.h"

namespace campaign_gateway::fuzz {
namespace {

// Fixed, so runs are reproducible (2026-02-24 09:15:00 UTC).
const absl::Time kNow = absl::FromUnixSeconds(1771924500);
constexpr absl::Duration kMaxRetryAfter = absl::Hours(1);

void CheckExcerpt(absl::string_view body, size_t max_bytes) {
  const std::string excerpt = SanitizedExcerpt(body, max_bytes);
  const std::string context =
      absl::StrCat("max_bytes=", max_bytes, " excerpt=", excerpt);
  FUZZ_CHECK(excerpt.size() <= max_bytes + 3, context);
  FUZZ_CHECK(IsCleanText(excerpt), context);
  if (excerpt.size() > max_bytes) {
    FUZZ_CHECK(absl::EndsWith(excerpt, "..."), context);
  }
  // Whitespace runs collapse to one space.
  FUZZ_CHECK(!absl::StrContains(excerpt, "  "), context);
}

std::optional<absl::Duration> CheckRetryAfter(absl::string_view value) {
  const std::optional<absl::Duration> delay = ParseRetryAfter(value, kNow);
  if (delay) {
    const std::string context =
        absl::StrCat(value, " -> ", absl::FormatDuration(*delay));
    FUZZ_CHECK(*delay >= absl::ZeroDuration() && *delay <= kMaxRetryAfter,
               context);
  }
  // Extreme clocks must not overflow either.
  for (absl::Time now :
       {absl::InfinitePast(), absl::InfiniteFuture(), absl::UnixEpoch()}) {
    if (const auto d = ParseRetryAfter(value, now)) {
      FUZZ_CHECK(*d >= absl::ZeroDuration() && *d <= kMaxRetryAfter,
                 std::string(value));
    }
  }
  return delay;
}

void Run(const HttpResponse& response) {
  const std::optional<std::string> header = response.Header("retry-after");
  std::optional<absl::Duration> retry_after;
  if (header) retry_after = CheckRetryAfter(*header);

  const absl::Status status = MapHttpErrorResponse(response, kNow);
  const std::string context = status.ToString();
  CheckGatewayError(status, response.status);
  // RetryInfo only on 429 and 503, and exactly the advertised delay.
  const std::optional<google::rpc::RetryInfo> retry = GetRetryInfo(status);
  if (retry_after && (response.status == 429 || response.status == 503)) {
    FUZZ_CHECK(retry.has_value(), context);
    const absl::Duration delay =
        absl::Seconds(retry->retry_delay().seconds()) +
        absl::Nanoseconds(retry->retry_delay().nanos());
    FUZZ_CHECK(delay == *retry_after, context);
  } else {
    FUZZ_CHECK(!retry.has_value(), context);
  }

  // The same body as Connyline's "message", through the direct entry point.
  CheckGatewayError(MapHttpError(response.status, response.body, retry_after),
                    response.status);

  // And as a transport failure's detail, of a kind picked by the status.
  TransportError error;
  error.kind = static_cast<TransportError::Kind>(
      static_cast<unsigned>(response.status) %
      (static_cast<unsigned>(TransportError::Kind::kOther) + 1));
  error.detail = response.body;
  CheckGatewayError(MapTransportError(error), std::nullopt);

  // Excerpts: the default, the edges, and a size taken from the input so
  // that cuts land inside multi-byte characters and entities.
  const size_t small = response.body.empty()
                           ? 7
                           : static_cast<unsigned char>(response.body[0]) % 64;
  for (size_t max_bytes :
       {size_t{0}, size_t{1}, size_t{4}, small, size_t{160}}) {
    CheckExcerpt(response.body, max_bytes);
  }
  // Retry-After parsing of the body's first line too: it reaches much more
  // of the date grammar than header values that happen to be present.
  CheckRetryAfter(absl::string_view(response.body).substr(0, 64));
}

}  // namespace
}  // namespace campaign_gateway::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  campaign_gateway::fuzz::Run(
      campaign_gateway::fuzz::ParseHttpInput(data, size));
  return 0;
}
