// Search for separators, the splitter's hot loop. Separators are short and,
// for words and lines, hit every few bytes to few dozen bytes, where a call
// to memchr or memmem per hit costs more than the bytes it scans.
#pragma once
#include <cstddef>
#include <string_view>

namespace ragd {

// First occurrence of a non-empty needle in haystack[from, end), or npos.
size_t find_separator(std::string_view haystack, std::string_view needle, size_t from, size_t end);

}  // namespace ragd
