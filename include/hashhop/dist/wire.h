// Plain bytes for messages between ranks (the context-parallel engines, serve --nproc's requests): a Writer
// appends trivially copyable values and strings, a Reader takes them back or throws on a short message.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace hashhop::dist {

// Plain bytes for the collectives: every rank runs the same binary, so native layout is fine.
class Writer {
 public:
  template <typename T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  void put_string(std::string_view text) {
    put<std::uint64_t>(text.size());
    out_.append(text);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  T get() {
    T value;
    need(sizeof value);
    std::memcpy(&value, in_.data() + at_, sizeof value);
    at_ += sizeof value;
    return value;
  }
  bool done() const { return at_ == in_.size(); }
  std::string get_string() { return std::string(get_view()); }
  // The same without a copy: a view into the message, valid as long as it is.
  std::string_view get_view() {
    const auto n = get<std::uint64_t>();
    need(n);
    const auto text = in_.substr(at_, n);
    at_ += n;
    return text;
  }

 private:
  void need(std::size_t n) const {
    if (in_.size() - at_ < n) throw std::runtime_error("context-parallel engine: a rank sent a truncated message");
  }
  std::string_view in_;
  std::size_t at_ = 0;
};

}  // namespace hashhop::dist
