// Inference with the HashHop model: the prompt is encoded once (in chunks, optionally keeping only the
// positions the hash gate selects) and every query is decoded greedily against that memory.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hashhop/model/hashhop_model.h"
#include "hashhop/model/lexer.h"

namespace hashhop::model {

struct PromptOptions {
  std::size_t chunk_bytes = 1 << 16;  // bytes encoded per forward pass
  bool gated_only = false;            // keep only reference points (gate > gate_threshold)
  double gate_threshold = 0.5;
};

struct PromptMemory {
  Memory memory;          // batch 1
  LexState state;         // where the completion's scan continues
  RunCarry carry;
  std::int64_t bytes = 0;       // prompt bytes encoded
  std::int64_t positions = 0;   // memory positions kept
  std::int64_t runs = 0;        // run-table rows kept
};

// text should end where the completion starts (Magic's prompt plus "\n").
PromptMemory encode_prompt(HashHopTransformer& model, std::string_view text, const PromptOptions& options = {});

// Texts that continue a prompt, lexed from the prompt's end state and encoded as one batch.
struct Continuations {
  std::vector<LexedChunk> lexed;
  Encoded encoded;
  torch::Tensor last_position;  // [B, 1] int64: each text's last byte, whose next byte is predicted
};
Continuations encode_continuations(HashHopTransformer& model, const std::vector<std::string>& texts,
                                   const LexState& state, const RunCarry& carry);

// A greedy answer ends before a closing quote or a newline: the one stop rule of every decoder here.
inline bool ends_answer(char c) { return c == '\'' || c == '\n'; }

// Greedy decoding: appends to every prefix the argmax of next_logits(texts) ([B, 1, vocab]) until a
// closing quote or newline, at most max_bytes; returns what was appended. Shared by the dense path
// and the engine, which differ only in how the logits are computed.
using NextLogits = std::function<torch::Tensor(const std::vector<std::string>& texts)>;
std::vector<std::string> greedy_decode(const std::vector<std::string>& prefixes, int max_bytes,
                                       const NextLogits& next_logits);

// Greedy decoding that checks drafts. step(texts) returns each text's next-byte logits ([B, 1, vocab])
// and a guess of the bytes that text goes on to write, starting with the next one ("" for none). A call
// holds each unfinished text extended by every prefix of its draft, so one call checks a whole draft;
// a text keeps its draft up to the first byte the model would not write there, then that byte. Every
// kept byte is the argmax the model gives at its text, so the answers are greedy_decode's, as far as a
// row's logits do not depend on the other rows of its batch (the engine's candidate padding can change
// float rounding); a right draft turns one call per answer byte into one call for the whole draft.
struct DraftedStep {
  torch::Tensor logits;             // [B, 1, vocab]
  std::vector<std::string> guesses;  // per text: the bytes it is expected to write next, "" if unknown
};
using DraftedLogits = std::function<DraftedStep(const std::vector<std::string>& texts)>;
struct DecodeCalls {
  std::uint64_t calls = 0;  // step() calls
};
// first_drafts: a draft per prefix for the first call (none: the first call holds the prefixes alone).
// max_draft: the draft bytes one call checks per text (each is a row that re-encodes the whole text, so
// a long CoT draft is checked a window at a time rather than in rows that grow with its square).
std::vector<std::string> drafted_greedy_decode(const std::vector<std::string>& prefixes, int max_bytes,
                                               const DraftedLogits& step, DecodeCalls* counts = nullptr,
                                               std::vector<std::string> first_drafts = {}, std::size_t max_draft = 128);

// For each prefix (completion text up to and including "KEY = '"), the bytes the model writes up to
// its closing quote (not included), at most max_bytes.
std::vector<std::string> greedy_answers(HashHopTransformer& model, const PromptMemory& prompt,
                                        const std::vector<std::string>& prefixes, int max_bytes);

// "COMPLETION:\nHops=H\n\nCoT=X\n\n", the header the model reads hops and CoT from.
std::string completion_header(int hops, bool cot);

// What answering a query decodes from: the header, then "KEY = '" per key.
std::vector<std::string> query_prefixes(int hops, bool cot, const std::vector<std::string>& keys);
// The inverse: hops, CoT and key of a text ending in "KEY = '" on a line after a completion header (earlier
// answered lines may stand between); nullopt for any other text. Built on completion_header, so the two agree.
struct PrefixQuery {
  int hops = 0;
  bool cot = false;
  std::string key;
};
std::optional<PrefixQuery> parse_query_prefix(std::string_view prefix);
// The completion block in Magic's layout for these keys and answers (what the scorer reads).
std::string completion_text(int hops, bool cot, const std::vector<std::string>& keys,
                            const std::vector<std::string>& answers);
// The most bytes an answer may take: a hash and its " = " separator per hop with CoT, else one hash.
int answer_byte_limit(const ModelConfig& config, int hops, bool cot);

// Most hops a CoT query may ask for (each hop is written out, so the answer grows with it).
inline constexpr int kMaxCotHops = 1000;
// Throws std::invalid_argument "hops: ..." unless the model can answer: hops >= 1, at most max_hops
// without CoT and at most kMaxCotHops with it. The one check for eval, answer and engine-bench.
void check_query_hops(const ModelConfig& config, int hops, bool cot);
// Throws std::invalid_argument "hash_len: ..." for a query hash longer than max_run: the lexer model would
// answer it wrong (its run tables hold max_run letters), so eval and answer refuse it instead.
void check_query_keys(const ModelConfig& config, const std::vector<std::string>& keys);

}  // namespace hashhop::model

namespace hashhop::model {

// Answers queries about a Magic-format prompt (without the "\n" that precedes the completion) and
// returns a completion block in Magic's layout, ready for the scorer.
std::string answer_queries(HashHopTransformer& model, std::string_view prompt, int hops, bool cot,
                           const std::vector<std::string>& keys, const PromptOptions& options = {});

}  // namespace hashhop::model
