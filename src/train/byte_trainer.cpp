// Training loop and evaluation of the byte-level model (see byte_trainer.h). Data of step s comes from
// (seed, s) through train::make_batch, and the optimiser state is checkpointed, so resume is exact.
#include "hashhop/train/byte_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "hashhop/core/mix64.h"
#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/io/progress.h"
#include "hashhop/model/autocast.h"
#include "hashhop/train/checkpoint.h"
#include "hashhop/train/data_parallel.h"
#include "hashhop/train/run_files.h"

namespace hashhop::train {
namespace {

// Weight decay on matrices only; embeddings, norms, biases, convs and gates keep their size.
torch::optim::AdamW make_optimizer(model::ByteModel& net, const train::TrainConfig& c) {
  std::vector<torch::Tensor> decayed, plain;
  for (const auto& item : net->named_parameters()) {
    const bool matrix = item.value().dim() == 2 && item.key().find("embed") == std::string::npos &&
                        item.key().find("gate") == std::string::npos;
    (matrix ? decayed : plain).push_back(item.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(c.lr).betas({0.9, 0.95}).weight_decay(c.weight_decay)));
  groups.emplace_back(plain, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(c.lr).betas({0.9, 0.95}).weight_decay(0.0)));
  return torch::optim::AdamW(std::move(groups), torch::optim::AdamWOptions(c.lr));
}

// What the optimiser minimises: the answer bytes' cross-entropy, plus the gate sparsity penalty (the mean σ
// of the hash gates, or their expected share of nonzero z for a hard concrete gate; ByteModelConfig::
// gate_sparsity). The logged loss stays the cross-entropy alone.
torch::Tensor objective(const ByteScores& scores, const model::ByteModelConfig& model) {
  auto total = scores.loss;
  if (model.gate_sparsity > 0 && scores.mean_gate.defined()) total = total + model.gate_sparsity * scores.mean_gate;
  if (model.hop_supervision > 0 && scores.hop_loss.defined()) total = total + model.hop_supervision * scores.hop_loss;
  if (model.match_contrast > 0 && scores.match_loss.defined()) total = total + model.match_contrast * scores.match_loss;
  return total;
}

// hop_supervision's term: each hop block's hop h at each supervised row, -log of its weight (averaged over
// heads) on the chain's h-th line, or its value (ByteModelConfig::hop_supervision, hop_supervision_target), from log weights throughout (a
// log-sum-exp over the line, then over heads), so no clamp cuts the gradient of a tiny share.
// `supervised[b]` are sample b's rows (chain_lines).
void add_hop_loss(ByteScores& scores, const model::ByteModel& net, const std::vector<std::vector<ChainLines>>& supervised,
                  std::int64_t length) {
  const auto batch = static_cast<std::int64_t>(supervised.size());
  const auto& target_of = net->config().hop_supervision_target;  // "line", "value" or "first_letter"
  std::int64_t rows = 0;
  for (const auto& s : supervised) rows = std::max<std::int64_t>(rows, static_cast<std::int64_t>(s.size()));
  std::vector<torch::Tensor> terms;
  for (const auto& block : net->hop_weights()) {
    for (std::size_t hop = 0; hop < block.size(); ++hop) {
      // [B, R, T] mask of the target line per probed row; rows without a line for this hop stay out.
      auto target = torch::zeros({batch, rows, length}, torch::kBool);
      auto has = torch::zeros({batch, rows}, torch::kBool);
      for (std::int64_t b = 0; b < batch; ++b)
        for (std::size_t r = 0; r < supervised[b].size(); ++r) {
          const auto& lines = target_of == "line" ? supervised[b][r].lines : supervised[b][r].values;
          if (hop >= lines.size()) continue;
          const auto span = target_of == "first_letter" ? std::pair{lines[hop].first, lines[hop].first + 1} : lines[hop];
          target[b][static_cast<std::int64_t>(r)].narrow(0, span.first, span.second - span.first).fill_(true);
          has[b][static_cast<std::int64_t>(r)] = true;
        }
      const auto& log_weights = block[hop];  // [B, H, R, T]
      const auto heads = static_cast<double>(log_weights.size(1));
      const auto on_line = log_weights.masked_fill(target.to(log_weights.device()).unsqueeze(1).logical_not(),
                                                   -std::numeric_limits<float>::infinity());
      const auto log_share = torch::logsumexp(torch::logsumexp(on_line, -1), 1) - std::log(heads);  // [B, R]
      const auto kept = log_share.masked_select(has.to(log_share.device()));
      if (kept.numel() == 0) continue;
      terms.push_back(-kept);
      scores.hop_weight_sum += kept.exp().sum().item<double>();
      scores.hop_terms += kept.numel();
    }
  }
  if (!terms.empty()) scores.hop_loss = torch::cat(terms).mean();
}

// match_contrast's probe: for every completion line (1-hop, multi-hop and CoT answers alike) its opening quote,
// the span of the query key's prompt line and the key. The probed rows are the line's " = ", 1-3 bytes before
// the quote (kMatchOffsets), so the line's rows are 3·l, 3·l + 1, 3·l + 2.
struct MatchLine {
  std::int64_t quote = 0;
  std::pair<std::int64_t, std::int64_t> line;
  std::string key;
};
constexpr std::int64_t kMatchOffsets[] = {1, 2, 3};
constexpr std::int64_t kMatchRowsPerLine = std::size(kMatchOffsets);

std::vector<MatchLine> match_lines(const Sample& sample) {
  std::vector<MatchLine> out;
  for (const auto& chain : chain_lines(sample, 1, 1, /*with_cot=*/true)) {
    if (chain.lines.empty()) continue;
    const auto begin = static_cast<std::size_t>(chain.lines[0].first);
    out.push_back({chain.row, chain.lines[0], sample.text.substr(begin, sample.text.find(" = ", begin) - begin)});
  }
  return out;
}

// match_contrast's term: at each probed row, the contrast block's softmax over the row's own visible keys
// and every key of the batch's other prompts (their padding and any line holding the row's key string left
// out: a 4-letter key recurs inside other prompts' hashes; each counted match_contrast_upweight times), -log
// of its weight on the key's line, averaged over heads as add_hop_loss does (log-sum-exp over the line, then
// over heads). All in float32.
void add_match_loss(ByteScores& scores, const model::ByteModel& net, const std::vector<Sample>& samples,
                    const std::vector<std::vector<MatchLine>>& probed, std::int64_t length) {
  const auto [queries, keys] = net->match_vectors(static_cast<std::size_t>(net->config().match_contrast_block));
  if (!queries.defined() || !keys.defined()) return;
  const auto batch = static_cast<std::int64_t>(samples.size()), rows = queries.size(2), heads = queries.size(1);
  // [B·R, B·T] masks on the CPU: which keys each row's softmax holds, and which of them are its line.
  auto allowed = torch::zeros({batch * rows, batch * length}, torch::kBool);
  auto target = torch::zeros({batch * rows, batch * length}, torch::kBool);
  auto has = torch::zeros({batch * rows}, torch::kBool);
  auto others = torch::zeros({batch * rows, batch * length}, torch::kBool);  // allowed keys of other prompts
  for (std::int64_t b = 0; b < batch; ++b)
    for (auto pad = static_cast<std::int64_t>(probed[b].size()) * kMatchRowsPerLine; pad < rows; ++pad) {
      // A padding row (fewer completion lines than the batch's most) holds one key that is its "line", so its
      // share is finite (log 1), not NaN; `has` leaves it out of the loss either way.
      allowed[b * rows + pad][b * length] = true;
      target[b * rows + pad][b * length] = true;
    }
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::size_t l = 0; l < probed[b].size(); ++l) {
      const auto& [quote, line, key] = probed[b][l];
      // The other prompts' keys this line's rows read, found once for its three rows.
      auto pool = torch::zeros({batch * length}, torch::kBool);
      for (std::int64_t o = 0; o < batch; ++o) {
        if (o == b) continue;
        const auto& text = samples[o].text;
        pool.narrow(0, o * length, static_cast<std::int64_t>(text.size())).fill_(true);
        for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
          const auto line_start = text.rfind('\n', at);
          const auto start = line_start == std::string::npos ? 0 : line_start + 1;
          const auto newline = text.find('\n', at);
          const auto end = newline == std::string::npos ? text.size() : newline + 1;  // with its newline
          pool.narrow(0, o * length + static_cast<std::int64_t>(start), static_cast<std::int64_t>(end - start)).fill_(false);
        }
      }
      for (std::int64_t j = 0; j < kMatchRowsPerLine; ++j) {
        const auto i = b * rows + static_cast<std::int64_t>(l) * kMatchRowsPerLine + j;
        has[i] = true;
        others[i].copy_(pool);
        allowed[i].copy_(pool);
        allowed[i].narrow(0, b * length, quote - kMatchOffsets[j] + 1).fill_(true);  // its own prompt: causal, as attend() reads
        // The line with its newline, as margin-probe counts it.
        target[i].narrow(0, b * length + line.first, line.second - line.first + 1).fill_(true);
      }
    }
  model::NoAutocast float32;  // bf16 matmuls would blur the scores this loss compares
  const auto device = queries.device();
  const auto q = queries.permute({1, 0, 2, 3}).reshape({heads, batch * rows, -1});  // [H, B·R, P]
  const auto k = keys.permute({1, 0, 2, 3}).reshape({heads, batch * length, -1});   // [H, B·T, P]
  const auto scores_all = torch::matmul(q, k.transpose(-1, -2)) * net->attention_scale();  // [H, B·R, B·T]
  constexpr float minus_inf = -std::numeric_limits<float>::infinity();
  auto pooled = scores_all.masked_fill(allowed.to(device).logical_not(), minus_inf);
  if (const double upweight = net->config().match_contrast_upweight; upweight != 1.0)
    pooled = pooled + others.to(device).to(torch::kFloat32) * static_cast<float>(std::log(upweight));
  const auto all = torch::logsumexp(pooled, -1);
  const auto on_line = torch::logsumexp(scores_all.masked_fill(target.to(device).logical_not(), minus_inf), -1);
  const auto log_share = torch::logsumexp(on_line - all, 0) - std::log(static_cast<double>(heads));  // [B·R]
  const auto kept = log_share.masked_select(has.to(device));
  if (kept.numel() == 0) return;
  scores.match_loss = -kept.mean();
  scores.match_weight_sum += kept.detach().exp().sum().item<double>();
  scores.match_terms += kept.numel();
}

