// The long-context engine: streams a prompt of any length through the model's scan, keeps only the
// reference points the hash gate selects (in a ReferenceStore) and answers queries by index lookup.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "hashhop/attn/retrieval.h"
#include "hashhop/engine/gate_cache.h"
#include "hashhop/engine/reference_store.h"
#include "hashhop/model/hashhop_model.h"
#include "hashhop/model/lexer.h"

namespace hashhop::dist {
class ProcessGroup;
}

namespace hashhop::engine {

// Context parallel: a boundary's scan state lay beyond the halo (a line longer than halo_bytes). Every
// rank throws it from the same finish_prompt(), so all can retry with a longer halo together.
class HaloTooShort : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct EngineOptions {
  std::size_t chunk_bytes = 1 << 20;  // bytes lexed per step of the scan (memory: ~30 bytes each)
  double gate_threshold = 0.5;        // positions with σ(gate) above it become reference points
  std::size_t max_candidates = 64;    // entries one lookup may read (a HashHop key has exactly one)
  std::size_t background_samples = 256;  // entries, and dropped positions, standing in for all the others
  bool background_on_hits = false;  // false: a lookup that finds its key reads only that bucket
  // How a hop reads what the index found (candidates, completion, background): attn::make_retriever's
  // name. "dense" reads all of it, as the full model does; the others select among it first.
  std::string retrieval = "dense";
  attn::RetrieverOptions retrieval_options;
  // Context parallel: bytes before its shard a rank scans (recording nothing) to learn the scan state at
  // its first byte; the ranks then check that state against the previous rank's last one.
  std::size_t halo_bytes = 64 << 10;
  // answer() checks drafts whole, one call each (model::drafted_greedy_decode): the answer the index's
  // chain of entries gives for the query's key before the first call, then the rest of the hash each
  // row's read copies. The answers are the model's greedy ones either way, usually in one call instead
  // of one per answer byte. Context parallel: rank 0 drafts from its own shard's entries only (a key held
  // elsewhere gets no index draft; only speed differs).
  bool drafts = true;
};

// Context parallel: the bytes [begin, end) of a `total`-byte prompt that rank `rank` of `ranks` holds
// (contiguous, equal to within a byte), and where its halo starts.
struct Shard {
  std::uint64_t halo_begin = 0, begin = 0, end = 0;
};
Shard shard_of(std::uint64_t total, int rank, int ranks, std::uint64_t halo_bytes);

struct EngineStats {
  std::uint64_t bytes = 0;             // prompt bytes scanned
  std::uint64_t gated_positions = 0;   // positions the gate kept
  std::uint64_t reference_points = 0;  // store entries: kept positions with the same two runs merge
  std::uint64_t lookups = 0;           // index lookups made by answer(), draft rows included
  std::uint64_t decode_calls = 0;      // model calls answer() made (without drafts: the longest answer's
                                       // bytes and its closing quote, unless the byte limit ends it)
  std::uint64_t misses = 0;            // lookups that found no entry (the prompt then adds nothing);
                                       // hops past a chain's end miss by design (the hop mix skips them)
  std::uint64_t first_hop_misses = 0;  // misses of the query's own hash
  std::uint64_t truncated = 0;         // lookups that found more than max_candidates entries
  std::uint64_t gate_evaluations = 0;  // distinct feature tuples the model was asked for its gate
  std::uint64_t dropped_positions = 0;  // positions the gate dropped (sampled for the background)
  StoreBytes store;                    // host bytes held by the reference points
};

// What the engine computes. The model's per-position gate depends only on the lexer's features
// (GateCache), its key only on the letters of the run before last and its value only on the last run's
// letters. The engine stores exactly those for the positions the gate keeps, merging positions that
// share both runs (one softmax term, gates added). A hop reads one softmax over:
//  - candidates: the entries whose key letters equal the letters the hop asks for (hop 0: the last
//    completed run; later hops: the argmax letters of the previous read), found by the index;
//  - the completion's own positions;
//  - on a miss (or always, with background_on_hits) the background: every other entry, represented
//    by an evenly spaced sample of S entries weighted N/S, and every position the gate dropped,
//    represented by a hashed sample of fewer than 2S of them weighted by how many each stands for.
// With background_on_hits and samples that hold everything, this is exactly the full model over every
// position (tested). By default a hit reads only its bucket, as in bucket hash attention: the millions
// of non-matching keys of a long prompt do not dilute it (the full model would add their mass; a
// 256-entry sample estimates that mass too noisily to be worth adding). A miss (hops past a chain's
// end) still needs the diffuse read the full model would give there, so that the hop mix sees it.
//
// Context parallel (docs/distributed.md): constructed with a process group and the prompt's length, each
// rank keeps the reference points of its shard only. Every rank streams the whole prompt through
// prefill() (bytes outside its halo and shard are skipped), then all call finish_prompt(): the ranks
// check each boundary's scan state, merge gates across boundaries and gather the background, so that
// rank 0 then answers exactly what one engine over the whole prompt answers. While rank 0 calls answer()
// (each hop's lookup is broadcast; every rank returns its entries, merged in prompt order), the others
// call serve(), which returns when rank 0 calls end_answers().
class Engine {
 public:
  explicit Engine(model::HashHopTransformer model, EngineOptions options = {});
  Engine(model::HashHopTransformer model, dist::ProcessGroup& group, std::uint64_t prompt_bytes, EngineOptions options = {});

