#include "service/sms_preview.h"

#include <string>

#include "absl/strings/str_replace.h"
#include "service/text.h"

namespace campaign_gateway {
namespace {

using campaigns::v1::SmsEncoding;

// GSM 03.38 default alphabet, in code order 0x00..0x7F (0x1B is the escape
// to the extension table, not a character).
constexpr char32_t kDefaultAlphabet[128] = {
    U'@', U'£', U'$',  U'¥', U'è', U'é',  U'ù', U'ì',   // 0x00
    U'ò', U'Ç', U'\n', U'Ø', U'ø', U'\r', U'Å', U'å',   // 0x08
    U'Δ', U'_', U'Φ',  U'Γ', U'Λ', U'Ω',  U'Π', U'Ψ',   // 0x10
    U'Σ', U'Θ', U'Ξ',  0,    U'Æ', U'æ',  U'ß', U'É',   // 0x18
    U' ', U'!', U'"',  U'#', U'¤', U'%',  U'&', U'\'',  // 0x20
    U'(', U')', U'*',  U'+', U',', U'-',  U'.', U'/',   // 0x28
    U'0', U'1', U'2',  U'3', U'4', U'5',  U'6', U'7',   // 0x30
    U'8', U'9', U':',  U';', U'<', U'=',  U'>', U'?',   // 0x38
    U'¡', U'A', U'B',  U'C', U'D', U'E',  U'F', U'G',   // 0x40
    U'H', U'I', U'J',  U'K', U'L', U'M',  U'N', U'O',   // 0x48
    U'P', U'Q', U'R',  U'S', U'T', U'U',  U'V', U'W',   // 0x50
    U'X', U'Y', U'Z',  U'Ä', U'Ö', U'Ñ',  U'Ü', U'§',   // 0x58
    U'¿', U'a', U'b',  U'c', U'd', U'e',  U'f', U'g',   // 0x60
    U'h', U'i', U'j',  U'k', U'l', U'm',  U'n', U'o',   // 0x68
    U'p', U'q', U'r',  U's', U't', U'u',  U'v', U'w',   // 0x70
    U'x', U'y', U'z',  U'ä', U'ö', U'ñ',  U'ü', U'à',   // 0x78
};

// The extension table's characters (each sent as escape + code).
constexpr char32_t kExtension[] = {U'\f', U'^', U'{', U'}', U'\\',
                                   U'[',  U'~', U']', U'|', U'€'};

int Segments(int units, int single, int part) {
  if (units <= single) return 1;
  return (units + part - 1) / part;
}

}  // namespace

int Gsm7Septets(char32_t cp) {
  if (cp == 0) return 0;  // 0x1B's slot, and not a character anyway
  for (char32_t c : kDefaultAlphabet) {
    if (c == cp) return 1;
  }
  for (char32_t c : kExtension) {
    if (c == cp) return 2;
  }
  return 0;
}

campaigns::v1::SmsPreview PreviewText(absl::string_view text) {
  int septets = 0;
  int utf16_units = 0;
  bool gsm7 = true;
  while (!text.empty()) {
    char32_t cp = 0;
    size_t len = DecodeUtf8(text, cp);
    if (len == 0) {  // not expected after validation: one unknown unit
      len = 1;
      cp = 0xFFFD;
    }
    text.remove_prefix(len);
    utf16_units += cp > 0xFFFF ? 2 : 1;
    const int s = Gsm7Septets(cp);
    gsm7 = gsm7 && s > 0;
    septets += s;
  }
  campaigns::v1::SmsPreview preview;
  if (gsm7) {
    preview.set_encoding(SmsEncoding::SMS_ENCODING_GSM_7);
    preview.set_units(septets);
    preview.set_segments(Segments(septets, kGsm7SingleUnits, kGsm7PartUnits));
  } else {
    preview.set_encoding(SmsEncoding::SMS_ENCODING_UCS_2);
    preview.set_units(utf16_units);
    preview.set_segments(
        Segments(utf16_units, kUcs2SingleUnits, kUcs2PartUnits));
  }
  return preview;
}

campaigns::v1::SmsPreview PreviewSmsText(absl::string_view sms_text) {
  // The link is plain ASCII of GSM's default alphabet: one unit each in
  // either encoding.
  return PreviewText(absl::StrReplaceAll(
      sms_text,
      {{"{shortlink1}", std::string(kShortlinkEstimatedChars, 'x')}}));
}

}  // namespace campaign_gateway
