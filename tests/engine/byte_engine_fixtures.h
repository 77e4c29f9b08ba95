// What the byte engine's tests share (test_byte_engine, test_byte_context_parallel): a small HashHop prompt
// from the real generator and a small byte model with peaked random weights. Header only.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hashhop/bench/generator.h"
#include "hashhop/model/byte_model.h"
#include "../model/small_byte_config.h"

namespace hashhop::engine::testing {

struct Prompt {
  std::string text;
  std::vector<std::string> keys;
};

inline Prompt problem(std::uint64_t chars, std::uint64_t seed, int hops = 1) {
  bench::GenConfig gen;
  gen.n_chars = chars;
  gen.hops = hops;
  gen.hash_len = 4;
  gen.num_queries = 3;
  gen.seed = seed;
  const bench::HashHopProblem p(gen);
  Prompt out{p.prompt(), {}};
  for (std::uint64_t c = 0; c < gen.num_queries; ++c) out.keys.push_back(p.hash(c, 0));
  return out;
}

// `spec`: the layer letters, then "+qknorm" (global_qk_norm) and/or "+hard" (gates centred at σ = 1/2 and
// made hard there, so about half the keys drop) or "+l0" (hard concrete gates centred at logit 0: the keys
// with a logit below -ln 11 drop). Seeded through torch's global generator: build models
// on one thread.
inline model::ByteModel random_model(const std::string& spec, std::uint64_t seed) {
  torch::manual_seed(seed);
  auto config = model::testing::small_byte_config(spec.substr(0, spec.find('+')));
  config.global_rope_max_wavelength = 20.0;  // p-RoPE as the trained models have it
  config.hops = 2;
  config.global_qk_norm = spec.find("+qknorm") != std::string::npos;
  if (spec.find("+l0") != std::string::npos) config.gate = "hard_concrete";
  model::ByteModel net(config);
  torch::NoGradGuard no_grad;
  // Peaked, varied weights, so that gates spread over (0, 1) and greedy answers are not all alike.
  for (auto& p : net->parameters()) p.mul_(4.0);
  const bool hard = spec.find("+hard") != std::string::npos;
  if (hard || config.gate == "hard_concrete") {
    for (auto& item : net->named_parameters())
      if (item.key().find("gate.bias") != std::string::npos) item.value().zero_();
    if (hard) net->set_gate_threshold(0.5);
  }
  net->eval();
  return net;
}

}  // namespace hashhop::engine::testing
