// Output that appears whole or not at all: writes go to "PATH.partial.PID" and commit() renames it
// onto PATH; destroying an uncommitted output removes the temporary, and so do SIGINT, SIGTERM, SIGPIPE
// and SIGHUP (temp_files.h); stale temporaries of killed writers are swept when PATH is written again. "-" or "" writes to stdout;
// an existing non-regular file (/dev/null, a FIFO) is written in place. On Linux a regular file's writeback
// starts every few MB as it is written (sync_file_range), so commit()'s fsync waits for the tail only.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace hashhop::io {

class AtomicOutput {
 public:
  explicit AtomicOutput(std::string path);  // throws InputError if the path cannot be written
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  void write(std::string_view bytes);
  void commit();  // flush, fsync, rename; throws on failure (and leaves nothing behind)
  bool is_stdout() const { return path_.empty() || path_ == "-"; }
  const std::string& path() const { return path_; }

 private:
  void start_writeback();

  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
  bool direct_ = false;  // writing in place to a device or pipe
  int temp_slot_ = -1;   // registration for removal on a signal
  std::uint64_t written_ = 0;          // bytes handed to write()
  std::uint64_t writeback_started_ = 0;  // bytes whose writeback to disk has been started
  std::uint64_t writeback_waited_ = 0;   // bytes known to be on their way out (waited for)
};

// Writes a whole small file atomically (checkpoints' metadata, results tables).
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace hashhop::io
