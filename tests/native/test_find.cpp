#include <gtest/gtest.h>

#include <random>
#include <string>

#include "find.hpp"

namespace ragd {
namespace {

// std::string_view::find restricted to [from, end), the reference.
size_t reference(std::string_view hay, std::string_view needle, size_t from, size_t end) {
  return hay.substr(0, end).find(needle, from);
}

TEST(FindSeparator, AgreesWithStdFindAroundBlockAndWordEdges) {
  // Needles at every position around the 8-byte words and 64-byte blocks,
  // and windows ending just before, inside and after them.
  for (const std::string needle : {" ", "\n\n", "--", "abc", "\xE3\x80\x80", "0123456789abcdef0123"}) {
    for (size_t pos = 0; pos < 150; ++pos) {
      std::string hay(200, '.');
      hay.replace(pos, needle.size(), needle);
      for (size_t from : {size_t{0}, size_t{1}, size_t{7}, size_t{63}, pos}) {
        for (size_t end : {hay.size(), pos + needle.size(), pos + needle.size() - 1, size_t{64}, size_t{72}}) {
          if (from > end) continue;
          EXPECT_EQ(find_separator(hay, needle, from, end), reference(hay, needle, from, end))
              << "needle '" << needle << "' at " << pos << " from " << from << " end " << end;
        }
      }
    }
  }
}

TEST(FindSeparator, AgreesWithStdFindOnRandomText) {
  std::mt19937 rng(7);
  const std::string needles[] = {"\n", "\n\n", " ", "ab", "aba", "\n\n\n"};
  std::uniform_int_distribution<int> byte(0, 3);
  for (int i = 0; i < 2000; ++i) {
    std::string hay(std::uniform_int_distribution<size_t>(0, 300)(rng), ' ');
    for (char& c : hay) c = "ab \n"[byte(rng)];
    for (const std::string& needle : needles) {
      size_t from = 0;
      // Walk every match, as the splitter does, and the miss after the last.
      for (;;) {
        const size_t got = find_separator(hay, needle, from, hay.size());
        ASSERT_EQ(got, reference(hay, needle, from, hay.size())) << hay;
        if (got == std::string_view::npos) break;
        from = got + needle.size();
      }
    }
  }
}

}  // namespace
}  // namespace ragd
