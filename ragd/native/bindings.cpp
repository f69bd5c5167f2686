// Thin nanobind layer: argument conversion and GIL handling only; the logic
// lives in ragd_core so that C++ tests and sanitizer builds run without Python.
// C++ std::invalid_argument (including ragd::Utf8Error) surfaces as ValueError.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <memory>

#include "filter_mask.hpp"
#include "grant_mask.hpp"
#include "normalize.hpp"
#include "rerank.hpp"
#include "splitter.hpp"
#include "utf8.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

// A text argument's UTF-8, as token mode reads it. For a str it is
// CPython's own, valid by construction (no copy when ASCII, cached otherwise),
// and its length in code points is known; bytes are validated later, without
// the GIL. The object must outlive the view, which the calling frame guarantees.
struct TextArg {
  std::string_view bytes;
  std::optional<size_t> code_points;

  ragd::Utf8View view() const {
    return code_points ? ragd::Utf8View{bytes, *code_points} : ragd::checked_utf8(bytes);
  }
};

TextArg text_arg(nb::handle text) {
  Py_ssize_t size = 0;
  if (PyUnicode_Check(text.ptr())) {
    // A str with lone surrogates fails here with UnicodeEncodeError (a ValueError).
    const char* data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
    if (!data) throw nb::python_error();
    return {{data, static_cast<size_t>(size)}, static_cast<size_t>(PyUnicode_GetLength(text.ptr()))};
  }
  if (PyBytes_Check(text.ptr())) {
    char* data = nullptr;
    if (PyBytes_AsStringAndSize(text.ptr(), &data, &size) != 0) throw nb::python_error();
    return {{data, static_cast<size_t>(size)}, std::nullopt};
  }
  throw nb::type_error("text must be str or bytes");
}

// A text argument as chars mode reads it. A str is read in place, in
// CPython's own layout (PEP 393: one array element per code point, of 1, 2
// or 4 bytes), so it is never encoded and lengths need no counting; bytes are
// UTF-8, validated later without the GIL. Under the limited API (stable ABI
// builds, Python 3.12+) that layout is out of reach and a str goes by its
// UTF-8. The object must outlive the view, which the calling frame guarantees.
struct CharsArg {
  enum class Kind : uint8_t { utf8, latin1, ucs2, ucs4 };
  Kind kind;
  bool is_str;
  const void* data;
  size_t size;                         // in code units
  std::optional<size_t> code_points;  // UTF-8 of a str: valid, and its length known
};

CharsArg chars_arg(nb::handle text) {
#if !defined(Py_LIMITED_API)
  PyObject* o = text.ptr();
  if (PyUnicode_Check(o)) {
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(o) != 0) throw nb::python_error();  // legacy strs only
#endif
    const size_t n = static_cast<size_t>(PyUnicode_GET_LENGTH(o));
    const void* data = PyUnicode_DATA(o);
    switch (PyUnicode_KIND(o)) {
      case PyUnicode_1BYTE_KIND: return {CharsArg::Kind::latin1, true, data, n, std::nullopt};
      case PyUnicode_2BYTE_KIND: return {CharsArg::Kind::ucs2, true, data, n, std::nullopt};
      default: return {CharsArg::Kind::ucs4, true, data, n, std::nullopt};
    }
  }
#endif
  const TextArg arg = text_arg(text);
  return {CharsArg::Kind::utf8, PyUnicode_Check(text.ptr()) != 0, arg.bytes.data(), arg.bytes.size(),
          arg.code_points};
}

// Appends the chunks of one text to `out`; no Python involved, so it runs
// without the GIL. Returns false, splitting nothing, for a str holding a
// surrogate, which has no UTF-8: the caller raises what encoding it raises.
// Throws Utf8Error for invalid UTF-8.
bool split_chars_into(const ragd::RecursiveSplitter& core, const CharsArg& a, std::vector<ragd::ChunkSpan>& out,
                      ragd::SplitScratch& scratch) {
  constexpr size_t npos = std::string_view::npos;
  switch (a.kind) {
    case CharsArg::Kind::latin1:
      core.split_chars(ragd::FixedView<uint8_t>{static_cast<const uint8_t*>(a.data), a.size}, out, scratch);
      return true;
    case CharsArg::Kind::ucs2: {
      const auto* units = static_cast<const uint16_t*>(a.data);
      if (ragd::find_surrogate(units, a.size) != npos) return false;
      core.split_chars(ragd::FixedView<uint16_t>{units, a.size}, out, scratch);
      return true;
    }
    case CharsArg::Kind::ucs4: {
      const auto* units = static_cast<const uint32_t*>(a.data);
      if (ragd::find_surrogate(units, a.size) != npos) return false;
      core.split_chars(ragd::FixedView<uint32_t>{units, a.size}, out, scratch);
      return true;
    }
    case CharsArg::Kind::utf8: {
      const std::string_view bytes(static_cast<const char*>(a.data), a.size);
      core.split_chars(a.code_points ? ragd::Utf8View{bytes, *a.code_points} : ragd::checked_utf8(bytes), out,
                       scratch);
      return true;
    }
  }
  return true;
}

