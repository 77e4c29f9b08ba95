// The small byte-model configuration the CPU tests share (test_byte_model, test_byte_engine): every block
// kind, a window and canon kernel shorter than the test texts, so split points land inside and beyond them.
#pragma once

#include <string>

#include "hashhop/model/byte_config.h"

namespace hashhop::model::testing {

inline ByteModelConfig small_byte_config(const std::string& layers) {
  ByteModelConfig c;
  c.dim = 32;
  c.heads = 4;
  c.mlp_mult = 2;
  c.layers = layers;
  c.window = 8;
  c.global_rope_fraction = 0.5;
  c.canon_kernel = 3;
  c.hops = 3;
  // The tests scale these weights up (×4, ×20) to get peaked, varied reads; the factors were chosen for
  // std-0.02 matrices, and fan_in's (0.18 at d = 32) would saturate every softmax instead.
  c.init = "gpt2";
  return c;
}

}  // namespace hashhop::model::testing
