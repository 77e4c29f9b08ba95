// HashHopTransformer (see hashhop_model.h and docs/model.md). Two halves shared by the trainer, the
// evaluator and the streaming engine: encode() turns bytes into per-position keys, values, gates and
// queries; answer_logits() runs the hops for the positions being predicted.
#include "hashhop/model/hashhop_model.h"

#include <cmath>
#include <limits>

namespace hashhop::model {
namespace {

namespace F = torch::nn::functional;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kSymbols = kLetters + 1;  // a value position holds one letter or "end of hash"

torch::Tensor unit(const torch::Tensor& x) { return F::normalize(x, F::NormalizeFuncOptions().dim(-1).eps(1e-6)); }

torch::Tensor to_tensor(const std::vector<std::int64_t>& values, const torch::Device& device) {
  return torch::tensor(values, torch::dtype(torch::kInt64)).to(device);
}

}  // namespace

HashHopTransformerImpl::HashHopTransformerImpl(const ModelConfig& c) : config_(c) {
  fingerprint_table_ = register_parameter("fingerprint_table", torch::randn({c.max_run * kLetters, c.fp_dim}));
  w_q_ = register_module("w_q", torch::nn::Linear(torch::nn::LinearOptions(c.fp_dim, c.fp_dim).bias(false)));
  w_k_ = register_module("w_k", torch::nn::Linear(torch::nn::LinearOptions(c.fp_dim, c.fp_dim).bias(false)));
  hash_projection_ = register_module(
      "hash_projection", torch::nn::Linear(torch::nn::LinearOptions(c.fp_dim, c.fp_dim).bias(false)));
  log_logit_scale_ = register_parameter("log_logit_scale", torch::full({1}, std::log(c.init_logit_scale)));
  log_copy_scale_ = register_parameter("log_copy_scale", torch::zeros({1}));
  {
    torch::NoGradGuard no_grad;
    // The prior that makes matching easy to find: a query and a key made from the same hash start
    // out equal, and the next hop starts by asking for exactly the hash it retrieved.
    if (c.tied_qk_init) w_k_->weight.copy_(w_q_->weight);
    hash_projection_->weight.copy_(torch::eye(c.fp_dim));
  }
  byte_emb_ = register_module("byte_emb", torch::nn::Embedding(kVocab, c.model_dim));
  run_len_emb_ = register_module("run_len_emb", torch::nn::Embedding(c.max_run + 1, c.model_dim));
  eq_emb_ = register_module("eq_emb", torch::nn::Embedding(kMaxEqInLine + 1, c.model_dim));
  quote_emb_ = register_module("quote_emb", torch::nn::Embedding(kMaxQuotesInLine + 1, c.model_dim));
  hops_emb_ = register_module("hops_emb", torch::nn::Embedding(kMaxHopsFeature + 1, c.model_dim));
  cot_emb_ = register_module("cot_emb", torch::nn::Embedding(3, c.model_dim));
  for (auto* emb : {&byte_emb_, &run_len_emb_, &eq_emb_, &quote_emb_, &hops_emb_, &cot_emb_})
    torch::nn::init::normal_((*emb)->weight, 0.0, 0.5);
  gate_ = register_module("gate", torch::nn::Linear(c.model_dim, 1));
  hop_mix_ = register_module("hop_mix", torch::nn::Linear(c.model_dim, c.max_hops));
  ffn_in_ = register_module("ffn_in", torch::nn::Linear(c.model_dim + kSymbols, c.hidden_dim));
  ffn_out_ = register_module("ffn_out", torch::nn::Linear(c.hidden_dim, kVocab));
  {
    torch::NoGradGuard no_grad;
    gate_->bias.zero_();
  }
  std::vector<std::int64_t> letter_bytes;
  for (unsigned char c = 'a'; c <= 'z'; ++c) letter_bytes.push_back(c);
  for (unsigned char c = 'A'; c <= 'Z'; ++c) letter_bytes.push_back(c);
  letter_bytes_ = register_buffer("letter_bytes", torch::tensor(letter_bytes));
}

std::int64_t HashHopTransformerImpl::parameter_count() {
  std::int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

RunCarry HashHopTransformerImpl::empty_carry() const {
  auto zeros = torch::zeros({config_.max_run * kLetters}, fingerprint_table_.options());
  return {zeros, zeros, zeros};
}

torch::Tensor HashHopTransformerImpl::fingerprints(const torch::Tensor& letters) {
  return unit(torch::matmul(letters, fingerprint_table_));
}

torch::Tensor HashHopTransformerImpl::run_keys(const torch::Tensor& table) { return unit(w_k_(fingerprints(table))); }

torch::Tensor HashHopTransformerImpl::run_values(const torch::Tensor& table) {
  // Per position in the run, the letter or "end of hash" (one extra position is always "end").
  const std::int64_t rows = table.size(0), positions = config_.max_run + 1;
  const auto run_letters = table.view({rows, config_.max_run, kLetters});
  const auto run_length = table.sum(-1, /*keepdim=*/true);  // [R, 1]
  const auto is_end = (torch::arange(positions, table.options()).view({1, positions}) >= run_length).to(table.options());
  return torch::cat({torch::constant_pad_nd(run_letters, {0, 0, 0, 1}), is_end.unsqueeze(-1)}, -1).view({rows, -1});
}

torch::Tensor HashHopTransformerImpl::structure(const PositionFeatures& f) {
  return byte_emb_(f.byte) + run_len_emb_(f.run_len) + eq_emb_(f.eq) + quote_emb_(f.quotes) + hops_emb_(f.hops) +
         cot_emb_(f.cot);
}

torch::Tensor HashHopTransformerImpl::log_gate(const torch::Tensor& structure) {
  return F::logsigmoid(gate_(structure).squeeze(-1));
}

Encoded HashHopTransformerImpl::encode(const std::vector<const LexedChunk*>& chunks,
                                       const std::vector<RunCarry>& carry_in) {
  const auto device = fingerprint_table_.device();
  const std::int64_t batch = static_cast<std::int64_t>(chunks.size());
  const std::int64_t slots = static_cast<std::int64_t>(config_.max_run) * kLetters;
  std::int64_t length = 0, rows = 0;
  std::vector<std::int64_t> offsets;
  for (const auto* chunk : chunks) {
    length = std::max<std::int64_t>(length, static_cast<std::int64_t>(chunk->size()));
    offsets.push_back(rows);
    rows += 2 + chunk->n_runs;
  }
  const std::int64_t zero_row = rows;  // padding positions point here

  std::vector<std::int64_t> letter_cells;  // row · slots + slot of every letter
  std::vector<std::int64_t> last_rows(batch * length, zero_row), prev_rows(batch * length, zero_row);
  std::vector<std::int64_t> bytes(batch * length, 0), run_lens(batch * length, 0), eqs(batch * length, 0),
      quotes(batch * length, 0), hops(batch * length, 0), cots(batch * length, 0), valid(batch * length, 0);
  for (std::int64_t b = 0; b < batch; ++b) {
    const LexedChunk& chunk = *chunks[b];
    for (std::size_t t = 0; t < chunk.size(); ++t) {
      const std::int64_t i = b * length + static_cast<std::int64_t>(t);
      if (chunk.letter_slot[t] >= 0) letter_cells.push_back((offsets[b] + 2 + chunk.run_of[t]) * slots + chunk.letter_slot[t]);
      last_rows[i] = offsets[b] + chunk.last_run[t];
      prev_rows[i] = offsets[b] + chunk.prev_run[t];
      bytes[i] = chunk.byte[t];
      run_lens[i] = chunk.run_len[t];
      eqs[i] = chunk.eq_in_line[t];
      quotes[i] = chunk.quotes_in_line[t];
      hops[i] = chunk.hops[t];
      cots[i] = chunk.cot[t];
      valid[i] = 1;
    }
  }

  // Run table: the letters of every run, one-hot by position, plus each chunk's carried rows.
  const auto float_options = fingerprint_table_.options();
  auto table = torch::zeros({(rows + 1) * slots}, float_options);
  if (!letter_cells.empty()) {
    const auto cells = to_tensor(letter_cells, device);
    table.index_add_(0, cells, torch::ones({cells.size(0)}, float_options));
  }
  table = table.view({rows + 1, slots});
  if (!carry_in.empty()) {
    std::vector<std::int64_t> carry_rows;
    std::vector<torch::Tensor> carry_values;
    for (std::int64_t b = 0; b < batch; ++b) {
      carry_rows.insert(carry_rows.end(), {offsets[b], offsets[b] + 1});
      carry_values.insert(carry_values.end(), {carry_in[b].prev, carry_in[b].last});
      if (chunks[b]->first_run_continues) {
        carry_rows.push_back(offsets[b] + 2);
        carry_values.push_back(carry_in[b].open);
      }
    }
    table = table.index_add(0, to_tensor(carry_rows, device), torch::stack(carry_values).to(float_options));
  }

  const auto run_value_table = run_values(table);
  const auto fp = fingerprints(table);
  const auto keys = unit(w_k_(fp));
  const auto queries = unit(w_q_(fp));
  const auto last = to_tensor(last_rows, device);
  const auto prev = to_tensor(prev_rows, device);

  // Each chunk's value rows, padded to the chunk with the most runs.
  std::int64_t max_rows = 0;
  for (const auto* chunk : chunks) max_rows = std::max<std::int64_t>(max_rows, 2 + chunk->n_runs);
  // Padding positions keep row 0, a real row; their gate is -inf.
  std::vector<std::int64_t> value_table_rows(batch * max_rows, zero_row), local_last(batch * length, 0);
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t r = 0; r < 2 + chunks[b]->n_runs; ++r) value_table_rows[b * max_rows + r] = offsets[b] + r;
    for (std::int64_t t = 0; t < static_cast<std::int64_t>(chunks[b]->size()); ++t)
      local_last[b * length + t] = last_rows[b * length + t] - offsets[b];
  }

