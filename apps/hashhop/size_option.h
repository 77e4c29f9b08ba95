// Parses sizes such as "4096", "64K", "1M", "300M", "1.5G" (decimal multiples) for CLI options.
// Errors name the option: "--chars: expected a size like 300M, got 'x'".
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace hashhop::cli {

inline std::uint64_t parse_size(const std::string& option, const std::string& text) {
  const auto fail = [&] { throw std::invalid_argument(option + ": expected a size like 4096, 64K or 300M, got '" + text + "'"); };
  if (text.empty()) fail();
  double multiplier = 1;
  std::string number = text;
  switch (text.back()) {
    case 'K': case 'k': multiplier = 1e3; number.pop_back(); break;
    case 'M': case 'm': multiplier = 1e6; number.pop_back(); break;
    case 'G': case 'g': multiplier = 1e9; number.pop_back(); break;
    default: break;
  }
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(number, &used);
  } catch (const std::exception&) {
    fail();
  }
  if (used != number.size() || !(value >= 0) || value * multiplier > 1e18) fail();
  const double scaled = value * multiplier;
  if (scaled != std::floor(scaled)) fail();
  return static_cast<std::uint64_t>(scaled);
}

}  // namespace hashhop::cli
