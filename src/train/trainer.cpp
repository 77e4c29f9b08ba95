// Training loop (see trainer.h). Step s's data comes from (seed, s) alone and the optimiser state is in
// the checkpoint, so a run cut into pieces and resumed equals the run in one piece.
#include "hashhop/train/trainer.h"

#include <ATen/autocast_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"
#include "hashhop/io/progress.h"
#include "hashhop/train/checkpoint.h"
#include "hashhop/model/hashhop_model.h"
#include "hashhop/train/batch.h"
#include "hashhop/train/data_parallel.h"
#include "hashhop/train/run_files.h"

namespace hashhop::train {

double learning_rate(const train::TrainConfig& c, std::int64_t step) {
  if (step < c.warmup) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup);
  const double span = std::max<double>(1.0, static_cast<double>(c.steps - c.warmup));
  const double progress = std::min(1.0, static_cast<double>(step - c.warmup) / span);
  const double floor = c.lr * c.min_lr_fraction;
  return floor + (c.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

namespace {

// Weight decay only on matrices: embeddings, biases and the attention scale keep their size.
torch::optim::AdamW make_optimizer(model::HashHopTransformer& net, const train::TrainConfig& c) {
  std::vector<torch::Tensor> decayed, plain;
  for (const auto& item : net->named_parameters()) {
    const bool is_matrix = item.value().dim() == 2 && item.key().find("_emb") == std::string::npos &&
                           item.key().find("fingerprint_table") == std::string::npos;
    (is_matrix ? decayed : plain).push_back(item.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay)));
  groups.emplace_back(plain, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(c.lr).weight_decay(0.0)));
  return torch::optim::AdamW(std::move(groups), torch::optim::AdamWOptions(c.lr));
}

}  // namespace

