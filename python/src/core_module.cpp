// pyhashhop._core: the benchmark half of the C++ library (generator, record writer, Magic-format parser,
// reference solver, scorer) and the attention case registry, bound with nanobind; no torch. Built by
// `pip install .` (python/CMakeLists.txt).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "hashhop/attn/attention_cases.h"
#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/hash_index.h"
#include "hashhop/bench/generator.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/record_writer.h"
#include "hashhop/bench/reference_solver.h"
#include "hashhop/bench/scorer.h"

namespace nb = nanobind;
using namespace hashhop::bench;
namespace attn = hashhop::attn;

namespace {

const char* bucket_function_name(attn::BucketFunction f) {
  switch (f) {
    case attn::BucketFunction::lsh: return "lsh";
    case attn::BucketFunction::lsh_sha256: return "lsh_sha256";
    case attn::BucketFunction::quantized_sha256: return "quantized_sha256";
  }
  return "?";
}

attn::BucketFunction bucket_function(const std::string& name) {
  if (name == "lsh") return attn::BucketFunction::lsh;
  if (name == "lsh_sha256") return attn::BucketFunction::lsh_sha256;
  if (name == "quantized_sha256") return attn::BucketFunction::quantized_sha256;
  throw std::invalid_argument("bucket_fn: expected lsh, lsh_sha256 or quantized_sha256, got '" + name + "'");
}

const char* signature_draw_name(attn::SignatureDraw d) {
  switch (d) {
    case attn::SignatureDraw::random: return "random";
    case attn::SignatureDraw::identical: return "identical";
    case attn::SignatureDraw::few_distinct: return "few_distinct";
    case attn::SignatureDraw::pool: return "pool";
  }
  return "?";
}

// One registry case as a plain dict (the op arguments keep the ops' names: bucket_fn, top_k, ...).
nb::dict case_dict(const attn::AttentionCase& c) {
  nb::dict d, shape, options, tolerance;
  nb::list backends;
  shape["heads_q"] = c.shape.heads_q;
  shape["heads_kv"] = c.shape.heads_kv;
  shape["n_q"] = c.shape.n_q;
  shape["n_k"] = c.shape.n_k;
  shape["dim"] = c.shape.dim;
  shape["causal"] = c.shape.causal;
  shape["identical_keys"] = c.shape.identical_keys;
  const attn::CaseOptions& o = c.options;
  options["bucket_bits"] = o.bucket_bits;
  options["rounds"] = o.rounds;
  options["bucket_fn"] = bucket_function_name(o.bucket_function);
  options["seed"] = o.seed;
  options["dense_heads"] = o.dense_heads;
  options["bits"] = o.bits;
  options["sinks"] = o.sinks;
  options["window"] = o.window;
  options["top_k"] = o.top_k;
  options["top_fraction"] = o.top_fraction;
  options["tables"] = o.tables;
  options["bits_per_table"] = o.bits_per_table;
  options["signatures"] = signature_draw_name(o.signatures);
  options["distinct_bits"] = o.distinct_bits;
  tolerance["float64_abs"] = c.tolerance.float64_abs;
  tolerance["lowprec_factor"] = c.tolerance.lowprec_factor;
  tolerance["lowprec_abs"] = c.tolerance.lowprec_abs;
  if (c.backends & attn::kCpuBackend) backends.append("cpu");
  if (c.backends & attn::kCudaBackend) backends.append("cuda");
  if (c.backends & attn::kTorchBackend) backends.append("torch");
  d["name"] = c.name;
  d["label"] = c.label;
  d["mechanism"] = attn::mechanism_name(c.mechanism);
  d["expectation"] = attn::expectation_name(c.expectation);
  d["shape"] = shape;
  d["options"] = options;
  d["tolerance"] = tolerance;
  d["backends"] = backends;
  return d;
}

GenConfig make_config(std::uint64_t n_chars, std::uint64_t num_queries, int hops, int hash_len, bool cot,
                      std::uint64_t seed) {
  GenConfig config;
  config.n_chars = n_chars;
  config.num_queries = num_queries;
  config.hops = hops;
  config.hash_len = hash_len;
  config.cot = cot;
  config.seed = seed;
  validate(config);  // std::invalid_argument -> ValueError naming the field
  return config;
}

// The whole record as `hashhop gen --samples 1` writes it, so Python and the CLI share one serialiser.
std::string record(const GenConfig& config, RecordFormat format) {
  const HashHopProblem problem(config);
  std::string out;
  out.reserve(problem.prompt_size() + 256);
  write_record(problem, format, [&](std::string_view chunk) { out.append(chunk); });
  return out;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "HashHop generator, solver and scorer from the hashhop C++ library";
  nb::exception<FormatError>(m, "FormatError", PyExc_ValueError);

  m.attr("CHARS_PER_TOKEN") = kCharsPerToken;

  m.def("chains_for",
        [](std::uint64_t n_chars, int hops, int hash_len) {
          GenConfig config;
          config.n_chars = n_chars;
          config.hops = hops;
          config.hash_len = hash_len;
          return chains_for(config);
        },
        nb::arg("n_chars"), nb::arg("hops"), nb::arg("hash_len"),
        "Chains in a problem of this size (Magic's rule: ceil(n_chars / ((2L+3)*hops))).");

  // Returns (prompt, completion, target keys, target values): two lists rather than a dict so the
  // Python side builds the dict in chain order (Magic's `targets` order) with one C-level call.
  m.def("generate",
        [](std::uint64_t n_chars, std::uint64_t num_queries, int hops, int hash_len, bool cot, std::uint64_t seed) {
          const GenConfig config = make_config(n_chars, num_queries, hops, hash_len, cot, seed);
          std::string prompt, completion;
          std::vector<std::string> keys, values;
          {
            nb::gil_scoped_release release;  // a 300M-character prompt takes a while; let other threads run
            const HashHopProblem problem(config);
            prompt = problem.prompt();
            completion = problem.completion();
            keys.reserve(problem.n_chains());
            values.reserve(problem.n_chains());
            for (std::uint64_t chain = 0; chain < problem.n_chains(); ++chain) {
              keys.push_back(problem.hash(chain, 0));
              values.push_back(problem.target(chain));
            }
          }
          return std::make_tuple(std::move(prompt), std::move(completion), std::move(keys), std::move(values));
        },
        nb::arg("n_chars"), nb::arg("num_queries"), nb::arg("hops"), nb::arg("hash_len"), nb::arg("cot"),
        nb::arg("seed"));

  m.def("jsonl_record",
        [](std::uint64_t n_chars, std::uint64_t num_queries, int hops, int hash_len, bool cot, std::uint64_t seed) {
          const GenConfig config = make_config(n_chars, num_queries, hops, hash_len, cot, seed);
          nb::gil_scoped_release release;
          return record(config, RecordFormat::jsonl);
        },
        nb::arg("n_chars"), nb::arg("num_queries"), nb::arg("hops"), nb::arg("hash_len"), nb::arg("cot"),
        nb::arg("seed"), "One JSONL line (with its newline), exactly as `hashhop gen --format jsonl` writes it.");

  m.def("text_record",
        [](std::uint64_t n_chars, std::uint64_t num_queries, int hops, int hash_len, bool cot, std::uint64_t seed) {
          const GenConfig config = make_config(n_chars, num_queries, hops, hash_len, cot, seed);
          nb::gil_scoped_release release;
          return record(config, RecordFormat::text);
        },
        nb::arg("n_chars"), nb::arg("num_queries"), nb::arg("hops"), nb::arg("hash_len"), nb::arg("cot"),
        nb::arg("seed"), "Prompt, newline, completion: exactly `hashhop gen --format text`.");

  m.def("solve",
        [](std::string_view prompt, std::string_view expected_completion) {
          return solve_exactly(prompt, expected_completion);
        },
        nb::arg("prompt"), nb::arg("completion"), nb::call_guard<nb::gil_scoped_release>(),
        "Answers every query of a completion from the prompt alone (the exact reference solver).");

  m.def("parse_completion",
        [](std::string_view completion) {
          const ParsedCompletion parsed = parse_completion(completion);
          std::vector<std::tuple<std::string, std::string>> queries;
          for (const auto& q : parsed.queries) queries.emplace_back(q.key, q.answer);
          return std::make_tuple(parsed.hops, parsed.cot, std::move(queries));
        },
        nb::arg("completion"), "(hops, cot, [(key, answer), ...]) of a completion in Magic's strict layout.");

  m.def("parse_answers",
        [](std::string_view text) {
          std::vector<std::tuple<std::string, std::string>> out;
          for (auto& [key, answer] : parse_answer_lines(text)) out.emplace_back(key, answer);
          return out;
        },
        nb::arg("text"), "Every `KEY = 'ANSWER'` line of a model's text, header or not.");

  // The scorer keeps parsed expectations only as long as one add() call: records can be streamed.
  nb::class_<Scorer>(m, "Scorer")
      .def(nb::init<>())
      .def("add",
           [](Scorer& self, std::string_view expected_completion, std::string_view predicted, std::uint64_t n_chars) {
             self.add(parse_completion(expected_completion), predicted, n_chars);
           },
           nb::arg("expected_completion"), nb::arg("predicted"), nb::arg("n_chars"))
      .def("report_json", [](const Scorer& self) { return score_to_json(self.report()).dump(); })
      .def("table", [](const Scorer& self) { return format_score_table(self.report()); });

  // The attention case registry (include/hashhop/attn/attention_cases.h) and the two reference pieces a
  // Python reference needs to rebuild a mechanism's key sets: bucket ids and LSH bit positions.
  m.def("attention_cases",
        [](const std::string& backend) {
          if (backend != "" && backend != "cpu" && backend != "cuda" && backend != "torch")
            throw std::invalid_argument("backend: expected '', 'cpu', 'cuda' or 'torch', got '" + backend + "'");
          nb::list out;
          for (const auto& c : attn::attention_cases()) {
            const bool wanted = backend.empty() || (backend == "cpu" && (c.backends & attn::kCpuBackend)) ||
                                (backend == "cuda" && (c.backends & attn::kCudaBackend)) ||
                                (backend == "torch" && (c.backends & attn::kTorchBackend));
            if (wanted) out.append(case_dict(c));
          }
          return out;
        },
        nb::arg("backend") = "",
        "Every attention case of the registry as a dict (name, mechanism, expectation, shape, options, tolerance,\n"
        "backends); backend='torch' gives the cases the Python ops tests run.");
  m.def("bucket_ids",
        [](const std::vector<double>& x, int n, int dim, int bucket_bits, int rounds, const std::string& bucket_fn,
           std::uint64_t seed, int round) {
          if (x.size() != static_cast<std::size_t>(n) * dim) throw std::invalid_argument("bucket_ids: x must hold n * dim values");
          attn::BucketConfig config;
          config.bucket_bits = bucket_bits;
          config.rounds = rounds;
          config.function = bucket_function(bucket_fn);
          config.seed = seed;
          return attn::bucket_ids(x.data(), n, dim, config, round);
        },
        nb::arg("x"), nb::arg("n"), nb::arg("dim"), nb::arg("bucket_bits"), nb::arg("rounds"), nb::arg("bucket_fn"),
        nb::arg("seed"), nb::arg("round"), "Bucket of each row of x (row-major [n, dim]) in one round: the float64 reference.");
  m.def("sampled_bit_positions",
        [](int bits, int tables, int bits_per_table, std::uint64_t seed) {
          return attn::sampled_bit_positions(attn::IndexConfig{bits, tables, bits_per_table, seed});
        },
        nb::arg("bits"), nb::arg("tables"), nb::arg("bits_per_table"), nb::arg("seed"),
        "The bit positions each LSH table of the hash index samples.");
}