nlohmann::json scores_json(const ByteScores& s) {
  const nlohmann::json hop_weight = s.hop_terms ? nlohmann::json(s.hop_weight_sum / static_cast<double>(s.hop_terms)) : nlohmann::json();
  nlohmann::json by = nlohmann::json::object();
  for (const auto& [key, value] : s.exact_by_hops_cot)
    by[std::to_string(key.first) + (key.second ? "cot" : "")] = value.second ? static_cast<double>(value.first) / value.second : 0.0;
  return {{"byte_acc", s.byte_accuracy()}, {"first_byte", s.first_byte_rate()}, {"exact", s.exact_rate()},
          {"answers", s.answers}, {"exact_by_hops", by}, {"kept_share", s.gated ? nlohmann::json(s.kept_share) : nlohmann::json()},
          {"hop_line_weight", hop_weight},
          {"match_weight", s.match_terms ? nlohmann::json(s.match_weight_sum / static_cast<double>(s.match_terms)) : nlohmann::json()}};
}

}  // namespace

void ByteScores::add(const ByteScores& o) {
  bytes += o.bytes;
  bytes_right += o.bytes_right;
  const double total = static_cast<double>(answers + o.answers);
  if (total > 0) kept_share = (kept_share * answers + o.kept_share * o.answers) / total;
  gated |= o.gated;
  answers += o.answers;
  answers_exact += o.answers_exact;
  first_right += o.first_right;
  hop_weight_sum += o.hop_weight_sum;
  hop_terms += o.hop_terms;
  match_weight_sum += o.match_weight_sum;
  match_terms += o.match_terms;
  for (const auto& [key, value] : o.exact_by_hops_cot) {
    exact_by_hops_cot[key].first += value.first;
    exact_by_hops_cot[key].second += value.second;
  }
}

