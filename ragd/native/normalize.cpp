#include "normalize.hpp"

namespace ragd {

std::string normalize_text(std::string_view s) {
  if (size_t bad = find_invalid_utf8(s); bad != std::string_view::npos) throw Utf8Error(bad);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      out.push_back('\n');
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else if (c < 0x20 && c != '\n' && c != '\t') {
      continue;
    } else if (c == 0x7F) {
      continue;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

}  // namespace ragd
