// The model's parameter-free front end: scans bytes once and gives every position its structure
// (letter runs, the last two completed runs, place in the line, the completion header's Hops/CoT).
// Streams: a LexState carries everything across chunks, so chunked and whole-text scans agree.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace hashhop::model {

inline constexpr int kVocab = 128;        // ASCII; other bytes map to 0
inline constexpr int kLetters = 52;       // a-z, A-Z: the hash alphabet
inline constexpr int kMaxEqInLine = 7;    // '=' signs counted per line, clamped
inline constexpr int kMaxQuotesInLine = 3;
inline constexpr int kMaxHopsFeature = 15;

// Index of c in the hash alphabet (a..z = 0..25, A..Z = 26..51), or -1.
inline int letter_index(unsigned char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
  return -1;
}

// Where a letter lands in a run's one-hot table [max_run·52]: letters past max_run share the last slot.
inline std::int32_t letter_slot(int position_in_run, int letter, int max_run) {
  return (position_in_run < max_run - 1 ? position_in_run : max_run - 1) * kLetters + letter;
}

// Everything the scan needs to continue where the previous chunk stopped.
struct LexState {
  int open_run_len = 0;      // letters of the run still open at the chunk end
  int eq_in_line = 0;
  int quotes_in_line = 0;
  int hops = 0;              // value of the last "Hops=N" (0 = none seen)
  int cot = 0;               // last "CoT=": 0 none, 1 False, 2 True
  int header_field = 0;      // 1 right after "Hops=", 2 right after "CoT=" (header recogniser)
  char last_word[5] = {};    // first letters of the open/last run, to recognise "Hops" and "CoT"
  int last_word_len = 0;
  std::uint64_t position = 0;        // bytes scanned so far
  std::uint64_t completed_runs = 0;  // letter runs closed so far
};

// Per-position structure of one chunk. Run-table indices: 0 = the state's second-last completed run,
// 1 = its last completed run, 2 + r = run r of this chunk (run 0 continues the state's open run when
// the chunk starts inside a run).
struct LexedChunk {
  std::vector<std::uint8_t> byte;          // token id (0..127)
  std::vector<std::int32_t> letter_slot;   // position in run · 52 + letter, or -1
  std::vector<std::int32_t> run_of;        // chunk run of a letter, or -1
  std::vector<std::int32_t> last_run;      // run-table index of the last completed run (strictly before t)
  std::vector<std::int32_t> prev_run;      // run-table index of the one before it
  std::vector<std::uint8_t> run_len;       // letters of the open run including t (0 if t is no letter), clamped to max_run
  std::vector<std::uint8_t> eq_in_line;    // '=' in this line up to and including t
  std::vector<std::uint8_t> quotes_in_line;
  std::vector<std::uint8_t> hops;
  std::vector<std::uint8_t> cot;
  int n_runs = 0;                  // runs touched by this chunk
  bool first_run_continues = false;  // run 0 began in an earlier chunk
  std::int32_t end_last_run = 1;   // run-table indices of the state's last two runs after this chunk
  std::int32_t end_prev_run = 0;
  bool ends_in_run = false;        // run n_runs-1 is still open at the chunk end

  std::size_t size() const { return byte.size(); }
};

// Scans `text` continuing from `state` (updated in place). max_run: positions within a run are
// clamped to max_run-1 for letter slots (longer runs share the last slot).
LexedChunk lex_chunk(std::string_view text, LexState& state, int max_run);

}  // namespace hashhop::model
