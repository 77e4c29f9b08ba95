// JSONL reading and typed fields (see jsonl.h). Tested by tests/io/test_io.cpp.
#include "hashhop/io/jsonl.h"

#include <cstring>

#include <sys/stat.h>

#include <set>
#include <vector>

#include "hashhop/io/files.h"
#include "hashhop/io/input_error.h"
#include "skipping_line_source.h"

namespace hashhop::io {

namespace {

// parse_json over any nlohmann input (a string, or an iterator pair); `byte_of` maps a parse error's byte
// position to the one reported.
template <class Parse, class ByteOf>
nlohmann::json parse_strictly(Parse&& parse, const std::string& file, std::uint64_t line, const JsonSkip& skip, ByteOf&& byte_of) {
  // The parser callback sees every key before its value, so an error inside a value can name its field,
  // and a key seen twice in one object is caught (nlohmann would keep the last one silently). Objects are
  // tracked by depth: inside a discarded value nlohmann reports object starts but not their ends.
  std::vector<std::set<std::string>> open_objects;
  std::string field, top_field;
  const nlohmann::json::parser_callback_t track = [&](int depth, nlohmann::json::parse_event_t event,
                                                      nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    const bool skipped_here = depth == 1 && skip.fields.count(top_field) > 0;
    switch (event) {
      case E::object_start:
        open_objects.resize(static_cast<std::size_t>(depth));
        open_objects.emplace_back();
        return !skipped_here;
      case E::array_start:
        return !skipped_here;
      case E::key:
        field = parsed.get<std::string>();
        if (depth == 1) top_field = field;
        // Inside a skipped field only the syntax is checked: tracking its keys would hold every key of a
        // skipped `targets` (millions at 100M characters) for a field the command never reads.
        if (depth > 1 && skip.fields.count(top_field) > 0) return true;
        open_objects.resize(static_cast<std::size_t>(depth));
        if (!open_objects.empty() && !open_objects.back().insert(field).second)
          throw InputError(file, line, field, "appears twice in one object");
        // Refusing the key itself keeps nlohmann from inserting a placeholder for its value.
        return !(depth == 1 && skip.fields.count(field) > 0);
      case E::value:
        if (skipped_here && parsed.is_string() && skip.string_sizes != nullptr)
          (*skip.string_sizes)[top_field] = parsed.get_ref<const std::string&>().size();
        return !skipped_here;
      default:
        return true;
    }
  };
  try {
    return parse(track);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(file, line, field, "not valid JSON (byte " + std::to_string(byte_of(e.byte)) + ")");
  } catch (const nlohmann::json::out_of_range&) {
    throw InputError(file, line, field, "number out of range");
  } catch (const nlohmann::json::exception& e) {
    throw InputError(file, line, field, "not valid JSON");
  }
}

}  // namespace

nlohmann::json parse_json(const std::string& text, const std::string& file, std::uint64_t line, const JsonSkip& skip) {
  return parse_strictly([&](const nlohmann::json::parser_callback_t& track) { return nlohmann::json::parse(text, track); }, file,
                        line, skip, [](std::uint64_t byte) { return byte; });
}

JsonlReader::JsonlReader(std::string path) : path_(std::move(path)) {
  if (is_directory(path_)) throw InputError(path_, 0, "", "is a directory, not a JSONL file");
  in_.open(path_, std::ios::binary);
  if (!in_) throw InputError(path_, 0, "", "cannot open for reading");
  struct stat info {};
  if (::stat(path_.c_str(), &info) == 0 && S_ISREG(info.st_mode)) size_bytes_ = static_cast<std::uint64_t>(info.st_size);
}

bool JsonlReader::refill(std::uint64_t line) {
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  buffer_.resize(kChunk);
  in_.read(buffer_.data(), static_cast<std::streamsize>(kChunk));
  buffer_.resize(static_cast<std::size_t>(in_.gcount()));
  buffer_pos_ = 0;
  if (!buffer_.empty()) return true;
  if (in_.bad()) throw InputError(path_, line, "", "read failed");
  return false;
}

InputError JsonlReader::nul_byte(std::uint64_t line, std::uint64_t column) const {
  return InputError(path_, line, "", "a NUL byte at column " + std::to_string(column) + ": not JSON text (a binary file?)");
}

InputError JsonlReader::line_too_long(std::uint64_t line) const {
  return InputError(path_, line, "", "line longer than " + std::to_string(kMaxLineBytes) + " bytes");
}

bool JsonlReader::read_line(std::string& text) {
  text.clear();
  bool any = false;
  for (;;) {
    if (buffer_pos_ == buffer_.size() && !refill(line_ + 1)) return any;
    any = true;
    const char* start = buffer_.data() + buffer_pos_;
    const std::size_t available = buffer_.size() - buffer_pos_;
    const auto* newline = static_cast<const char*>(std::memchr(start, '\n', available));
    const std::size_t n = newline != nullptr ? static_cast<std::size_t>(newline - start) : available;
    if (const auto* nul = static_cast<const char*>(std::memchr(start, '\0', n)); nul != nullptr)
      throw nul_byte(line_ + 1, text.size() + static_cast<std::size_t>(nul - start) + 1);
    if (text.size() + n > kMaxLineBytes) throw line_too_long(line_ + 1);
    text.append(start, n);
    buffer_pos_ += n + (newline != nullptr ? 1 : 0);
    if (newline != nullptr) return true;
  }
}

int JsonlReader::line_byte() {
  if (!line_open_) return -1;
  if (buffer_pos_ == buffer_.size() && !refill(line_)) {
    line_open_ = false;
    return -1;
  }
  const auto c = static_cast<unsigned char>(buffer_[buffer_pos_++]);
  ++bytes_read_;
  if (c == '\n') {
    line_open_ = false, line_newline_ = true;
    return -1;
  }
  if (c == 0) throw nul_byte(line_, line_length_ + 1);
  if (++line_length_ > kMaxLineBytes) throw line_too_long(line_);
  return c;
}

std::optional<JsonlRecord> JsonlReader::next_streamed() {
  for (;;) {
    ++line_;
    line_open_ = true, line_newline_ = false, line_length_ = 0;
    // Leading whitespace is kept and handed to the parser too: a byte-order mark after it stays an error, and
    // error byte numbers stay those of the string path.
    std::string leading;
    int first = line_byte();
    while (first == ' ' || first == '\t' || first == '\r') {
      leading.push_back(static_cast<char>(first));
      first = line_byte();
    }
    if (first < 0) {
      if (line_newline_) continue;  // a blank line
      --line_;
      return std::nullopt;  // the end of the file
    }
    JsonlRecord record;
    record.line = line_;
    std::size_t replayed = 0;
    const auto fetch = [&]() -> int {
      if (replayed < leading.size()) return static_cast<unsigned char>(leading[replayed++]);
      if (replayed == leading.size()) {
        ++replayed;
        return first;
      }
      return line_byte();
    };
    SkippingLineSource<decltype(fetch)> source(fetch, skip_, path_, line_);
    using Iterator = typename SkippingLineSource<decltype(fetch)>::Iterator;
    try {
      record.value = parse_strictly(
          [&](const nlohmann::json::parser_callback_t& track) { return nlohmann::json::parse(Iterator(&source), Iterator(), track); },
          path_, line_, JsonSkip{skip_, &record.skipped_string_sizes}, [&](std::uint64_t byte) { return source.line_byte(byte); });
    } catch (...) {
      // The rest of the bad line is read past, so a caller that goes on starts at the next line, as with next().
      for (;;) {
        try {
          if (line_byte() < 0) break;
        } catch (const InputError&) {  // a NUL or an overlong line further on: keep skipping
        }
      }
      throw;
    }
    // The parser read the line to its end (nothing may follow the object). The dropped strings' sizes replace
    // the empty strings the parser saw in their place.
    for (const auto& [key, size] : source.dropped_sizes()) record.skipped_string_sizes[key] = size;
    if (!record.value.is_object()) throw InputError(path_, line_, "", "expected a JSON object");
    return record;
  }
}

std::optional<JsonlRecord> JsonlReader::next() {
  if (!skip_.empty()) return next_streamed();
  std::string text;
  while (read_line(text)) {
    ++line_;
    bytes_read_ += text.size() + 1;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    JsonlRecord record;
    record.line = line_;
    record.value = parse_json(text, path_, line_, JsonSkip{skip_, &record.skipped_string_sizes});
    if (!record.value.is_object()) throw InputError(path_, line_, "", "expected a JSON object");
    return record;
  }
  return std::nullopt;
}

namespace {
const nlohmann::json& field_of(const std::string& file, const JsonlRecord& record, const char* field) {
  auto it = record.value.find(field);
  if (it == record.value.end()) throw InputError(file, record.line, field, "missing");
  return *it;
}
}  // namespace

std::string get_string(const std::string& file, const JsonlRecord& record, const char* field) {
  const auto& value = field_of(file, record, field);
  if (!value.is_string()) throw InputError(file, record.line, field, "expected a string, got " + std::string(value.type_name()));
  return value.get<std::string>();
}

std::int64_t get_int(const std::string& file, const JsonlRecord& record, const char* field) {
  const auto& value = field_of(file, record, field);
  if (!value.is_number_integer()) throw InputError(file, record.line, field, "expected an integer, got " + std::string(value.type_name()));
  if (value.is_number_unsigned() && value.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
    throw InputError(file, record.line, field, "number out of range");
  return value.get<std::int64_t>();
}

bool get_bool(const std::string& file, const JsonlRecord& record, const char* field) {
  const auto& value = field_of(file, record, field);
  if (!value.is_boolean()) throw InputError(file, record.line, field, "expected true or false, got " + std::string(value.type_name()));
  return value.get<bool>();
}

void append_json_string(std::string& out, std::string_view s) {
  // A byte-level model may write any byte, and a JSON string holds only UTF-8: replace, never throw.
  out += nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace hashhop::io