// The error a str with a surrogate gets, as when its UTF-8 is asked for:
// UnicodeEncodeError (a ValueError), "... surrogates not allowed".
[[noreturn]] void raise_surrogate_error(nb::handle text) {
  Py_ssize_t size = 0;
  if (!PyUnicode_AsUTF8AndSize(text.ptr(), &size)) throw nb::python_error();
  throw nb::value_error("text holds a surrogate");  // not reached: encoding fails
}

// A chunk's text: sliced from a str, decoded from bytes.
PyObject* chunk_text(PyObject* text, const CharsArg& a, const ragd::ChunkSpan& s) {
  if (a.is_str)
    return PyUnicode_Substring(text, static_cast<Py_ssize_t>(s.begin), static_cast<Py_ssize_t>(s.end));
  return PyUnicode_DecodeUTF8(static_cast<const char*>(a.data) + s.byte_begin,
                              static_cast<Py_ssize_t>(s.byte_end - s.byte_begin), "strict");
}

// The splitter plus the frozen dataclass its chunks are returned as.
struct Splitter {
  ragd::RecursiveSplitter core;
  nb::type_object chunk_type;
};

// Builds chunk_type(start, end, text) the way a frozen dataclass's generated
// __init__ does, object.__new__ then object.__setattr__ per field, without
// the Python frame: the call alone costs more than chunking the text.
class ChunkFactory {
 public:
  explicit ChunkFactory(nb::handle type)
      : type_(reinterpret_cast<PyTypeObject*>(type.ptr())),
        new_(reinterpret_cast<newfunc>(PyType_GetSlot(&PyBaseObject_Type, Py_tp_new))) {}

  nb::object make(size_t start, size_t end, nb::object text) const {
    nb::object chunk = nb::steal(new_(type_, empty_args().ptr(), nullptr));
    if (!chunk.is_valid()) throw nb::python_error();
    set(chunk, names().start, nb::int_(start));
    set(chunk, names().end, nb::int_(end));
    set(chunk, names().text, text);
    return chunk;
  }

 private:
  struct Names {
    nb::str start{"start"}, end{"end"}, text{"text"};
  };
  static const Names& names() {
    static const Names* interned = new Names();  // never freed: outlives interpreter teardown order
    return *interned;
  }
  static nb::handle empty_args() {
    static PyObject* args = PyTuple_New(0);
    return args;
  }
  static void set(nb::handle obj, const nb::str& name, nb::handle value) {
    if (PyObject_GenericSetAttr(obj.ptr(), name.ptr(), value.ptr()) != 0) throw nb::python_error();
  }

  PyTypeObject* type_;
  newfunc new_;
};

// Runs a token split without the GIL, so ingestion threads chunk in
// parallel, then builds the chunks: texts sliced from a str, decoded from bytes.
template <class Split>
nb::list split_without_gil(const Splitter& self, nb::handle text, Split&& split) {
  const TextArg arg = text_arg(text);
  std::vector<ragd::ChunkSpan> spans;
  {
    nb::gil_scoped_release release;
    spans = split(arg.view());
  }
  const bool is_str = PyUnicode_Check(text.ptr());
  const ChunkFactory factory(self.chunk_type);
  nb::list out;
  for (const ragd::ChunkSpan& s : spans) {
    PyObject* chunk_text =
        is_str ? PyUnicode_Substring(text.ptr(), static_cast<Py_ssize_t>(s.begin), static_cast<Py_ssize_t>(s.end))
               : PyUnicode_DecodeUTF8(arg.bytes.data() + s.byte_begin,
                                      static_cast<Py_ssize_t>(s.byte_end - s.byte_begin), "strict");
    if (!chunk_text) throw nb::python_error();
    out.append(factory.make(s.begin, s.end, nb::steal(chunk_text)));
  }
  return out;
}

