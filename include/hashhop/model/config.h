// The lexer model's shape (HashHopTransformer, hashhop_model.h). Training settings, presets and the
// JSON of a run (config.json) are train/config.h's; tested by tests/model/test_model.cpp.
#pragma once

namespace hashhop::model {

struct ModelConfig {
  int fp_dim = 128;        // hash fingerprint, query and key width
  int model_dim = 128;     // structural embedding width
  int hidden_dim = 256;    // feed-forward width
  int max_run = 32;        // letters per run with their own position slot
  int max_hops = 4;        // explicit retrieval hops (chains longer than this need CoT)
  double init_logit_scale = 16.0;  // attention sharpness on cosine scores at initialisation
  bool tied_qk_init = true;        // start W_k = W_q: identical hashes match from step 0
};

}  // namespace hashhop::model
