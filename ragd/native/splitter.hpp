// Recursive separator splitting with the output of LangChain's
// RecursiveCharacterTextSplitter (keep_separator=True, strip_whitespace=True,
// literal separators), chunk for chunk, over UTF-8 text, plus where each chunk
// lies in the input so that search hits can be highlighted.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "utf8.hpp"

namespace ragd {

// Where a chunk lies in the input: code points (Python str indices) and bytes.
struct ChunkSpan {
  size_t begin;
  size_t end;
  size_t byte_begin;
  size_t byte_end;
};

// [start, end) of each token in code points, as `tokenizers` reports offsets.
using TokenOffsets = std::vector<std::pair<size_t, size_t>>;

// A tokenizer's view of a whole text: every token's offsets, in order, and
// the pre-tokenizer word each belongs to (`Encoding.word_ids`; none for
// tokens outside any word).
struct Tokens {
  TokenOffsets offsets;
  std::vector<std::optional<long long>> words;
};

class RecursiveSplitter {
 public:
  // Rejects what LangChain rejects (chunk_size <= 0, chunk_overlap < 0,
  // chunk_overlap > chunk_size) and an empty separator list, with
  // std::invalid_argument. Signed sizes so that negative settings get that
  // message rather than wrapping around.
  RecursiveSplitter(std::vector<std::string> separators, long long chunk_size,
                    long long chunk_overlap);

  // Sizes pieces in code points. The string_view overloads validate the
  // text first and throw Utf8Error; the Utf8View ones trust their caller
  // (CPython's UTF-8 of a str is valid by construction).
  std::vector<ChunkSpan> split_chars(std::string_view text) const;
  std::vector<ChunkSpan> split_chars(const Utf8View& text) const;

  // Sizes pieces in tokens: a piece costs every token that overlaps it, and
  // the empty separator splits between words, or for a word longer than
  // chunk_size between its tokens, rather than between code points. So no
  // chunk holds more than chunk_size tokens or cuts a token in two, and
  // chunks start at words, where tokenizing a chunk alone gives the same
  // tokens. Throws Utf8Error, or std::invalid_argument for offsets past the
  // text or a word list of another length.
  std::vector<ChunkSpan> split_tokens(std::string_view text, const Tokens& tokens) const;
  std::vector<ChunkSpan> split_tokens(const Utf8View& text, const Tokens& tokens) const;

 private:
  std::vector<std::string> separators_;
  size_t chunk_size_;
  size_t chunk_overlap_;
};

}  // namespace ragd