ByteScores score_byte_batch(model::ByteModel& net, const std::vector<Sample>& samples, const torch::Device& device) {
  const auto batch = static_cast<std::int64_t>(samples.size());
  std::int64_t length = 1;
  for (const auto& s : samples) length = std::max<std::int64_t>(length, static_cast<std::int64_t>(s.text.size()));
  // Padding after the text is never read: attention is causal and only answer positions are scored.
  std::vector<std::int64_t> bytes(static_cast<std::size_t>(batch * length), 0);
  std::vector<std::int64_t> rows, targets;
  for (std::int64_t b = 0; b < batch; ++b) {
    const auto& text = samples[b].text;
    for (std::size_t i = 0; i < text.size(); ++i) bytes[b * length + i] = static_cast<unsigned char>(text[i]);
    for (const auto p : samples[b].positions) {
      rows.push_back(b * length + p);
      targets.push_back(static_cast<unsigned char>(text[p + 1]));
    }
  }
  const auto input = torch::tensor(bytes).view({batch, length}).to(device);
  const auto match_block = static_cast<std::size_t>(net->config().match_contrast_block);
  struct ProbeOff {  // the probes end with this call, also when it throws (set before, or while, setting them)
    model::ByteModel& net;
    bool hops, match;
    std::size_t match_block;
    ~ProbeOff() {
      if (hops) net->set_hop_probe(torch::Tensor());
      // A validated config names a G block; a destructor must not throw if a hand-built one does not.
      if (match && match_block < net->config().layers.size() && net->config().layers[match_block] == 'G')
        net->set_match_probe(match_block, torch::Tensor());
    }
  } probe_off{net, net->config().hop_supervision > 0, net->config().match_contrast > 0, match_block};
  std::vector<std::vector<ChainLines>> supervised;
  if (net->config().hop_supervision > 0) {
    // Probe the first row of every 2+-hop answer without CoT; [B, R] rows, -1 pads.
    const int max_hops = net->config().hops;
    std::int64_t most = 0;
    for (const auto& s : samples) {
      supervised.push_back(chain_lines(s, max_hops));
      most = std::max<std::int64_t>(most, static_cast<std::int64_t>(supervised.back().size()));
    }
    auto rows = torch::full({batch, std::max<std::int64_t>(most, 1)}, -1, torch::kInt64);
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::size_t r = 0; r < supervised[b].size(); ++r) rows[b][static_cast<std::int64_t>(r)] = supervised[b][r].row;
    net->set_hop_probe(most > 0 ? rows : torch::Tensor());
  }
  std::vector<std::vector<MatchLine>> matched;
  if (net->config().match_contrast > 0) {
    std::int64_t most = 0;  // probed rows of the sample with the most
    for (const auto& s : samples) {
      matched.push_back(match_lines(s));
      most = std::max<std::int64_t>(most, static_cast<std::int64_t>(matched.back().size()) * kMatchRowsPerLine);
    }
    auto rows = torch::full({batch, std::max<std::int64_t>(most, 1)}, -1, torch::kInt64);
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::size_t l = 0; l < matched[b].size(); ++l)
        for (std::int64_t j = 0; j < kMatchRowsPerLine; ++j)
          rows[b][static_cast<std::int64_t>(l) * kMatchRowsPerLine + j] = matched[b][l].quote - kMatchOffsets[j];
    net->set_match_probe(match_block, most > 0 ? rows : torch::Tensor());
  }
  const auto hidden = net->hidden(input).reshape({batch * length, -1});
  const auto row_index = torch::tensor(rows).to(device);
  const auto target = torch::tensor(targets).to(device);
  const auto logits = net->logits(hidden.index_select(0, row_index)).to(torch::kFloat32);
  ByteScores scores;
  scores.loss = torch::nn::functional::cross_entropy(logits, target);
  const auto right = (logits.argmax(-1) == target).to(torch::kCPU);
  const auto* ok = right.data_ptr<bool>();
  std::size_t q = 0;
  for (const auto& s : samples) {
    std::vector<bool> exact(s.answer_hops.size(), true), first_ok(s.answer_hops.size(), false);
    int previous = -1;
    for (std::size_t i = 0; i < s.positions.size(); ++i, ++q) {
      const auto a = static_cast<std::size_t>(s.answer_of[i]);
      scores.bytes_right += ok[q];
      ++scores.bytes;
      if (!ok[q]) exact[a] = false;
      if (s.answer_of[i] != previous) first_ok[a] = ok[q];  // the first position of an answer
      previous = s.answer_of[i];
    }
    for (std::size_t a = 0; a < exact.size(); ++a) {
      ++scores.answers;
      scores.answers_exact += exact[a];
      scores.first_right += first_ok[a];
      auto& cell = scores.exact_by_hops_cot[{s.answer_hops[a], s.cot}];
      cell.first += exact[a];
      ++cell.second;
    }
  }
  std::vector<std::int64_t> lengths;
  for (const auto& sample : samples) lengths.push_back(static_cast<std::int64_t>(sample.text.size()));
  const auto valid = torch::arange(length).view({1, length}) < torch::tensor(lengths).view({batch, 1});
  const auto shares = net->kept_share(valid);
  if (!shares.empty()) {
    scores.gated = true;
    double sum = 0;
    for (double v : shares) sum += v;
    scores.kept_share = sum / static_cast<double>(shares.size());
    scores.mean_gate = net->mean_gate(valid);
  }
  if (!supervised.empty()) add_hop_loss(scores, net, supervised, length);
  if (!matched.empty()) add_match_loss(scores, net, samples, matched, length);
  return scores;
}

