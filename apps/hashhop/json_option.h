// `--json` means one thing in every command: `--json` alone prints the machine-readable result on stdout
// and sends the human text to stderr; `--json FILE` writes that JSON to FILE (atomically) and leaves stdout as is.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "hashhop/io/atomic_output.h"

namespace hashhop::cli {

class JsonOption {
 public:
  void add(CLI::App* app, const std::string& what) {
    option_ = app->add_option("--json", path_, "Print " + what + " as JSON on stdout (human text goes to stderr); --json FILE writes it to FILE")
                  ->expected(0, 1);
  }
  bool requested() const { return option_ != nullptr && option_->count() > 0; }
  bool to_stdout() const { return requested() && (path_.empty() || path_ == "-"); }
  const std::string& path() const { return path_; }

  // Opens --json FILE (its temporary beside it) before any work, so an unwritable path fails at once
  // instead of after a long benchmark. Commands call it first; emit() opens it too if they did not.
  void open() const {
    if (requested() && !to_stdout() && !out_) out_.emplace(path_);
  }

  // Writes the result where --json asked (stdout or FILE); nothing when --json was not given.
  void emit(const nlohmann::json& result) const {
    if (!requested()) return;
    if (to_stdout()) {
      std::fflush(stdout);
      std::printf("%s\n", result.dump(2).c_str());
      return;
    }
    open();
    out_->write(result.dump(2) + "\n");
    out_->commit();
    out_.reset();
  }

 private:
  CLI::Option* option_ = nullptr;
  std::string path_;
  mutable std::optional<io::AtomicOutput> out_;
};

// While alive, and only when `active`, what the command prints on stdout goes to stderr, so stdout carries
// only the JSON result (emit it after this is destroyed). Commands that print tables as they go use it.
class HumanTextToStderr {
 public:
  explicit HumanTextToStderr(bool active) {
    if (!active) return;
    std::fflush(stdout);
    saved_ = ::dup(STDOUT_FILENO);
    if (saved_ >= 0) ::dup2(STDERR_FILENO, STDOUT_FILENO);
  }
  ~HumanTextToStderr() {
    if (saved_ < 0) return;
    std::fflush(stdout);
    ::dup2(saved_, STDOUT_FILENO);
    ::close(saved_);
  }
  HumanTextToStderr(const HumanTextToStderr&) = delete;
  HumanTextToStderr& operator=(const HumanTextToStderr&) = delete;

 private:
  int saved_ = -1;
};

}  // namespace hashhop::cli
