// The build's version and commit (see version.h); CMake passes them to this one file only, so a new
// commit recompiles nothing else.
#include "version.h"

#ifndef HASHHOP_VERSION
#define HASHHOP_VERSION "unknown"
#endif
#ifndef HASHHOP_COMMIT
#define HASHHOP_COMMIT ""
#endif

namespace hashhop::cli {

std::string version() { return HASHHOP_VERSION; }

std::string commit() {
  const std::string c = HASHHOP_COMMIT;
  return c.empty() ? "unknown" : c;
}

std::string version_line() { return "hashhop " + version() + " (commit " + commit() + ")"; }

}  // namespace hashhop::cli
