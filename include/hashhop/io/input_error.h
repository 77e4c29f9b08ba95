// One error type for bad input: it carries the file, line and field so the CLI can print one line
// "FILE:LINE: field 'F': message". Thrown by the JSONL reader, the Magic-format parser and the scorer.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace hashhop::io {

class InputError : public std::runtime_error {
 public:
  InputError(std::string file, std::uint64_t line, std::string field, const std::string& message)
      : std::runtime_error(format(file, line, field, message)),
        file_(std::move(file)), line_(line), field_(std::move(field)) {}

  const std::string& file() const { return file_; }
  std::uint64_t line() const { return line_; }  // 1-based; 0 when the error is about the whole file
  const std::string& field() const { return field_; }

 private:
  static std::string format(const std::string& file, std::uint64_t line, const std::string& field,
                            const std::string& message) {
    std::string out = file.empty() ? "<input>" : file;
    if (line > 0) out += ":" + std::to_string(line);
    out += ": ";
    if (!field.empty()) out += "field '" + field + "': ";
    return out + message;
  }

  std::string file_;
  std::uint64_t line_;
  std::string field_;
};

}  // namespace hashhop::io