  // Appends prompt text; call as often as needed (the scan carries its state across calls).
  void prefill(std::string_view text);
  // Context parallel only, on every rank after the whole prompt went through prefill(). Throws
  // HaloTooShort when a boundary's state was not reached within the halo.
  void finish_prompt();

  // Greedy answers for completion prefixes ("...KEY = '"), as model::greedy_answers gives them.
  // Context parallel: rank 0 only, after finish_prompt().
  std::vector<std::string> answer(const std::vector<std::string>& prefixes, int max_bytes);
  // A guess at a completion prefix's answer ("COMPLETION:\nHops=N ... KEY = '"), from the index alone:
  // each hop follows the entry of its hash with the highest gate, and with CoT every hop's hash is written,
  // joined by " = ". "" when the prefix is not of that form or the key is not in the index.
  std::string index_draft(const std::string& prefix) const;
  void serve();        // context parallel, ranks other than 0: answer rank 0's lookups until end_answers()
  void end_answers();  // context parallel, rank 0: releases the other ranks from serve()

  EngineStats stats() const;
  const ReferenceStore& store() const { return store_; }

  struct Dropped {  // a position the gate dropped, kept as a sample
    std::uint64_t position = 0;
    std::string key, value;
    float log_gate = 0;
  };
  struct BackgroundSample {  // what a miss reads besides its candidates (background() makes it tensors)
    std::vector<std::uint64_t> ids;  // sampled entries (global ids, ascending)
    std::vector<std::string> keys, values;
    std::vector<float> log_gates;
    std::uint64_t entries = 0;  // entries the sample stands for
    std::vector<Dropped> dropped;
    std::uint64_t dropped_seen = 0;
  };
  // The background as built now (context parallel: on rank 0, after finish_prompt()).
  BackgroundSample background_sample() const { return group_ == nullptr ? local_background() : sample_; }

