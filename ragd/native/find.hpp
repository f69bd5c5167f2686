// Search for separators, the splitter's hot loop, over arrays of code units:
// bytes (UTF-8, or CPython's latin-1 strings), or the 16- and 32-bit units of
// CPython's wider strings. Separators are short and, for words and lines, hit
// every few units to few dozen units, where a call to memchr or memmem per hit
// costs more than the units it scans; so the search is inline, 16 bytes at a
// time with SSE2 (every x86-64 has it), comparing the needle's first and last
// unit in place and the middle only where both match.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ragd {

// First occurrence of a non-empty needle in haystack[from, end), or npos.
size_t find_separator(std::string_view haystack, std::string_view needle, size_t from, size_t end);

// find_separator without SSE2: eight bytes at a time in general-purpose
// registers (find.cpp); what find_units uses for bytes on other machines.
size_t find_bytes_portable(const char* base, const char* needle, size_t size, size_t from, size_t end);

namespace find_detail {

constexpr size_t npos = static_cast<size_t>(-1);

template <class Unit>
inline bool middle_matches(const Unit* p, const Unit* needle, size_t last) {
  for (size_t i = 1; i < last; ++i)
    if (p[i] != needle[i]) return false;
  return true;
}

// Plain loop: the tail of the vector loop, and the whole search elsewhere.
template <class Unit>
inline size_t find_scalar(const Unit* base, const Unit* needle, size_t last, size_t from, size_t stop) {
  const Unit first = needle[0], final_unit = needle[last];
  for (; from < stop; ++from)
    if (base[from] == first && base[from + last] == final_unit && middle_matches(base + from, needle, last))
      return from;
  return npos;
}

#if defined(__SSE2__)
template <class Unit>
inline __m128i splat(Unit u) {
  if constexpr (sizeof(Unit) == 1) return _mm_set1_epi8(static_cast<char>(u));
  else if constexpr (sizeof(Unit) == 2) return _mm_set1_epi16(static_cast<short>(u));
  else return _mm_set1_epi32(static_cast<int>(u));
}

template <class Unit>
inline __m128i equal(__m128i a, __m128i b) {
  if constexpr (sizeof(Unit) == 1) return _mm_cmpeq_epi8(a, b);
  else if constexpr (sizeof(Unit) == 2) return _mm_cmpeq_epi16(a, b);
  else return _mm_cmpeq_epi32(a, b);
}

template <class Unit>
inline __m128i load(const Unit* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// A bit per byte of the 16 at p (so sizeof(Unit) bits per unit) where a match
// of the needle may start: its first unit, and its last one `last` units on.
template <class Unit, bool Single>
inline uint32_t candidates(const Unit* p, __m128i first, __m128i final_unit, size_t last) {
  __m128i hit = equal<Unit>(load(p), first);
  if constexpr (!Single) hit = _mm_and_si128(hit, equal<Unit>(load(p + last), final_unit));
  return static_cast<uint32_t>(_mm_movemask_epi8(hit));
}

// The first candidate in `bits` (bytes from unit `at`) that is a whole match.
template <class Unit, bool Single>
inline size_t first_match(uint64_t bits, const Unit* base, size_t at, const Unit* needle, size_t last) {
  constexpr uint64_t unit_bits = (uint64_t{1} << sizeof(Unit)) - 1;
  for (; bits != 0;) {
    const size_t byte = static_cast<size_t>(__builtin_ctzll(bits));
    const size_t pos = at + byte / sizeof(Unit);
    if (Single || middle_matches(base + pos, needle, last)) return pos;
    bits &= ~(unit_bits << byte);
  }
  return npos;
}

template <class Unit, bool Single>
inline size_t find_sse2(const Unit* base, const Unit* needle, size_t last, size_t from, size_t stop) {
  constexpr size_t lanes = 16 / sizeof(Unit);
  const __m128i first = splat(needle[0]), final_unit = splat(needle[last]);
  // Every load stays below stop + last = end: no read past the haystack.
  // Dense separators (words, lines) are usually found in the first 16 bytes...
  if (stop - from >= lanes) {
    if (size_t at = first_match<Unit, Single>(candidates<Unit, Single>(base + from, first, final_unit, last), base,
                                              from, needle, last);
        at != npos)
      return at;
    from += lanes;
  }
  // ...sparse ones ("\n\n" in line-wrapped text) are looked for 64 bytes at a time.
  for (; stop - from >= 4 * lanes; from += 4 * lanes) {
    const uint64_t bits = uint64_t{candidates<Unit, Single>(base + from, first, final_unit, last)} |
                          uint64_t{candidates<Unit, Single>(base + from + lanes, first, final_unit, last)} << 16 |
                          uint64_t{candidates<Unit, Single>(base + from + 2 * lanes, first, final_unit, last)} << 32 |
                          uint64_t{candidates<Unit, Single>(base + from + 3 * lanes, first, final_unit, last)} << 48;
    if (bits == 0) continue;
    if (size_t at = first_match<Unit, Single>(bits, base, from, needle, last); at != npos) return at;
  }
  for (; stop - from >= lanes; from += lanes) {
    if (size_t at = first_match<Unit, Single>(candidates<Unit, Single>(base + from, first, final_unit, last), base,
                                              from, needle, last);
        at != npos)
      return at;
  }
  return find_scalar(base, needle, last, from, stop);
}
#endif

}  // namespace find_detail

// First occurrence of needle[0, size) (size > 0) in base[from, end), or npos.
// Reads nothing outside base[from, end).
template <class Unit>
inline size_t find_units(const Unit* base, const Unit* needle, size_t size, size_t from, size_t end) {
  const size_t last = size - 1;
  if (from > end || end - from <= last) return find_detail::npos;
  const size_t stop = end - last;  // a match starts before stop
#if defined(__SSE2__)
  return last == 0 ? find_detail::find_sse2<Unit, true>(base, needle, last, from, stop)
                   : find_detail::find_sse2<Unit, false>(base, needle, last, from, stop);
#else
  if constexpr (sizeof(Unit) == 1)
    return find_bytes_portable(reinterpret_cast<const char*>(base), reinterpret_cast<const char*>(needle), size,
                               from, end);
  else
    return find_detail::find_scalar(base, needle, last, from, stop);
#endif
}

}  // namespace ragd
