// Text normalisation applied to every document before chunking.
// Offsets reported by search hits refer to the normalised text, which is what
// ragd stores, so normalisation must happen exactly once, here.
#pragma once
#include <string>
#include <string_view>

#include "utf8.hpp"

namespace ragd {

// Normalises line endings (CRLF and lone CR become LF) and drops control
// characters other than TAB and LF (NUL, form feeds, escape codes pasted from
// terminals), which carry no meaning for retrieval and confuse tokenisers.
// Throws Utf8Error on invalid UTF-8.
std::string normalize_text(std::string_view s);

}  // namespace ragd
