// `hashhop signature-recall --model DIR`: how well learned bit signatures (HashAttention's φq, φk trained
// with its BCE objective) find a byte model's own top-k keys, block by block, on held-out generated texts.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "byte_probe_inputs.h"
#include "command.h"
#include "device_option.h"
#include "hashhop/io/progress.h"
#include "hashhop/model/byte_inference.h"
#include "hashhop/model/global_vectors.h"
#include "hashhop/model/hashhop_model.h"
#include "hashhop/ops/attention_ops.h"
#include "hashhop/ops/signature_maps.h"
#include "hashhop/train/batch.h"
#include "hashhop/train/byte_config.h"
#include "hashhop/train/byte_trainer.h"
#include "json_option.h"
#include "torch_commands.h"

namespace hashhop::cli {
namespace {

struct Options {
  std::string model_dir, device = "auto", chars = "2K";
  int hops = 1, hash_len = 8, train_texts = 8, test_texts = 4, steps = 300;
  int row_offset = -1;  // unset: every answer position is a query row
  std::uint64_t queries = 8, seed = 700000;
  std::int64_t bits = 64, hidden = 128, top_k = 8, budget = 64;
  JsonOption json;
};

// One text's vectors of one block, split by head: the groups a φ pair trains and is tested on.
struct Texts {
  std::map<std::size_t, std::vector<ops::SignatureGroup>> train, test;  // block -> (text, head) groups
  std::map<std::size_t, double> keys;                                   // block -> kept keys summed over texts
};

void add_text(Texts& texts, model::ByteModel& net, const train::Sample& sample, const torch::Device& device, bool train,
              int row_offset) {
  const auto prompt_rows = static_cast<std::int64_t>(sample.text.find("\nCOMPLETION:"));
  if (prompt_rows <= 0) throw std::runtime_error("generated text has no completion block");
  const auto rows = row_offset < 0 ? sample.positions : rows_before_answers(sample, row_offset);
  for (auto& v : model::capture_global_vectors(net, model::as_bytes(sample.text, device), rows, prompt_rows)) {
    texts.keys[v.block] += static_cast<double>(v.keys.size(1));
    for (std::int64_t h = 0; h < v.queries.size(0); ++h)
      (train ? texts.train : texts.test)[v.block].push_back({v.queries[h], v.keys[h]});
  }
}

// Recall of the learned maps and of SimHash over the same groups, each a mean weighted by the groups'
// queries; groups with no more keys than the budget are skipped (every key is read: nothing to find).
struct Recall {
  double learned = 0, simhash = 0;
  std::int64_t queries = 0;  // 0: no group had more keys than the budget
};
Recall recall_of(const std::vector<ops::SignatureGroup>& groups, ops::SignatureMap& phi_q, ops::SignatureMap& phi_k,
                 const torch::Tensor& planes, std::int64_t top_k, std::int64_t budget) {
  const auto simhash = [&](const torch::Tensor& x) { return torch::where(torch::matmul(x, planes) >= 0, 1.0, -1.0).to(torch::kFloat32); };
  Recall r;
  for (const auto& g : groups) {
    if (g.keys.size(0) <= budget || g.keys.size(0) <= top_k) continue;
    const auto dense = torch::matmul(g.queries, g.keys.t());
    const auto n = g.queries.size(0);
    r.learned += ops::signature_topk_recall(phi_q(g.queries), phi_k(g.keys), dense, top_k, budget) * n;
    r.simhash += ops::signature_topk_recall(simhash(g.queries), simhash(g.keys), dense, top_k, budget) * n;
    r.queries += n;
  }
  if (r.queries) r.learned /= r.queries, r.simhash /= r.queries;
  return r;
}

int run_signature_recall(const Options& o) {
  o.json.open();
  std::optional<HumanTextToStderr> human(std::in_place, o.json.to_stdout());  // --json: the table on stderr
  require_byte_model_dir(o.model_dir);
  // Every option is checked before the model loads, each error naming its option.
  if (o.train_texts < 1) throw std::invalid_argument("--train-texts: must be >= 1");
  if (o.test_texts < 1) throw std::invalid_argument("--test-texts: must be >= 1");
  if (o.top_k < 1) throw std::invalid_argument("--top-k: must be >= 1");
  if (o.budget < o.top_k) throw std::invalid_argument("--budget: must be >= --top-k (" + std::to_string(o.top_k) + ")");
  if (o.bits < 1 || o.bits > 1024) throw std::invalid_argument("--bits: must be in [1, 1024]");
  if (o.hidden < 1) throw std::invalid_argument("--hidden: must be >= 1");
  if (o.steps < 1) throw std::invalid_argument("--steps: must be >= 1");
  if (o.row_offset != -1) check_row_offset(o.row_offset, o.hash_len);
  const auto n_chars = generated_texts(o.chars, o.hops, o.hash_len, o.queries).n_chars;
  const auto device = parse_device(o.device);
  auto loaded = train::load_byte_model(o.model_dir, device);
  torch::NoGradGuard no_grad;
  Texts texts;
  {
    io::ProgressBar bar("texts", static_cast<std::uint64_t>(o.train_texts + o.test_texts));
    for (int i = 0; i < o.train_texts + o.test_texts; ++i) {
      const auto sample = train::make_sample(n_chars, o.hops, o.hash_len, false, o.queries, o.seed + i, model::ModelConfig{}.max_run);
      add_text(texts, loaded.net, sample, device, i < o.train_texts, o.row_offset);
      bar.update(static_cast<std::uint64_t>(i + 1));
    }
  }
  const auto& layers = loaded.config.model.layers;
  nlohmann::json rows = nlohmann::json::array();
  const std::string where = o.row_offset < 0 ? "at the answer positions"
                                             : "at the row " + std::to_string(o.row_offset) + " bytes before each answer's opening quote";
  std::printf("top-%lld recall within each query's %lld keys of best signature agreement (%lld bits), %d held-out texts of %s chars;\n"
              "queries %s (an H block: its first hop), keys the prompt's rows the gate keeps:\n",
              static_cast<long long>(o.top_k), static_cast<long long>(o.budget), static_cast<long long>(o.bits), o.test_texts,
              o.chars.c_str(), where.c_str());
  std::printf("| block | kind | keys kept per text | learned φ | SimHash | BCE loss, first -> last pass over the groups |\n"
              "|---:|---|---:|---:|---:|---|\n");
  for (auto& [block, groups] : texts.train) {
    const auto dim = groups.front().queries.size(1);
    torch::manual_seed(o.seed);
    ops::SignatureMap phi_q(ops::SignatureMapOptions{dim, o.hidden, o.bits}), phi_k(ops::SignatureMapOptions{dim, o.hidden, o.bits});
    std::vector<ops::SignatureGroup> usable;
    for (const auto& g : groups)
      if (g.keys.size(0) > o.top_k) usable.push_back(g);
    std::vector<double> losses;
    if (!usable.empty()) {
      torch::GradMode::set_enabled(true);
      ops::SignatureTrainOptions train;
      train.steps = o.steps;
      train.top_k = o.top_k;
      train.seed = o.seed;
      losses = ops::train_signature_maps(phi_q, phi_k, usable, train);
      torch::GradMode::set_enabled(false);
    }
    // SimHash: one random projection for queries and keys, seeded so the baseline does not move with --steps.
    torch::manual_seed(o.seed + 1);
    const auto planes = torch::randn({dim, o.bits});
    const Recall recall = recall_of(texts.test[block], phi_q, phi_k, planes, o.top_k, o.budget);
    const auto counted = recall.queries;
    const double learned = recall.learned, simhash = recall.simhash;
    const double keys = texts.keys[block] / (o.train_texts + o.test_texts);
    // Step s trains group s mod G, so single steps' losses are not comparable: average the first and the
    // last G steps (one pass over every group each).
    const auto pass_mean = [&](bool last) {
      const std::size_t g = std::min(losses.size(), usable.size());
      double sum = 0;
      for (std::size_t i = 0; i < g; ++i) sum += losses[last ? losses.size() - 1 - i : i];
      return sum / static_cast<double>(g);
    };
    const double loss_first = losses.empty() ? 0.0 : pass_mean(false), loss_last = losses.empty() ? 0.0 : pass_mean(true);
    char loss_text[64] = "-";
    if (!losses.empty()) std::snprintf(loss_text, sizeof loss_text, "%.3f -> %.3f", loss_first, loss_last);
    const std::string loss = loss_text;
    if (counted == 0)
      std::printf("| %zu | %c | %.0f | - | - | %s |\n", block, layers[block], keys, loss.c_str());
    else
      std::printf("| %zu | %c | %.0f | %.3f | %.3f | %s |\n", block, layers[block], keys, learned, simhash, loss.c_str());
    rows.push_back({{"block", block}, {"kind", std::string(1, layers[block])}, {"keys_per_text", keys},
                    {"queries_counted", counted}, {"recall_learned", counted ? nlohmann::json(learned) : nlohmann::json()},
                    {"recall_simhash", counted ? nlohmann::json(simhash) : nlohmann::json()},
                    {"loss_first_pass", losses.empty() ? nlohmann::json() : nlohmann::json(loss_first)},
                    {"loss_last_pass", losses.empty() ? nlohmann::json() : nlohmann::json(loss_last)}});
  }
  human.reset();  // the JSON itself goes to stdout
  o.json.emit({{"model", o.model_dir}, {"chars", n_chars}, {"hops", o.hops}, {"hash_len", o.hash_len}, {"queries", o.queries},
               {"train_texts", o.train_texts}, {"test_texts", o.test_texts}, {"seed", o.seed}, {"bits", o.bits}, {"hidden", o.hidden},
               {"top_k", o.top_k}, {"budget", o.budget}, {"steps", o.steps},
               {"row_offset", o.row_offset < 0 ? nlohmann::json() : nlohmann::json(o.row_offset)}, {"device", device.str()}, {"blocks", rows}});
  return 0;
}

}  // namespace

Command add_signature_recall_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("signature-recall", find_torch_command("signature-recall")->description);
  app->add_option("--model", o->model_dir, "Byte-family model directory (hashhop train --config bytes-...)")->required();
  app->add_option("--chars", o->chars, "Characters per generated text (K/M suffixes)")->capture_default_str();
  app->add_option("--hops", o->hops, "Hops of each query")->capture_default_str()->check(CLI::Range(1, 64));
  app->add_option("--hash-len", o->hash_len, "Letters per hash")->capture_default_str()->check(CLI::Range(1, 256));
  app->add_option("--queries", o->queries, "Queries per text (the query rows are their answer positions, or see --row-offset)")->capture_default_str();
  app->add_option("--train-texts", o->train_texts, "Texts whose queries and keys train the maps")->capture_default_str();
  app->add_option("--test-texts", o->test_texts, "Held-out texts the recall is measured on")->capture_default_str();
  app->add_option("--seed", o->seed, "Seed of the first text (then +1 each) and of the maps")->capture_default_str();
  app->add_option("--bits", o->bits, "Signature bits")->capture_default_str();
  app->add_option("--hidden", o->hidden, "Hidden width of each map (Linear, SiLU, Linear)")->capture_default_str();
  app->add_option("--top-k", o->top_k, "The model's top keys by dense score that the signatures must find")->capture_default_str();
  app->add_option("--budget", o->budget, "Keys each query keeps by signature agreement (recall@budget)")->capture_default_str();
  app->add_option("--steps", o->steps, "Training steps of each block's maps (Adam, HashAttention's BCE; one (text, head) group a step)")->capture_default_str();
  app->add_option("--row-offset", o->row_offset,
                  "Query rows: one per answer, this many bytes before its opening quote (1-3: the completion line's \" = \", where a "
                  "trained model reads the query's line; unset: every answer position)");
  app->add_option("--device", o->device, "auto, cpu or cuda (the model's forward; the maps train on the CPU)")->capture_default_str();
  o->json.add(app, "the settings and one row per global block");
  return {app, [o] { return run_signature_recall(*o); }};
}

}  // namespace hashhop::cli
