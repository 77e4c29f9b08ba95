// Byte scan behind the model's structural features (see lexer.h). Plain C++ so the trainer, the
// engine and the tests share one definition of "run", "line" and "header".
#include "hashhop/model/lexer.h"

#include <algorithm>
#include <cstring>

namespace hashhop::model {
namespace {

std::uint8_t clamp_u8(int value, int max) { return static_cast<std::uint8_t>(std::min(value, max)); }

bool last_word_is(const LexState& s, const char* word) {
  const int n = static_cast<int>(std::strlen(word));
  return s.last_word_len == n && std::memcmp(s.last_word, word, n) == 0;
}

}  // namespace

LexedChunk lex_chunk(std::string_view text, LexState& state, int max_run) {
  LexedChunk out;
  const std::size_t n = text.size();
  out.byte.resize(n);
  out.letter_slot.resize(n);
  out.run_of.resize(n);
  out.last_run.resize(n);
  out.prev_run.resize(n);
  out.run_len.resize(n);
  out.eq_in_line.resize(n);
  out.quotes_in_line.resize(n);
  out.hops.resize(n);
  out.cot.resize(n);

  std::int32_t last = 1, prev = 0;  // run-table indices of the last two completed runs
  int current_run = -1;             // chunk run index of the open run
  if (state.open_run_len > 0) {
    current_run = 0;
    out.n_runs = 1;
    out.first_run_continues = true;
  }
  for (std::size_t t = 0; t < n; ++t) {
    const unsigned char c = static_cast<unsigned char>(text[t]);
    out.byte[t] = c < kVocab ? c : 0;
    const int letter = letter_index(c);
    if (letter >= 0) {
      if (state.open_run_len == 0) {
        current_run = out.n_runs++;
        state.last_word_len = 0;
      }
      if (state.last_word_len < static_cast<int>(sizeof(state.last_word))) state.last_word[state.last_word_len++] = c;
      out.letter_slot[t] = letter_slot(state.open_run_len, letter, max_run);
      out.run_of[t] = current_run;
      ++state.open_run_len;
      if (state.header_field == 2) state.cot = (c == 'T') ? 2 : 1;  // "CoT=True" / "CoT=False"
      state.header_field = 0;
    } else {
      const bool touches_word = state.open_run_len > 0;
      if (touches_word) {  // a non-letter closes the open run
        prev = last;
        last = 2 + current_run;
        state.open_run_len = 0;
        ++state.completed_runs;
      }
      out.letter_slot[t] = -1;
      out.run_of[t] = -1;
      if (c == '=') {
        ++state.eq_in_line;
        // "Hops=" and "CoT=" only count when '=' touches the word, as in the completion header.
        state.header_field = !touches_word ? 0 : last_word_is(state, "Hops") ? 1 : last_word_is(state, "CoT") ? 2 : 0;
        if (state.header_field == 1) state.hops = 0;
      } else if (c >= '0' && c <= '9' && state.header_field == 1) {
        state.hops = std::min(state.hops * 10 + (c - '0'), kMaxHopsFeature);
      } else {
        state.header_field = 0;
      }
      if (c == '\'') ++state.quotes_in_line;
    }
    out.last_run[t] = last;
    out.prev_run[t] = prev;
    out.run_len[t] = clamp_u8(state.open_run_len, max_run);
    out.eq_in_line[t] = clamp_u8(state.eq_in_line, kMaxEqInLine);
    out.quotes_in_line[t] = clamp_u8(state.quotes_in_line, kMaxQuotesInLine);
    out.hops[t] = clamp_u8(state.hops, kMaxHopsFeature);
    out.cot[t] = static_cast<std::uint8_t>(state.cot);
    if (c == '\n') {  // the newline still shows the line it ends; the next line starts fresh
      state.eq_in_line = 0;
      state.quotes_in_line = 0;
    }
  }
  out.end_last_run = last;
  out.end_prev_run = prev;
  out.ends_in_run = state.open_run_len > 0;
  state.position += n;
  return out;
}

}  // namespace hashhop::model
