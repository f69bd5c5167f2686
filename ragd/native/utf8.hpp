// UTF-8 primitives shared by normalisation and chunking. Everything past
// validation assumes valid input, so callers validate once at the boundary.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ragd {

// Invalid UTF-8 input. Derives from std::invalid_argument so the bindings
// surface it as ValueError without a custom translator.
class Utf8Error : public std::invalid_argument {
 public:
  explicit Utf8Error(size_t offset)
      : std::invalid_argument("invalid UTF-8 at byte " + std::to_string(offset)),
        byte_offset(offset) {}
  size_t byte_offset;
};

// Returns the byte offset of the first invalid UTF-8 sequence (truncated,
// overlong, surrogate or out of range), or npos.
size_t find_invalid_utf8(std::string_view s);

// Text known to be valid UTF-8 and its length in code points, which equals
// its size in bytes exactly when it is ASCII.
struct Utf8View {
  std::string_view bytes;
  size_t code_points;
  bool ascii() const { return code_points == bytes.size(); }
};

// Validates s, throwing Utf8Error.
Utf8View checked_utf8(std::string_view s);

// Length in bytes of the code point whose lead byte is c (valid UTF-8).
inline size_t sequence_length(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

// Number of code points in valid UTF-8: every byte that is not a continuation byte.
size_t count_code_points(std::string_view s);

// Decodes the code point starting at byte i of valid UTF-8.
char32_t decode_at(std::string_view s, size_t i);

// Byte offset where the code point that ends at byte `end` starts (valid UTF-8, end > 0).
inline size_t previous_boundary(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

// Index of the first surrogate (U+D800..U+DFFF) among n code points of a
// CPython str of the 2- or 4-byte kind, or npos. A str can hold lone
// surrogates; UTF-8 cannot, so such a text is refused as it would be encoded.
size_t find_surrogate(const uint16_t* units, size_t n);
size_t find_surrogate(const uint32_t* units, size_t n);

// Python's str.isspace(), which is what str.strip() removes: chunk texts must
// strip exactly as LangChain's do. ASCII inline, the rest out of line.
bool is_python_space_beyond_ascii(char32_t c);
inline bool is_python_space(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return is_python_space_beyond_ascii(c);
}

}  // namespace ragd
