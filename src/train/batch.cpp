// Batches from the real generator (see batch.h): sampling by curriculum stage, answer spans, and the
// teacher-forced forward pass shared by training and quick evaluation.
#include "hashhop/train/batch.h"

#include <algorithm>
#include <random>

#include "hashhop/core/mix64.h"
#include "hashhop/bench/generator.h"

namespace hashhop::train {

void mark_answers(Sample& sample) {
  const std::string& text = sample.text;
  std::size_t line_start = text.find("\nCOMPLETION:");
  if (line_start == std::string::npos) return;
  int answer = 0;
  while ((line_start = text.find('\n', line_start + 1)) != std::string::npos) {
    const std::size_t begin = line_start + 1;
    const std::size_t end = text.find('\n', begin);
    const std::string_view line(text.data() + begin, (end == std::string::npos ? text.size() : end) - begin);
    const std::size_t open = line.find(" = '");
    if (open != std::string_view::npos && line.size() >= open + 5 && line.back() == '\'') {
      const std::int64_t first = static_cast<std::int64_t>(begin + open + 3);  // the opening quote
      const std::int64_t last = static_cast<std::int64_t>(begin + line.size() - 2);  // before the closing quote
      for (std::int64_t p = first; p <= last; ++p) {
        sample.positions.push_back(p);
        sample.answer_of.push_back(answer);
      }
      sample.answer_hops.push_back(sample.hops);
      ++answer;
    }
    if (end == std::string::npos) break;
  }
}

Sample make_sample(std::uint64_t n_chars, int hops, int hash_len, bool cot, std::uint64_t queries,
                   std::uint64_t seed, int max_run) {
  bench::GenConfig config;
  config.n_chars = n_chars;
  config.hops = hops;
  config.hash_len = hash_len;
  config.cot = cot;
  config.seed = seed;
  config.num_queries = std::min<std::uint64_t>(queries, bench::chains_for(config));
  const bench::HashHopProblem problem(config);
  Sample sample;
  sample.text = problem.prompt() + "\n" + problem.completion();
  sample.hops = hops;
  sample.cot = cot;
  sample.hash_len = hash_len;
  model::LexState state;
  sample.lexed = model::lex_chunk(sample.text, state, max_run);
  mark_answers(sample);
  return sample;
}

std::vector<Sample> make_batch(const train::TrainConfig& config, const model::ModelConfig& model_config,
                               std::int64_t step) {
  return make_batch(config, model_config, step, 0, config.batch);
}

std::vector<Sample> make_batch(const train::TrainConfig& config, const model::ModelConfig& model_config,
                               std::int64_t step, int begin, int end) {
  const auto& stage = train::stage_at(config, step);
  std::mt19937_64 rng(core::mix64(config.seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(step)));
  std::vector<Sample> batch;
  for (int b = 0; b < std::min(end, config.batch); ++b) {
    // Every sample's draws are made, kept or not, so sample b is the same whatever slice is asked for.
    const std::uint64_t n_chars = std::uniform_int_distribution<std::uint64_t>(stage.min_chars, stage.max_chars)(rng);
    const int hops = stage.hops[rng() % stage.hops.size()];
    const int hash_len = stage.hash_lens[rng() % stage.hash_lens.size()];
    const bool cot = std::uniform_real_distribution<double>(0, 1)(rng) < stage.cot_fraction;
    const std::uint64_t sample_seed = rng();
    if (b >= begin) batch.push_back(make_sample(n_chars, hops, hash_len, cot, stage.queries, sample_seed, model_config.max_run));
  }
  return batch;
}

BatchResult run_batch(model::HashHopTransformer& model, const std::vector<Sample>& samples,
                      const torch::Device& device) {
  std::vector<const model::LexedChunk*> chunks;
  std::size_t max_queries = 1;
  for (const auto& s : samples) {
    chunks.push_back(&s.lexed);
    max_queries = std::max(max_queries, s.positions.size());
  }
  const auto encoded = model->encode(chunks);
  const std::int64_t batch = static_cast<std::int64_t>(samples.size());
  const std::int64_t n_queries = static_cast<std::int64_t>(max_queries);
  std::vector<std::int64_t> positions(batch * n_queries, 0), targets(batch * n_queries, -100);
  for (std::int64_t b = 0; b < batch; ++b) {
    const auto& s = samples[b];
    for (std::size_t q = 0; q < s.positions.size(); ++q) {
      positions[b * n_queries + q] = s.positions[q];
      targets[b * n_queries + q] = static_cast<unsigned char>(s.text[s.positions[q] + 1]);
    }
  }
  const auto pos = torch::tensor(positions).to(device).view({batch, n_queries});
  const auto target = torch::tensor(targets).to(device).view({batch, n_queries});
  const auto logits = model->logits_at(encoded, pos, {&encoded.memory}, {pos});
  BatchResult result;
  result.loss = torch::nn::functional::cross_entropy(
      logits.reshape({-1, model::kVocab}).to(torch::kFloat32), target.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));

  const auto correct = (logits.argmax(-1) == target).to(torch::kCPU);
  const auto correct_a = correct.accessor<bool, 2>();
  std::int64_t right = 0, total = 0;
  result.exact_by_hops.assign(model::kMaxHopsFeature + 1, 0);
  result.answers_by_hops.assign(model::kMaxHopsFeature + 1, 0);
  for (std::int64_t b = 0; b < batch; ++b) {
    const auto& s = samples[b];
    std::vector<bool> exact(s.answer_hops.size(), true);
    for (std::size_t q = 0; q < s.positions.size(); ++q) {
      const bool ok = correct_a[b][q];
      right += ok;
      ++total;
      if (!ok) exact[s.answer_of[q]] = false;
    }
    for (std::size_t a = 0; a < exact.size(); ++a) {
      const int h = std::min(s.answer_hops[a], model::kMaxHopsFeature);
      ++result.answers;
      ++result.answers_by_hops[h];
      if (exact[a]) {
        ++result.answers_exact;
        ++result.exact_by_hops[h];
      }
    }
  }
  result.char_accuracy = total ? static_cast<double>(right) / total : 0.0;
  return result;
}

}  // namespace hashhop::train
