#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <vector>

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

// find_units over 16- and 32-bit units (CPython's wider strs), and the
// portable byte search, against std::search.
template <class Unit>
size_t reference_units(const std::vector<Unit>& hay, const std::vector<Unit>& needle, size_t from, size_t end) {
  const auto it = std::search(hay.begin() + static_cast<std::ptrdiff_t>(from),
                              hay.begin() + static_cast<std::ptrdiff_t>(end), needle.begin(), needle.end());
  return it == hay.begin() + static_cast<std::ptrdiff_t>(end) ? std::string_view::npos
                                                              : static_cast<size_t>(it - hay.begin());
}

template <class Unit>
void check_units_around_edges() {
  // Units that share a low byte with the needle's must not match it.
  const Unit fill = static_cast<Unit>(sizeof(Unit) == 1 ? '.' : 0x0A0A);
  const std::vector<std::vector<Unit>> needles = {
      {Unit{10}}, {Unit{10}, Unit{10}}, {Unit{0x20}, static_cast<Unit>(sizeof(Unit) == 1 ? 0x30 : 0x3000)},
      {Unit{1}, Unit{2}, Unit{3}},
      std::vector<Unit>(20, Unit{7})};
  for (const auto& needle : needles) {
    for (size_t pos = 0; pos < 100; ++pos) {
      std::vector<Unit> hay(130, fill);
      std::copy(needle.begin(), needle.end(), hay.begin() + static_cast<std::ptrdiff_t>(pos));
      for (size_t from : {size_t{0}, size_t{1}, size_t{7}, size_t{31}, pos}) {
        for (size_t end : {hay.size(), pos + needle.size(), pos + needle.size() - 1, size_t{16}, size_t{64}}) {
          if (from > end) continue;
          EXPECT_EQ(find_units(hay.data(), needle.data(), needle.size(), from, end),
                    reference_units(hay, needle, from, end))
              << sizeof(Unit) << "-byte units, needle of " << needle.size() << " at " << pos << " from " << from
              << " end " << end;
        }
      }
    }
  }
}

TEST(FindUnits, AgreesWithStdSearchForEveryWidth) {
  check_units_around_edges<uint8_t>();
  check_units_around_edges<uint16_t>();
  check_units_around_edges<uint32_t>();
}

TEST(FindUnits, AgreesWithStdSearchOnRandomWideText) {
  std::mt19937 rng(11);
  const uint32_t alphabet[] = {'a', 'b', ' ', '\n', 0x3000, 0x0120, 0x1F600, 0x10020};
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint32_t> hay(std::uniform_int_distribution<size_t>(0, 300)(rng));
    for (uint32_t& c : hay) c = alphabet[std::uniform_int_distribution<size_t>(0, std::size(alphabet) - 1)(rng)];
    for (const std::vector<uint32_t>& needle : {std::vector<uint32_t>{'\n'}, {' ', 0x3000}, {0x1F600}, {'a', 'b', 'a'}}) {
      for (size_t from = 0;;) {
        const size_t got = find_units(hay.data(), needle.data(), needle.size(), from, hay.size());
        ASSERT_EQ(got, reference_units(hay, needle, from, hay.size()));
        if (got == std::string_view::npos) break;
        from = got + needle.size();
      }
    }
  }
}

TEST(FindBytesPortable, AgreesWithStdFind) {
  // The fallback where SSE2 is missing; x86-64 builds never take it otherwise.
  for (const std::string needle : {" ", "\n\n", "abc", "0123456789abcdef0123"}) {
    for (size_t pos = 0; pos < 150; ++pos) {
      std::string hay(200, '.');
      hay.replace(pos, needle.size(), needle);
      for (size_t from : {size_t{0}, size_t{7}, pos}) {
        for (size_t end : {hay.size(), pos + needle.size(), pos + needle.size() - 1, size_t{72}}) {
          if (from > end) continue;
          EXPECT_EQ(find_bytes_portable(hay.data(), needle.data(), needle.size(), from, end),
                    reference(hay, needle, from, end));
        }
      }
    }
  }
}

}  // namespace
}  // namespace ragd
