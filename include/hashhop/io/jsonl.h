// JSONL input with line numbers and typed field access whose errors name file, line and field.
// Used by `hashhop score`, `hashhop eval` and the tests.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "hashhop/io/input_error.h"

namespace hashhop::io {

struct JsonlRecord {
  std::uint64_t line = 0;  // 1-based line number in the file
  nlohmann::json value;
  // Top-level fields the reader was told to skip: absent from value; a string's length is kept here.
  std::map<std::string, std::uint64_t> skipped_string_sizes;
};

// Fields to leave out of the parsed value (a 300M-character prompt, the targets of every chain):
// top-level keys only. Their string lengths land in `skipped_string_sizes` when that map is given.
struct JsonSkip {
  std::set<std::string> fields;
  std::map<std::string, std::uint64_t>* string_sizes = nullptr;
};

// Parses one JSON text strictly: duplicate keys and numbers out of range (1e999) are errors, and every
// error is an InputError naming FILE, LINE and the field (the innermost key) where it happened. The one
// JSON entry point for data files, predictions, config.json and metrics.jsonl.
nlohmann::json parse_json(const std::string& text, const std::string& file, std::uint64_t line,
                          const JsonSkip& skip = {});

class JsonlReader {
 public:
  // The longest line read: 4 GiB (a 1.3G-token record); longer is refused before memory runs out.
  static constexpr std::uint64_t kMaxLineBytes = std::uint64_t{1} << 32;
  explicit JsonlReader(std::string path);  // throws InputError if the file cannot be opened or is a directory
  // Next non-empty line parsed as a JSON object, or nullopt at end of file; throws InputError.
  std::optional<JsonlRecord> next();
  const std::string& path() const { return path_; }
  // Leaves these top-level fields out of every record (score needs neither prompts nor targets). Lines are then
  // streamed into the parser and a skipped string's content is never held (its length is still counted).
  void skip_fields(std::set<std::string> fields) { skip_ = std::move(fields); }
  // For progress bars: bytes consumed so far and the file's size (0 for a pipe or device).
  std::uint64_t bytes_read() const { return bytes_read_; }
  std::uint64_t size_bytes() const { return size_bytes_; }

 private:
  // One line into TEXT (without its newline); false at the end of the file. Throws InputError for a NUL
  // byte (JSON text has none: a binary file or /dev/zero) and for a line longer than kMaxLineBytes.
  bool read_line(std::string& text);
  // Reads the next chunk of the file into buffer_; false at its end. Errors name LINE.
  bool refill(std::uint64_t line);
  // The two errors of a line's bytes, shared by read_line and line_byte.
  InputError nul_byte(std::uint64_t line, std::uint64_t column) const;
  InputError line_too_long(std::uint64_t line) const;
  // The streaming path: the next byte of the current line (-1 at its newline or the end of the file), with
  // read_line's checks (line_newline_: it ended at a newline).
  int line_byte();
  std::optional<JsonlRecord> next_streamed();

  std::string path_;
  std::set<std::string> skip_;
  std::ifstream in_;
  std::string buffer_;
  std::size_t buffer_pos_ = 0;
  std::uint64_t line_ = 0;
  std::uint64_t bytes_read_ = 0;
  std::uint64_t size_bytes_ = 0;
  std::uint64_t line_length_ = 0;
  bool line_open_ = false, line_newline_ = false;
};

// Typed field getters: throw InputError(file, line, field, "missing" / "expected a string", ...).
std::string get_string(const std::string& file, const JsonlRecord& record, const char* field);
std::int64_t get_int(const std::string& file, const JsonlRecord& record, const char* field);
bool get_bool(const std::string& file, const JsonlRecord& record, const char* field);

// Appends s as a JSON string literal (with quotes) to out. Bytes that are not UTF-8 (a byte-level model's
// completion may hold any) become U+FFFD, so the line stays valid JSON.
void append_json_string(std::string& out, std::string_view s);

}  // namespace hashhop::io
