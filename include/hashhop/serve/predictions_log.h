// The resumable predictions file of `hashhop eval --endpoint`: one JSONL line per answered query, appended
// and handed to the OS as soon as it is known, so a killed run loses only the answers in flight.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace hashhop::serve {

// A line: {"line": DATA_LINE, "key": KEY, "answer": ANSWER, ...per-query log fields}.
class PredictionsLog {
 public:
  // Reads what an earlier run wrote (a torn last line, from a kill mid-write, is cut off) and opens the
  // file for appending. Throws io::InputError naming the file, line and field of a bad line.
  explicit PredictionsLog(std::string path);
  ~PredictionsLog();
  PredictionsLog(const PredictionsLog&) = delete;
  PredictionsLog& operator=(const PredictionsLog&) = delete;

  // Answers already in the file, by (data line, key).
  const std::map<std::pair<std::uint64_t, std::string>, std::string>& done() const { return done_; }
  // Appends one line with a single write(2) (thread-safe). Throws on a failed write.
  void append(const nlohmann::json& line);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::mutex mutex_;
  std::map<std::pair<std::uint64_t, std::string>, std::string> done_;
};

}  // namespace hashhop::serve
