#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "normalize.hpp"
#include "utf8.hpp"

namespace ragd {
namespace {

TEST(Utf8, AcceptsValidText) {
  EXPECT_TRUE(checked_utf8("").ascii());
  EXPECT_TRUE(checked_utf8("plain ascii, long enough to take the 8-byte path").ascii());
  const Utf8View mixed = checked_utf8("h\xC3\xA9llo \xE6\x9D\xB1 \xF0\x9F\x98\x80");  // é, 東, 😀
  EXPECT_FALSE(mixed.ascii());
  EXPECT_EQ(mixed.code_points, 9u);
}

TEST(Utf8, ReportsTheByteOffsetOfTheFirstInvalidSequence) {
  struct Case {
    std::string text;
    size_t offset;
  };
  const Case cases[] = {
      {std::string("abcdefghij\xFF"), 10},          // invalid lead byte after the ASCII fast path
      {std::string("ab\x80"), 2},                    // stray continuation byte
      {std::string("ab\xC3"), 2},                    // truncated at the end
      {std::string("ab\xE6\x9D" "x"), 2},            // truncated before ASCII
      {std::string("\xC0\xAF"), 0},                  // overlong '/'
      {std::string("\xE0\x80\xAF"), 0},              // overlong, 3 bytes
      {std::string("\xED\xA0\x80"), 0},              // UTF-16 surrogate
      {std::string("\xF4\x90\x80\x80"), 0},          // above U+10FFFF
      {std::string("\xC3\xA9\xC3\xA9\xF8"), 4},      // 5-byte form
  };
  for (const Case& c : cases) {
    EXPECT_EQ(find_invalid_utf8(c.text), c.offset) << c.text;
    try {
      checked_utf8(c.text);
      ADD_FAILURE() << "accepted " << c.text;
    } catch (const Utf8Error& e) {
      EXPECT_EQ(e.byte_offset, c.offset);
      EXPECT_EQ(std::string(e.what()), "invalid UTF-8 at byte " + std::to_string(c.offset));
    }
  }
}

TEST(Utf8, CountsAndDecodesCodePoints) {
  const std::string s = "a\xC3\xA9\xE6\x9D\xB1\xF0\x9F\x98\x80";  // a é 東 😀
  EXPECT_EQ(count_code_points(s), 4u);
  EXPECT_EQ(decode_at(s, 0), U'a');
  EXPECT_EQ(decode_at(s, 1), U'\u00E9');
  EXPECT_EQ(decode_at(s, 3), U'\u6771');
  EXPECT_EQ(decode_at(s, 6), U'\U0001F600');
  EXPECT_EQ(previous_boundary(s, s.size()), 6u);
  EXPECT_EQ(previous_boundary(s, 6), 3u);
  EXPECT_EQ(previous_boundary(s, 1), 0u);
}

TEST(Utf8, WhitespaceIsPythonsStrIsspace) {
  // Every code point for which Python's str.isspace() is true (CPython 3.11).
  const char32_t spaces[] = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x1C,   0x1D,   0x1E,   0x1F,   0x20,
                             0x85,   0xA0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
                             0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  size_t found = 0;
  for (char32_t c = 0; c < 0x110000; ++c) found += is_python_space(c);
  EXPECT_EQ(found, std::size(spaces));
  for (char32_t c : spaces) EXPECT_TRUE(is_python_space(c)) << std::hex << c;
  EXPECT_FALSE(is_python_space(0x200B));  // zero width space is not whitespace to Python
}

TEST(Normalize, LineEndingsAndControlCharacters) {
  EXPECT_EQ(normalize_text("a\r\nb\rc\nd"), "a\nb\nc\nd");
  EXPECT_EQ(normalize_text(std::string("x\0y\x1B[0m\x7Fz\tq", 12)), "xy[0mz\tq");
  EXPECT_THROW(normalize_text("ok\xFF"), Utf8Error);
}

TEST(Utf8, FindsSurrogatesInWideStrs) {
  std::vector<uint16_t> ucs2(200, 0x6771);
  std::vector<uint32_t> ucs4(200, 0x1F600);
  EXPECT_EQ(find_surrogate(ucs2.data(), ucs2.size()), std::string_view::npos);
  EXPECT_EQ(find_surrogate(ucs4.data(), ucs4.size()), std::string_view::npos);
  for (size_t at : {size_t{0}, size_t{63}, size_t{64}, size_t{150}, size_t{199}}) {
    for (uint32_t s : {0xD800u, 0xDBFFu, 0xDC00u, 0xDFFFu}) {
      ucs2[at] = static_cast<uint16_t>(s);
      ucs4[at] = s;
      EXPECT_EQ(find_surrogate(ucs2.data(), ucs2.size()), at);
      EXPECT_EQ(find_surrogate(ucs4.data(), ucs4.size()), at);
      ucs2[at] = 0xE000;  // just past the surrogates
      ucs4[at] = 0xD7FF;  // just before
    }
  }
  EXPECT_EQ(find_surrogate(ucs2.data(), ucs2.size()), std::string_view::npos);
  EXPECT_EQ(find_surrogate(ucs4.data(), ucs4.size()), std::string_view::npos);
}

}  // namespace
}  // namespace ragd
