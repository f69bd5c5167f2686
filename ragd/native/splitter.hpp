// Recursive separator splitting with the output of LangChain's
// RecursiveCharacterTextSplitter (keep_separator=True, strip_whitespace=True,
// literal separators), chunk for chunk, plus where each chunk lies in the
// input so that search hits can be highlighted. The input is UTF-8, or text
// in one of CPython's fixed-width layouts (PEP 393: latin-1, UCS-2, UCS-4
// arrays, one element per code point), read in place: a str need not be
// encoded, and lengths and offsets are differences of indices.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "utf8.hpp"

namespace ragd {

// Where a chunk lies in the input: code points (Python str indices) and code
// units: bytes of UTF-8, or elements of a fixed-width text (which are its
// code points again).
struct ChunkSpan {
  size_t begin;
  size_t end;
  size_t byte_begin;
  size_t byte_end;
};

// Text as an array of fixed-width code units, one per code point: CPython's
// PEP 393 kinds, uint8_t (latin-1: U+0000..U+00FF), uint16_t (the BMP; may
// hold lone surrogates, which the caller rejects) and uint32_t.
template <class Unit>
struct FixedView {
  const Unit* data;
  size_t size;
};

// A separator in one representation (UTF-8 bytes or a fixed-width kind):
// empty is the last resort (split between code points); a separator with a
// code point the kind cannot hold occurs in no text of that kind.
template <class Unit>
struct Separator {
  std::vector<Unit> units;
  bool representable = true;
  bool is_empty() const { return representable && units.empty(); }
};

// Working memory of a split, reused from one document to the next so that
// a batch of small documents allocates next to nothing per document. Not
// shared between threads; its contents are no concern of the caller's.
struct SplitScratch {
  struct Entry {
    size_t unit_begin;
    size_t begin;
    size_t len;
  };
  std::vector<std::vector<Entry>> windows;  // one per depth of the recursion
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

  // The same, appending to `out` and reusing `scratch`: for batches. The
  // fixed-width forms take the text as CPython stores a str of that kind;
  // their spans' byte_begin/byte_end equal begin/end (indices into the array).
  void split_chars(const Utf8View& text, std::vector<ChunkSpan>& out, SplitScratch& scratch) const;
  void split_chars(FixedView<uint8_t> latin1, std::vector<ChunkSpan>& out, SplitScratch& scratch) const;
  void split_chars(FixedView<uint16_t> ucs2, std::vector<ChunkSpan>& out, SplitScratch& scratch) const;
  void split_chars(FixedView<uint32_t> ucs4, std::vector<ChunkSpan>& out, SplitScratch& scratch) const;

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
  // The separators as each representation of text spells them. UTF-8 bytes
  // serve UTF-8 text, ASCII included; latin-1 differs from UTF-8 above U+007F.
  std::vector<Separator<uint8_t>> utf8_;
  std::vector<Separator<uint8_t>> latin1_;
  std::vector<Separator<uint16_t>> ucs2_;
  std::vector<Separator<uint32_t>> ucs4_;
  size_t chunk_size_;
  size_t chunk_overlap_;
};

}  // namespace ragd
