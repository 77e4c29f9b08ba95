// A progress bar on stderr for long work: percentage, rate, ETA and an optional status text.
// Silent when stderr is not a terminal (logs and CI stay clean) or when disabled.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace hashhop::io {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::uint64_t total, std::string unit = "");
  ~ProgressBar();
  void update(std::uint64_t done, const std::string& status = "");
  void finish();
  bool enabled() const { return enabled_; }

 private:
  std::string label_;
  std::uint64_t total_;
  std::string unit_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace hashhop::io
