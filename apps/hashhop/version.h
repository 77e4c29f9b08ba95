// The version `hashhop --version` prints and results files record: CMake's project() version and the git
// commit the build was configured at ("unknown" outside a git checkout). Defined in version.cpp.
#pragma once

#include <string>

namespace hashhop::cli {

std::string version();  // "0.1.0"
std::string commit();   // "6354560abcde" or "unknown"
std::string version_line();  // "hashhop 0.1.0 (commit 6354560abcde)"

}  // namespace hashhop::cli
