// Temporary files that must not outlive the process: registered paths are unlinked by handlers for
// SIGINT, SIGTERM, SIGPIPE and SIGHUP, and stale "TARGET.partial.PID" files of dead processes (SIGKILL,
// power loss) are swept the next time something writes TARGET. Used by AtomicOutput and checkpoints;
// implemented in src/io/files.cpp.
#pragma once

#include <string>

namespace hashhop::io {

// "TARGET.partial.PID" for this process.
std::string temp_path_for(const std::string& target);

// Registers a temporary file for removal if a signal ends the process; installs the handlers on first
// use (a signal that is ignored, e.g. under nohup, stays ignored). Returns a slot for unregister.
// With UNLESS_EXISTS, the path is kept when that file exists by then (a run directory's files are
// removed only while it has no checkpoint). A directory is removed after the files, and only if empty.
int register_temp_file(const std::string& path, const std::string& unless_exists = "");
void unregister_temp_file(int slot);  // slot < 0 is a no-op

// Removes "TARGET.partial.PID" files next to TARGET whose process no longer exists; returns how many.
// A PID of another PID namespace sharing the directory looks dead, which is why only this target's
// temporaries are swept, never a whole directory's.
int sweep_stale_temp_files(const std::string& target);

}  // namespace hashhop::io
