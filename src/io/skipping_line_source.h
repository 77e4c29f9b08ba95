// One JSONL line handed to nlohmann's parser byte by byte, with the content of skipped top-level string values
// dropped on the way (their decoded UTF-8 length is counted instead): `score` never holds a 300M-character prompt.
// Internal to JsonlReader (src/io/jsonl.cpp); tested through it by tests/io/test_io.cpp (Jsonl.Streaming*).
#pragma once

#include <cstdint>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "hashhop/io/input_error.h"

namespace hashhop::io {

// Fetch: a callable returning the line's next raw byte (0..255), or -1 at its end (newline or end of file).
// The parser sees the line unchanged except that `"prompt": "...300M bytes..."` arrives as `"prompt": ""`; the
// dropped content is still checked as a JSON string (escapes, control characters, UTF-8), as the parser would.
// Keys are matched on their raw text: an escaped key (`"pro\u006dpt"`) is streamed whole and left out by the
// parser's own skip instead.
template <class Fetch>
class SkippingLineSource {
 public:
  SkippingLineSource(Fetch fetch, const std::set<std::string>& skip, const std::string& file, std::uint64_t line)
      : fetch_(std::move(fetch)), skip_(skip), file_(file), line_(line) {}

  // The next byte for the parser, or -1 at the end of the line.
  int get() {
    if (pending_close_) {  // the quote that ends a skipped string
      pending_close_ = false;
      in_string_ = false;
      return emit('"');
    }
    const int c = raw();
    if (c < 0) return -1;
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
        key_plain_ = false;
      } else if (c == '"') {
        in_string_ = false;
        if (in_key_) in_key_ = false, after_key_ = true;
      } else if (in_key_) {
        if (key_.size() < kMaxKey) key_.push_back(static_cast<char>(c));
        else key_plain_ = false;
      }
      return emit(c);
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') return emit(c);
    const bool skip_value = value_next_ && key_plain_ && skip_.count(key_) > 0;
    value_next_ = false;
    switch (c) {
      case '"':
        in_string_ = true;
        if (depth_ == 1 && key_next_) {
          key_next_ = false, in_key_ = true, key_plain_ = true;
          key_.clear();
        } else if (skip_value) {
          emit(c);
          drop_string();
          pending_close_ = true;
          return '"';
        }
        break;
      case ':':
        if (depth_ == 1 && after_key_) value_next_ = true;
        after_key_ = false;
        break;
      case '{':
        if (++depth_ == 1) key_next_ = true;
        break;
      case '[': ++depth_; break;
      case '}': case ']': --depth_; break;
      case ',':
        if (depth_ == 1) key_next_ = true;
        break;
      default: break;
    }
    return emit(c);
  }

  // Decoded UTF-8 bytes of each dropped string, by its key.
  const std::map<std::string, std::uint64_t>& dropped_sizes() const { return sizes_; }

  // The line's byte offset of the parser's byte position `parsed` (nlohmann's parse_error::byte).
  std::uint64_t line_byte(std::uint64_t parsed) const {
    std::uint64_t dropped = 0;
    for (const auto& [at, bytes] : drops_) {
      if (at < parsed) dropped += bytes;
    }
    return parsed + dropped;
  }

  // An input iterator for nlohmann::json::parse(first, last): it pulls from the source; `last` is a null one.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = char;
    using difference_type = std::ptrdiff_t;
    using pointer = const char*;
    using reference = char;
    Iterator() = default;
    explicit Iterator(SkippingLineSource* source) : source_(source) { advance(); }
    char operator*() const { return static_cast<char>(current_); }
    Iterator& operator++() {
      advance();
      return *this;
    }
    Iterator operator++(int) {
      Iterator before = *this;
      advance();
      return before;
    }
    bool operator==(const Iterator& other) const { return done() == other.done(); }
    bool operator!=(const Iterator& other) const { return !(*this == other); }

   private:
    bool done() const { return source_ == nullptr || current_ < 0; }
    void advance() { current_ = source_ != nullptr ? source_->get() : -1; }
    SkippingLineSource* source_ = nullptr;
    int current_ = -1;
  };

 private:
  static constexpr std::size_t kMaxKey = 64;  // longer keys are never skipped ones

  int raw() {
    const int c = fetch_();
    if (c >= 0) ++line_bytes_;
    at_end_ = c < 0;
    return c;
  }
  int emit(int c) {
    ++emitted_;
    return c;
  }
  [[noreturn]] void invalid(const char* why) const {
    // The parser counts the end of its input as a byte: an error found there names the byte after the line.
    throw InputError(file_, line_, key_, std::string("not valid JSON (byte ") + std::to_string(line_bytes_ + (at_end_ ? 1 : 0)) + "): " + why);
  }
  int hex4() {
    int value = 0;
    for (int i = 0; i < 4; ++i) {
      const int c = raw();
      const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (digit < 0) invalid("a \\u escape needs four hex digits");
      value = value * 16 + digit;
    }
    return value;
  }
  // Consumes a string's content and its closing quote, counting decoded UTF-8 bytes; checks it as JSON text.
  void drop_string() {
    const std::uint64_t start = line_bytes_;
    std::uint64_t size = 0;
    for (;;) {
      int c = raw();
      if (c < 0) invalid("unterminated string");
      if (c == '"') break;
      if (c < 0x20) invalid("a control character inside a string");
      if (c == '\\') {
        c = raw();
        if (c == 'u') {
          const int unit = hex4();
          if (unit >= 0xDC00 && unit <= 0xDFFF) invalid("a lone low surrogate");
          if (unit >= 0xD800 && unit <= 0xDBFF) {
            if (raw() != '\\' || raw() != 'u') invalid("a high surrogate without its low half");
            const int low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) invalid("a high surrogate without its low half");
            size += 4;
          } else {
            size += unit < 0x80 ? 1 : unit < 0x800 ? 2 : 3;
          }
        } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
          size += 1;
        } else {
          invalid("an unknown escape");
        }
        continue;
      }
      size += utf8_sequence(c);
    }
    drops_.emplace_back(emitted_, line_bytes_ - start - 1);  // the content, not the closing quote
    sizes_[key_] = size;
  }
  // Checks one UTF-8 sequence that starts with `lead` (the continuation bytes are read here); returns its length.
  int utf8_sequence(int lead) {
    if (lead < 0x80) return 1;
    int more = 0, low = 0x80, high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) more = 1;
    else if (lead == 0xE0) more = 2, low = 0xA0;
    else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) more = 2;
    else if (lead == 0xED) more = 2, high = 0x9F;
    else if (lead == 0xF0) more = 3, low = 0x90;
    else if (lead >= 0xF1 && lead <= 0xF3) more = 3;
    else if (lead == 0xF4) more = 3, high = 0x8F;
    else invalid("invalid UTF-8");
    for (int i = 0; i < more; ++i) {
      const int c = raw();
      if (c < low || c > high) invalid("invalid UTF-8");
      low = 0x80, high = 0xBF;  // only the first continuation byte has a narrower range
    }
    return more + 1;
  }

  Fetch fetch_;
  const std::set<std::string>& skip_;
  const std::string& file_;
  std::uint64_t line_;
  std::uint64_t line_bytes_ = 0, emitted_ = 0;
  int depth_ = 0;
  bool in_string_ = false, escape_ = false, in_key_ = false, key_plain_ = true, at_end_ = false;
  bool key_next_ = false, after_key_ = false, value_next_ = false, pending_close_ = false;
  std::string key_;
  std::map<std::string, std::uint64_t> sizes_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> drops_;  // (parser bytes before the drop, bytes dropped)
};

}  // namespace hashhop::io
