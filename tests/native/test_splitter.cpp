#include <gtest/gtest.h>

#include <random>
#include <stdexcept>

#include "test_support.hpp"
#include "splitter.hpp"

namespace ragd {
namespace {

const std::vector<std::string> kDefault = {"\n\n", "\n", " ", ""};

using Spans = std::vector<std::pair<size_t, size_t>>;

Spans spans_of(const std::vector<ChunkSpan>& chunks) {
  Spans out;
  for (const ChunkSpan& c : chunks) out.emplace_back(c.begin, c.end);
  return out;
}

struct Golden {
  std::string text;
  long long size, overlap;
  std::vector<std::string> separators;
  Spans expected;
};

// Expected chunks are LangChain 1.1's RecursiveCharacterTextSplitter output
// for the same settings, located in the text (code points).
TEST(SplitChars, MatchesLangChainOnEdgeCases) {
  const Golden cases[] = {
      {"Hello world\n\nThis is a test of the splitter.\nAnother line here.", 20, 5, kDefault,
       {{0, 11}, {13, 30}, {28, 44}, {45, 63}}},
      // Sizes count code points: é is 2 bytes, 東 and the ideographic space 3.
      {u8"h\u00e9llo w\u00f6rld \u6771\u4eac\u30bf\u30ef\u30fc\u3000end", 5, 2, kDefault,
       {{0, 5}, {6, 10}, {8, 11}, {12, 16}, {14, 19}, {18, 21}}},
      // A line with no separator falls back to single code points.
      {"abcdefghijabcdefghijabcdefghij", 7, 3, kDefault,
       {{0, 7}, {4, 11}, {8, 15}, {12, 19}, {16, 23}, {20, 27}, {24, 30}}},
      // Without "", a too long piece is passed through unstripped.
      {"short words then averyveryverylongword end", 10, 0, {" "}, {{0, 5}, {6, 11}, {12, 16}, {16, 38}, {39, 42}}},
      // chunk_size 1: every code point is "too long" and passed through, whitespace included.
      {"a b\tc", 1, 0, kDefault, {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}}},
      // Runs of separators make empty pieces and whitespace-only chunks, both dropped.
      {"\n\n\n\na\n\n\n\nb  \n\n", 3, 1, kDefault, {{4, 5}, {9, 10}}},
      {"x--y--z----w", 4, 2, {"--", ""}, {{0, 4}, {4, 7}, {7, 9}, {9, 12}}},
      {"", 10, 0, kDefault, {}},
      {" \n\t ", 10, 0, kDefault, {}},
      // Shorter than chunk_size: one chunk, stripped (the short cut); at
      // chunk_size and above, the recursion, which may cut it.
      {"  short note\n\nwith a blank line  ", 40, 0, kDefault, {{2, 31}}},
      {"  short note\n\nwith a blank line  ", 32, 0, kDefault, {{2, 12}, {14, 31}}},
      {"  short note\n\nwith a blank line  ", 33, 5, kDefault, {{2, 31}}},
      {" \n \n ", 6, 0, kDefault, {}},
  };
  for (const Golden& g : cases) {
    RecursiveSplitter splitter(g.separators, g.size, g.overlap);
    EXPECT_EQ(spans_of(splitter.split_chars(g.text)), g.expected) << g.text;
  }
}

TEST(SplitChars, ReportsByteOffsetsBesideCodePoints) {
  const std::string text = u8"\u00e9\u00e9 \u6771\u4eac";  // "éé 東京"
  const auto chunks = RecursiveSplitter(kDefault, 2, 0).split_chars(text);
  ASSERT_EQ(chunks.size(), 3u);  // "éé", "東", "京"
  EXPECT_EQ(chunks[1].begin, 3u);
  EXPECT_EQ(chunks[1].byte_begin, 5u);
  EXPECT_EQ(chunks[2].end, 5u);
  EXPECT_EQ(chunks[2].byte_end, text.size());
}

TEST(SplitChars, RejectsInvalidUtf8WithItsOffset) {
  RecursiveSplitter splitter(kDefault, 10, 0);
  try {
    splitter.split_chars("good text\xE6\x9D then bad");
    FAIL() << "accepted invalid UTF-8";
  } catch (const Utf8Error& e) {
    EXPECT_EQ(e.byte_offset, 9u);
  }
}

TEST(RecursiveSplitter, RejectsWhatLangChainRejects) {
  EXPECT_THROW(RecursiveSplitter(kDefault, 0, 0), std::invalid_argument);
  EXPECT_THROW(RecursiveSplitter(kDefault, 10, -1), std::invalid_argument);
  EXPECT_THROW(RecursiveSplitter(kDefault, 10, 11), std::invalid_argument);
  EXPECT_THROW(RecursiveSplitter({}, 10, 0), std::invalid_argument);
  EXPECT_NO_THROW(RecursiveSplitter(kDefault, 10, 10));
}

// Random texts over an alphabet heavy in separators, multi-byte code points
// and Unicode whitespace; every split must satisfy the invariants.
std::string random_text(std::mt19937& rng) {
  static const char* const pieces[] = {"a", "bc", " ", "\n", "\n\n", "\t", u8"\u00e9", u8"\u6771",
                                       u8"\U0001F600", u8"\u3000", u8"\u2028", "--", "word "};
  std::uniform_int_distribution<size_t> pick(0, std::size(pieces) - 1), length(0, 120);
  std::string text;
  for (size_t n = length(rng); n > 0; --n) text += pieces[pick(rng)];
  return text;
}

TEST(SplitChars, RandomTextsKeepTheInvariants) {
  std::mt19937 rng(1234);
  const std::vector<std::vector<std::string>> separator_sets = {kDefault, {"--", "\n", ""}, {"\n", " "}};
  for (int i = 0; i < 3000; ++i) {
    const std::string text = random_text(rng);
    const long long size = std::uniform_int_distribution<long long>(1, 40)(rng);
    const long long overlap = std::uniform_int_distribution<long long>(0, size)(rng);
    const auto& separators = separator_sets[i % separator_sets.size()];
    const bool bounded = separators.back().empty();
    const auto chunks = RecursiveSplitter(separators, size, overlap).split_chars(text);
    const std::string problem = testing::check_chunks(text, chunks, bounded ? size : 0, overlap);
    ASSERT_EQ(problem, "") << "size " << size << " overlap " << overlap << " text '" << text << "'";
  }
}

// A text as CPython stores a str of a fixed-width kind: one unit per code point.
template <class Unit>
std::vector<Unit> units_of(std::string_view utf8) {
  std::vector<Unit> out;
  for (size_t b = 0; b < utf8.size(); b += sequence_length(static_cast<unsigned char>(utf8[b])))
    out.push_back(static_cast<Unit>(decode_at(utf8, b)));
  return out;
}

char32_t widest(std::string_view utf8) {
  char32_t m = 0;
  for (size_t b = 0; b < utf8.size(); b += sequence_length(static_cast<unsigned char>(utf8[b])))
    m = std::max(m, decode_at(utf8, b));
  return m;
}

template <class Unit>
std::vector<ChunkSpan> split_fixed(const RecursiveSplitter& splitter, std::string_view utf8) {
  const std::vector<Unit> units = units_of<Unit>(utf8);
  std::vector<ChunkSpan> out = {{7, 7, 7, 7}};  // appended to, not replaced
  SplitScratch scratch;
  splitter.split_chars(FixedView<Unit>{units.data(), units.size()}, out, scratch);
  out.erase(out.begin());
  for (const ChunkSpan& c : out) {
    EXPECT_EQ(c.byte_begin, c.begin);
    EXPECT_EQ(c.byte_end, c.end);
  }
  return out;
}

// Every kind a text fits in splits it as its UTF-8 does, in code points,
// with separators that some kinds cannot hold among the ones that match.
TEST(SplitChars, FixedWidthKindsAgreeWithUtf8) {
  std::mt19937 rng(4321);
  const std::vector<std::vector<std::string>> separator_sets = {
      kDefault, {"--", "\n", ""}, {"\n", " "}, {u8"\u0120", u8"\U00010020", " ", ""}, {u8"\U0001F600", u8"\u3000", ""},
      {u8"\u00e9", "\n", ""}};
  SplitScratch scratch;  // one for every text, as a batch reuses it
  for (int i = 0; i < 3000; ++i) {
    const std::string text = random_text(rng);
    const long long size = std::uniform_int_distribution<long long>(1, 40)(rng);
    const long long overlap = std::uniform_int_distribution<long long>(0, size)(rng);
    const RecursiveSplitter splitter(separator_sets[i % separator_sets.size()], size, overlap);
    const Spans expected = spans_of(splitter.split_chars(text));
    std::vector<ChunkSpan> reused;
    splitter.split_chars(checked_utf8(text), reused, scratch);
    ASSERT_EQ(spans_of(reused), expected) << text;
    const char32_t w = widest(text);
    ASSERT_EQ(spans_of(split_fixed<uint32_t>(splitter, text)), expected) << text;
    if (w <= 0xFFFF) ASSERT_EQ(spans_of(split_fixed<uint16_t>(splitter, text)), expected) << text;
    if (w <= 0xFF) ASSERT_EQ(spans_of(split_fixed<uint8_t>(splitter, text)), expected) << text;
  }
}

TEST(SplitChars, LatinOneIsNotUtf8) {
  // In a latin-1 str "é" is the single unit 0xE9, and a separator "é" matches it.
  const RecursiveSplitter splitter({u8"\u00e9", ""}, 4, 0);
  EXPECT_EQ(spans_of(split_fixed<uint8_t>(splitter, u8"ab\u00e9cd\u00e9ef")), (Spans{{0, 2}, {2, 5}, {5, 8}}));
  EXPECT_EQ(spans_of(splitter.split_chars(u8"ab\u00e9cd\u00e9ef")), (Spans{{0, 2}, {2, 5}, {5, 8}}));
}

TEST(SplitChars, SeparatorsAKindCannotHoldNeverMatch) {
  // Cut to 8 or 16 bits these would be " " and "\n"; they must match nothing.
  const RecursiveSplitter narrow({u8"\u0120", u8"\u010a", ""}, 3, 0);
  const Spans by_code_point = {{0, 3}, {4, 5}, {6, 9}, {10, 11}};
  EXPECT_EQ(spans_of(split_fixed<uint8_t>(narrow, "a b\nc d e f")), by_code_point);
  const RecursiveSplitter wide({u8"\U00010020", u8"\U0001000a", ""}, 3, 0);
  EXPECT_EQ(spans_of(split_fixed<uint16_t>(wide, "a b\nc d e f")), by_code_point);
  EXPECT_EQ(spans_of(split_fixed<uint16_t>(narrow, "a b\nc d e f")), by_code_point);
  // Where the text can hold them, they do match.
  EXPECT_EQ(spans_of(split_fixed<uint16_t>(narrow, u8"ab\u0120cd")), (Spans{{0, 2}, {2, 5}}));
  EXPECT_EQ(spans_of(split_fixed<uint32_t>(wide, u8"ab\U00010020cd")), (Spans{{0, 2}, {2, 5}}));
}

TEST(SplitTokens, SizesByTokensAndCutsOnlyBetweenThem) {
  // "aaaa" is one token; the long word is four ("bbb", "##bbb", ...).
  const std::string text = "aaaa bbbbbbbbbbbb";
  const Tokens tokens = {{{0, 4}, {5, 8}, {8, 11}, {11, 14}, {14, 17}}, {0, 1, 1, 1, 1}};
  const auto chunks = RecursiveSplitter(kDefault, 3, 1).split_tokens(text, tokens);
  EXPECT_EQ(spans_of(chunks), (Spans{{0, 4}, {5, 14}, {11, 17}}));
}

TEST(SplitTokens, WordsAsTokens) {
  const std::string text = "one two three four five six";
  const Tokens tokens = {{{0, 3}, {4, 7}, {8, 13}, {14, 18}, {19, 23}, {24, 27}}, {0, 1, 2, 3, 4, 5}};
  const auto chunks = RecursiveSplitter(kDefault, 2, 0).split_tokens(text, tokens);
  EXPECT_EQ(spans_of(chunks), (Spans{{0, 7}, {8, 18}, {19, 27}}));
}

TEST(SplitTokens, CutsWordsOnlyWhenAWordExceedsTheSize) {
  // Three words of 1, 2 and 1 tokens: a chunk of two tokens could end inside
  // "yyyyyy", but a whole word fits alone, so the word stays whole.
  const std::string text = "xx yyyyyy zz";
  const Tokens tokens = {{{0, 2}, {3, 6}, {6, 9}, {10, 12}}, {0, 1, 1, 2}};
  EXPECT_EQ(spans_of(RecursiveSplitter({""}, 2, 0).split_tokens(text, tokens)), (Spans{{0, 2}, {3, 9}, {10, 12}}));
  // One token per chunk: the word has to be cut, between its tokens. Each
  // unit is then "too long" and, as LangChain does, passed through unstripped.
  EXPECT_EQ(spans_of(RecursiveSplitter({""}, 1, 0).split_tokens(text, tokens)),
            (Spans{{0, 3}, {3, 6}, {6, 10}, {10, 12}}));
}

TEST(SplitTokens, RejectsOffsetsOutsideTheTextAndMissingWords) {
  RecursiveSplitter splitter(kDefault, 3, 0);
  EXPECT_THROW(splitter.split_tokens(u8"\u00e9t\u00e9", {{{0, 4}}, {0}}), std::invalid_argument);  // 3 code points
  EXPECT_THROW(splitter.split_tokens("abc", {{{2, 1}}, {0}}), std::invalid_argument);
  EXPECT_THROW(splitter.split_tokens("abc", {{{0, 3}}, {}}), std::invalid_argument);
  EXPECT_NO_THROW(splitter.split_tokens(u8"\u00e9t\u00e9", {{{0, 3}}, {std::nullopt}}));
}

TEST(SplitTokens, RandomTextsStayWithinTheTokenBudget) {
  std::mt19937 rng(99);
  for (int i = 0; i < 3000; ++i) {
    const std::string text = random_text(rng);
    const Tokens tokens = testing::subword_tokens(text);
    const long long size = std::uniform_int_distribution<long long>(1, 12)(rng);
    const long long overlap = std::uniform_int_distribution<long long>(0, size)(rng);
    const auto chunks = RecursiveSplitter(kDefault, size, overlap).split_tokens(text, tokens);
    ASSERT_EQ(testing::check_chunks(text, chunks, 0, SIZE_MAX), "") << text;
    ASSERT_EQ(testing::check_token_budget(chunks, tokens, static_cast<size_t>(size)), "") << text;
    ASSERT_EQ(testing::check_no_token_cut(chunks, tokens), "") << text;
  }
}

}  // namespace
}  // namespace ragd
