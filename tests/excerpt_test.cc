#include "service/excerpt.h"

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace campaign_gateway {
namespace {

using ::testing::StartsWith;

TEST(SanitizedExcerptTest, PlainTextUnchanged) {
  EXPECT_EQ(SanitizedExcerpt("Service Unavailable"), "Service Unavailable");
}

TEST(SanitizedExcerptTest, CollapsesWhitespaceAndTrims) {
  EXPECT_EQ(SanitizedExcerpt("  a \r\n\t b   c  "), "a b c");
}

TEST(SanitizedExcerptTest, RemovesControlCharacters) {
  EXPECT_EQ(SanitizedExcerpt("a\x01\x02"
                             "b\x7f"
                             "c\x1b[31md"),
            "abc[31md");
  // C1 controls (U+0080..U+009F) too.
  EXPECT_EQ(SanitizedExcerpt("x\xC2\x9By"), "xy");
}

TEST(SanitizedExcerptTest, ReplacesInvalidUtf8) {
  EXPECT_EQ(SanitizedExcerpt("ok\xFF\xFEok"), "ok\xEF\xBF\xBD\xEF\xBF\xBDok");
  // Overlong encoding and a lone surrogate are invalid too.
  EXPECT_EQ(SanitizedExcerpt("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(SanitizedExcerpt("\xED\xA0\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(SanitizedExcerptTest, KeepsValidMultibyteText) {
  EXPECT_EQ(SanitizedExcerpt("Σφάλμα 😀"), "Σφάλμα 😀");
}

TEST(SanitizedExcerptTest, CutsAtCodePointBoundary) {
  // "α" is 2 bytes: 5 bytes of room fit two of them, not two and a half.
  const std::string excerpt = SanitizedExcerpt("ααααα", 5);
  EXPECT_EQ(excerpt, "αα...");
  // Emoji are 4 bytes.
  EXPECT_EQ(SanitizedExcerpt("😀😀😀", 7), "😀...");
}

TEST(SanitizedExcerptTest, ExactFitHasNoEllipsis) {
  EXPECT_EQ(SanitizedExcerpt("abcde", 5), "abcde");
  EXPECT_EQ(SanitizedExcerpt("abcdef", 5), "abcde...");
}

TEST(SanitizedExcerptTest, DefaultCapIs160Bytes) {
  const std::string excerpt = SanitizedExcerpt(std::string(1000, 'z'));
  EXPECT_EQ(excerpt, std::string(160, 'z') + "...");
}

TEST(SanitizedExcerptTest, TenMegabytesOfInvalidUtf8) {
  const std::string excerpt = SanitizedExcerpt(std::string(10 << 20, '\xFF'));
  EXPECT_LE(excerpt.size(), 163u);
  EXPECT_THAT(excerpt, testing::EndsWith("..."));
}

TEST(SanitizedExcerptTest, StripsHtmlTagsScriptsAndEntities) {
  EXPECT_EQ(SanitizedExcerpt("<!DOCTYPE html><html><head><SCRIPT type=x>var "
                             "a = '<b>';</SCRIPT></head><body><p>Fish &amp; "
                             "chips&nbsp;&lt;3</p></body></html>"),
            "Fish & chips <3");
}

TEST(SanitizedExcerptTest, UnterminatedTagIsText) {
  EXPECT_EQ(SanitizedExcerpt("<p>a <b"), "a <b");
}

TEST(SanitizedExcerptTest, PlainTextWithAngleBracketsIsNotStripped) {
  EXPECT_EQ(SanitizedExcerpt("error: <id> is bad"), "error: <id> is bad");
}

TEST(SanitizedExcerptTest, PathologicalMarkupStaysLinear) {
  // 10 MB of "<a" that produce no text: a quadratic scan would take minutes.
  std::string body;
  for (int i = 0; i < (5 << 20); ++i) body += "<a";
  const absl::Time start = absl::Now();
  EXPECT_EQ(SanitizedExcerpt(body + ">tail"), "tail");
  EXPECT_THAT(SanitizedExcerpt(body), StartsWith("<a<a<a"));
  EXPECT_EQ(SanitizedExcerpt("<script>" + body), "");
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(SanitizedExcerptTest, ACommentCutOffByTruncationIsDropped) {
  // What the transport keeps of a proxy's multi-megabyte page.
  const std::string excerpt =
      SanitizedExcerpt("<html><body><h1>502 Bad Gateway</h1><!-- padding pad");
  EXPECT_EQ(excerpt, "502 Bad Gateway");
}

TEST(SanitizedExcerptTest, HugeHtmlCommentIsSkippedQuickly) {
  std::string body =
      "<html><!-- " + std::string(10 << 20, '-') + " -->Real text";
  EXPECT_EQ(SanitizedExcerpt(body), "Real text");
}

TEST(SanitizedTextTest, KeepsMarkupAsWritten) {
  // Connyline's JSON "message" is text: "<" and "&" are not markup there.
  EXPECT_EQ(SanitizedText("<b>list_id</b> must be < 5 &amp; > 0", 160),
            "<b>list_id</b> must be < 5 &amp; > 0");
}

TEST(SanitizedTextTest, CleansAndCapsLikeAnExcerpt) {
  EXPECT_EQ(SanitizedText("  bad\x01\n\tinput\xFF  ", 160),
            "bad input\xEF\xBF\xBD");
  EXPECT_EQ(SanitizedText("abcdef", 5), "abcde...");
}

}  // namespace
}  // namespace campaign_gateway
