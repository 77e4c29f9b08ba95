// Run-directory bookkeeping shared by the training loops (see run_files.h).
#include "hashhop/train/run_files.h"

#include <unistd.h>

#include <fstream>

#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"
#include "hashhop/io/temp_files.h"

namespace hashhop::train {
namespace {
constexpr const char* kCreated[] = {"/config.json", "/metrics.jsonl", "/model.pt"};
}  // namespace

std::string metrics_before(const std::string& path, std::int64_t step) {
  std::ifstream in(path);
  if (!in) return "";
  std::string kept, line;
  std::uint64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = io::parse_json(line, path, line_no);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer())
      throw io::InputError(path, line_no, "step", "not a metrics record (remove the file or use another --out)");
    if (j["step"].get<std::int64_t>() < step) kept += line + "\n";
  }
  return kept;
}

FreshRunCleanup::FreshRunCleanup(std::string out_dir) : dir(std::move(out_dir)), created_dir(!io::file_exists(dir)) {
  for (int i = 0; i < 3; ++i) existed[i] = io::file_exists(dir + kCreated[i]);
  const std::string checkpoint = dir + "/checkpoint.pt";
  if (created_dir) signal_slots[3] = io::register_temp_file(dir, checkpoint);
  for (int i = 0; i < 3; ++i)
    if (!existed[i]) signal_slots[i] = io::register_temp_file(dir + kCreated[i], checkpoint);
}

FreshRunCleanup::~FreshRunCleanup() {
  for (const int slot : signal_slots) io::unregister_temp_file(slot);
  if (!active) return;
  if (io::file_exists(dir + "/checkpoint.pt")) return;
  for (int i = 0; i < 3; ++i)
    if (!existed[i]) io::remove_file_quietly(dir + kCreated[i]);
  if (created_dir) ::rmdir(dir.c_str());  // only if empty: never anything the user put there
}

std::ofstream open_run_files(const std::string& out_dir, const std::string& config_json, std::int64_t start_step) {
  const std::string metrics_path = out_dir + "/metrics.jsonl";
  const std::string kept_metrics = metrics_before(metrics_path, start_step);  // read before anything is written
  io::make_directories(out_dir);
  io::write_file_atomically(out_dir + "/config.json", config_json);
  io::write_file_atomically(metrics_path, kept_metrics);
  return std::ofstream(metrics_path, std::ios::app);
}

}  // namespace hashhop::train
