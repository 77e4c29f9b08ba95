// `hashhop margin-probe --model DIR --chars 2400,38400`: why a byte model's lookup fails at length. For 1-hop
// answers, per global block, at the first answer row or --row-offset bytes before it: the query's own line against the rest.
#include <algorithm>
#include <cmath>
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
#include "hashhop/train/batch.h"
#include "hashhop/train/byte_trainer.h"
#include "json_option.h"
#include "torch_commands.h"

namespace hashhop::cli {
namespace {

struct Options {
  std::string model_dir, device = "auto", chars = "2400,9600";
  int hash_len = 8, texts = 2, row_offset = 0;
  std::uint64_t queries = 8, seed = 900000;
  JsonOption json;
};

// One answer in one block, from the head that weighs the query's line ("K = V" and its newline) most: that
// weight, the line's best score, the best score on lines without K, and how many of those score above the line.
struct Margin {
  double weight = -1, right = 0, wrong = 0;  // weight: the softmax mass (over the prompt's keys) on the line
  std::int64_t above = 0;
};

double median(std::vector<double> x) {
  if (x.empty()) return NAN;
  std::sort(x.begin(), x.end());
  const auto n = x.size();
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

int run_margin_probe(const Options& o) {
  o.json.open();
  std::optional<HumanTextToStderr> human(std::in_place, o.json.to_stdout());  // --json: the table on stderr
  require_byte_model_dir(o.model_dir);
  if (o.texts < 1) throw std::invalid_argument("--texts: must be >= 1");
  check_row_offset(o.row_offset, o.hash_len);
  std::vector<std::uint64_t> sizes;
  for (const auto chars : parse_sizes("--chars", o.chars))
    sizes.push_back(generated_texts(std::to_string(chars), 1, o.hash_len, o.queries).n_chars);
  const auto device = parse_device(o.device);
  auto loaded = train::load_byte_model(o.model_dir, device);
  auto& net = loaded.net;
  const auto& cfg = loaded.config.model;
  const double scale = 1.0 / std::sqrt(static_cast<double>(cfg.dim / cfg.heads));
  torch::NoGradGuard no_grad;
  std::printf("1-hop answers without CoT, %d texts a size, %d-letter hashes, read at the row %d bytes before each answer's\n"
              "first row (0: the opening quote, which predicts the first answer byte); per global block and answer the head whose\n"
              "softmax over the prompt's kept keys puts most weight on the query's line (\"K = V\" and its newline): that weight, whether\n"
              "the line's best score beats the best on lines without K, by how much (scores: q.k / sqrt(head dim), gate bias\n"
              "included), and how many of those keys score above the line. Medians over answers.\n",
              o.texts, o.hash_len, o.row_offset);
  std::printf("| chars | block | answers | line weight | line wins | margin | line score | best unrelated | unrelated keys above the line |\n"
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  nlohmann::json rows = nlohmann::json::array();
  io::ProgressBar bar("texts", static_cast<std::uint64_t>(o.texts) * sizes.size());
  std::uint64_t done = 0;
  for (const auto n_chars : sizes) {
    std::map<std::size_t, std::vector<Margin>> margins;  // block -> one per answer
    for (int i = 0; i < o.texts; ++i) {
      const auto sample = train::make_sample(n_chars, 1, o.hash_len, false, o.queries, o.seed + i, model::ModelConfig{}.max_run);
      const auto chains = train::chain_lines(sample, 1, 1);  // 1-hop answers: the query key's own line
      const auto prompt_rows = static_cast<std::int64_t>(sample.text.find("\nCOMPLETION:"));
      if (chains.empty() || prompt_rows <= 0) continue;
      // The probed row of each answer: its first row (the opening quote), or --row-offset bytes before it, on
      // the completion line "K = '" (offset 4 is K's last letter at any hash length); one chain per answer.
      const auto query_rows = rows_before_answers(sample, o.row_offset);
      for (const auto& v : model::capture_global_vectors(net, model::as_bytes(sample.text, device), query_rows, prompt_rows)) {
        if (v.keys.size(1) == 0) continue;  // the gate keeps nothing here: this block reads nothing
        const auto positions = torch::tensor(v.key_positions, torch::kInt64);
        const auto scores = torch::matmul(v.queries, v.keys.transpose(1, 2)).mul_(scale).to(torch::kFloat64);  // [H, R, keys]
        for (std::size_t r = 0; r < chains.size(); ++r) {
          if (chains[r].lines.empty()) continue;
          const auto [begin, end] = chains[r].lines[0];
          const auto on_line = (positions >= begin).logical_and(positions <= end);  // the newline after V too
          if (!on_line.any().item<bool>()) continue;  // no kept key on the line: nothing this block could find
          // Lines that hold the query's hash elsewhere (as the value of the line before it in its chain) are
          // neither: matching the hash there is right by content, and the byte after it tells them apart.
          auto related = on_line.clone();
          const std::string_view prompt(sample.text.data(), static_cast<std::size_t>(prompt_rows));
          const std::string key(sample.text.data() + begin, sample.text.find(" = ", static_cast<std::size_t>(begin)) - static_cast<std::size_t>(begin));
          for (auto at = prompt.find(key); at != std::string_view::npos; at = prompt.find(key, at + 1)) {
            const auto newline = prompt.rfind('\n', at);
            const auto line_begin = static_cast<std::int64_t>(newline == std::string_view::npos ? 0 : newline + 1);
            const auto line_end = static_cast<std::int64_t>(std::min(prompt.find('\n', at), prompt.size()));
            related.logical_or_((positions >= line_begin).logical_and(positions <= line_end));
          }
          Margin best;
          for (std::int64_t h = 0; h < scores.size(0); ++h) {
            const auto s = scores[h][static_cast<std::int64_t>(r)];
            const double weight = torch::softmax(s, 0).masked_select(on_line).sum().item<double>();
            if (weight <= best.weight) continue;
            const double right = s.masked_fill(on_line.logical_not(), -INFINITY).max().item<double>();
            const auto others = s.masked_fill(related, -INFINITY);
            best = {weight, right, others.max().item<double>(), (others > right).sum().item<std::int64_t>()};
          }
          margins[v.block].push_back(best);
        }
      }
      bar.update(++done);
    }
    for (const auto& [block, list] : margins) {
      std::vector<double> weight, margin, right, wrong, above;
      std::int64_t wins = 0;
      for (const auto& m : list) {
        weight.push_back(m.weight), margin.push_back(m.right - m.wrong), right.push_back(m.right), wrong.push_back(m.wrong);
        above.push_back(static_cast<double>(m.above));
        wins += m.right > m.wrong;
      }
      const double share = list.empty() ? 0.0 : static_cast<double>(wins) / static_cast<double>(list.size());
      std::printf("| %llu | %zu | %zu | %.3f | %.3f | %.2f | %.2f | %.2f | %.0f |\n", static_cast<unsigned long long>(n_chars), block,
                  list.size(), median(weight), share, median(margin), median(right), median(wrong), median(above));
      rows.push_back({{"chars", n_chars}, {"block", block}, {"answers", list.size()}, {"median_line_weight", median(weight)}, {"line_wins", share},
                      {"median_margin", median(margin)}, {"median_line_score", median(right)}, {"median_best_unrelated", median(wrong)},
                      {"median_unrelated_keys_above_line", median(above)}});
    }
  }
  human.reset();  // the JSON itself goes to stdout
  o.json.emit({{"model", o.model_dir}, {"chars", o.chars}, {"hash_len", o.hash_len}, {"row_offset", o.row_offset}, {"queries", o.queries}, {"texts", o.texts},
               {"seed", o.seed}, {"device", device.str()}, {"rows", rows}});
  return 0;
}

}  // namespace

Command add_margin_probe_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("margin-probe", find_torch_command("margin-probe")->description);
  app->add_option("--model", o->model_dir, "Byte-family model directory")->required();
  app->add_option("--chars", o->chars, "Characters per generated text, one or more sizes (comma list, K/M suffixes)")->capture_default_str();
  app->add_option("--hash-len", o->hash_len, "Letters per hash")->capture_default_str()->check(CLI::Range(1, 256));
  app->add_option("--queries", o->queries, "Queries per text")->capture_default_str();
  app->add_option("--texts", o->texts, "Generated texts a size (seeds --seed, --seed + 1, ...)")->capture_default_str();
  app->add_option("--row-offset", o->row_offset, "Read this many bytes before each answer's first row (4: the query hash's last letter)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app->add_option("--seed", o->seed, "Seed of the first text")->capture_default_str();
  app->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  o->json.add(app, "the settings and one row per (size, global block)");
  return {app, [o] { return run_margin_probe(*o); }};
}

}  // namespace hashhop::cli
