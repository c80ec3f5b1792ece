// The SMS cost preview against the GSM 03.38 tables, written out here a
// second time (from the standard's code charts, not from the source) so a
// mistake in one shows against the other.
#include "service/sms_preview.h"

#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace campaign_gateway {
namespace {

using campaigns::v1::SmsEncoding;
using campaigns::v1::SmsPreview;

// GSM 03.38 default alphabet as UTF-8, every character (0x1B, the escape,
// excluded), row by row of the standard's chart.
const std::vector<std::string>& DefaultAlphabet() {
  static const auto* const kChars = new std::vector<std::string>{
      "@",  "£", "$", "¥", "è", "é", "ù", "ì",  "ò", "Ç", "\n", "Ø", "ø",
      "\r", "Å", "å", "Δ", "_", "Φ", "Γ", "Λ",  "Ω", "Π", "Ψ",  "Σ", "Θ",
      "Ξ",  "Æ", "æ", "ß", "É", " ", "!", "\"", "#", "¤", "%",  "&", "'",
      "(",  ")", "*", "+", ",", "-", ".", "/",  "0", "1", "2",  "3", "4",
      "5",  "6", "7", "8", "9", ":", ";", "<",  "=", ">", "?",  "¡", "A",
      "B",  "C", "D", "E", "F", "G", "H", "I",  "J", "K", "L",  "M", "N",
      "O",  "P", "Q", "R", "S", "T", "U", "V",  "W", "X", "Y",  "Z", "Ä",
      "Ö",  "Ñ", "Ü", "§", "¿", "a", "b", "c",  "d", "e", "f",  "g", "h",
      "i",  "j", "k", "l", "m", "n", "o", "p",  "q", "r", "s",  "t", "u",
      "v",  "w", "x", "y", "z", "ä", "ö", "ñ",  "ü", "à"};
  return *kChars;
}

// The extension table: escape + code, two septets each.
const std::vector<std::string>& ExtensionTable() {
  static const auto* const kChars = new std::vector<std::string>{
      "\f", "^", "{", "}", "\\", "[", "~", "]", "|", "€"};
  return *kChars;
}

std::string Repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(SmsPreviewTest, TheTablesHave127And10Characters) {
  EXPECT_EQ(DefaultAlphabet().size(), 127u);
  EXPECT_EQ(ExtensionTable().size(), 10u);
}

TEST(SmsPreviewTest, EveryDefaultAlphabetCharacterIsOneSeptet) {
  for (const std::string& c : DefaultAlphabet()) {
    const SmsPreview preview = PreviewText(c);
    EXPECT_EQ(preview.encoding(), SmsEncoding::SMS_ENCODING_GSM_7) << c;
    EXPECT_EQ(preview.units(), 1) << c;
    EXPECT_EQ(preview.segments(), 1) << c;
  }
}

TEST(SmsPreviewTest, EveryExtensionCharacterIsTwoSeptets) {
  for (const std::string& c : ExtensionTable()) {
    const SmsPreview preview = PreviewText(c);
    EXPECT_EQ(preview.encoding(), SmsEncoding::SMS_ENCODING_GSM_7) << c;
    EXPECT_EQ(preview.units(), 2) << c;
  }
}

TEST(SmsPreviewTest, TheWholeDefaultAlphabetAndExtensionTableStayGsm7) {
  std::string all;
  for (const std::string& c : DefaultAlphabet()) all += c;
  for (const std::string& c : ExtensionTable()) all += c;
  const SmsPreview preview = PreviewText(all);
  EXPECT_EQ(preview.encoding(), SmsEncoding::SMS_ENCODING_GSM_7);
  EXPECT_EQ(preview.units(), 127 + 2 * 10);
  EXPECT_EQ(preview.segments(), 1);  // 147 <= 160
}

TEST(SmsPreviewTest, CharactersOutsideGsm0338NeedUcs2) {
  // Look-alikes of GSM characters that are not in it, a tab, Greek lower
  // case, a backtick, a non-breaking space, and a NUL.
  for (const std::string& c :
       std::vector<std::string>{"ç", "á", "\t", "α", "`", "\xC2\xA0",
                                std::string(1, '\0'), "€€ü©"}) {
    const SmsPreview preview = PreviewText("Hi " + c);
    EXPECT_EQ(preview.encoding(), SmsEncoding::SMS_ENCODING_UCS_2) << c;
  }
  EXPECT_EQ(PreviewText("Hi ç").units(), 4);
}

TEST(SmsPreviewTest, Ucs2CountsUtf16CodeUnitsSoAnEmojiIsTwo) {
  EXPECT_EQ(PreviewText("🎉").units(), 2);       // U+1F389, a surrogate pair
  EXPECT_EQ(PreviewText("Καλή 🎉").units(), 7);  // 4 + space + 2
  // In UCS-2 an extension character is one unit like any other.
  EXPECT_EQ(PreviewText("α€").units(), 2);
  EXPECT_EQ(PreviewText("α€").encoding(), SmsEncoding::SMS_ENCODING_UCS_2);
}

struct Boundary {
  const char* name;
  std::string text;
  SmsEncoding encoding;
  int units;
  int segments;
};
// Without it gtest prints the struct's bytes, heap pointers included.
void PrintTo(const Boundary& b, std::ostream* os) { *os << b.name; }

class SmsPreviewBoundaryTest : public ::testing::TestWithParam<Boundary> {};

TEST_P(SmsPreviewBoundaryTest, Segments) {
  const SmsPreview preview = PreviewText(GetParam().text);
  EXPECT_EQ(preview.encoding(), GetParam().encoding);
  EXPECT_EQ(preview.units(), GetParam().units);
  EXPECT_EQ(preview.segments(), GetParam().segments);
}

constexpr auto kGsm = SmsEncoding::SMS_ENCODING_GSM_7;
constexpr auto kUcs = SmsEncoding::SMS_ENCODING_UCS_2;

INSTANTIATE_TEST_SUITE_P(
    Gsm7AndUcs2, SmsPreviewBoundaryTest,
    ::testing::Values(
        Boundary{"Gsm160", Repeat("a", 160), kGsm, 160, 1},
        Boundary{"Gsm161", Repeat("a", 161), kGsm, 161, 2},
        Boundary{"Gsm306", Repeat("a", 153 * 2), kGsm, 306, 2},
        Boundary{"Gsm307", Repeat("a", 153 * 2 + 1), kGsm, 307, 3},
        // 80 extension characters are 160 septets: still one SMS; one more
        // septet is two.
        Boundary{"Gsm80Euros", Repeat("€", 80), kGsm, 160, 1},
        Boundary{"Gsm80EurosAndA", Repeat("€", 80) + "a", kGsm, 161, 2},
        Boundary{"Ucs70", Repeat("α", 70), kUcs, 70, 1},
        Boundary{"Ucs71", Repeat("α", 71), kUcs, 71, 2},
        Boundary{"Ucs134", Repeat("α", 67 * 2), kUcs, 134, 2},
        Boundary{"Ucs135", Repeat("α", 67 * 2 + 1), kUcs, 135, 3},
        Boundary{"Ucs35Emoji", Repeat("🎉", 35), kUcs, 70, 1},
        Boundary{"Ucs36Emoji", Repeat("🎉", 36), kUcs, 72, 2}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(SmsPreviewTest, ShortlinkCountsAsTheEstimatedLinkLength) {
  const SmsPreview preview = PreviewSmsText("Hi! Offer: {shortlink1}");
  EXPECT_EQ(preview.encoding(), SmsEncoding::SMS_ENCODING_GSM_7);
  EXPECT_EQ(preview.units(), 11 + kShortlinkEstimatedChars);
  // Every occurrence, and in UCS-2 too (the link is ASCII: one unit each).
  EXPECT_EQ(PreviewSmsText("{shortlink1} α {shortlink1}").units(),
            2 * kShortlinkEstimatedChars + 3);
  // The braces alone would count two septets each as extension characters.
  EXPECT_NE(PreviewText("{shortlink1}").units(), kShortlinkEstimatedChars);
}

TEST(SmsPreviewTest, TheDocumentedExample) {
  // README's example text, as sent: GSM-7 and one SMS.
  const SmsPreview preview = PreviewSmsText("Hi! Offer: {shortlink1}");
  EXPECT_EQ(preview.units(), 34);
  EXPECT_EQ(preview.segments(), 1);
}

}  // namespace
}  // namespace campaign_gateway
