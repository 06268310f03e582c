// mailroomctl dkim: key generation, signing and verification from the command line (no DNS:
// verification takes the key records as arguments), for operators and interop tests.
#pragma once

#include <string>
#include <vector>

namespace mailroomctl {

extern char const* const dkim_usage;

/// args: what follows "dkim". Returns the exit status.
int dkim_cmd(std::vector<std::string> const& args);

}  // namespace mailroomctl
