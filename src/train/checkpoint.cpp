// Atomic model and checkpoint files with checksums and shape checks (see checkpoint.h).
// Tested by tests/model/test_model.cpp (Checkpoint.*) and tests/cli/test_cli.sh.
#include "hashhop/train/checkpoint.h"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <caffe2/serialize/versions.h>

#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/train/byte_config.h"

namespace hashhop::train {
namespace {

// Keys next to the weights. Files written before checksums existed (models/demo) lack them and load
// without the check; every file written now carries one.
constexpr const char* kChecksumKey = "hashhop_checksum";
constexpr const char* kThreadsKey = "hashhop_threads";

std::string first_line(const char* what) {
  std::string text = what;
  const auto newline = text.find('\n');
  return newline == std::string::npos ? text : text.substr(0, newline);
}

struct Checksum {
  std::uint64_t value = 0xcbf29ce484222325ULL;
  void add_bytes(const void* data, std::size_t size) {
    // 64-bit FNV-1a over 8-byte words (plus the tail): fast enough for a few MB per save and
    // sensitive to any flipped bit; it guards against corruption, not against an adversary.
    const auto* bytes = static_cast<const unsigned char*>(data);
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      std::uint64_t word;
      std::memcpy(&word, bytes + i, 8);
      value = (value ^ word) * 0x100000001b3ULL;
      value ^= value >> 29;
    }
    for (; i < size; ++i) value = (value ^ bytes[i]) * 0x100000001b3ULL;
  }
  void add(const std::string& name, const torch::Tensor& tensor) {
    add_bytes(name.data(), name.size());
    if (!tensor.defined()) return;
    const auto cpu = tensor.detach().to(torch::kCPU).contiguous();
    for (const auto d : cpu.sizes()) add_bytes(&d, sizeof d);
    add_bytes(cpu.data_ptr(), static_cast<std::size_t>(cpu.numel() * cpu.element_size()));
  }
};

void add_module(Checksum& sum, torch::nn::Module& model) {
  for (const auto& item : model.named_parameters()) sum.add(item.key(), item.value());
  for (const auto& item : model.named_buffers()) sum.add(item.key(), item.value());
}

// The optimiser's moments, in parameter order (the state map itself is unordered).
void add_optimizer(Checksum& sum, torch::optim::Optimizer& optimizer) {
  auto& state = optimizer.state();
  std::size_t index = 0;
  for (auto& group : optimizer.param_groups()) {
    for (auto& param : group.params()) {
      const auto it = state.find(param.unsafeGetTensorImpl());
      ++index;
      if (it == state.end()) continue;
      if (const auto* adam = dynamic_cast<const torch::optim::AdamWParamState*>(it->second.get())) {
        const std::string name = "opt" + std::to_string(index);
        sum.add(name + ".exp_avg", adam->exp_avg());
        sum.add(name + ".exp_avg_sq", adam->exp_avg_sq());
        const std::int64_t step = adam->step();
        sum.add_bytes(&step, sizeof step);
      }
    }
  }
}

torch::Tensor checksum_tensor(std::uint64_t value) {
  std::int64_t stored;
  std::memcpy(&stored, &value, sizeof stored);
  return torch::tensor(stored, torch::kInt64);
}

std::uint64_t stored_checksum(torch::serialize::InputArchive& archive, bool& present) {
  torch::Tensor stored;
  present = archive.try_read(kChecksumKey, stored);
  if (!present) return 0;
  const std::int64_t raw = stored.to(torch::kCPU).item<std::int64_t>();
  std::uint64_t value;
  std::memcpy(&value, &raw, sizeof value);
  return value;
}

static_assert(io::kMinArchiveVersion == caffe2::serialize::kMinSupportedFileFormatVersion &&
                  io::kMaxArchiveVersion == caffe2::serialize::kMaxSupportedFileFormatVersion,
              "io::check_zip_archive's version range must be the one this LibTorch reads");

// LibTorch's copy of miniz (exported by libtorch_cpu): raw deflate into a buffer, for io::check_zip_archive.
extern "C" std::size_t tinfl_decompress_mem_to_mem(void* out, std::size_t out_len, const void* in, std::size_t in_len, int flags);

bool inflate_with_miniz(const unsigned char* in, std::size_t in_size, unsigned char* out, std::size_t out_size) {
  if (out_size == 0) return in_size <= 2;  // an empty deflate stream
  return tinfl_decompress_mem_to_mem(out, out_size, in, in_size, 0) == out_size;
}

// LibTorch's errors: c10::Error carries a backtrace (its first line is the message); its TorchScript
// reader throws other std::exception types with multi-line source excerpts. Either becomes one line.
std::string torch_error(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return first_line(c10->what_without_backtrace()).substr(0, 200);
  return first_line(e.what()).substr(0, 200);
}

std::string shape_text(at::IntArrayRef sizes) {
  std::string out = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

// Module::load replaces each tensor with the one in the file, whatever its shape, so a config that
// disagrees with the weights would load and fail later inside a forward pass with a torch trace.
void check_shapes(torch::nn::Module& model, const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& want,
                  const std::string& weights_path, const std::string& config_path) {
  std::size_t i = 0;
  for (const auto& item : model.named_parameters()) {
    if (i >= want.size()) break;
    const auto& [name, shape] = want[i++];
    if (item.value().sizes() != at::IntArrayRef(shape))
      throw std::runtime_error(weights_path + ": tensor '" + name + "' is " + shape_text(item.value().sizes()) + " but " +
                               config_path + " needs " + shape_text(shape) + " (the config does not match the weights)");
  }
}

std::vector<std::pair<std::string, std::vector<std::int64_t>>> shapes_of(torch::nn::Module& model) {
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> out;
  for (const auto& item : model.named_parameters()) out.emplace_back(item.key(), item.value().sizes().vec());
  return out;
}

}  // namespace

std::uint64_t model_checksum(torch::nn::Module& model) {
  Checksum sum;
  add_module(sum, model);
  return sum.value;
}

void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path) {
  // The archive is gathered in memory (a few tens of MB at most) and sealed with a CRC-32 of the whole
  // file (io::seal_zip_archive) before any of it is written. Torch's own file writer throws from its
  // destructor when a write fails (a full disk), ending the process in std::terminate, so torch only
  // appends to a string here, and the write, with its one-line error, happens after torch is done.
  // AtomicOutput supplies the temporary, its removal and the signal cleanup.
  std::string bytes, error;
  archive.save_to([&](const void* data, std::size_t size) -> std::size_t {
    // Never throws towards torch (an exception through miniz's callback, unwinding past a writer whose
    // destructor writes again, ends in std::terminate): the first error is kept and thrown below.
    if (error.empty()) {
      try {
        bytes.append(static_cast<const char*>(data), size);
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    return size;
  });
  if (!error.empty()) throw std::runtime_error(path + ": cannot gather the archive in memory (" + error + ")");
  try {
    io::seal_zip_archive(bytes);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  io::AtomicOutput out(path);
  out.write(bytes);
  out.commit();
}

namespace {

// Present in a weights file whose float parameters are stored in bfloat16 (save_weights_bf16).
constexpr const char* kBf16Key = "hashhop_bf16";

void set_float_parameters(torch::nn::Module& model, torch::ScalarType from, torch::ScalarType to) {
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters())
    if (item.value().scalar_type() == from) item.value().set_data(item.value().to(to));
}

void save_weights_as(torch::nn::Module& model, const std::string& path, bool bf16) {
  torch::serialize::OutputArchive archive;
  model.save(archive);
  archive.write(kChecksumKey, checksum_tensor(model_checksum(model)));
  if (bf16) archive.write(kBf16Key, torch::tensor(1, torch::kInt64));
  save_archive_atomically(archive, path);
}

}  // namespace

void save_weights(torch::nn::Module& model, const std::string& path) { save_weights_as(model, path, false); }

void save_weights_bf16(torch::nn::Module& model, const std::string& path) {
  set_float_parameters(model, torch::kFloat32, torch::kBFloat16);
  save_weights_as(model, path, true);
}

void load_weights(torch::nn::Module& model, const std::string& weights_path, const std::string& config_path,
                  const torch::Device& device) {
  const auto want = shapes_of(model);
  bool has_checksum = false, bf16 = false;
  std::uint64_t expected = 0;
  io::check_zip_archive(weights_path, inflate_with_miniz);  // structure and CRCs first: LibTorch's reader is not for damaged files
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(weights_path, device);
    // Module::load keeps each parameter's dtype and takes the file's bytes: a bfloat16 file needs bfloat16
    // parameters to load into; they become float32 again below, after the checksum of the bytes as stored.
    torch::Tensor bf16_flag;
    bf16 = archive.try_read(kBf16Key, bf16_flag);
    if (bf16) set_float_parameters(model, torch::kFloat32, torch::kBFloat16);
    model.load(archive);
    expected = stored_checksum(archive, has_checksum);
  } catch (const std::exception& e) {
    throw std::runtime_error(weights_path + ": cannot load weights for this config (" + torch_error(e) + ")");
  }
  check_shapes(model, want, weights_path, config_path);
  if (has_checksum && model_checksum(model) != expected)
    throw std::runtime_error(weights_path + ": checksum mismatch, the weights are corrupted");
  if (bf16) set_float_parameters(model, torch::kBFloat16, torch::kFloat32);  // what every forward pass here expects
}

void save_model(const std::string& dir, const RunConfig& config, model::HashHopTransformer& model) {
  io::make_directories(dir);
  // Weights first, config second: config.json is what marks DIR as a model, so a failure in between
  // leaves weights without a config (refused on load) rather than a config whose weights are stale.
  save_weights(*model, dir + "/model.pt");
  io::write_file_atomically(dir + "/config.json", to_json(config));
}

LoadedModel load_model(const std::string& dir, const torch::Device& device) {
  const std::string config_path = dir + "/config.json", weights_path = dir + "/model.pt";
  if (!io::file_exists(config_path)) throw std::invalid_argument(config_path + ": no such file (is " + dir + " a model directory?)");
  if (!io::file_exists(weights_path)) throw std::invalid_argument(weights_path + ": no such file");
  // Say which family it is, rather than "field 'family': unknown field" from the lexer config's reader.
  if (is_byte_config(config_path))
    throw std::invalid_argument(dir + ": a byte-level model (\"family\": \"bytes\"); this command runs the lexer family only "
                                "(eval, answer, serve and sweep take both)");
  LoadedModel loaded;
  loaded.config = load_run_config(config_path);
  try {
    loaded.model = model::HashHopTransformer(loaded.config.model);
    loaded.model->to(device);
  } catch (const c10::Error& e) {
    throw std::runtime_error(config_path + ": cannot build this model (" + first_line(e.what_without_backtrace()) + ")");
  }
  load_weights(*loaded.model, weights_path, config_path, device);
  loaded.model->eval();
  return loaded;
}

void save_checkpoint(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     std::int64_t step) {
  io::make_directories(dir);
  torch::serialize::OutputArchive root, model_archive, optimizer_archive;
  model.save(model_archive);
  optimizer.save(optimizer_archive);
  root.write("model", model_archive);
  root.write("optimizer", optimizer_archive);
  root.write("step", torch::tensor(step));
  root.write(kThreadsKey, torch::tensor(static_cast<std::int64_t>(torch::get_num_threads())));
  Checksum sum;
  add_module(sum, model);
  add_optimizer(sum, optimizer);
  sum.add_bytes(&step, sizeof step);
  root.write(kChecksumKey, checksum_tensor(sum.value));
  save_archive_atomically(root, dir + "/checkpoint.pt");
}

std::int64_t checkpoint_threads(const std::string& dir) {
  const std::string path = dir + "/checkpoint.pt";
  if (!io::file_exists(path)) return 0;
  io::check_zip_archive(path, inflate_with_miniz);
  try {
    torch::serialize::InputArchive root;
    root.load_from(path, torch::kCPU);
    torch::Tensor threads;
    return root.try_read(kThreadsKey, threads) ? threads.item<std::int64_t>() : 0;
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": cannot resume from this checkpoint (" + torch_error(e) + ")");
  }
}

