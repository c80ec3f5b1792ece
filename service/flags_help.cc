#include "service/flags_help.h"

#include <algorithm>
#include <utility>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace campaign_gateway {
namespace {

constexpr size_t kWidth = 80;
constexpr absl::string_view kIndent = "      ";

bool DefinedIn(absl::string_view filename,
               const std::vector<std::string>& files) {
  return std::any_of(files.begin(), files.end(), [&](const std::string& f) {
    return absl::EndsWith(filename, f);
  });
}

// `text` as indented lines of at most kWidth columns (a longer word stays
// whole).
std::string Wrapped(absl::string_view text) {
  std::string out;
  std::string line(kIndent);
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (line.size() > kIndent.size() &&
        line.size() + 1 + word.size() > kWidth) {
      absl::StrAppend(&out, line, "\n");
      line = std::string(kIndent);
    }
    if (line.size() > kIndent.size()) line += ' ';
    absl::StrAppend(&line, word);
  }
  if (line.size() > kIndent.size()) absl::StrAppend(&out, line, "\n");
  return out;
}

}  // namespace

bool AsksForHelp(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") return false;
    if (arg == "--help" || arg == "-help") return true;
  }
  return false;
}

std::string FlagsHelp(absl::string_view usage,
                      const std::vector<std::string>& files) {
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (DefinedIn(flag->Filename(), files)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  std::string out = absl::StrCat(usage, "\n\nFlags:\n");
  for (const absl::CommandLineFlag* flag : flags) {
    const std::string value = flag->DefaultValue();
    absl::StrAppend(
        &out, "  --", flag->Name(), " (default: ",
        flag->IsOfType<std::string>() ? absl::StrCat("\"", value, "\"") : value,
        ")\n", Wrapped(flag->Help()));
  }
  return out;
}

void SetHelpFiles(std::vector<std::string> files) {
  absl::FlagsUsageConfig config;
  config.contains_helpshort_flags =
      [files = std::move(files)](absl::string_view filename) {
        return DefinedIn(filename, files);
      };
  absl::SetFlagsUsageConfig(std::move(config));
}

}  // namespace campaign_gateway
