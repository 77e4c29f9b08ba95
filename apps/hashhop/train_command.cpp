// `hashhop train --config FILE|PRESET --out DIR`: trains the HashHop model on freshly generated data,
// resuming from DIR/checkpoint.pt when it exists. Run `hashhop train --help`.
#include <cmath>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "command.h"
#include "device_option.h"
#include "hashhop/dist/dist_env.h"
#include "hashhop/dist/launcher.h"
#include "hashhop/dist/process_group.h"
#include "hashhop/io/files.h"
#include "hashhop/train/byte_config.h"
#include "hashhop/train/config.h"
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
  std::int64_t seed = -1;
  double time_limit = 0;
  bool print_config = false;
  std::string init;
  int nproc = 0;              // 0: one process, or the ranks torchrun's variables describe
  double dist_timeout = 30;   // seconds a collective waits for a peer
};

// Runs one model family's training: the lexer model (`train::train`) or the byte-level model.
template <class RunConfig, class TrainFn>
int run_family(RunConfig config, const Options& o, const std::string& family, TrainFn&& train_fn) {
  if (o.steps > 0) config.train.steps = o.steps;
  if (o.seed >= 0) config.train.seed = static_cast<std::uint64_t>(o.seed);
  if (o.print_config) {
    std::printf("%s", train::to_json(config).c_str());
    return 0;
  }
  if (o.out.empty()) throw std::invalid_argument("--out: required (the run directory)");
  train::TrainOptions options;
  options.out_dir = o.out;
  options.device = parse_device(o.device);
  options.stop_after = o.stop_after;
  options.time_limit_s = o.time_limit;
  // Data parallel when launched with torchrun's variables (by --nproc or torchrun itself): docs/distributed.md.
  std::unique_ptr<dist::ProcessGroup> group;
  if (const auto env = dist::dist_env_from_environment(); env && env->world_size > 1) {
    if (o.nproc > 0 && o.nproc != env->world_size)
      throw std::invalid_argument("--nproc " + std::to_string(o.nproc) + ": WORLD_SIZE=" + std::to_string(env->world_size) +
                                  " is set (already launched); drop one of them");
    group = dist::ProcessGroup::join(*env, options.device,
                                     std::chrono::milliseconds(static_cast<long long>(o.dist_timeout * 1000)));
    options.group = group.get();
  }
  const bool rank0 = group == nullptr || group->rank() == 0;
  if (rank0)
    std::printf("train %s%s on %s%s -> %s\n", config.name.c_str(), family.c_str(), options.device.str().c_str(),
                group ? (", " + std::to_string(group->size()) + " ranks").c_str() : "", o.out.c_str());
  const auto summary = train_fn(config, options);
  if (!rank0) return 0;
  std::printf("steps %lld..%lld of %lld in %.1f s; last loss %.4f, exact %.3f; model in %s/model.pt\n",
              static_cast<long long>(summary.start_step), static_cast<long long>(summary.end_step),
              static_cast<long long>(config.train.steps), summary.seconds, summary.last_loss, summary.last_exact,
              o.out.c_str());
  return 0;
}

// A run's data of step s comes from (seed, s) alone, so a run started --init from a model trained on the same
// seed draws that run's batches again from step 0: fine for an A/B, a repeat of data for a continuation.
void warn_if_replaying(const Options& o, std::uint64_t config_seed) {
  // A resumed run ignores --init; under --nproc only rank 0 (or the launcher) speaks.
  if (o.init.empty() || o.print_config || (!o.out.empty() && io::file_exists(o.out + "/checkpoint.pt"))) return;
  if (const auto env = dist::dist_env_from_environment(); env && env->rank != 0) return;
  const std::uint64_t seed = o.seed >= 0 ? static_cast<std::uint64_t>(o.seed) : config_seed;
  std::ifstream file(o.init + "/config.json");
  const auto init = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
  if (init.is_discarded() || !init.contains("train") || !init["train"].contains("seed")) return;  // the loader reports bad files
  const auto& init_seed = init["train"]["seed"];
  if (init_seed.is_number_unsigned() && init_seed.get<std::uint64_t>() == seed)
    std::fprintf(stderr, "train: warning: --init %s was trained on data seed %llu, this run's too: its first steps repeat that run's "
                 "batches (--seed N draws new data)\n", o.init.c_str(), static_cast<unsigned long long>(seed));
}

int run_train(const Options& o) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // log lines appear as they happen, also in files
  if (!(o.dist_timeout > 0)) throw std::invalid_argument("--dist-timeout: must be > 0 seconds");
  // 0 means no limit; a negative or non-finite limit (nan, inf typed by mistake) is refused, not ignored.
  if (!(o.time_limit >= 0) || !std::isfinite(o.time_limit))
    throw std::invalid_argument("--time-limit: must be a number of seconds >= 0 (0: no limit), got " + std::to_string(o.time_limit));
  if (o.nproc > 1 && !dist::dist_env_from_environment() && !o.print_config) {
    // Refused here too, so the one-line error comes before N ranks each print it (train_bytes checks it).
    if (train::is_byte_config(o.config)) train::refuse_data_parallel(train::load_byte_run_config(o.config), o.config);
    dist::launch_ranks(o.nproc);  // this command line again as N ranks; throws when one fails
    return 0;
  }
  if (train::is_byte_config(o.config)) {
    const auto config = train::load_byte_run_config(o.config);
    warn_if_replaying(o, config.train.seed);
    return run_family(config, o, " (bytes, " + config.model.layers + ")",
                      [&](const auto& c, const auto& options) { return train::train_bytes(c, options, o.init); });
  }
  if (!o.init.empty()) throw std::invalid_argument("--init: only for byte-level configs (bytes-* presets)");
  return run_family(train::load_run_config(o.config), o, "",
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
  app->add_option("--seed", o->seed,
                  "Override the config's data seed (step s's batch comes from the seed and s only; a run started with --init "
                  "from a model trained on the same seed repeats its batches)")
      ->check(at_least(0));
  app->add_option("--time-limit", o->time_limit, "Seconds of training in this call; then checkpoint and stop (resume later)");
  app->add_flag("--print-config", o->print_config, "Print the resolved config as JSON and exit");
  app->add_option("--nproc", o->nproc,
                  "Data parallel: run N ranks on this host (Gloo on cpu), each on batch/N of every step's batch; "
                  "also joins torchrun's RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT when set (docs/distributed.md)")
      ->check(CLI::Range(1, 256));
  app->add_option("--dist-timeout", o->dist_timeout, "Data parallel: seconds a rank waits for its peers before failing")
      ->capture_default_str();
  return {app, [o] { return run_train(*o); }};
}

}  // namespace hashhop::cli
