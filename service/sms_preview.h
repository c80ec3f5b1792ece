// What an SMS text costs per recipient: its encoding (GSM 03.38's 7-bit
// alphabet, else UCS-2), its length in that encoding's units and the number
// of segments it travels in. Pure; the gateway attaches it to every create
// answer (campaigns.v1.SmsPreview).
#ifndef CAMPAIGN_GATEWAY_SERVICE_SMS_PREVIEW_H_
#define CAMPAIGN_GATEWAY_SERVICE_SMS_PREVIEW_H_

#include "absl/strings/string_view.h"
#include "campaigns/v1/campaign_service.pb.h"

namespace campaign_gateway {

// The length "{shortlink1}" is counted with: Connyline replaces it with a
// short link it does not document; 23 GSM characters is an estimate (a
// host of about 8 characters and a 7-character code, e.g.
// "https://cnln.io/a1B2c3D").
inline constexpr int kShortlinkEstimatedChars = 23;

// Single-message capacities and the per-part capacities of a concatenated
// message (the rest of each part carries the 6-byte concatenation header).
inline constexpr int kGsm7SingleUnits = 160;
inline constexpr int kGsm7PartUnits = 153;
inline constexpr int kUcs2SingleUnits = 70;
inline constexpr int kUcs2PartUnits = 67;

// Septets `cp` takes in GSM 03.38: 1 in the default alphabet, 2 in the
// extension table (escape + character), 0 when it cannot be sent as GSM-7.
int Gsm7Septets(char32_t cp);

// The preview of `text` exactly as given (valid UTF-8; an invalid sequence
// counts as one UCS-2 unit).
campaigns::v1::SmsPreview PreviewText(absl::string_view text);

// The preview of an sms_text as it will be sent: each "{shortlink1}" counted
// as a link of kShortlinkEstimatedChars GSM characters.
campaigns::v1::SmsPreview PreviewSmsText(absl::string_view sms_text);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_SMS_PREVIEW_H_
