// --help for the binaries: the program's own flags, and exit code 0.
// Abseil's --help (Debian's 20220623) lists only flags defined in a file
// named like the program (the gateway's live in config.cc, not main.cc, so
// it printed "No flags matched.") and exits 1 although nothing failed.
// --helpfull and --help=SUBSTRING stay Abseil's.
#ifndef CAMPAIGN_GATEWAY_SERVICE_FLAGS_HELP_H_
#define CAMPAIGN_GATEWAY_SERVICE_FLAGS_HELP_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace campaign_gateway {

// True when the command line asks for plain help: --help or -help, before
// any "--" that ends the flags.
bool AsksForHelp(int argc, const char* const* argv);

// `usage`, then every flag defined in a source file whose path ends with
// one of `files` (e.g. "service/config.cc"), by name:
//   --name (default: "value")
//       help, wrapped at 80 columns
std::string FlagsHelp(absl::string_view usage,
                      const std::vector<std::string>& files);

// Points Abseil's --helpshort at the same files.
void SetHelpFiles(std::vector<std::string> files);

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_FLAGS_HELP_H_
