// pyhashhop._core: the benchmark half of the C++ library (generator, record writer, Magic-format parser,
// reference solver, scorer) bound with nanobind; no torch. Built by `pip install .` (python/CMakeLists.txt).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "hashhop/bench/generator.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/record_writer.h"
#include "hashhop/bench/reference_solver.h"
#include "hashhop/bench/scorer.h"

namespace nb = nanobind;
using namespace hashhop::bench;

namespace {

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
}
