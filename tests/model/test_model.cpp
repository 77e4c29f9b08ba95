// The HashHop model on the CPU: lexer streaming, shapes, causality, gate semantics, checkpoints, exact
// resume, chunked prompt encoding, and a tiny model that learns a tiny task end to end.
// Run: build/tests/test_model (ctest runs it)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <limits>
#include <random>
#include <string>

#include "hashhop/bench/generator.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/io/files.h"
#include "hashhop/train/checkpoint.h"
#include "hashhop/train/config.h"
#include "hashhop/model/hashhop_model.h"
#include "hashhop/model/inference.h"
#include "hashhop/model/lexer.h"
#include "hashhop/train/batch.h"
#include "hashhop/train/trainer.h"

namespace hashhop {
namespace {

std::string temp_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "hashhop_model_" + name + "_" + std::to_string(::getpid());
  std::system(("rm -rf '" + dir + "'").c_str());
  return dir;
}

model::ModelConfig small_model() { return train::load_run_config("tiny").model; }

// A tiny model trained once for the tests that need one that answers (about two seconds).
const std::string& trained_tiny_dir() {
  static const std::string dir = [] {
    const std::string d = temp_dir("trained_tiny");
    train::TrainOptions options;
    options.out_dir = d;
    options.quiet = true;
    train::train(train::load_run_config("tiny"), options);
    return d;
  }();
  return dir;
}

TEST(Lexer, HeaderAndLineStructure) {
  model::LexState state;
  const std::string text = "ab = cd\nCOMPLETION:\nHops=3\n\nCoT=True\n\nxy = '";
  const auto lexed = model::lex_chunk(text, state, 8);
  const std::size_t last = text.size() - 1;
  EXPECT_EQ(lexed.hops[last], 3);
  EXPECT_EQ(lexed.cot[last], 2);
  EXPECT_EQ(lexed.eq_in_line[last], 1);
  EXPECT_EQ(lexed.quotes_in_line[last], 1);
  EXPECT_EQ(lexed.run_len[1], 2);            // "ab": second letter
  EXPECT_EQ(lexed.run_len[2], 0);            // the space closes the run
  EXPECT_EQ(lexed.eq_in_line[7], 1);         // the newline still belongs to "ab = cd"
  EXPECT_EQ(lexed.letter_slot[1], 1 * model::kLetters + 1);  // 'b' at position 1
  EXPECT_EQ(state.completed_runs, 7u);       // ab cd COMPLETION Hops CoT True xy
  model::LexState false_state;
  const auto lexed_false = model::lex_chunk("CoT=False\n", false_state, 8);
  EXPECT_EQ(lexed_false.cot.back(), 1);
}

TEST(Lexer, ChunkedScanMatchesWholeScan) {
  bench::GenConfig config{.n_chars = 600, .num_queries = 3, .hops = 2, .hash_len = 5, .cot = true, .seed = 3};
  const bench::HashHopProblem problem(config);
  const std::string text = problem.prompt() + "\n" + problem.completion();
  model::LexState whole_state;
  const auto whole = model::lex_chunk(text, whole_state, 8);
  for (std::size_t chunk : {1u, 7u, 64u}) {
    model::LexState state;
    std::size_t offset = 0;
    while (offset < text.size()) {
      const auto part = model::lex_chunk(std::string_view(text).substr(offset, chunk), state, 8);
      for (std::size_t t = 0; t < part.size(); ++t) {
        ASSERT_EQ(part.run_len[t], whole.run_len[offset + t]) << "chunk " << chunk << " at " << offset + t;
        ASSERT_EQ(part.letter_slot[t], whole.letter_slot[offset + t]);
        ASSERT_EQ(part.eq_in_line[t], whole.eq_in_line[offset + t]);
        ASSERT_EQ(part.hops[t], whole.hops[offset + t]);
        ASSERT_EQ(part.cot[t], whole.cot[offset + t]);
      }
      offset += part.size();
    }
    EXPECT_EQ(state.completed_runs, whole_state.completed_runs);
  }
}

TEST(Model, EncodeShapes) {
  torch::manual_seed(0);
  model::HashHopTransformer net(small_model());
  const auto sample = train::make_sample(300, 2, 4, false, 3, 11, net->config().max_run);
  const auto encoded = net->encode({&sample.lexed});
  const std::int64_t t = static_cast<std::int64_t>(sample.text.size());
  EXPECT_EQ(encoded.memory.keys.sizes(), (std::vector<std::int64_t>{1, t, net->config().fp_dim}));
  EXPECT_EQ(encoded.memory.log_gate.sizes(), (std::vector<std::int64_t>{1, t}));
  EXPECT_EQ(encoded.memory.run_values.size(2), net->value_dim());
  EXPECT_EQ(encoded.structure.sizes(), (std::vector<std::int64_t>{1, t, net->config().model_dim}));
  // Keys are unit vectors wherever a run exists; values are distributions per position (in the prompt:
  // the header word COMPLETION is longer than max_run and shares its last slot).
  const auto norms = encoded.memory.keys.norm(2, -1);
  EXPECT_NEAR(norms[0][t - 1].item<float>(), 1.0f, 1e-5);
  const std::int64_t prompt_end = static_cast<std::int64_t>(sample.text.find("\nCOMPLETION:"));
  const auto read = encoded.memory.run_values[0].index_select(0, encoded.memory.value_rows[0].narrow(0, 0, prompt_end));
  const auto per_position = read.view({prompt_end, net->config().max_run + 1, model::kLetters + 1}).sum(-1);
  EXPECT_TRUE(torch::allclose(per_position, torch::ones_like(per_position)));
}

// Retrieval is chosen by name (attn/retrieval.h): dense by default; a selecting mechanism that keeps every
// visible key (top-k >= the prompt, one bucket) gives the same logits, bit for bit.
TEST(Model, RetrievalByNameAtItsDenseLimitEqualsDense) {
  torch::manual_seed(3);
  model::HashHopTransformer net(small_model());
  const auto sample = train::make_sample(300, 2, 4, false, 3, 12, net->config().max_run);
  const auto encoded = net->encode({&sample.lexed});
  const auto pos = torch::tensor(sample.positions).view({1, -1});
  torch::NoGradGuard no_grad;
  EXPECT_EQ(net->retriever().name(), "dense");
  const auto dense = net->logits_at(encoded, pos, {&encoded.memory}, {pos});
  hashhop::attn::RetrieverOptions all_keys;
  all_keys.top_k = 1 << 20;
  all_keys.bucket_bits = 0;
  for (const char* name : {"signature_topk", "bucket"}) {
    net->set_retrieval(name, all_keys);
    EXPECT_TRUE(torch::equal(net->logits_at(encoded, pos, {&encoded.memory}, {pos}), dense)) << name;
  }
  EXPECT_THROW(net->set_retrieval("nearest"), std::invalid_argument);
}

// Logits at position p must not change when any byte after p changes.
TEST(Model, NoInformationFromTheFuture) {
  torch::manual_seed(1);
  model::HashHopTransformer net(small_model());
  auto a = train::make_sample(400, 2, 4, false, 3, 21, net->config().max_run);
  const std::int64_t cut = a.positions[a.positions.size() / 2];
  train::Sample b = a;
  for (std::size_t i = cut + 1; i < b.text.size(); ++i)
    if (model::letter_index(static_cast<unsigned char>(b.text[i])) >= 0) b.text[i] = b.text[i] == 'a' ? 'b' : 'a';
  model::LexState state;
  b.lexed = model::lex_chunk(b.text, state, net->config().max_run);
  auto logits_at = [&](const train::Sample& s) {
    const auto encoded = net->encode({&s.lexed});
    std::vector<std::int64_t> positions;
    for (auto p : a.positions)
      if (p <= cut) positions.push_back(p);
    const auto pos = torch::tensor(positions).view({1, -1});
    return net->logits_at(encoded, pos, {&encoded.memory}, {pos});
  };
  torch::NoGradGuard no_grad;
  const auto la = logits_at(a), lb = logits_at(b);
  EXPECT_TRUE(torch::allclose(la, lb, 1e-5, 1e-5)) << "max diff " << (la - lb).abs().max().item<float>();
}

TEST(Model, GateDecidesWhatMemoryKeeps) {
  auto loaded = train::load_model(trained_tiny_dir(), torch::kCPU);
  const auto sample = train::make_sample(300, 1, 4, false, 3, 31, loaded.config.model.max_run);
  const std::string prompt = sample.text.substr(0, sample.text.find("\nCOMPLETION:") + 1);
  model::PromptOptions all, gated;
  gated.gated_only = true;
  const auto full = model::encode_prompt(loaded.model, prompt, all);
  const auto kept = model::encode_prompt(loaded.model, prompt, gated);
  EXPECT_EQ(full.positions, static_cast<std::int64_t>(prompt.size()));
  EXPECT_GT(kept.positions, 0);
  EXPECT_LT(kept.positions, full.positions / 2);  // the trained gate keeps few reference points
  EXPECT_LE(kept.runs, full.runs);
  // A position whose gate is closed receives no attention.
  auto encoded = loaded.model->encode({&sample.lexed});
  auto closed = encoded.memory;
  closed.log_gate = closed.log_gate.clone();
  closed.log_gate.index_put_({0, 5}, -std::numeric_limits<float>::infinity());
  const auto pos = torch::tensor(std::vector<std::int64_t>{sample.positions[0]}).view({1, 1});
  const auto q = model::gather_positions(encoded.queries, pos);
  torch::NoGradGuard no_grad;
  const auto weights = loaded.model->first_hop_attention(q, closed, pos);
  EXPECT_EQ(weights[0][0][5].item<float>(), 0.0f);
  EXPECT_NEAR(weights.sum().item<float>(), 1.0f, 1e-5);
}

TEST(Model, CheckpointRoundTrip) {
  torch::manual_seed(2);
  auto config = train::load_run_config("tiny");
  model::HashHopTransformer net(config.model);
  const std::string dir = temp_dir("roundtrip");
  train::save_model(dir, config, net);
  auto loaded = train::load_model(dir, torch::kCPU);
  const auto before = net->named_parameters();
  const auto after = loaded.model->named_parameters();
  ASSERT_EQ(before.size(), after.size());
  for (const auto& item : before) EXPECT_TRUE(torch::equal(item.value(), after[item.key()])) << item.key();
  EXPECT_EQ(train::to_json(loaded.config), train::to_json(config));
  EXPECT_THROW(train::load_model(dir + "/missing", torch::kCPU), std::invalid_argument);
}

// A run cut in two pieces and resumed equals the run in one piece, parameter for parameter.
TEST(Train, ResumeIsExact) {
  auto config = train::load_run_config("tiny");
  config.train.steps = 24;
  config.train.checkpoint_every = 8;
  train::TrainOptions one;
  one.out_dir = temp_dir("resume_one");
  one.quiet = true;
  train::train(config, one);
  train::TrainOptions split = one;
  split.out_dir = temp_dir("resume_split");
  split.stop_after = 10;
  EXPECT_EQ(train::train(config, split).end_step, 10);
  split.stop_after = -1;
  EXPECT_EQ(train::train(config, split).start_step, 10);
  const auto a = train::load_model(one.out_dir, torch::kCPU), b = train::load_model(split.out_dir, torch::kCPU);
  const auto pb = b.model->named_parameters();
  for (const auto& item : a.model->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
}

TEST(Train, RefusesAnotherConfigsCheckpoint) {
  auto config = train::load_run_config("tiny");
  config.train.steps = 2;
  train::TrainOptions options;
  options.out_dir = temp_dir("other_config");
  options.quiet = true;
  train::train(config, options);
  config.train.lr *= 2;
  EXPECT_THROW(train::train(config, options), std::invalid_argument);
}

TEST(Train, AnswerSpansCoverAnswersAndClosingQuotes) {
  const auto s = train::make_sample(300, 2, 4, true, 2, 41, 8);
  ASSERT_FALSE(s.positions.empty());
  for (auto p : s.positions) {
    const char next = s.text[p + 1];
    EXPECT_TRUE(model::letter_index(static_cast<unsigned char>(next)) >= 0 || next == ' ' || next == '=' || next == '\'');
  }
  EXPECT_EQ(s.answer_hops.size(), 2u);
  // 2 answers of "X = Y" (4 + 3 + 4 letters and separators) plus a closing quote each.
  EXPECT_EQ(s.positions.size(), 2u * (4 + 3 + 4 + 1));
}

// The tiny preset learns 1-hop recall of 4-letter hashes; greedy answers on fresh problems are right.
TEST(Train, TinyModelLearnsTinyTaskEndToEnd) {
  auto loaded = train::load_model(trained_tiny_dir(), torch::kCPU);
  int right = 0, total = 0;
  for (std::uint64_t seed = 1000; seed < 1010; ++seed) {
    bench::GenConfig config{.n_chars = 250, .num_queries = 4, .hops = 1, .hash_len = 4, .cot = false, .seed = seed};
    const bench::HashHopProblem problem(config);
    std::vector<std::string> keys;
    for (std::uint64_t c = 0; c < config.num_queries; ++c) keys.push_back(problem.hash(c, 0));
    const auto predicted = bench::parse_answer_lines(model::answer_queries(loaded.model, problem.prompt(), 1, false, keys));
    for (std::uint64_t c = 0; c < config.num_queries; ++c) {
      ++total;
      const auto it = predicted.find(keys[c]);
      right += it != predicted.end() && it->second == problem.target(c);
    }
  }
  EXPECT_GE(right, total * 95 / 100) << right << " of " << total;
}

// A stand-in model for the decoders: the next byte is a hash of the whole text (a closing quote about
// one time in twelve), so every byte depends on every byte before it.
char stand_in_next(const std::string& text) {
  const std::size_t h = std::hash<std::string>{}(text);
  return h % 12 == 0 ? '\'' : static_cast<char>('a' + (h / 12) % 26);
}

torch::Tensor stand_in_logits(const std::vector<std::string>& texts) {
  auto logits = torch::zeros({static_cast<std::int64_t>(texts.size()), 1, 256});
  for (std::size_t i = 0; i < texts.size(); ++i)
    logits[static_cast<std::int64_t>(i)][0][static_cast<unsigned char>(stand_in_next(texts[i]))] = 1.0;
  return logits;
}

// query_prefixes and parse_query_prefix are inverses; anything else parses to nothing.
TEST(Inference, QueryPrefixesParseBackToTheirQueries) {
  for (const int hops : {1, 2, 12})
    for (const bool cot : {false, true}) {
      const auto prefixes = model::query_prefixes(hops, cot, {"abcXYZ", "Q"});
      for (const auto& [prefix, key] : {std::pair{prefixes[0], "abcXYZ"}, std::pair{prefixes[1], "Q"}}) {
        const auto q = model::parse_query_prefix(prefix);
        ASSERT_TRUE(q.has_value()) << prefix;
        EXPECT_EQ(q->hops, hops);
        EXPECT_EQ(q->cot, cot);
        EXPECT_EQ(q->key, key);
      }
    }
  // After answered lines of the same block, the key is the last line's.
  const auto later = model::parse_query_prefix(model::completion_header(2, true) + "aa = 'bb = cc'\ndd = '");
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->key, "dd");
  EXPECT_FALSE(model::parse_query_prefix("dd = '").has_value()) << "no header";
  EXPECT_FALSE(model::parse_query_prefix(model::completion_header(1, false) + "dd = ").has_value()) << "no opening quote";
  EXPECT_FALSE(model::parse_query_prefix("COMPLETION:\nHops=1\n\nCoT=Maybe\n\ndd = '").has_value()) << "not a header";
  EXPECT_FALSE(model::parse_query_prefix(model::completion_header(12345, false) + "dd = '").has_value()) << "more hops than read";
}

// Drafts right, wrong, partly right, longer than the answer or empty: the answers stay greedy_decode's,
// at every byte limit, and right drafts save calls.
TEST(Inference, DraftedDecodeIsGreedyWhateverTheDrafts) {
  std::mt19937_64 rng(17);
  std::vector<std::string> prefixes;
  for (int i = 0; i < 24; ++i) prefixes.push_back("COMPLETION:\nkey" + std::to_string(i) + " = '");
  for (const int max_bytes : {0, 1, 2, 5, 40}) {
    const auto greedy = model::greedy_decode(prefixes, max_bytes, stand_in_logits);
    for (const double right : {0.0, 0.5, 1.0}) {  // the share of guesses that are the true continuation
      model::DecodeCalls calls;
      const auto drafted = model::drafted_greedy_decode(prefixes, max_bytes, [&](const std::vector<std::string>& texts) {
        model::DraftedStep out{stand_in_logits(texts), {}};
        for (const auto& text : texts) {
          std::string guess, t = text;
          const std::size_t length = rng() % 30;
          const bool true_one = std::uniform_real_distribution<double>(0, 1)(rng) < right;
          for (std::size_t k = 0; k < length; ++k) {
            const char c = true_one ? stand_in_next(t) : static_cast<char>('a' + rng() % 26);
            guess += c;  // a true guess may run past the closing quote: the decoder must stop there
            t += c;
          }
          out.guesses.push_back(guess);
        }
        return out;
      }, &calls);
      EXPECT_EQ(drafted, greedy) << "max_bytes " << max_bytes << ", right guesses " << right;
      std::size_t longest = 0;
      for (const auto& a : greedy) longest = std::max(longest, a.size());
      if (right == 1.0 && max_bytes == 40) {
        EXPECT_LT(calls.calls, longest) << "right drafts should need fewer calls than bytes";
      }
    }
  }
  // First drafts (the engine's from its index) are checked like any other: right, wrong or too long.
  auto no_guesses = [&](const std::vector<std::string>& texts) {
    return model::DraftedStep{stand_in_logits(texts), std::vector<std::string>(texts.size())};
  };
  for (const int max_bytes : {0, 3, 40}) {
    std::vector<std::string> first;
    for (std::size_t i = 0; i < prefixes.size(); ++i)
      first.push_back(i % 3 == 0 ? "qqqq" : model::greedy_decode({prefixes[i]}, 40, stand_in_logits)[0] + "'zz");
    EXPECT_EQ(model::drafted_greedy_decode(prefixes, max_bytes, no_guesses, nullptr, first),
              model::greedy_decode(prefixes, max_bytes, stand_in_logits))
        << "max_bytes " << max_bytes;
  }
  // Right first drafts: one call answers everything. With a window of 3 bytes a call keeps 3 draft bytes
  // and the model's next one, so an answer of L bytes and its closing quote take ceil((L + 1) / 4) calls.
  std::vector<std::string> right_first;
  std::size_t longest = 0;
  for (const auto& answer : model::greedy_decode(prefixes, 200, stand_in_logits)) {
    right_first.push_back(answer);
    longest = std::max(longest, answer.size());
  }
  ASSERT_LT(longest, 128u) << "the stand-in should end its answers within one default draft window here";
  model::DecodeCalls one, windowed;
  EXPECT_EQ(model::drafted_greedy_decode(prefixes, 200, no_guesses, &one, right_first),
            model::greedy_decode(prefixes, 200, stand_in_logits));
  EXPECT_EQ(one.calls, 1u);
  EXPECT_EQ(model::drafted_greedy_decode(prefixes, 200, no_guesses, &windowed, right_first, 3),
            model::greedy_decode(prefixes, 200, stand_in_logits));
  EXPECT_EQ(windowed.calls, (longest + 1 + 3) / 4);
  EXPECT_THROW(model::drafted_greedy_decode(prefixes, 4, [&](const std::vector<std::string>& texts) {
                 return model::DraftedStep{stand_in_logits(texts), std::vector<std::string>(texts.size())};
               }, nullptr, {"one draft"}),
               std::invalid_argument);
  // A step that loses track of its rows is a bug, not an answer.
  EXPECT_THROW(model::drafted_greedy_decode(prefixes, 4, [&](const std::vector<std::string>& texts) {
                 return model::DraftedStep{stand_in_logits(texts), {}};
               }),
               std::logic_error);
}

// Encoding the prompt in chunks of any size gives the same memory and the same answers.
TEST(Inference, ChunkedPromptEqualsWholePrompt) {
  auto loaded = train::load_model(trained_tiny_dir(), torch::kCPU);
  const auto sample = train::make_sample(250, 1, 4, false, 3, 51, loaded.config.model.max_run);
  const std::string prompt = sample.text.substr(0, sample.text.find("\nCOMPLETION:") + 1);
  const auto parsed = bench::parse_completion(sample.text.substr(prompt.size()));
  std::vector<std::string> prefixes;
  for (const auto& q : parsed.queries) prefixes.push_back(model::completion_header(1, false) + q.key + " = '");
  model::PromptOptions whole;
  whole.chunk_bytes = prompt.size();
  const auto reference = model::encode_prompt(loaded.model, prompt, whole);
  const auto expected = model::greedy_answers(loaded.model, reference, prefixes, 8);
  for (std::size_t chunk : {1u, 7u, 64u}) {
    model::PromptOptions options;
    options.chunk_bytes = chunk;
    const auto memory = model::encode_prompt(loaded.model, prompt, options);
    ASSERT_EQ(memory.positions, reference.positions);
    EXPECT_TRUE(torch::allclose(memory.memory.keys, reference.memory.keys, 1e-5, 1e-5)) << "chunk " << chunk;
    EXPECT_TRUE(torch::allclose(memory.memory.log_gate, reference.memory.log_gate, 1e-5, 1e-5));
    // Values are compared as read by each position (row numbering differs between chunkings).
    auto read = [](const model::PromptMemory& m) {
      return m.memory.run_values[0].index_select(0, m.memory.value_rows[0]);
    };
    EXPECT_TRUE(torch::equal(read(memory), read(reference))) << "chunk " << chunk;
    EXPECT_EQ(model::greedy_answers(loaded.model, memory, prefixes, 8), expected) << "chunk " << chunk;
  }
  for (std::size_t i = 0; i < parsed.queries.size(); ++i) EXPECT_EQ(expected[i], parsed.queries[i].answer);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A tiny lexer model saved in `dir`; returns its model.pt's bytes, for the tests that corrupt the archive.
std::string save_tiny_model(const std::string& dir) {
  const auto config = train::load_run_config("tiny");
  model::HashHopTransformer net(config.model);
  train::save_model(dir, config, net);
  return read_bytes(dir + "/model.pt");
}

// Writes `bytes` over the file at `offset` (the rest stays as it was).
void overwrite_at(const std::string& path, std::size_t offset, const std::string& bytes) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

// Flips bytes inside a parameter's data as stored in PATH (found by its first 16 bytes).
void flip_parameter_bytes(const std::string& path, const torch::Tensor& param) {
  std::string bytes = read_bytes(path);
  const auto cpu = param.detach().contiguous();
  const std::string needle(static_cast<const char*>(cpu.data_ptr()), 16);
  const auto at = bytes.find(needle);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] ^= 0x40;  // one bit of one float: a small, plausible-looking corruption
  std::ofstream(path, std::ios::binary) << bytes;
}

// A randomly initialised matrix: its first bytes are unique in the file (a zero bias would not be).
torch::Tensor some_matrix(model::HashHopTransformer& net) {
  for (const auto& item : net->named_parameters())
    if (item.value().dim() == 2 && item.value().numel() >= 4 && item.value().std().item<double>() > 0) return item.value();
  return {};
}

// A file size limit makes writes fail like a full disk, without root or a tmpfs.
struct FileSizeLimit {
  rlimit saved{};
  explicit FileSizeLimit(rlim_t bytes) {
    std::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &saved);
    rlimit limit = saved;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() { ::setrlimit(RLIMIT_FSIZE, &saved); }
};

TEST(Checkpoint, FlippedWeightBytesAreDetected) {
  torch::manual_seed(3);
  auto config = train::load_run_config("tiny");
  model::HashHopTransformer net(config.model);
  const std::string dir = temp_dir("flipped");
  train::save_model(dir, config, net);
  flip_parameter_bytes(dir + "/model.pt", some_matrix(net));
  EXPECT_NE(error_of([&] { train::load_model(dir, torch::kCPU); }).find("model.pt: checksum mismatch"), std::string::npos);
}

TEST(Checkpoint, FlippedCheckpointBytesAreDetected) {
  auto config = train::load_run_config("tiny");
  config.train.steps = 4;
  train::TrainOptions options;
  options.out_dir = temp_dir("flipped_checkpoint");
  options.quiet = true;
  options.stop_after = 2;
  train::train(config, options);
  auto loaded = train::load_model(options.out_dir, torch::kCPU);
  flip_parameter_bytes(options.out_dir + "/checkpoint.pt", some_matrix(loaded.model));
  const std::string error = error_of([&] { train::train(config, options); });
  EXPECT_NE(error.find("checkpoint.pt: checksum mismatch"), std::string::npos) << error;
}

// Every byte of a saved file is covered: entries by their CRCs and tensors by the checksum, and the rest
// (local headers' padding, time stamps, directory fields LibTorch never reads) by the seal, whose absence
// let CI's flip of checkpoint.pt pass about one run in ten. Each position, flipped alone, is refused.
TEST(Checkpoint, EveryFlippedByteIsRefused) {
  // A small module, so that every position can be tried in well under a second; its file has the same
  // layout as a model's (padded local headers, a version record, zip64 records).
  torch::manual_seed(5);
  torch::nn::Linear small(5, 3);
  const std::string path = temp_dir("every_byte.pt");
  train::save_weights(*small, path);
  const std::string saved = read_bytes(path);
  ASSERT_EQ(saved.substr(saved.size() - 22, 14), std::string(io::kSealPrefix));
  EXPECT_NO_THROW(io::check_zip_archive(path));
  std::size_t accepted = 0, first_accepted = 0;
  for (std::size_t at = 0; at < saved.size(); ++at) {
    overwrite_at(path, at, std::string(1, static_cast<char>(saved[at] ^ 0x5a)));
    try {
      io::check_zip_archive(path);  // no INFLATE: the deflated TorchScript entry is left to the seal
      if (accepted++ == 0) first_accepted = at;
    } catch (const std::runtime_error&) {
    }
    overwrite_at(path, at, saved.substr(at, 1));
  }
  EXPECT_EQ(accepted, 0u) << "of " << saved.size() << " bytes; the first at offset " << first_accepted;
  // A file sealed by nobody else: a comment that is not our seal is refused, as is a seal on other bytes.
  std::string other = saved;
  other.replace(other.size() - 8, 8, "00000000");
  std::ofstream(path, std::ios::binary | std::ios::trunc) << other;
  EXPECT_NE(error_of([&] { io::check_zip_archive(path); }).find("checksum mismatch"), std::string::npos);
}

// An entry marked encrypted (what fuzz_checkpoint made of a valid model.pt by one flipped flag bit) is refused by
// the archive check with one line: LibTorch's own reader throws on it after allocating state it never frees.
TEST(Checkpoint, EncryptedArchiveEntryIsRefused) {
  const std::string dir = temp_dir("encrypted");
  const std::string bytes = save_tiny_model(dir);
  const auto header = bytes.rfind(std::string("PK\x01\x02", 4));  // the last central directory header
  ASSERT_NE(header, std::string::npos);
  // General-purpose flags: bit 0 = encrypted.
  overwrite_at(dir + "/model.pt", header + 8, std::string(1, static_cast<char>(bytes[header + 8] | 1)));
  const std::string error = error_of([&] { train::load_model(dir, torch::kCPU); });
  EXPECT_NE(error.find("model.pt"), std::string::npos) << error;
  EXPECT_NE(error.find("encrypted entry"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

// LibTorch's reader leaks its zip state when it throws on a missing or unsupported version record, so
// the archive check refuses those first (the first case was found by CI's fuzz smoke).
TEST(Checkpoint, ArchiveWithoutAReadableVersionIsRefused) {
  const std::string dir = temp_dir("version");
  const std::string saved = save_tiny_model(dir);
  // Same-length renames of entries, in their local and central headers (names are outside the CRCs).
  const auto rewrite = [&](const std::vector<std::pair<std::string, std::string>>& edits) {
    std::string bytes = saved;
    for (const auto& [from, to] : edits)
      for (auto at = bytes.find(from); at != std::string::npos; at = bytes.find(from, at + to.size())) bytes.replace(at, from.size(), to);
    std::ofstream(dir + "/model.pt", std::ios::binary | std::ios::trunc) << bytes;
    return error_of([&] { train::load_model(dir, torch::kCPU); });
  };
  const std::string missing = rewrite({{"archive/version", "archive/versiom"}});
  EXPECT_NE(missing.find("model.pt: not a valid archive (no version record (archive/version))"), std::string::npos) << missing;
  const std::string outside = rewrite({{"archive/", "archive_"}, {"data/", "data_"}});
  EXPECT_NE(outside.find("not inside a folder"), std::string::npos) << outside;
  EXPECT_EQ(outside.find('\n'), std::string::npos) << outside;
  // miniz finds names without regard to case, and LibTorch cuts them at a NUL: either could make it read
  // another record than the check did.
  const std::string twice = rewrite({{"archive/data/10", "archive/VERSION"}});
  EXPECT_NE(twice.find("a second version record"), std::string::npos) << twice;
  const std::string nul = rewrite({{"archive/data/1", std::string("archive/dat\0/1", 14)}});
  EXPECT_NE(nul.find("name contains a NUL byte"), std::string::npos) << nul;
}

// LibTorch writes zip64 records into every file, and miniz takes the entry count from them whenever their
// locator is there. A zip64 record saying "no entries" under an intact end record made LibTorch's reader
// throw after allocating state it never frees (found by CI's fuzz smoke; the seed is in the corpus now):
// the archive check reads the zip64 record too and refuses it with one line.
TEST(Checkpoint, Zip64RecordWithNoEntriesIsRefused) {
  const std::string dir = temp_dir("zip64");
  const std::string bytes = save_tiny_model(dir);
  const auto record = bytes.rfind(std::string("PK\x06\x06", 4));  // the zip64 end of central directory record
  ASSERT_NE(record, std::string::npos) << "LibTorch wrote no zip64 record";
  for (const std::size_t field : {24, 32})  // entries on this disk, entries in all: 8 bytes each
    overwrite_at(dir + "/model.pt", record + field, std::string(8, '\0'));
  const std::string error = error_of([&] { train::load_model(dir, torch::kCPU); });
  EXPECT_NE(error.find("model.pt: not a valid archive (no entries)"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

TEST(Checkpoint, ConfigThatDisagreesWithTheWeightsIsOneLine) {
  auto config = train::load_run_config("tiny");
  model::HashHopTransformer net(config.model);
  const std::string dir = temp_dir("mismatch");
  train::save_model(dir, config, net);
  auto other = config;
  other.model.model_dim *= 2;
  std::ofstream(dir + "/config.json") << train::to_json(other);
  const std::string error = error_of([&] { train::load_model(dir, torch::kCPU); });
  EXPECT_NE(error.find("config.json needs"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

TEST(Checkpoint, FullDiskIsOneLineAndLeavesNoPartialFile) {
  auto config = train::load_run_config("tiny");
  model::HashHopTransformer net(config.model);
  auto optimizer = torch::optim::AdamW(net->parameters());
  const std::string dir = temp_dir("full_disk");
  std::filesystem::create_directories(dir);
  std::string error;
  {
    FileSizeLimit limit(4096);
    error = error_of([&] { train::save_checkpoint(dir, *net, optimizer, 1); });
  }
  EXPECT_TRUE(error.find("checkpoint.pt: write failed") != std::string::npos || error.find("checkpoint.pt: cannot write") != std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_TRUE(std::filesystem::is_empty(dir)) << "a partial checkpoint was left behind";
}

TEST(Train, FailedFreshRunLeavesNoFiles) {
  auto config = train::load_run_config("tiny");
  config.train.steps = 2;
  train::TrainOptions options;
  options.out_dir = temp_dir("failed_run");
  options.quiet = true;
  {
    FileSizeLimit limit(4096);
    EXPECT_THROW(train::train(config, options), std::runtime_error);
  }
  EXPECT_FALSE(std::filesystem::exists(options.out_dir)) << "left behind: " << [&] {
    std::string names;
    for (const auto& entry : std::filesystem::directory_iterator(options.out_dir)) names += entry.path().filename().string() + " ";
    return names;
  }();
}

TEST(Train, FailedRunKeepsFilesItDidNotCreate) {
  auto config = train::load_run_config("tiny");
  config.train.steps = 2;
  train::TrainOptions options;
  options.out_dir = temp_dir("failed_run_keeps");
  options.quiet = true;
  std::filesystem::create_directories(options.out_dir);
  std::ofstream(options.out_dir + "/model.pt") << "the user's model";
  {
    FileSizeLimit limit(4096);
    EXPECT_THROW(train::train(config, options), std::runtime_error);
  }
  EXPECT_EQ(read_bytes(options.out_dir + "/model.pt"), "the user's model");
  EXPECT_FALSE(std::filesystem::exists(options.out_dir + "/metrics.jsonl"));
}

TEST(Config, CurriculumAndNumbersAreChecked) {
  const auto error = [](const std::string& text) { return error_of([&] { train::run_config_from_json(text, "c.json"); }); };
  EXPECT_NE(error(R"({"train": {"curriculum": [{"from_step": 0, "hops": [0]}]}})").find("curriculum[0]: field 'hops': must be >= 1"),
            std::string::npos);
  EXPECT_NE(error(R"({"model": {"max_hops": 2}, "train": {"curriculum": [{"from_step": 0, "hops": [3]}]}})")
                .find("field 'hops': 3 is more than the model's max_hops 2"),
            std::string::npos);
  EXPECT_NE(error(R"({"train": {"curriculum": [{"from_step": 0, "min_chars": -5}]}})").find("field 'min_chars': expected an integer"),
            std::string::npos);
  EXPECT_NE(error(R"({"train": {"lr": 1e999}})").find("c.json: field 'lr': number out of range"), std::string::npos)
      << error(R"({"train": {"lr": 1e999}})");
  EXPECT_NE(error(R"({"train": {"lr": 0.1, "lr": 0.2}})").find("field 'lr': appears twice"), std::string::npos);
  EXPECT_NE(error(R"({"model": {"model_dim": 3000000000}})").find("field 'model_dim'"), std::string::npos);
  EXPECT_NE(error(R"({"model": {"model_dim": 1000000}})").find("field 'model_dim': must be in [1, 16384]"), std::string::npos);
}

TEST(Config, JsonRoundTripAndFieldErrors) {
  const auto h100 = train::load_run_config("h100");
  EXPECT_EQ(train::to_json(train::run_config_from_json(train::to_json(h100), "x.json")), train::to_json(h100));
  try {
    train::run_config_from_json(R"({"train": {"batch": "big"}})", "bad.json");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json (train): field 'batch'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(train::run_config_from_json(R"({"base": "nope"})", "b.json"), std::invalid_argument);
  EXPECT_THROW(train::load_run_config("no-such-preset-or-file"), std::invalid_argument);
  EXPECT_DOUBLE_EQ(train::learning_rate(h100.train, 0), h100.train.lr / h100.train.warmup);
  EXPECT_NEAR(train::learning_rate(h100.train, h100.train.steps), h100.train.lr * h100.train.min_lr_fraction, 1e-12);
}

}  // namespace
}  // namespace hashhop