std::vector<ChainLines> chain_lines(const Sample& sample, int max_hops, int min_hops, bool with_cot) {
  std::vector<ChainLines> out;
  const std::string& text = sample.text;
  const auto completion = text.find("\nCOMPLETION:");
  if ((sample.cot && !with_cot) || sample.hops < std::max(1, min_hops) || max_hops < 1 || completion == std::string::npos) return out;
  // Every prompt line "K = V" (V quoted on the last line of a chain) by its key.
  std::unordered_map<std::string_view, std::pair<std::int64_t, std::int64_t>> line_of;
  for (std::size_t begin = 0; begin < completion;) {
    const auto end = std::min(text.find('\n', begin), completion);
    const std::string_view line(text.data() + begin, end - begin);
    if (const auto eq = line.find(" = "); eq != std::string_view::npos)
      line_of.emplace(line.substr(0, eq), std::pair<std::int64_t, std::int64_t>(begin, end));
    begin = end + 1;
  }
  int previous = -1;
  for (std::size_t i = 0; i < sample.positions.size(); ++i) {
    if (sample.answer_of[i] == previous) continue;
    previous = sample.answer_of[i];
    // The answer's first row is its opening quote, after "K = "; K starts the completion line.
    const auto quote = static_cast<std::size_t>(sample.positions[i]);
    const auto line_start = text.rfind('\n', quote) + 1;
    std::string_view key(text.data() + line_start, quote - 3 - line_start);
    ChainLines chain;
    chain.row = sample.positions[i];
    for (int h = 0; h < std::min(sample.hops, max_hops); ++h) {
      const auto found = line_of.find(key);
      if (found == line_of.end()) break;
      chain.lines.push_back(found->second);
      // V's letters (a quoted V, the chain's last, without its quotes) are the next line's key.
      const auto value_begin = found->second.first + static_cast<std::int64_t>(key.size()) + 3, value_end = found->second.second;
      const bool quoted = value_begin < value_end && text[static_cast<std::size_t>(value_begin)] == '\'';
      const auto letters_begin = value_begin + (quoted ? 1 : 0);
      const auto letters_end = quoted ? std::max(letters_begin, value_end - 1) : value_end;
      chain.values.emplace_back(letters_begin, letters_end);
      key = std::string_view(text.data() + letters_begin, static_cast<std::size_t>(letters_end - letters_begin));
    }
    out.push_back(std::move(chain));
  }
  return out;
}

