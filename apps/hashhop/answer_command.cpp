// `hashhop answer --model DIR --prompt FILE`: one prompt, answered by a trained model. FILE is a prompt
// as `hashhop gen --format text` writes it (its completion block names the queries) or a bare prompt
// with --query KEY (repeatable), --hops and --cot. Prints the completion block.
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "answer_path.h"
#include "command.h"
#include "context_parallel_option.h"
#include "device_option.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/io/files.h"
#include "hashhop/train/byte_config.h"
#include "hashhop/train/checkpoint.h"
#include "hashhop/model/inference.h"
#include "model_answerer.h"
#include "size_option.h"

namespace hashhop::cli {
namespace {

struct Options {
  std::string model_dir;
  std::string prompt_path;
  std::vector<std::string> queries;
  int hops = 1;
  bool cot = false;
  std::string device = "auto";
  std::string prompt_limit = "2G";
  AnswerPath path;
  ContextParallelOption ranks;
};

int run_answer(const Options& o) {
  // Context parallel: launch (or join) first, so the launcher holds no copy of the prompt and every rank
  // reads the file itself; rank 0 prints the completion.
  auto joined = o.ranks.join_or_launch();
  if (!joined) return 0;
  const std::unique_ptr<dist::ProcessGroup> group = std::move(*joined);
  AnswerPath path = o.path;
  path.group = group.get();
  if (group != nullptr && path.engine == "off")
    throw std::invalid_argument("--engine off: " + o.ranks.named() + " runs the context-parallel engine; drop one");
  // Read with a limit: `--prompt /dev/zero` would otherwise grow a string until std::bad_alloc.
  std::string prompt = io::read_file_limited(o.prompt_path, parse_size("--prompt-limit", o.prompt_limit), "--prompt");
  int hops = o.hops;
  bool cot = o.cot;
  std::vector<std::string> keys = o.queries;
  const std::size_t completion_at = prompt.find("\nCOMPLETION:");
  if (completion_at != std::string::npos) {
    bench::ParsedCompletion parsed;
    try {
      parsed = bench::parse_completion(prompt.substr(completion_at + 1));
    } catch (const bench::FormatError& e) {
      throw std::invalid_argument(o.prompt_path + ": completion block: " + e.what());
    }
    prompt.resize(completion_at);
    hops = parsed.hops;
    cot = parsed.cot;
    if (keys.empty())
      for (const auto& q : parsed.queries) keys.push_back(q.key);
  }
  while (!prompt.empty() && prompt.back() == '\n') prompt.pop_back();
  if (keys.empty()) throw std::invalid_argument(o.prompt_path + ": no completion block and no --query given");
  for (const auto& key : keys)
    if (!bench::is_hash(key)) throw std::invalid_argument("--query: '" + key.substr(0, 40) + "' is not a hash of letters");
  try {
    bench::check_prompt_ends(prompt);
  } catch (const bench::FormatError& e) {
    throw std::invalid_argument(o.prompt_path + ": not a HashHop prompt: " + e.what());
  }
  const auto device = ContextParallelOption::device_for(parse_device(o.device), group.get());
  const auto check_queries = [&](const model::ModelConfig& limits) {
    try {
      model::check_query_hops(limits, hops, cot);
      model::check_query_keys(limits, keys);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument((completion_at != std::string::npos ? o.prompt_path + ": " : std::string("--")) + e.what());
    }
  };
  if (train::is_byte_config(o.model_dir + "/config.json")) {
    // The byte family answers as eval answers it (ModelAnswerer: its dense path, its engine, or with
    // --nproc the context-parallel engine, where every rank takes part and rank 0 prints).
    ModelAnswerer answerer(o.model_dir, device, path);
    check_queries(answerer.limits());
    bench::DataRecord record;
    record.prompt = prompt;
    record.expected.hops = hops;
    record.expected.cot = cot;
    for (const auto& key : keys) record.expected.queries.push_back({key, ""});
    const std::string completion = answerer.answer(record);
    if (group == nullptr || group->rank() == 0) std::printf("%s", completion.c_str());
    return 0;
  }
  byte_engine_options(path, o.model_dir, /*byte_family=*/false);  // refuses the byte engine's options, as eval does
  auto loaded = train::load_model(o.model_dir, device);
  check_queries(loaded.config.model);
  std::printf("%s", path.answer(loaded.model, prompt, hops, cot, keys).c_str());
  return 0;
}

}  // namespace

Command add_answer_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("answer", "Answer the queries of one prompt with a trained model");
  app->add_option("--model", o->model_dir, "Model directory, e.g. models/demo")->required();
  app->add_option("--prompt", o->prompt_path, "Prompt text file (`hashhop gen --format text` output, or a bare prompt)")->required();
  app->add_option("--query", o->queries, "Hash to start from (repeatable; default: the file's completion block)");
  app->add_option("--hops", o->hops, "Hops to follow when the file has no completion block")->capture_default_str();
  app->add_flag("--cot", o->cot, "Answer with the chain of thought (H2 = H3 = ...)");
  app->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  app->add_option("--prompt-limit", o->prompt_limit, "Largest prompt file read into memory (K/M/G suffixes)")
      ->capture_default_str();
  o->path.add_options(app);
  o->ranks.add(app, "With the engine: ");
  return {app, [o] { return run_answer(*o); }};
}

}  // namespace hashhop::cli
