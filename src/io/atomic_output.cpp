// Temp-file-and-rename output (see atomic_output.h). Tested by tests/io/test_io.cpp.
#include "hashhop/io/atomic_output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "hashhop/io/input_error.h"
#include "hashhop/io/temp_files.h"

namespace hashhop::io {

AtomicOutput::AtomicOutput(std::string path) : path_(std::move(path)) {
  if (is_stdout()) {
    file_ = stdout;
    return;
  }
  // Devices and pipes (/dev/null, a FIFO) are written in place: renaming onto them would replace them.
  struct stat info {};
  if (::stat(path_.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) {
    file_ = std::fopen(path_.c_str(), "wb");
    if (file_ == nullptr) throw InputError(path_, 0, "", std::string("cannot write: ") + std::strerror(errno));
    direct_ = true;
    return;
  }
  sweep_stale_temp_files(path_);  // what a SIGKILLed earlier writer of this path left
  temp_path_ = temp_path_for(path_);
  // Registered before it exists, so a signal between creation and registration cannot leak it.
  temp_slot_ = register_temp_file(temp_path_);
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (file_ == nullptr) {
    const std::string reason = std::strerror(errno);
    unregister_temp_file(temp_slot_);
    throw InputError(path_, 0, "", "cannot write: " + reason);
  }
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
}

AtomicOutput::~AtomicOutput() {
  if (is_stdout() || committed_) return;
  if (file_ != nullptr) std::fclose(file_);
  if (!direct_) std::remove(temp_path_.c_str());
  unregister_temp_file(temp_slot_);
}

namespace {
// Writeback is started per 8 MB written, and the writer waits for the range before the previous one: the disk
// writes while the generator renders, dirty pages stay at ~16 MB instead of the whole file, and commit()'s
// fsync finds at most two ranges left (`hashhop gen --chars 300M`: docs/results/generator.md).
constexpr std::uint64_t kWritebackRange = 8u << 20;
}  // namespace

void AtomicOutput::write(std::string_view bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    throw InputError(is_stdout() ? "<stdout>" : path_, 0, "", std::string("write failed: ") + std::strerror(errno));
  }
  written_ += bytes.size();
  if (!direct_ && !is_stdout() && written_ - writeback_started_ >= kWritebackRange) start_writeback();
}

void AtomicOutput::start_writeback() {
#ifdef __linux__
  if (std::fflush(file_) != 0) throw InputError(path_, 0, "", std::string("write failed: ") + std::strerror(errno));
  const int fd = ::fileno(file_);
  // A file system without sync_file_range (EINVAL, ENOSYS, ...) changes nothing: commit() fsyncs anyway.
  // A write error it reports (EIO, ENOSPC) must fail the output here: once reported, the kernel does not
  // report it again to commit()'s fsync, which would then rename a file with lost data into place.
  const auto check = [&](int result) {
    if (result == 0 || errno == EINVAL || errno == ENOSYS || errno == ESPIPE || errno == EOPNOTSUPP) return;
    throw InputError(path_, 0, "", std::string("write failed: ") + std::strerror(errno));
  };
  if (writeback_started_ > writeback_waited_) {
    check(::sync_file_range(fd, static_cast<off_t>(writeback_waited_), static_cast<off_t>(writeback_started_ - writeback_waited_),
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER));
    writeback_waited_ = writeback_started_;
  }
  check(::sync_file_range(fd, static_cast<off_t>(writeback_started_), static_cast<off_t>(written_ - writeback_started_),
                          SYNC_FILE_RANGE_WRITE));
#endif
  writeback_started_ = written_;
}

void AtomicOutput::commit() {
  if (is_stdout()) {
    if (std::fflush(stdout) != 0 || std::ferror(stdout))
      throw InputError("<stdout>", 0, "", std::string("write failed: ") + std::strerror(errno));
    committed_ = true;
    return;
  }
  if (direct_) {
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!closed) throw InputError(path_, 0, "", std::string("write failed: ") + std::strerror(errno));
    committed_ = true;
    return;
  }
  const bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed || std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temp_path_.c_str());
    unregister_temp_file(temp_slot_);
    throw InputError(path_, 0, "", "cannot write: " + reason);
  }
  unregister_temp_file(temp_slot_);
  committed_ = true;
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  AtomicOutput out(path);
  out.write(bytes);
  out.commit();
}

}  // namespace hashhop::io