void save_byte_model(const std::string& dir, const train::ByteRunConfig& config, model::ByteModel& net) {
  io::make_directories(dir);
  // Weights first, config second, as train::save_model: config.json is what marks DIR as a model.
  train::save_weights(*net, dir + "/model.pt");
  io::write_file_atomically(dir + "/config.json", train::to_json(config));
}

LoadedByteModel load_byte_model(const std::string& dir, const torch::Device& device) {
  const std::string config_path = dir + "/config.json", weights_path = dir + "/model.pt";
  if (!io::file_exists(config_path)) throw std::invalid_argument(config_path + ": no such file (is " + dir + " a model directory?)");
  if (!io::file_exists(weights_path)) throw std::invalid_argument(weights_path + ": no such file");
  LoadedByteModel loaded;
  loaded.config = train::load_byte_run_config(config_path);
  loaded.net = model::ByteModel(loaded.config.model);
  loaded.net->to(device);
  train::load_weights(*loaded.net, weights_path, config_path, device);
  loaded.net->eval();
  return loaded;
}

void refuse_data_parallel(const train::ByteRunConfig& config, const std::string& where) {
  if (config.model.gate_sparsity > 0)
    throw std::invalid_argument(where + ": field 'gate_sparsity': not supported with --nproc (data-parallel steps equal one process's only without it)");
  if (config.model.hop_supervision > 0)
    throw std::invalid_argument(where + ": field 'hop_supervision': not supported with --nproc (its term is a mean over the whole batch)");
  if (config.model.match_contrast > 0)
    throw std::invalid_argument(where + ": field 'match_contrast': not supported with --nproc (its negatives are the whole batch's keys)");
  if (config.model.gate == "hard_concrete")
    throw std::invalid_argument(where + ": field 'gate': \"hard_concrete\" is not supported with --nproc (each rank would draw other gate noise)");
}

