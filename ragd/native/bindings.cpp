// Thin nanobind layer: conversions and GIL handling only; logic lives in ragd_core.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>

#include "normalize.hpp"

namespace nb = nanobind;

NB_MODULE(_native, m) {
  m.doc() = "ragd compiled core: text normalisation and chunking";

  m.def(
      "normalize_text",
      [](nb::bytes data) {
        std::string_view view(data.c_str(), data.size());
        std::string out;
        {
          nb::gil_scoped_release release;
          try {
            out = ragd::normalize_text(view);
          } catch (const ragd::Utf8Error& e) {
            nb::gil_scoped_acquire acquire;
            throw nb::value_error(("invalid UTF-8 at byte " + std::to_string(e.byte_offset)).c_str());
          }
        }
        return out;
      },
      nb::arg("data"),
      "Normalise UTF-8 bytes (line endings, control characters) and return str. "
      "Raises ValueError naming the byte offset of invalid UTF-8.");
}
