// `hashhop hop-probe --model DIR`: where a byte model's hop blocks put their attention for answers of 2+ hops
// without CoT: each hop's weight (mean over heads) on its chain line's key, " = ", value and the newline after it.
#include <cstdio>
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
#include "hashhop/model/hashhop_model.h"
#include "hashhop/train/batch.h"
#include "hashhop/train/byte_config.h"
#include "hashhop/train/byte_trainer.h"
#include "json_option.h"
#include "torch_commands.h"

namespace hashhop::cli {
namespace {

struct Options {
  std::string model_dir, device = "auto", chars = "2400";
  int hops = 2, hash_len = 8, texts = 4;
  std::uint64_t queries = 8, seed = 900000;
  JsonOption json;
};

// The parts of a line "K = V" (V may be quoted) a hop can weigh, and the rest of its weight (other lines,
// the completion): the JSON keys of a row.
// The newline after V is the first position whose left context holds the whole line.
// The first five add up to 1; the last three are parts of "value": its first and last letter and its quotes
// (the chain's last line quotes its value).
constexpr const char* kParts[] = {"key", "equals", "value", "newline_after", "elsewhere", "value_first_letter", "value_last_letter",
                                  "value_quotes"};
constexpr int kPartCount = 8;

int run_hop_probe(const Options& o) {
  o.json.open();
  std::optional<HumanTextToStderr> human(std::in_place, o.json.to_stdout());  // --json: the table on stderr
  require_byte_model_dir(o.model_dir);
  if (o.texts < 1) throw std::invalid_argument("--texts: must be >= 1");
  const auto n_chars = generated_texts(o.chars, o.hops, o.hash_len, o.queries).n_chars;
  if (o.hops < 2) throw std::invalid_argument("--hops: must be >= 2 (a 1-hop answer has no chain for the hops to follow)");
  const auto device = parse_device(o.device);
  auto loaded = train::load_byte_model(o.model_dir, device);
  auto& net = loaded.net;
  const auto& layers = loaded.config.model.layers;
  if (layers.find('H') == std::string::npos)
    throw std::invalid_argument("--model " + o.model_dir + ": no hop block (layers \"" + layers + "\" has no H)");
  torch::NoGradGuard no_grad;
  const int hops = loaded.config.model.hops;
  // share[block][hop][part], summed over answers; answers[block][hop] counts them.
  std::vector<std::vector<std::vector<double>>> share;
  std::vector<std::vector<std::int64_t>> answers;
  io::ProgressBar bar("texts", static_cast<std::uint64_t>(o.texts));
  for (int i = 0; i < o.texts; ++i) {
    const auto sample = train::make_sample(n_chars, o.hops, o.hash_len, false, o.queries, o.seed + i, model::ModelConfig{}.max_run);
    const auto chains = train::chain_lines(sample, hops);
    if (chains.empty()) continue;
    auto rows = torch::empty({1, static_cast<std::int64_t>(chains.size())}, torch::kInt64);
    for (std::size_t r = 0; r < chains.size(); ++r) rows[0][static_cast<std::int64_t>(r)] = chains[r].row;
    net->set_hop_probe(rows);
    struct ProbeOff {  // the probe ends with this forward, also when it throws
      model::ByteModel& net;
      ~ProbeOff() { net->set_hop_probe(torch::Tensor()); }
    } probe_off{net};
    net->hidden(model::as_bytes(sample.text, device));
    const auto weights = net->hop_weights();  // per H block, per hop: [1, heads, R, T] log weights
    share.resize(weights.size());
    answers.resize(weights.size());
    for (std::size_t b = 0; b < weights.size(); ++b) {
      share[b].resize(weights[b].size(), std::vector<double>(kPartCount, 0.0));
      answers[b].resize(weights[b].size(), 0);
      for (std::size_t h = 0; h < weights[b].size(); ++h) {
        const auto w = weights[b][h].exp().mean(1)[0].to(torch::kFloat64).cpu();  // [R, T], mean over heads
        for (std::size_t r = 0; r < chains.size(); ++r) {
          if (h >= chains[r].lines.size()) continue;
          const auto [begin, end] = chains[r].lines[h];
          const std::string_view line(sample.text.data() + begin, static_cast<std::size_t>(end - begin));
          const auto eq = static_cast<std::int64_t>(line.find(" = "));
          const auto row = w[static_cast<std::int64_t>(r)];
          const double parts[] = {row.narrow(0, begin, eq).sum().item<double>(), row.narrow(0, begin + eq, 3).sum().item<double>(),
                                  row.narrow(0, begin + eq + 3, end - begin - eq - 3).sum().item<double>(),
                                  end < row.size(0) ? row[end].item<double>() : 0.0};
          double on_line = 0;
          for (int p = 0; p < 4; ++p) share[b][h][p] += parts[p], on_line += parts[p];
          share[b][h][4] += 1.0 - on_line;
          const auto [first, past_last] = chains[r].values[h];  // V's letters, quotes aside
          const bool quoted = first > begin + eq + 3;            // the chain's last line quotes its value
          share[b][h][5] += row[first].item<double>();
          share[b][h][6] += row[past_last - 1].item<double>();
          if (quoted) share[b][h][7] += row[first - 1].item<double>() + row[past_last].item<double>();
          ++answers[b][h];
        }
      }
    }
    bar.update(static_cast<std::uint64_t>(i + 1));
  }
  std::printf("where each hop of each H block puts its weight (mean over heads and answers) at the first answer row\n"
              "of %d-hop answers without CoT, %d texts of %s chars (hop h: the chain's h-th line):\n",
              o.hops, o.texts, o.chars.c_str());
  std::printf("| block | hop | answers | key | \" = \" | value | newline after | elsewhere | value's first letter | value's last letter | value's quotes |\n"
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  nlohmann::json out = nlohmann::json::array();
  std::vector<std::size_t> hop_blocks;  // hop_weights() lists the H blocks in layer order
  for (std::size_t i = 0; i < layers.size(); ++i)
    if (layers[i] == 'H') hop_blocks.push_back(i);
  for (std::size_t b = 0; b < share.size(); ++b) {
    const auto block_index = hop_blocks.at(b);
    for (std::size_t h = 0; h < share[b].size(); ++h) {
      const double n = static_cast<double>(std::max<std::int64_t>(1, answers[b][h]));
      std::printf("| %zu | %zu | %lld |", block_index, h + 1, static_cast<long long>(answers[b][h]));
      nlohmann::json row{{"block", block_index}, {"hop", h + 1}, {"answers", answers[b][h]}};
      for (int p = 0; p < kPartCount; ++p) {
        std::printf(" %.3f |", share[b][h][p] / n);
        row[kParts[p]] = share[b][h][p] / n;
      }
      std::printf("\n");
      out.push_back(row);
    }
  }
  human.reset();  // the JSON itself goes to stdout
  o.json.emit({{"model", o.model_dir}, {"chars", n_chars}, {"hops", o.hops}, {"hash_len", o.hash_len}, {"queries", o.queries},
               {"texts", o.texts}, {"seed", o.seed}, {"device", device.str()}, {"rows", out}});
  return 0;
}

}  // namespace

Command add_hop_probe_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("hop-probe", find_torch_command("hop-probe")->description);
  app->add_option("--model", o->model_dir, "Byte-family model directory with an H block (layers with an H)")->required();
  app->add_option("--chars", o->chars, "Characters per generated text (K/M suffixes)")->capture_default_str();
  app->add_option("--hops", o->hops, "Hops of each query (2 or more; no CoT)")->capture_default_str()->check(CLI::Range(2, 64));
  app->add_option("--hash-len", o->hash_len, "Letters per hash")->capture_default_str()->check(CLI::Range(1, 256));
  app->add_option("--queries", o->queries, "Queries per text")->capture_default_str();
  app->add_option("--texts", o->texts, "Generated texts (seeds --seed, --seed + 1, ...)")->capture_default_str();
  app->add_option("--seed", o->seed, "Seed of the first text")->capture_default_str();
  app->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  o->json.add(app, "the settings and one row per (H block, hop)");
  return {app, [o] { return run_hop_probe(*o); }};
}

}  // namespace hashhop::cli
