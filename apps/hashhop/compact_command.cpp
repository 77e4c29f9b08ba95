// `hashhop compact`: a model directory rewritten with its weights in bfloat16, half the bytes (what the
// repo commits as a demo model); eval, answer and serve load it as usual. Run `hashhop compact --help`.
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/train/byte_config.h"  // is_byte_config
#include "hashhop/train/byte_trainer.h"
#include "hashhop/train/checkpoint.h"

namespace hashhop::cli {
namespace {

struct Options {
  std::string model_dir, out_dir;
};

int run_compact(const Options& o) {
  if (o.out_dir == o.model_dir) throw std::invalid_argument("--out: must differ from --model (" + o.out_dir + ")");
  if (io::file_exists(o.out_dir + "/model.pt")) throw std::invalid_argument("--out " + o.out_dir + ": already holds a model.pt");
  const std::string config_path = o.model_dir + "/config.json";
  const torch::Device cpu(torch::kCPU);
  // Load (checks config, shapes and checksum), then write weights first and config.json last: config.json
  // is what marks OUT as a model, so a failure in between leaves no half-made model behind. The config is
  // copied byte for byte (what it was loaded from, read once the load has checked it).
  const std::shared_ptr<torch::nn::Module> net = train::is_byte_config(config_path)
                                                     ? std::shared_ptr<torch::nn::Module>(train::load_byte_model(o.model_dir, cpu).net.ptr())
                                                     : std::shared_ptr<torch::nn::Module>(train::load_model(o.model_dir, cpu).model.ptr());
  io::make_directories(o.out_dir);
  train::save_weights_bf16(*net, o.out_dir + "/model.pt");
  io::write_file_atomically(o.out_dir + "/config.json", io::read_file_limited(config_path, 1 << 20, "--model"));
  std::printf("compact: %s -> %s (weights in bfloat16)\n", o.model_dir.c_str(), o.out_dir.c_str());
  return 0;
}

}  // namespace

Command add_compact_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("compact", "Rewrite a model directory with its weights in bfloat16 (half the bytes)");
  app->add_option("--model", o->model_dir, "Model directory (config.json + model.pt), either family")->required();
  app->add_option("--out", o->out_dir, "New model directory (must not hold a model.pt)")->required();
  return {app, [o] { return run_compact(*o); }};
}

}  // namespace hashhop::cli
