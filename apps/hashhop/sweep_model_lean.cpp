// The lean `hashhop`'s stand-in for sweep_model.cpp: it execs hashhop-torch whenever sweep is given
// --model (torch_exec.h), so this is never called; it only lets sweep_command.cpp link without LibTorch.
#include <stdexcept>

#include "sweep_answerers.h"

namespace hashhop::cli {

bench::Answerer make_model_answerer(const SweepModelOptions&, nlohmann::json&) {
  throw std::logic_error("internal: sweep --model runs in hashhop-torch");
}

}  // namespace hashhop::cli
