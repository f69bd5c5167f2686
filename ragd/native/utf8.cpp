#include "utf8.hpp"

#include <cstdint>
#include <cstring>

namespace ragd {

namespace {

// Scans 8 bytes at a time while they are ASCII: most Redmine text is, and
// this keeps validation far below the cost of chunking.
size_t skip_ascii(const unsigned char* p, size_t i, size_t n) {
  while (i + 8 <= n) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    if (word & 0x8080808080808080ULL) break;
    i += 8;
  }
  while (i < n && p[i] < 0x80) ++i;
  return i;
}

template <class Unit>
bool is_surrogate(Unit u) {
  return static_cast<uint32_t>(u) - 0xD800u < 0x800u;
}

// Blocks of a fixed length, so that compilers vectorise the test.
template <class Unit>
size_t first_surrogate(const Unit* p, size_t n) {
  size_t i = 0;
  for (; n - i >= 64; i += 64) {
    unsigned char any = 0;
    for (size_t k = 0; k < 64; ++k) any |= is_surrogate(p[i + k]);
    if (any) break;
  }
  for (; i < n; ++i)
    if (is_surrogate(p[i])) return i;
  return std::string_view::npos;
}

}  // namespace

size_t find_surrogate(const uint16_t* units, size_t n) { return first_surrogate(units, n); }
size_t find_surrogate(const uint32_t* units, size_t n) { return first_surrogate(units, n); }

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while ((i = skip_ascii(p, i, n)) < n) {
    unsigned char c = p[i];
    size_t len;
    char32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return i;
    if (len > n - i) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return i;
    i += len;
  }
  return std::string_view::npos;
}

Utf8View checked_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  if (skip_ascii(p, 0, s.size()) == s.size()) return {s, s.size()};
  size_t bad = find_invalid_utf8(s);
  if (bad != std::string_view::npos) throw Utf8Error(bad);
  return {s, count_code_points(s)};
}

size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

char32_t decode_at(std::string_view s, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  switch (sequence_length(p[0])) {
    case 1: return p[0];
    case 2: return (char32_t(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    case 3: return (char32_t(p[0] & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    default:
      return (char32_t(p[0] & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) |
             (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
  }
}

bool is_python_space_beyond_ascii(char32_t c) {
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

}  // namespace ragd