  Encoded out;
  auto shape = [&](const std::vector<std::int64_t>& v) { return to_tensor(v, device).view({batch, length}); };
  out.memory.keys = keys.index_select(0, prev).view({batch, length, -1});
  out.memory.value_rows = shape(local_last);
  out.memory.run_values = run_value_table.index_select(0, to_tensor(value_table_rows, device)).view({batch, max_rows, -1});
  out.queries = queries.index_select(0, last).view({batch, length, -1});
  out.run_len = shape(run_lens);
  out.structure = structure({shape(bytes), out.run_len, shape(eqs), shape(quotes), shape(hops), shape(cots)});
  out.memory.log_gate = log_gate(out.structure).masked_fill(shape(valid) == 0, -kInf);

  for (std::int64_t b = 0; b < batch; ++b) {
    const LexedChunk& chunk = *chunks[b];
    RunCarry carry;
    carry.prev = table[offsets[b] + chunk.end_prev_run].detach();
    carry.last = table[offsets[b] + chunk.end_last_run].detach();
    carry.open = chunk.ends_in_run ? table[offsets[b] + 2 + chunk.n_runs - 1].detach() : torch::zeros_like(carry.prev);
    out.carry_out.push_back(carry);
  }
  return out;
}

torch::Tensor HashHopTransformerImpl::attention_bias(const torch::Tensor& log_gate, const torch::Tensor& key_limit,
                                                     std::int64_t n_queries) {
  const std::int64_t n_keys = log_gate.size(1);
  const auto positions = torch::arange(n_keys, key_limit.options()).view({1, 1, n_keys});
  const auto future = positions > key_limit.unsqueeze(-1);  // [B, Q, N]
  const std::int64_t batch = std::max(log_gate.size(0), key_limit.size(0));
  return log_gate.unsqueeze(1).expand({batch, n_queries, n_keys}).masked_fill(future, -kInf);
}