std::int64_t load_checkpoint(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                             const torch::Device& device) {
  const std::string path = dir + "/checkpoint.pt";
  if (!io::file_exists(path)) return 0;
  const auto want = shapes_of(model);
  std::int64_t step = 0;
  bool has_checksum = false;
  std::uint64_t expected = 0;
  io::check_zip_archive(path, inflate_with_miniz);
  try {
    torch::serialize::InputArchive root, model_archive, optimizer_archive;
    root.load_from(path, device);
    root.read("model", model_archive);
    model.load(model_archive);
    check_shapes(model, want, path, dir + "/config.json");
    root.read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
    torch::Tensor step_tensor;
    root.read("step", step_tensor);
    step = step_tensor.item<std::int64_t>();
    expected = stored_checksum(root, has_checksum);
  } catch (const std::exception& e) {
    if (std::string(e.what()).rfind(path + ": ", 0) == 0) throw;  // check_shapes: already one line naming the file
    throw std::runtime_error(path + ": cannot resume from this checkpoint (" + torch_error(e) + ")");
  }
  if (has_checksum) {
    Checksum sum;
    add_module(sum, model);
    add_optimizer(sum, optimizer);
    sum.add_bytes(&step, sizeof step);
    if (sum.value != expected) throw std::runtime_error(path + ": checksum mismatch, the checkpoint is corrupted");
  }
  if (step < 0) throw std::runtime_error(path + ": step " + std::to_string(step) + " is negative");
  return step;
}

}  // namespace hashhop::train
