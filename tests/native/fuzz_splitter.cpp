// libFuzzer target (clang -fsanitize=fuzzer,address,undefined; see
// scripts/native_sanitize.sh): arbitrary bytes as text, the first two as
// settings. Invalid UTF-8 must be reported at the right byte; anything else
// must split with every invariant, in both modes (synthetic subword tokens).
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "test_support.hpp"

namespace {

void require(const std::string& problem, const char* mode) {
  if (problem.empty()) return;
  std::fprintf(stderr, "%s: %s\n", mode, problem.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ragd;
  if (size < 2) return 0;
  static const std::vector<std::vector<std::string>> separator_sets = {
      {"\n\n", "\n", " ", ""}, {"--", u8"\u3000", ""}, {"\n", " "}};
  const auto& separators = separator_sets[data[0] % separator_sets.size()];
  const long long chunk_size = 1 + data[0] / 3 % 40;
  const long long overlap = data[1] % (chunk_size + 1);
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
  const RecursiveSplitter splitter(separators, chunk_size, overlap);

  std::vector<ChunkSpan> chunks;
  try {
    chunks = splitter.split_chars(text);
  } catch (const Utf8Error& e) {
    if (e.byte_offset != find_invalid_utf8(text)) std::abort();
    return 0;
  }
  const bool bounded = separators.back().empty();
  require(testing::check_chunks(text, chunks, bounded ? chunk_size : 0, overlap), "chars");
  // The same text as a 4-byte-kind str (one unit per code point) splits alike.
  std::vector<uint32_t> units;
  for (size_t b = 0; b < text.size(); b += sequence_length(static_cast<unsigned char>(text[b])))
    units.push_back(static_cast<uint32_t>(decode_at(text, b)));
  std::vector<ChunkSpan> fixed;
  SplitScratch scratch;
  splitter.split_chars(FixedView<uint32_t>{units.data(), units.size()}, fixed, scratch);
  if (fixed.size() != chunks.size()) require("UCS-4 split differs from UTF-8", "chars");
  for (size_t i = 0; i < fixed.size(); ++i)
    if (fixed[i].begin != chunks[i].begin || fixed[i].end != chunks[i].end)
      require("UCS-4 split differs from UTF-8", "chars");

  const Tokens tokens = testing::subword_tokens(text);
  chunks = splitter.split_tokens(text, tokens);
  require(testing::check_chunks(text, chunks, 0, SIZE_MAX), "tokens");
  if (bounded) require(testing::check_token_budget(chunks, tokens, chunk_size), "tokens");
  // Synthetic tokens never hold whitespace, so whitespace separators fall between them.
  if (&separators == &separator_sets[0]) require(testing::check_no_token_cut(chunks, tokens), "tokens");
  return 0;
}