std::vector<attn::RetrievalSegment> HashHopTransformerImpl::segments(const std::vector<const Memory*>& memories,
                                                                      const std::vector<torch::Tensor>& biases) const {
  std::vector<attn::RetrievalSegment> out;
  for (std::size_t i = 0; i < memories.size(); ++i)
    out.push_back({memories[i]->keys, biases[i], memories[i]->value_rows, memories[i]->run_values});
  return out;
}

void HashHopTransformerImpl::set_retrieval(const std::string& name, const attn::RetrieverOptions& options) {
  retriever_ = attn::make_retriever(name, options);
}

torch::Tensor gather_positions(const torch::Tensor& x, const torch::Tensor& positions) {
  return x.gather(1, positions.unsqueeze(-1).expand({positions.size(0), positions.size(1), x.size(2)}));
}

torch::Tensor HashHopTransformerImpl::logits_at(const Encoded& encoded, const torch::Tensor& positions,
                                                const std::vector<const Memory*>& memories,
                                                const std::vector<torch::Tensor>& key_limits) {
  return answer_logits(gather_positions(encoded.queries, positions), gather_positions(encoded.structure, positions),
                       encoded.run_len.gather(1, positions), memories, key_limits);
}

torch::Tensor HashHopTransformerImpl::first_hop_attention(const torch::Tensor& queries, const Memory& memory,
                                                          const torch::Tensor& key_limit) {
  return retriever_->weights(queries, log_logit_scale_, segments({&memory}, {attention_bias(memory.log_gate, key_limit, queries.size(1))}))[0];
}