std::int64_t init_byte_weights(model::ByteModel& net, model::ByteModel& source) {
  torch::NoGradGuard no_grad;
  // "block3.attention.out.weight" -> the source's letter for block 3 (only a global block maps onto hops).
  const auto source_kind = [&](const std::string& name) {
    const auto digits = name.substr(5, name.find('.') - 5);
    const auto index = static_cast<std::size_t>(std::stoul(digits));
    return index < source->config().layers.size() ? source->config().layers[index] : '?';
  };
  auto theirs = source->named_parameters();
  std::int64_t copied = 0;
  for (auto& item : net->named_parameters()) {
    const auto* t = theirs.find(item.key());
    if (!t) continue;
    auto& mine = item.value();
    if (t->sizes() == mine.sizes()) {
      mine.copy_(*t);
      ++copied;
    } else if (mine.dim() == 2 && t->dim() == 2 && mine.size(0) == t->size(0) && mine.size(1) > t->size(1) &&
               mine.size(1) % t->size(1) == 0 && item.key().ends_with("attention.out.weight") &&
               source_kind(item.key()) == 'G') {
      // A global block turned into a hop block: its output projection reads [hop 1, hop 2, ...]. Hop 1
      // asks the global block's own query, so the old projection on hop 1's read and zeros on the later
      // hops' reads give the global block's output exactly; training then learns to use the later hops.
      mine.zero_().narrow(1, 0, t->size(1)).copy_(*t);
      ++copied;
    }
  }
  return copied;
}