// split_chars for one text: split without the GIL (a str read in place),
// then one chunk_type object per chunk.
nb::list split_chars(const Splitter& self, nb::handle text) {
  const CharsArg arg = chars_arg(text);
  std::vector<ragd::ChunkSpan> spans;
  bool ok;
  {
    nb::gil_scoped_release release;
    thread_local ragd::SplitScratch scratch;  // kept for this thread's next call
    ok = split_chars_into(self.core, arg, spans, scratch);
  }
  if (!ok) raise_surrogate_error(text);
  const ChunkFactory factory(self.chunk_type);
  nb::object out = nb::steal(PyList_New(static_cast<Py_ssize_t>(spans.size())));
  if (!out.is_valid()) throw nb::python_error();
  for (size_t k = 0; k < spans.size(); ++k) {
    PyObject* t = chunk_text(text.ptr(), arg, spans[k]);
    if (!t) throw nb::python_error();
    PyList_SetItem(out.ptr(), static_cast<Py_ssize_t>(k),
                   factory.make(spans[k].begin, spans[k].end, nb::steal(t)).release().ptr());  // steals
  }
  return nb::borrow<nb::list>(out);
}

// A 1-d int64 numpy array that takes over `values`.
nb::ndarray<nb::numpy, int64_t> int64_array(std::vector<int64_t>&& values) {
  auto* owned = new std::vector<int64_t>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<int64_t>*>(p); });
  return nb::ndarray<nb::numpy, int64_t>(owned->data(), {owned->size()}, owner);
}

// split_chars over many documents in one call: the arguments are read with
// the GIL held; then, block by block, the documents are split in a GIL-free
// section (strs read in place, working memory reused from one document to the
// next) and, with the GIL back, one str per chunk is built (sliced from a
// str, decoded from bytes) while the block's text is still in cache. Offsets
// go into numpy arrays, so no per-chunk object but the text exists.
// Returns (texts, starts, ends, bounds): document i's chunks are
// texts[bounds[i]:bounds[i + 1]], with code-point offsets starts/ends.
nb::tuple split_chars_many(const Splitter& self, nb::handle texts) {
  // A list of our own: another thread may change the caller's while the
  // GIL is released, but not the texts this one holds references to (strs
  // and bytes are immutable, so their data stays put).
  nb::object seq = nb::steal(PySequence_List(texts.ptr()));
  if (!seq.is_valid()) throw nb::python_error();
  const size_t n = static_cast<size_t>(PyList_Size(seq.ptr()));
  std::vector<PyObject*> items(n);  // borrowed from seq
  std::vector<CharsArg> args;
  args.reserve(n);
  size_t total_units = 0;
  for (size_t i = 0; i < n; ++i) {
    items[i] = PyList_GetItem(seq.ptr(), static_cast<Py_ssize_t>(i));
    try {
      args.push_back(chars_arg(items[i]));
    } catch (nb::python_error& e) {  // a str with lone surrogates (limited API)
      throw nb::value_error(("texts[" + std::to_string(i) + "]: " + std::string(e.what())).c_str());
    } catch (nb::builtin_exception&) {  // neither str nor bytes
      throw nb::type_error(("texts[" + std::to_string(i) + "] must be str or bytes").c_str());
    }
    total_units += args.back().size;
  }
  // About one chunk per chunk_size less overlap, and one per document.
  const size_t expected_chunks = n + total_units / 400;
  std::vector<int64_t> starts, ends, bounds(n + 1, 0);
  starts.reserve(expected_chunks);
  ends.reserve(expected_chunks);
  nb::list out;
  std::vector<ragd::ChunkSpan> spans;  // one block's
  ragd::SplitScratch scratch;
  // Blocks of about 256 KiB of text: split and sliced again before the
  // cache (1-2 MiB of L2) has let go of it.
  constexpr size_t kBlockBytes = 256 * 1024;
  for (size_t first = 0; first < n;) {
    size_t last = first, surrogate_in = n;
    spans.clear();
    {
      nb::gil_scoped_release release;
      for (size_t bytes = 0; last < n && (last == first || bytes < kBlockBytes); ++last) {
        const CharsArg& a = args[last];
        bytes += a.size << (a.kind == CharsArg::Kind::ucs2 ? 1 : a.kind == CharsArg::Kind::ucs4 ? 2 : 0);
        try {
          if (!split_chars_into(self.core, a, spans, scratch)) {
            surrogate_in = last;
            break;
          }
        } catch (const ragd::Utf8Error& e) {
          throw std::invalid_argument("texts[" + std::to_string(last) + "]: " + e.what());
        }
        bounds[last + 1] = bounds[first] + static_cast<int64_t>(spans.size());
      }
    }
    if (surrogate_in < n) {
      try {
        raise_surrogate_error(items[surrogate_in]);
      } catch (nb::python_error& e) {
        throw nb::value_error(("texts[" + std::to_string(surrogate_in) + "]: " + std::string(e.what())).c_str());
      }
    }
    size_t k = 0;
    for (size_t i = first; i < last; ++i) {
      const size_t doc_end = static_cast<size_t>(bounds[i + 1] - bounds[first]);
      for (; k < doc_end; ++k) {
        const ragd::ChunkSpan& s = spans[k];
        PyObject* t = chunk_text(items[i], args[i], s);
        if (!t) throw nb::python_error();
        const int failed = PyList_Append(out.ptr(), t);
        Py_DECREF(t);
        if (failed) throw nb::python_error();
        starts.push_back(static_cast<int64_t>(s.begin));
        ends.push_back(static_cast<int64_t>(s.end));
      }
    }
    first = last;
  }
  return nb::make_tuple(out, int64_array(std::move(starts)), int64_array(std::move(ends)),
                        int64_array(std::move(bounds)));
}

}  // namespace