torch::Tensor HashHopTransformerImpl::read(const torch::Tensor& q, const std::vector<const Memory*>& memories,
                                           const std::vector<torch::Tensor>& key_limits, const attn::Retriever* retriever) {
  return (retriever ? *retriever : *retriever_).read(q, log_logit_scale_, segments(memories, attention_biases(memories, key_limits, q.size(1))));
}

std::vector<torch::Tensor> HashHopTransformerImpl::attention_biases(const std::vector<const Memory*>& memories,
                                                                     const std::vector<torch::Tensor>& key_limits,
                                                                     std::int64_t n_queries) {
  std::vector<torch::Tensor> biases;
  for (std::size_t i = 0; i < memories.size(); ++i)
    biases.push_back(attention_bias(memories[i]->log_gate, key_limits[i], n_queries));
  return biases;
}

torch::Tensor HashHopTransformerImpl::answer_logits(const torch::Tensor& queries, const torch::Tensor& structure,
                                                    const torch::Tensor& run_len,
                                                    const std::vector<const Memory*>& memories,
                                                    const std::vector<torch::Tensor>& key_limits) {
  // Every hop reads the same memories: their segments (and biases) are built once.
  struct MemoryReader final : HopReader {
    const attn::Retriever& retriever;
    const torch::Tensor& log_scale;
    std::vector<attn::RetrievalSegment> segments;
    MemoryReader(const attn::Retriever& r, const torch::Tensor& s, std::vector<attn::RetrievalSegment> seg)
        : retriever(r), log_scale(s), segments(std::move(seg)) {}
    torch::Tensor read_hop(int, const torch::Tensor& q, const torch::Tensor&) override { return retriever.read(q, log_scale, segments); }
  } reader(*retriever_, log_logit_scale_, segments(memories, attention_biases(memories, key_limits, queries.size(1))));
  return answer_logits(queries, structure, run_len, reader);
}

torch::Tensor HashHopTransformerImpl::answer_logits(const torch::Tensor& queries, const torch::Tensor& structure,
                                                    const torch::Tensor& run_len, HopReader& reader) {
  const std::int64_t batch = queries.size(0), n_queries = queries.size(1), positions = config_.max_run + 1;
  std::vector<torch::Tensor> hop_outputs;
  auto q = queries;
  for (int hop = 0; hop < config_.max_hops; ++hop) {
    hop_outputs.push_back(reader.read_hop(hop, q, hop == 0 ? torch::Tensor() : hop_outputs.back()));
    if (hop + 1 == config_.max_hops) break;
    // The hash projection: fingerprint the retrieved letters and ask for them as the next query.
    const auto letters = hop_outputs.back().view({batch, n_queries, positions, kSymbols})
                             .narrow(2, 0, config_.max_run).narrow(3, 0, kLetters).reshape({batch, n_queries, -1});
    q = unit(w_q_(hash_projection_(fingerprints(letters.to(fingerprint_table_.scalar_type())))));
  }
  const auto per_hop = torch::stack(hop_outputs, 2);            // [B, Q, H, value]
  const auto mix = torch::softmax(hop_mix_(structure), -1);     // [B, Q, H]: which hop answers
  const auto retrieved = (per_hop * mix.unsqueeze(-1).to(per_hop.scalar_type())).sum(2)
                             .view({batch, n_queries, positions, kSymbols});
  reader.copied_read(retrieved.view({batch, n_queries, -1}));
  // The symbol at the next letter's position: a distribution over 52 letters and "end".
  const auto symbol = retrieved.gather(2, run_len.view({batch, n_queries, 1, 1}).expand({-1, -1, 1, kSymbols}))
                          .squeeze(2).to(torch::kFloat32);
  const auto log_symbol = torch::log(symbol.clamp_min(0) + 1e-6);
  const auto hidden = ffn_out_(F::gelu(ffn_in_(torch::cat({structure.to(torch::kFloat32), log_symbol}, -1))));
  const auto copied = torch::zeros({batch, n_queries, kVocab}, log_symbol.options())
                          .index_add(2, letter_bytes_, log_symbol.narrow(2, 0, kLetters) * log_copy_scale_.exp());
  return hidden.to(torch::kFloat32) + copied;
}

}  // namespace hashhop::model
