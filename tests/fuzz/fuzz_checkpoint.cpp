// libFuzzer harness for the model and checkpoint loader: train::load_model (model.pt) and train::load_checkpoint.
// Build and run: `make fuzz` (FUZZ_SECONDS=600) or build-fuzz/tests/fuzz/fuzz_checkpoint CORPUS_DIR; see tests/fuzz/run.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

#include "hashhop/train/checkpoint.h"
#include "hashhop/train/config.h"

namespace t = hashhop::train;

namespace {

// The config the seed files were trained with (tests/fuzz/corpus/checkpoint: `hashhop train` of this
// config for one step): a 2-wide model, so a file is ~22 KB (model.pt) or ~64 KB (checkpoint.pt).
constexpr const char* kConfig =
    R"({"model":{"fp_dim":2,"hidden_dim":2,"init_logit_scale":16.0,"max_hops":1,"max_run":4,"model_dim":2,"tied_qk_init":true},)"
    R"("name":"fuzz-micro","train":{"batch":1,"bf16":true,"checkpoint_every":100,"curriculum":[{"cot_fraction":0.0,)"
    R"("from_step":0,"hash_lens":[2],"hops":[1],"max_chars":60,"min_chars":40,"queries":1}],"grad_clip":1.0,"log_every":20,)"
    R"("lr":0.01,"min_lr_fraction":0.1,"seed":1,"steps":1,"warmup":20,"weight_decay":0.01}})";

std::string g_dir;

void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) std::abort();
}

// A rejection is documented when it is std::runtime_error or std::invalid_argument (io::InputError is
// one) and names the file: anything else (c10::Error escaping the loader, std::bad_alloc, a crash or a
// sanitizer report in project code) is a finding.
void expect_named(const std::exception& e, const char* file) {
  if (std::string(e.what()).find(file) == std::string::npos) {
    std::fprintf(stderr, "rejection does not name %s: %s\n", file, e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  char pattern[] = "/dev/shm/hashhop-fuzz-checkpoint-XXXXXX";
  char* dir = ::mkdtemp(pattern);
  if (dir == nullptr) {
    char fallback[] = "/tmp/hashhop-fuzz-checkpoint-XXXXXX";
    dir = ::mkdtemp(fallback);
    if (dir == nullptr) std::abort();
    g_dir = dir;
  } else {
    g_dir = dir;
  }
  const std::string config = kConfig;
  write_file(g_dir + "/config.json", reinterpret_cast<const std::uint8_t*>(config.data()), config.size());
  std::atexit([] { std::system(("rm -rf '" + g_dir + "'").c_str()); });
  return 0;
}

// Input: one byte choosing the file ('C': checkpoint.pt for load_checkpoint, else model.pt for
// load_model), then the file's bytes.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool checkpoint = data[0] == 'C';
  const char* name = checkpoint ? "checkpoint.pt" : "model.pt";
  const std::string path = g_dir + "/" + name;
  write_file(path, data + 1, size - 1);
  try {
    if (checkpoint) {
      const t::RunConfig config = t::load_run_config(g_dir + "/config.json");
      hashhop::model::HashHopTransformer model(config.model);
      torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(config.train.lr));
      const std::int64_t step = t::load_checkpoint(g_dir, *model, optimizer, torch::kCPU);
      if (step < 0) std::abort();  // documented: a negative step is refused
    } else {
      const t::LoadedModel loaded = t::load_model(g_dir, torch::kCPU);
      if (!loaded.model) std::abort();
    }
  } catch (const std::invalid_argument& e) {
    expect_named(e, name);
  } catch (const std::runtime_error& e) {
    expect_named(e, name);
  }
  ::unlink(path.c_str());
  return 0;
}
