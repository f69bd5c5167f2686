// Shared by the randomised GoogleTest cases and the libFuzzer target: the
// properties every split must have, and synthetic tokenizer offsets.
#pragma once
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "splitter.hpp"
#include "utf8.hpp"

namespace ragd::testing {

// Whether bytes [b, e) of valid UTF-8 are all whitespace (str.isspace()).
inline bool all_space(std::string_view text, size_t b, size_t e) {
  for (; b < e; b += sequence_length(static_cast<unsigned char>(text[b])))
    if (!is_python_space(decode_at(text, b))) return false;
  return true;
}

// Returns an empty string when the chunks are consistent with the text,
// otherwise what is wrong: offsets agree in bytes and code points and never
// split a code point, chunks never go backwards, overlap at most `overlap`, stay within
// `max_size` code points (0: unchecked, for settings where LangChain emits
// oversized pieces), and together cover every non-whitespace character.
inline std::string check_chunks(std::string_view text, const std::vector<ChunkSpan>& chunks, size_t max_size,
                                size_t overlap) {
  const auto at_boundary = [&](size_t b) {
    return b == text.size() || (static_cast<unsigned char>(text[b]) & 0xC0) != 0x80;
  };
  const ChunkSpan* prev = nullptr;
  size_t covered = 0;  // bytes before this are in some chunk or whitespace
  for (const ChunkSpan& c : chunks) {
    if (!(c.begin < c.end && c.byte_begin < c.byte_end && c.byte_end <= text.size())) return "empty or out of range";
    if (!at_boundary(c.byte_begin) || !at_boundary(c.byte_end)) return "chunk splits a code point";
    if (count_code_points(text.substr(0, c.byte_begin)) != c.begin) return "begin does not match byte_begin";
    if (count_code_points(text.substr(c.byte_begin, c.byte_end - c.byte_begin)) != c.end - c.begin)
      return "length in code points does not match the bytes";
    if (max_size != 0 && c.end - c.begin > max_size) return "chunk longer than chunk_size";
    if (prev) {
      // Not strictly: with a large overlap LangChain can emit a chunk again
      // once stripping removes what was added to it.
      if (c.begin < prev->begin || c.end < prev->end) return "chunks out of order";
      if (prev->end > c.begin && prev->end - c.begin > overlap) return "overlap larger than chunk_overlap";
    }
    if (c.byte_begin > covered && !all_space(text, covered, c.byte_begin)) return "text left out of every chunk";
    covered = std::max(covered, c.byte_end);
    prev = &c;
  }
  if (!all_space(text, covered, text.size())) return "text after the last chunk left out";
  return {};
}

// What a subword tokenizer reports: each whitespace-free run is a word, cut
// into tokens of at most three code points (valid UTF-8 only).
inline Tokens subword_tokens(std::string_view text) {
  Tokens tokens;
  size_t cp = 0, start = 0;
  long long word = -1;
  bool in_word = false;
  const auto close = [&] { tokens.offsets.emplace_back(start, cp), tokens.words.emplace_back(word); };
  for (size_t b = 0; b < text.size(); b += sequence_length(static_cast<unsigned char>(text[b])), ++cp) {
    const bool space = is_python_space(decode_at(text, b));
    if (in_word && (space || cp - start == 3)) close();
    if (!space && (!in_word || cp - start == 3)) {
      word += !in_word;
      start = cp;
    }
    in_word = !space;
  }
  if (in_word) close();
  return tokens;
}

// Returns an empty string when no chunk overlaps more than `size` tokens,
// otherwise what is wrong.
inline std::string check_token_budget(const std::vector<ChunkSpan>& chunks, const Tokens& tokens, size_t size) {
  for (const ChunkSpan& c : chunks) {
    size_t overlapping = 0;
    for (const auto& [start, end] : tokens.offsets) overlapping += start < c.end && c.begin < end;
    if (overlapping > size) return "chunk overlaps more tokens than chunk_size";
  }
  return {};
}

// Returns an empty string when no chunk starts or ends inside a token. Holds
// when separators fall between tokens, as whitespace does for tokenizers
// that split words at whitespace.
inline std::string check_no_token_cut(const std::vector<ChunkSpan>& chunks, const Tokens& tokens) {
  for (const ChunkSpan& c : chunks)
    for (const auto& [start, end] : tokens.offsets)
      if ((start < c.begin && c.begin < end) || (start < c.end && c.end < end)) return "chunk cuts a token";
  return {};
}

}  // namespace ragd::testing