NB_MODULE(_native, m) {
  m.doc() = "ragd compiled core: text normalisation and chunking";

  m.def(
      "normalize_text",
      [](nb::bytes data) {
        std::string_view view(data.c_str(), data.size());
        nb::gil_scoped_release release;
        return ragd::normalize_text(view);
      },
      "data"_a,
      "Normalise UTF-8 bytes (line endings, control characters) and return str. "
      "Raises ValueError naming the byte offset of invalid UTF-8.");

  nb::class_<Splitter>(m, "Splitter",
                       "LangChain's RecursiveCharacterTextSplitter (keep_separator=True, "
                       "strip_whitespace=True, literal separators) returning chunk_type(start, end, text) "
                       "with code-point offsets. chunk_type must be a frozen dataclass of exactly those "
                       "three fields and no __post_init__: instances are built without calling __init__. "
                       "Immutable; safe to share between threads.")
      .def(
          "__init__",
          [](Splitter* self, std::vector<std::string> separators, long long chunk_size, long long chunk_overlap,
             nb::type_object chunk_type) {
            new (self) Splitter{ragd::RecursiveSplitter(std::move(separators), chunk_size, chunk_overlap),
                                std::move(chunk_type)};
          },
          "separators"_a, "chunk_size"_a, "chunk_overlap"_a, "chunk_type"_a)
      .def(
          "split_chars",
          &split_chars, "text"_a, nb::sig("def split_chars(self, text: str | bytes) -> list"),
          "Chunks sized in code points, exactly as LangChain splits them. ValueError names the byte "
          "offset of invalid UTF-8.")
      .def("split_chars_many", &split_chars_many, "texts"_a,
           nb::sig("def split_chars_many(self, texts: typing.Sequence[str | bytes]) -> "
                   "tuple[list[str], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], "
                   "numpy.typing.NDArray[numpy.int64]]"),
           "split_chars over many documents in one call, the GIL released once per 256 KiB of text: "
           "returns (texts, starts, ends, bounds), document i's chunks being "
           "texts[bounds[i]:bounds[i + 1]] with code-point offsets starts and ends (int64 arrays). "
           "ValueError names the document (texts[i]) and the byte offset of invalid UTF-8.")
      .def(
          "split_tokens",
          [](const Splitter& self, nb::handle text, ragd::TokenOffsets offsets,
             std::vector<std::optional<long long>> word_ids) {
            const ragd::Tokens tokens{std::move(offsets), std::move(word_ids)};
            return split_without_gil(self, text,
                                     [&](const ragd::Utf8View& s) { return self.core.split_tokens(s, tokens); });
          },
          "text"_a, "offsets"_a, "word_ids"_a,
          nb::sig("def split_tokens(self, text: str | bytes, offsets: list[tuple[int, int]], "
                  "word_ids: list[int | None]) -> list"),
          "Chunks sized in tokens, given a tokenizer's Encoding.offsets and Encoding.word_ids over "
          "the whole text: boundaries fall between words, or between the tokens of a word longer "
          "than chunk_size.");
  ragd::bind_filter_mask(m);
  ragd::bind_grant_mask(m);
  ragd::bind_rerank(m);
}
