// `hashhop train --config FILE|PRESET --out DIR`: trains the HashHop model on freshly generated data,
// resuming from DIR/checkpoint.pt when it exists. Run `hashhop train --help`.
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "device_option.h"
#include "hashhop/model/byte_config.h"
#include "hashhop/model/config.h"
#include "hashhop/train/byte_trainer.h"
#include "hashhop/train/trainer.h"
#include "size_option.h"

namespace hashhop::cli {
namespace {

struct Options {
  std::string config = "tiny";
  std::string out;
  std::string device = "auto";
  std::int64_t stop_after = -1;
  std::int64_t steps = -1;
  double time_limit = 0;
  bool print_config = false;
  std::string init;
};

// Runs one model family's training: the lexer model (`train::train`) or the byte-level model.
template <class RunConfig, class TrainFn>
int run_family(RunConfig config, const Options& o, const std::string& family, TrainFn&& train_fn) {
  if (o.steps > 0) config.train.steps = o.steps;
  if (o.print_config) {
    std::printf("%s", model::to_json(config).c_str());
    return 0;
  }
  if (o.out.empty()) throw std::invalid_argument("--out: required (the run directory)");
  train::TrainOptions options;
  options.out_dir = o.out;
  options.device = parse_device(o.device);
  options.stop_after = o.stop_after;
  options.time_limit_s = o.time_limit;
  std::printf("train %s%s on %s -> %s\n", config.name.c_str(), family.c_str(), options.device.str().c_str(), o.out.c_str());
  const auto summary = train_fn(config, options);
  std::printf("steps %lld..%lld of %lld in %.1f s; last loss %.4f, exact %.3f; model in %s/model.pt\n",
              static_cast<long long>(summary.start_step), static_cast<long long>(summary.end_step),
              static_cast<long long>(config.train.steps), summary.seconds, summary.last_loss, summary.last_exact,
              o.out.c_str());
  return 0;
}

int run_train(const Options& o) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // log lines appear as they happen, also in files
  if (model::is_byte_config(o.config)) {
    const auto config = model::load_byte_run_config(o.config);
    return run_family(config, o, " (bytes, " + config.model.layers + ")",
                      [&](const auto& c, const auto& options) { return train::train_bytes(c, options, o.init); });
  }
  if (!o.init.empty()) throw std::invalid_argument("--init: only for byte-level configs (bytes-* presets)");
  return run_family(model::load_run_config(o.config), o, "",
                    [](const auto& c, const auto& options) { return train::train(c, options); });
}

}  // namespace

Command add_train_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("train", "Train the HashHop model on generated data (resumes from OUT/checkpoint.pt)");
  app->add_option("--config", o->config,
                  "Preset (tiny, cpu, h100; byte-level: bytes-tiny, bytes-h100, bytes-nope, bytes-hops) or JSON config file")
      ->capture_default_str();
  app->add_option("--init", o->init, "Byte-level only: start a fresh run from this model directory's weights (same names and shapes)");
  app->add_option("--out", o->out, "Run directory: config.json, model.pt, checkpoint.pt, metrics.jsonl");
  app->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  // Checked here, before anything runs: the defaults (-1) mean "not given", so 0 or -5 used to be ignored.
  app->add_option("--stop-after", o->stop_after, "Stop after this many steps of this call (checkpointed), e.g. to fit a time limit")
      ->check(at_least(0));
  app->add_option("--steps", o->steps, "Override the config's total steps")->check(at_least(1));
  app->add_option("--time-limit", o->time_limit, "Seconds of training in this call; then checkpoint and stop (resume later)");
  app->add_flag("--print-config", o->print_config, "Print the resolved config as JSON and exit");
  return {app, [o] { return run_train(*o); }};
}

}  // namespace hashhop::cli
