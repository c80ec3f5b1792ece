#include "service/excerpt.h"

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/text.h"

namespace campaign_gateway {
namespace {

// Builds an excerpt code point by code point: whitespace runs become one
// space, the result never exceeds `max_bytes` and is cut only between code
// points, with "..." appended when anything was left out.
class ExcerptWriter {
 public:
  explicit ExcerptWriter(size_t max_bytes) : max_bytes_(max_bytes) {}

  bool full() const { return full_; }
  void Space() { pending_space_ = true; }

  // Appends one code point's bytes; false (and the writer is full) when
  // they no longer fit.
  bool Append(absl::string_view bytes) {
    if (full_) return false;
    const bool space = pending_space_ && !out_.empty();
    if (out_.size() + (space ? 1 : 0) + bytes.size() > max_bytes_) {
      full_ = true;
      return false;
    }
    if (space) out_ += ' ';
    pending_space_ = false;
    out_.append(bytes.data(), bytes.size());
    return true;
  }

  std::string Finish() && {
    if (full_) out_ += "...";
    return std::move(out_);
  }

 private:
  size_t max_bytes_;
  std::string out_;
  bool pending_space_ = false;
  bool full_ = false;
};

// The few entities that make proxy error pages readable; others stay as
// written.
std::optional<absl::string_view> DecodeEntity(absl::string_view text,
                                              size_t& consumed) {
  static constexpr std::pair<absl::string_view, absl::string_view> kEntities[] =
      {{"&amp;", "&"}, {"&lt;", "<"},   {"&gt;", ">"},  {"&quot;", "\""},
       {"&#39;", "'"}, {"&apos;", "'"}, {"&nbsp;", " "}};
  for (const auto& [entity, replacement] : kEntities) {
    if (absl::StartsWith(text, entity)) {
      consumed = entity.size();
      return replacement;
    }
  }
  return std::nullopt;
}

// The first `needle` (which starts with '<') in `text` at or after `from`,
// ignoring ASCII case.
size_t FindIgnoreCase(absl::string_view text, absl::string_view needle,
                      size_t from) {
  for (size_t j = text.find('<', from); j != absl::string_view::npos;
       j = text.find('<', j + 1)) {
    if (absl::StartsWithIgnoreCase(text.substr(j), needle)) return j;
  }
  return absl::string_view::npos;
}

bool StartsWithTagName(absl::string_view text, absl::string_view name) {
  return text.size() > name.size() && absl::StartsWithIgnoreCase(text, name) &&
         !absl::ascii_isalnum(static_cast<unsigned char>(text[name.size()]));
}

// Whether the '<' at text[i] opens a tag: a letter, '/', '!' or '?'
// follows it.
bool OpensTag(absl::string_view text, size_t i) {
  if (text[i] != '<' || i + 1 >= text.size()) return false;
  const char next = text[i + 1];
  return absl::ascii_isalpha(static_cast<unsigned char>(next)) || next == '/' ||
         next == '!' || next == '?';
}

// Where the text resumes after the tag that opens at text[i] and whose '>'
// is at `end`: after the '>', or for script and style at their closing tag
// (code is not text; the closing tag is stripped next).
size_t SkipTag(absl::string_view text, size_t i, size_t end) {
  size_t next = end + 1;
  for (absl::string_view raw : {"script", "style"}) {
    if (StartsWithTagName(text.substr(i + 1), raw)) {
      next = std::min(FindIgnoreCase(text, absl::StrCat("</", raw), next),
                      text.size());
    }
  }
  return next;
}

// Writes the entity that `text` starts with, if it is one DecodeEntity()
// knows; returns its length, or 0.
size_t WriteEntity(absl::string_view text, ExcerptWriter& writer) {
  size_t consumed = 0;
  const std::optional<absl::string_view> decoded = DecodeEntity(text, consumed);
  if (!decoded.has_value()) return 0;
  if (*decoded == " ") {
    writer.Space();
  } else {
    writer.Append(*decoded);
  }
  return consumed;
}

// Writes the code point `text` starts with: whitespace as a space, control
// characters not at all, an invalid byte as U+FFFD. Returns the bytes read.
size_t WriteCodePoint(absl::string_view text, ExcerptWriter& writer) {
  if (absl::ascii_isspace(static_cast<unsigned char>(text[0]))) {
    writer.Space();
    return 1;
  }
  char32_t cp = 0;
  const size_t len = DecodeUtf8(text, cp);
  if (len == 0) {
    writer.Append("\xEF\xBF\xBD");  // U+FFFD for each invalid byte
    return 1;
  }
  if (cp == 0x85 || cp == 0xA0) {
    writer.Space();
  } else if (!IsControl(cp)) {
    writer.Append(text.substr(0, len));
  }
  return len;
}

// Sanitises `text` into at most `max_bytes` (+ "..."). With `strip_html`,
// tags are dropped (script and style with their content) and common
// entities decoded. Linear in the input, and it stops as soon as the
// excerpt is full, so a 10 MB body costs no more than its first bytes.
std::string Sanitize(absl::string_view text, size_t max_bytes,
                     bool strip_html) {
  ExcerptWriter writer(max_bytes);
  bool no_more_tag_ends = false;  // no '>' left: every '<' is literal
  size_t i = 0;
  while (i < text.size() && !writer.full()) {
    if (strip_html && !no_more_tag_ends && OpensTag(text, i)) {
      const size_t end = text.find('>', i);
      if (end == absl::string_view::npos) {
        // A comment cut off by the end of a truncated page ends the text;
        // otherwise this '<' is literal.
        if (text[i + 1] == '!') break;
        no_more_tag_ends = true;  // handle this '<' again, as text
        continue;
      }
      i = SkipTag(text, i, end);
      writer.Space();
      continue;
    }
    if (strip_html && text[i] == '&') {
      if (const size_t consumed = WriteEntity(text.substr(i), writer)) {
        i += consumed;
        continue;
      }
    }
    i += WriteCodePoint(text.substr(i), writer);
  }
  return std::move(writer).Finish();
}

bool LooksLikeMarkup(absl::string_view body) {
  const absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(body);
  return !trimmed.empty() && trimmed.front() == '<';
}

}  // namespace

std::string SanitizedExcerpt(absl::string_view body, size_t max_bytes) {
  return Sanitize(body, max_bytes, /*strip_html=*/LooksLikeMarkup(body));
}

std::string SanitizedText(absl::string_view text, size_t max_bytes) {
  return Sanitize(text, max_bytes, /*strip_html=*/false);
}

}  // namespace campaign_gateway
