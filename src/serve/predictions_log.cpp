// Append-only predictions JSONL with resume (see predictions_log.h). The file is opened O_APPEND and each
// line goes out in one write(2): no user-space buffer to lose on SIGKILL. Tested by tests/python/test_serve.py.
#include "hashhop/serve/predictions_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"

namespace hashhop::serve {

PredictionsLog::PredictionsLog(std::string path) : path_(std::move(path)) {
  std::string text;
  {
    std::ifstream in(path_, std::ios::binary);
    if (in) text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // A line without its newline was being written when the last run died: drop it (its query is redone).
  const std::size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  std::uint64_t line_no = 0;
  for (std::size_t begin = 0; begin < complete;) {
    const std::size_t end = text.find('\n', begin);
    ++line_no;
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.empty()) continue;
    const auto j = io::parse_json(line, path_, line_no);
    if (!j.is_object()) throw io::InputError(path_, line_no, "", "expected a JSON object");
    if (!j.contains("line") || !j["line"].is_number_unsigned()) throw io::InputError(path_, line_no, "line", "missing or not a data line number");
    if (!j.contains("key") || !j["key"].is_string()) throw io::InputError(path_, line_no, "key", "missing or not a string");
    if (!j.contains("answer") || !j["answer"].is_string()) throw io::InputError(path_, line_no, "answer", "missing or not a string");
    done_[{j["line"].get<std::uint64_t>(), j["key"].get<std::string>()}] = j["answer"].get<std::string>();
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw io::InputError(path_, 0, "", std::string("cannot write: ") + std::strerror(errno));
  if (complete < text.size() && ::ftruncate(fd_, static_cast<off_t>(complete)) != 0)
    throw io::InputError(path_, 0, "", std::string("cannot cut the torn last line: ") + std::strerror(errno));
}

PredictionsLog::~PredictionsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void PredictionsLog::append(const nlohmann::json& line) {
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mutex_);
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw io::InputError(path_, 0, "", std::string("write failed: ") + std::strerror(errno));
    written += static_cast<std::size_t>(n);
  }
}

}  // namespace hashhop::serve