TrainSummary train_bytes(const train::ByteRunConfig& config, const TrainOptions& options, const std::string& init_from) {
  const auto& tc = config.train;
  FreshRunCleanup cleanup(options.out_dir);
  const std::string config_path = options.out_dir + "/config.json";
  const bool resuming = io::file_exists(options.out_dir + "/checkpoint.pt");
  const bool writer = options.group == nullptr || options.group->rank() == 0;  // only rank 0 writes OUT
  cleanup.active = !resuming && writer;
  if (resuming && io::file_exists(config_path) &&
      train::to_json(train::load_byte_run_config(config_path)) != train::to_json(config))
    throw std::invalid_argument(options.out_dir + ": holds a checkpoint of a different config (" + config_path +
                                "); use another --out or the same config");
  // The penalty is a mean over the whole batch's positions; ranks would each take their share's mean,
  // and the data-parallel step would no longer equal the one-process step (the --nproc guarantee).
  if (options.group) refuse_data_parallel(config, "train config '" + config.name + "'");
  torch::manual_seed(tc.seed);
  model::ByteModel net(config.model);
  if (!init_from.empty() && !resuming) {
    // Fine-tuning: every tensor of the same name and shape is copied; new ones keep their init.
    auto source = load_byte_model(init_from, torch::kCPU);
    const auto copied = init_byte_weights(net, source.net);
    if (writer) std::printf("init from %s: %lld of %zu tensors copied\n", init_from.c_str(), static_cast<long long>(copied),
                net->named_parameters().size());
  }
  net->to(options.device);
  auto optimizer = make_optimizer(net, tc);
  TrainSummary summary;
  summary.start_step = train::load_checkpoint(options.out_dir, *net, optimizer, options.device);
  std::ofstream metrics;
  if (writer) metrics = open_run_files(options.out_dir, train::to_json(config), summary.start_step);
  const auto shard = options.group ? shard_of_batch(tc.batch, options.group->rank(), options.group->size())
                                   : std::pair<int, int>{0, tc.batch};

  std::int64_t end = tc.steps;
  if (options.stop_after >= 0) end = std::min(end, summary.start_step + options.stop_after);
  const bool bf16 = tc.bf16 && options.device.is_cuda();
  io::ProgressBar bar("train", static_cast<std::uint64_t>(tc.steps), "steps");
  const auto start = std::chrono::steady_clock::now();
  ByteScores window;
  double loss_sum = 0;
  std::int64_t window_steps = 0;
  net->train();
  for (std::int64_t step = summary.start_step; step < end; ++step) {
    const double lr = learning_rate(tc, step);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    const auto samples = make_batch(tc, model::ModelConfig{}, step, shard.first, shard.second);
    // Randomness inside a step (the hard concrete gate's noise) comes from (seed, step) alone: resume is exact.
    torch::manual_seed(core::mix64(tc.seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(step) + 1));
    ByteScores scores;
    {
      AutocastScope autocast(bf16);
      scores = score_byte_batch(net, samples, options.device);
    }
    optimizer.zero_grad();
    double loss = 0;
    bool out_of_time = false;
    if (options.group) {
      // Loss terms of this rank's share (answer bytes); summed over ranks they are the 1-process batch's.
      // Byte, answer and first-byte counts are summed too; exact-by-hops and kept share stay rank 0's.
      const auto terms = static_cast<double>(scores.bytes);
      (objective(scores, config.model) * terms).backward();
      const double local_loss = scores.loss.item<double>();
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const auto total = all_reduce_step(*options.group, net->parameters(),
                                         {terms, local_loss * terms, static_cast<double>(scores.bytes_right),
                                          static_cast<double>(scores.answers), static_cast<double>(scores.answers_exact),
                                          static_cast<double>(scores.first_right),
                                          options.time_limit_s > 0 && elapsed > options.time_limit_s ? 1.0 : 0.0});
      loss = total[1] / total[0];
      scores.bytes = std::llround(total[0]);
      scores.bytes_right = std::llround(total[2]);
      scores.answers = std::llround(total[3]);
      scores.answers_exact = std::llround(total[4]);
      scores.first_right = std::llround(total[5]);
      out_of_time = total[6] > 0;  // every rank stops at the same step, or the others would wait for it
    } else {
      objective(scores, config.model).backward();
      loss = scores.loss.item<double>();
    }
    torch::nn::utils::clip_grad_norm_(net->parameters(), tc.grad_clip);
    optimizer.step();
    if (!std::isfinite(loss)) throw std::runtime_error("step " + std::to_string(step) + ": loss is not finite");
    loss_sum += loss;
    ++window_steps;
    window.add(scores);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!options.group) out_of_time = options.time_limit_s > 0 && elapsed > options.time_limit_s;
    if (out_of_time) end = step + 1;
    const bool last = step + 1 == end;
    if (writer && ((step + 1) % tc.log_every == 0 || last)) {
      auto line = scores_json(window);
      line["step"] = step;
      line["loss"] = loss_sum / window_steps;
      line["lr"] = lr;
      line["seconds"] = elapsed;
      line["stage_from"] = train::stage_at(tc, step).from_step;
      metrics << line.dump() << "\n" << std::flush;
      char status[160];
      std::snprintf(status, sizeof status, "loss %.4f  byte %.3f  first %.3f  exact %.3f  kept %s", loss_sum / window_steps,
                    window.byte_accuracy(), window.first_byte_rate(), window.exact_rate(),
                    window.gated ? std::to_string(window.kept_share).substr(0, 4).c_str() : "-");
      if (!options.quiet && !bar.enabled())
        std::printf("step %6lld  %s  lr %.2e  %.0fs\n", static_cast<long long>(step + 1), status, lr, elapsed);
      bar.update(static_cast<std::uint64_t>(step + 1), status);
      summary.last_loss = loss_sum / window_steps;
      summary.last_exact = window.exact_rate();
      window = ByteScores{};
      loss_sum = 0;
      window_steps = 0;
    }
    if (options.group && ((step + 1) % tc.checkpoint_every == 0 || last))
      check_replicas_equal(*options.group, net->parameters());
    if (writer && ((step + 1) % tc.checkpoint_every == 0 || last)) {
      train::save_checkpoint(options.out_dir, *net, optimizer, step + 1);
      save_byte_model(options.out_dir, config, net);
    }
  }
  bar.finish();
  summary.end_step = std::max(end, summary.start_step);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace hashhop::train
