// Atomic model and checkpoint files (see checkpoint.h).
#include "hashhop/model/checkpoint.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"

namespace hashhop::model {

void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path) {
  const std::string temp = path + ".partial." + std::to_string(::getpid());
  try {
    archive.save_to(temp);
    io::rename_file(temp, path);
  } catch (...) {
    io::remove_file_quietly(temp);
    throw;
  }
}

void save_model(const std::string& dir, const RunConfig& config, HashHopTransformer& model) {
  io::make_directories(dir);
  io::write_file_atomically(dir + "/config.json", to_json(config));
  torch::serialize::OutputArchive archive;
  model->save(archive);
  save_archive_atomically(archive, dir + "/model.pt");
}

LoadedModel load_model(const std::string& dir, const torch::Device& device) {
  const std::string config_path = dir + "/config.json", weights_path = dir + "/model.pt";
  if (!io::file_exists(config_path)) throw std::invalid_argument(config_path + ": no such file (is " + dir + " a model directory?)");
  if (!io::file_exists(weights_path)) throw std::invalid_argument(weights_path + ": no such file");
  LoadedModel loaded;
  loaded.config = load_run_config(config_path);
  loaded.model = HashHopTransformer(loaded.config.model);
  loaded.model->to(device);
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(weights_path, device);
    loaded.model->load(archive);
  } catch (const c10::Error& e) {
    throw std::runtime_error(weights_path + ": cannot load weights for this config (" +
                             std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  }
  loaded.model->eval();
  return loaded;
}

void save_checkpoint(const std::string& dir, HashHopTransformer& model, torch::optim::Optimizer& optimizer,
                     std::int64_t step) {
  io::make_directories(dir);
  torch::serialize::OutputArchive root, model_archive, optimizer_archive;
  model->save(model_archive);
  optimizer.save(optimizer_archive);
  root.write("model", model_archive);
  root.write("optimizer", optimizer_archive);
  root.write("step", torch::tensor(step));
  save_archive_atomically(root, dir + "/checkpoint.pt");
}

std::int64_t load_checkpoint(const std::string& dir, HashHopTransformer& model, torch::optim::Optimizer& optimizer,
                             const torch::Device& device) {
  const std::string path = dir + "/checkpoint.pt";
  if (!io::file_exists(path)) return 0;
  try {
    torch::serialize::InputArchive root, model_archive, optimizer_archive;
    root.load_from(path, device);
    root.read("model", model_archive);
    model->load(model_archive);
    root.read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
    torch::Tensor step;
    root.read("step", step);
    return step.item<std::int64_t>();
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": cannot resume from this checkpoint (" +
                             std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  }
}

}  // namespace hashhop::model
