// Parses sizes such as "4096", "64K", "1M", "300M", "1.5G" (decimal multiples) for CLI options.
// Errors name the option: "--chars: expected a size like 300M, got 'x'".
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "hashhop/io/files.h"

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
  // Digits with at most one decimal point: stod alone would also take "1e3", "0x10", " 5", "inf" and "nan".
  const auto point = number.find('.');
  if (number.empty() || number == "." || number.find_first_not_of("0123456789.") != std::string::npos ||
      (point != std::string::npos && number.find('.', point + 1) != std::string::npos))
    fail();
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

// Prompts held in memory (engine-bench, sweep) cannot be larger than the machine's memory: refused at
// once, naming the option, instead of growing until the allocator fails or the machine swaps.
inline void check_prompt_fits_memory(const std::string& option, std::uint64_t chars) {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return;
  io::check_size(option, chars, static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page), "characters",
                 "the memory of this machine; each prompt is held in memory");
}

// A comma list of prompt sizes ("1M,10M"; engine-bench, margin-probe): each >= 1 and within the memory of
// this machine, errors naming the option.
inline std::vector<std::uint64_t> parse_sizes(const std::string& option, const std::string& list) {
  std::vector<std::uint64_t> sizes;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    sizes.push_back(parse_size(option, item));
    if (sizes.back() < 1) throw std::invalid_argument(option + ": sizes must be >= 1, got '" + item + "'");
    check_prompt_fits_memory(option, sizes.back());
  }
  if (sizes.empty()) throw std::invalid_argument(option + ": expected a list of sizes like 1M,10M");
  return sizes;
}

// BLOCK=SIZE items of a repeatable option ("--block-window 0=256"): block indices from 0 to 255, sizes as
// parse_size; a block named twice is an error. Errors name the option and the item.
inline std::map<int, std::uint64_t> parse_block_sizes(const std::string& option, const std::vector<std::string>& items) {
  std::map<int, std::uint64_t> out;
  for (const auto& item : items) {
    const auto eq = item.find('=');
    const std::string block = eq == std::string::npos ? "" : item.substr(0, eq);
    if (block.empty() || block.size() > 3 || block.find_first_not_of("0123456789") != std::string::npos || std::stoi(block) > 255)
      throw std::invalid_argument(option + ": expected BLOCK=N with a block index from 0 to 255, got '" + item + "'");
    const int index = std::stoi(block);
    if (out.count(index) != 0) throw std::invalid_argument(option + ": block " + block + " is given twice");
    out[index] = parse_size(option, item.substr(eq + 1));
  }
  return out;
}

// A CLI11 transform that lets an integer option take a size with a suffix: `--chunk 64K` reaches the
// option as 64000. Bad text is a usage error "--chunk: expected a size like 4096, 64K or 300M, got 'x'".
inline CLI::Validator size_suffixes() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          text = std::to_string(parse_size("size", text));
          return "";
        } catch (const std::invalid_argument&) {
          return "expected a size like 4096, 64K or 300M, got '" + text + "'";
        }
      },
      "SIZE", "size suffixes");
}

// A CLI11 check for integer options with a lower bound: `->check(at_least(1))` makes `--steps 0` a
// usage error "--steps: must be >= 1, got 0" (CLI11's own ranges print a 300-digit upper bound).
inline std::function<std::string(const std::string&)> at_least(long long minimum) {
  return [minimum](const std::string& text) -> std::string {
    try {
      std::size_t used = 0;
      if (std::stoll(text, &used) >= minimum && used == text.size()) return "";
    } catch (const std::exception&) {
    }
    return "must be >= " + std::to_string(minimum) + ", got " + text;
  };
}

}  // namespace hashhop::cli
