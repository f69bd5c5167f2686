// find_separator, and the byte search for machines without SSE2 (eight bytes
// at a time in general-purpose registers); find.hpp has the SSE2 search.
#include "find.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace ragd {

namespace {

constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7FULL;
constexpr uint64_t kOnes = 0x0101010101010101ULL;

uint64_t load(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  word = __builtin_bswap64(word);  // byte i of the text in bits 8i..8i+7, as on little-endian
#endif
  return word;
}

// The high bit of every byte of x that is zero, and no other bit (exact,
// unlike the shorter haszero trick, so that every set bit is a candidate).
uint64_t zero_bytes(uint64_t x) { return ~(((x & kLow7) + kLow7) | x | kLow7); }

// Whether a match may start in the 64 bytes at p: the needle's first and last
// bytes both occur in place. A fixed trip count, so compilers vectorise it.
bool block_may_match(const char* p, char first, char last, size_t last_at) {
  unsigned char hit = 0;
  for (size_t i = 0; i < 64; ++i) hit |= (p[i] == first) & (p[i + last_at] == last);
  return hit != 0;
}

// The bytes between the first and the last, already compared; a plain loop,
// as separators are short and a call to memcmp would cost more.
bool middle_matches(const char* p, std::string_view needle) {
  for (size_t i = 1; i + 1 < needle.size(); ++i)
    if (p[i] != needle[i]) return false;
  return true;
}

// Searches the match starts [from, from + 8 * words), eight at a time: a bit
// per start whose first and last bytes match, then the middle compared.
class WordSearch {
 public:
  WordSearch(const char* base, std::string_view needle)
      : base_(base),
        needle_(needle),
        last_at_(needle.size() - 1),
        first_x8_(kOnes * static_cast<unsigned char>(needle.front())),
        last_x8_(kOnes * static_cast<unsigned char>(needle.back())) {}

  size_t operator()(size_t from, size_t words) const {
    for (size_t word = from; word < from + 8 * words; word += 8) {
      uint64_t hits = zero_bytes(load(base_ + word) ^ first_x8_) & zero_bytes(load(base_ + word + last_at_) ^ last_x8_);
      for (; hits != 0; hits &= hits - 1) {
        const size_t at = word + static_cast<size_t>(__builtin_ctzll(hits)) / 8;
        if (middle_matches(base_ + at, needle_)) return at;
      }
    }
    return std::string_view::npos;
  }

 private:
  const char* base_;
  std::string_view needle_;
  size_t last_at_;
  uint64_t first_x8_, last_x8_;
};

}  // namespace

size_t find_separator(std::string_view haystack, std::string_view needle, size_t from, size_t end) {
  return find_units(reinterpret_cast<const unsigned char*>(haystack.data()),
                    reinterpret_cast<const unsigned char*>(needle.data()), needle.size(), from, end);
}

size_t find_bytes_portable(const char* const base, const char* needle_data, size_t size, size_t from, size_t end) {
  constexpr size_t npos = std::string_view::npos;
  const std::string_view needle(needle_data, size);
  const size_t last_at = needle.size() - 1;
  if (from > end) return npos;
  if (end - from <= last_at) return npos;
  if (last_at == 0) {
    // One byte (" ", "\n"): the next is usually a word or a line away, so a
    // few bytes are looked at before paying for a call to memchr.
    for (const size_t near = std::min(from + 16, end); from < near; ++from)
      if (base[from] == needle.front()) return from;
    const void* hit = from < end ? std::memchr(base + from, needle.front(), end - from) : nullptr;
    return hit ? static_cast<size_t>(static_cast<const char*>(hit) - base) : npos;
  }
  const size_t stop = end - last_at;  // a match starts before stop
  const WordSearch search(base, needle);
  // Dense separators are usually found within 64 bytes...
  const size_t first_words = std::min<size_t>(8, (stop - from) / 8);
  if (size_t at = search(from, first_words); at != npos) return at;
  from += 8 * first_words;
  // ...sparse ones ("\n\n" in line-wrapped text) skip blocks that cannot match.
  for (; stop - from >= 64; from += 64) {
    if (!block_may_match(base + from, needle.front(), needle.back(), last_at)) continue;
    if (size_t at = search(from, 8); at != npos) return at;
  }
  if (size_t at = search(from, (stop - from) / 8); at != npos) return at;
  for (from += (stop - from) / 8 * 8; from < stop; ++from)
    if (base[from] == needle.front() && base[from + last_at] == needle.back() && middle_matches(base + from, needle))
      return from;
  return npos;
}

}  // namespace ragd
