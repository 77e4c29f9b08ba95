// `hashhop sweep --model DIR`: a trained model (either family) as the sweep's answerer (sweep_answerers.h).
// Built into hashhop-torch only. Covered by tests/cli/issue13.sh ("sweep demo model").
#include <memory>

#include <torch/torch.h>

#include "device_option.h"
#include "model_answerer.h"
#include "run_info.h"
#include "sweep_answerers.h"

namespace hashhop::cli {

bench::Answerer make_model_answerer(const SweepModelOptions& o, nlohmann::json& meta) {
  const auto device = parse_device(o.device);
  AnswerPath path;
  static_cast<AnswerPathOptions&>(path) = o.path;
  auto model = std::make_shared<ModelAnswerer>(o.model_dir, device, path);
  meta["answerer"] = "model";
  meta["model"] = o.model_dir;
  meta["device"] = device.str();
  meta["torch_threads"] = torch::get_num_threads();
  if (device.is_cuda()) meta["gpu"] = gpu_name();
  // Reads that are not the model's own mark the results: a sweep under them is not the model's accuracy.
  if (parse_size("--prefill-window", o.path.prefill_window) > 0) meta["prefill_window"] = o.path.prefill_window;
  if (!o.path.block_window.empty()) meta["block_window"] = o.path.block_window;
  if (!o.path.block_topk.empty()) meta["block_topk"] = o.path.block_topk;
  return [model](const bench::DataRecord& record) {
    model->check("generated record", 0, record);
    return model->answer(record);
  };
}

}  // namespace hashhop::cli