TrainSummary train(const train::RunConfig& config, const TrainOptions& options) {
  const auto& tc = config.train;
  if (options.stop_after < -1) throw std::invalid_argument("--stop-after: must be >= 0, got " + std::to_string(options.stop_after));
  FreshRunCleanup cleanup(options.out_dir);
  const std::string config_path = options.out_dir + "/config.json";
  const std::string checkpoint_path = options.out_dir + "/checkpoint.pt";
  const bool resuming = io::file_exists(checkpoint_path);
  const bool writer = options.group == nullptr || options.group->rank() == 0;  // only rank 0 writes OUT
  cleanup.active = !resuming && writer;
  if (resuming && io::file_exists(config_path)) {
    const auto saved = train::load_run_config(config_path);
    if (train::to_json(saved) != train::to_json(config))
      throw std::invalid_argument(options.out_dir + ": holds a checkpoint of a different config (" + config_path +
                                  "); use another --out or the same config");
  }
  // On the CPU the reduction order of LibTorch's kernels depends on the OpenMP thread count, so a resumed
  // run matches the uninterrupted one only with the count the checkpoint was written with: adopt it.
  if (resuming && options.device.is_cpu()) {
    const std::int64_t saved_threads = train::checkpoint_threads(options.out_dir);
    if (saved_threads > 0 && saved_threads != torch::get_num_threads()) {
      std::fprintf(stderr, "train: resuming with %lld OpenMP threads (not %d), as %s was written, so the run stays "
                   "bit-exact\n", static_cast<long long>(saved_threads), torch::get_num_threads(), checkpoint_path.c_str());
      torch::set_num_threads(static_cast<int>(saved_threads));
    }
  }
  torch::manual_seed(tc.seed);
  model::HashHopTransformer net(config.model);
  net->to(options.device);
  auto optimizer = make_optimizer(net, tc);
  TrainSummary summary;
  summary.start_step = train::load_checkpoint(options.out_dir, *net, optimizer, options.device);
  const std::string metrics_path = options.out_dir + "/metrics.jsonl";
  std::ofstream metrics;
  if (writer) metrics = open_run_files(options.out_dir, train::to_json(config), summary.start_step);
  const auto shard = options.group ? shard_of_batch(tc.batch, options.group->rank(), options.group->size())
                                   : std::pair<int, int>{0, tc.batch};

  std::int64_t end = tc.steps;
  if (options.stop_after >= 0) end = std::min(end, summary.start_step + options.stop_after);
  const bool bf16 = tc.bf16 && options.device.is_cuda();
  io::ProgressBar bar("train", static_cast<std::uint64_t>(tc.steps), "steps");
  const auto start = std::chrono::steady_clock::now();
  double loss_sum = 0, acc_sum = 0;
  std::int64_t exact = 0, answers = 0, window = 0;
  net->train();
  for (std::int64_t step = summary.start_step; step < end; ++step) {
    const double lr = learning_rate(tc, step);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    const auto samples = make_batch(tc, config.model, step, shard.first, shard.second);
    BatchResult result;
    {
      AutocastScope autocast(bf16);
      result = run_batch(net, samples, options.device);
    }
    optimizer.zero_grad();
    double loss = 0, char_acc = 0;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bool out_of_time = options.time_limit_s > 0 && elapsed > options.time_limit_s;
    if (options.group) {
      // Loss terms of this rank's share; the sum of every rank's terms is the 1-process batch's loss.
      double terms = 0;
      for (const auto& s : samples) terms += static_cast<double>(s.positions.size());
      (result.loss * terms).backward();
      const double local_loss = result.loss.item<double>();
      const auto total = all_reduce_step(*options.group, net->parameters(),
                                         {terms, local_loss * terms, result.char_accuracy * terms,
                                          static_cast<double>(result.answers_exact), static_cast<double>(result.answers),
                                          out_of_time ? 1.0 : 0.0});
      loss = total[1] / total[0];
      char_acc = total[2] / total[0];
      result.answers_exact = std::llround(total[3]);
      result.answers = std::llround(total[4]);
      out_of_time = total[5] > 0;  // every rank stops at the same step, or the others would wait for it
    } else {
      result.loss.backward();
      loss = result.loss.item<double>();
      char_acc = result.char_accuracy;
    }
    torch::nn::utils::clip_grad_norm_(net->parameters(), tc.grad_clip);
    optimizer.step();
    if (!options.group) {
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      out_of_time = options.time_limit_s > 0 && elapsed > options.time_limit_s;
    }

    if (!std::isfinite(loss)) throw std::runtime_error("step " + std::to_string(step) + ": loss is not finite");
    loss_sum += loss;
    acc_sum += char_acc;
    exact += result.answers_exact;
    answers += result.answers;
    ++window;
    if (out_of_time) end = step + 1;  // checkpoint and stop
    const bool last_step = step + 1 == end;
    if (writer && ((step + 1) % tc.log_every == 0 || last_step)) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double exact_rate = answers ? static_cast<double>(exact) / answers : 0.0;
      nlohmann::json line = {{"step", step}, {"loss", loss_sum / window}, {"char_acc", acc_sum / window},
                             {"exact", exact_rate}, {"lr", lr}, {"seconds", seconds},
                             {"stage_from", train::stage_at(tc, step).from_step}};
      metrics << line.dump() << "\n" << std::flush;
      if (!metrics) throw std::runtime_error(metrics_path + ": write failed");
      char status[128];
      std::snprintf(status, sizeof status, "loss %.4f  char %.3f  exact %.3f", loss_sum / window, acc_sum / window,
                    exact_rate);
      if (!options.quiet && !bar.enabled()) std::printf("step %6lld  %s  lr %.2e\n", static_cast<long long>(step + 1), status, lr);
      bar.update(static_cast<std::uint64_t>(step + 1), status);
      summary.last_loss = loss_sum / window;
      summary.last_exact = exact_rate;
      loss_sum = acc_sum = 0;
      exact = answers = window = 0;
    }
    if ((step + 1) % tc.checkpoint_every == 0 || last_step) {
      if (options.group) check_replicas_equal(*options.group, net->parameters());
    }
    if (writer && ((step + 1) % tc.checkpoint_every == 0 || last_step)) {
      train::save_checkpoint(options.out_dir, *net, optimizer, step + 1);
      train::save_model(options.out_dir, config, net);
    }
  }
  bar.finish();
  cleanup.active = false;
  summary.end_step = std::max(end, summary.start_step);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace hashhop::train