 private:
  struct Run {  // a completed run the next chunk may refer to
    std::uint64_t id = 0;
    std::string letters;
  };
  struct Found {  // one lookup's entries (global ids: prompt order), at most max_candidates
    std::size_t total = 0;
    std::vector<std::uint64_t> ids;
    std::vector<std::string> values;
    std::vector<float> log_gates;
  };
  void scan(std::string_view chunk, bool record);
  void feed_shard(std::string_view text);
  std::uint32_t stored_run(std::uint64_t id, std::string_view letters);
  BackgroundSample local_background() const;
  // The dropped sample's rule, one engine's and the merged ranks': a position is kept while mix64 of it is
  // a multiple of the stride; thin_dropped keeps those, doubling the stride while 2S or more remain.
  static bool on_stride(std::uint64_t position, std::uint64_t stride);
  void thin_dropped(std::vector<Dropped>& sample, std::uint64_t& stride) const;
  std::vector<Found> lookup(const std::vector<std::string>& asked);
  std::vector<Found> local_lookup(const std::vector<std::string>& asked) const;
  static std::string encode_found(const std::vector<Found>& found);
  std::string scan_state(bool with_letters) const;
  void set_final_state(const std::string& state, std::uint64_t completed_runs);
  const model::Memory& background();
  torch::Tensor read_candidates(int hop, const std::vector<std::string>& asked, const torch::Tensor& q,
                                const model::Memory& completion, const torch::Tensor& completion_limit);
  friend class IndexHopReader;  // answer()'s model::HopReader: an index lookup, then read_candidates
  model::HashHopTransformer model_;
  EngineOptions options_;
  ReferenceStore store_;
  GateCache gates_;
  model::LexState state_;
  Run prev_, last_;          // the scan's last two completed runs
  std::string open_letters_; // letters of the run open at the last chunk's end
  std::uint64_t last_entry_prev_ = 0, last_entry_last_ = 0;  // runs of the newest entry
  bool has_entry_ = false;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> recent_runs_;  // scan run id -> store run id
  bool newest_entry_local_ = false;  // the newest entry is in store_ (not on an earlier rank)
  std::vector<float> leading_merges_;  // gates of this shard's first positions that merge into that entry
  model::Memory background_;                   // batch 1, built from sample_
  std::vector<std::uint64_t> background_ids_;  // the sampled entries (global ids), ascending
  std::uint64_t background_built_at_ = ~0ull;  // stats_.bytes when background_ was built
  BackgroundSample sample_;                    // context parallel: gathered by finish_prompt()
  // Dropped positions whose mix64(position) is a multiple of dropped_stride_: a sample that shards
  // (each rank's sample holds every position of the merged one) and halves as it fills.
  std::vector<Dropped> dropped_;
  std::uint64_t dropped_seen_ = 0, dropped_stride_ = 1;
  // Context parallel.
  dist::ProcessGroup* group_ = nullptr;
  Shard shard_;
  std::uint64_t prompt_bytes_ = 0;   // the whole prompt's length (given to the constructor)
  std::uint64_t fed_ = 0;            // bytes of the prompt seen by prefill() so far
  std::string start_state_;          // scan_state() at the shard's first byte (as the halo left it)
  std::uint64_t start_runs_ = 0;     // state_.completed_runs there
  std::uint64_t entry_offset_ = 0;   // global id of store_'s entry 0
  bool finished_ = false;
  EngineStats stats_;
  std::shared_ptr<const attn::Retriever> retriever_;  // options_.retrieval
};

// Context parallel: every rank builds its shard of the text made of `pieces` (prefill, then finish_prompt).
// When a line is longer than options.halo_bytes (HaloTooShort, on every rank at once) all ranks rescan
// with an 8× longer halo, at most the whole text, which is always exact: any prompt one engine takes.
std::unique_ptr<Engine> prefill_sharded(model::HashHopTransformer model, const std::vector<std::string_view>& pieces,
                                        EngineOptions options, dist::ProcessGroup& group);

// Answers queries about a Magic-format prompt (without the "\n" before the completion) with the
// engine, in Magic's completion layout (what model::answer_queries gives with the dense path).
std::string answer_queries(model::HashHopTransformer& model, std::string_view prompt, int hops, bool cot,
                           const std::vector<std::string>& keys, const EngineOptions& options = {});
// The same with a context-parallel engine: every rank calls it with the same arguments; rank 0 gets the
// completion, the others "".
std::string answer_queries(model::HashHopTransformer& model, std::string_view prompt, int hops, bool cot,
                           const std::vector<std::string>& keys, const EngineOptions& options, dist::ProcessGroup& group);

}  // namespace hashhop::engine
