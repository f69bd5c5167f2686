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

#include "normalize.hpp"
#include "splitter.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

// A text argument's UTF-8. For a str it is CPython's own, valid by
// construction (no copy when ASCII, cached otherwise), and its length in code
// points is known; bytes are validated later, without the GIL. The object must
// outlive the view, which the calling frame guarantees.
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

// Runs a split without the GIL, so ingestion threads chunk in parallel, then
// builds the chunks: texts sliced from a str, decoded from bytes.
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

// A 1-d int64 numpy array that takes over `values`.
nb::ndarray<nb::numpy, int64_t> int64_array(std::vector<int64_t>&& values) {
  auto* owned = new std::vector<int64_t>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<int64_t>*>(p); });
  return nb::ndarray<nb::numpy, int64_t>(owned->data(), {owned->size()}, owner);
}

// split_chars over many documents in one call: the arguments are read with
// the GIL held, every document is split in one GIL-free section, then one
// str per chunk is built (sliced from a str, decoded from bytes) and the
// offsets go into numpy arrays, so no per-chunk object but the text exists.
// Returns (texts, starts, ends, bounds): document i's chunks are
// texts[bounds[i]:bounds[i + 1]], with code-point offsets starts/ends.
nb::tuple split_chars_many(const Splitter& self, nb::handle texts) {
  // A list of our own: another thread may change the caller's while the
  // GIL is released, but not the texts this one holds references to.
  nb::object seq = nb::steal(PySequence_List(texts.ptr()));
  if (!seq.is_valid()) throw nb::python_error();
  const size_t n = static_cast<size_t>(PyList_Size(seq.ptr()));
  std::vector<PyObject*> items(n);  // borrowed from seq
  for (size_t i = 0; i < n; ++i) items[i] = PyList_GetItem(seq.ptr(), static_cast<Py_ssize_t>(i));
  std::vector<TextArg> args;
  args.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    try {
      args.push_back(text_arg(items[i]));
    } catch (nb::python_error& e) {  // a str with lone surrogates
      throw nb::value_error(("texts[" + std::to_string(i) + "]: " + std::string(e.what())).c_str());
    } catch (nb::builtin_exception&) {  // neither str nor bytes
      throw nb::type_error(("texts[" + std::to_string(i) + "] must be str or bytes").c_str());
    }
  }
  std::vector<ragd::ChunkSpan> spans;
  std::vector<int64_t> bounds(n + 1, 0);
  {
    nb::gil_scoped_release release;
    spans.reserve(n * 2);
    for (size_t i = 0; i < n; ++i) {
      try {
        std::vector<ragd::ChunkSpan> doc = self.core.split_chars(args[i].view());
        spans.insert(spans.end(), doc.begin(), doc.end());
      } catch (const ragd::Utf8Error& e) {
        throw std::invalid_argument("texts[" + std::to_string(i) + "]: " + e.what());
      }
      bounds[i + 1] = static_cast<int64_t>(spans.size());
    }
  }
  std::vector<int64_t> starts(spans.size()), ends(spans.size());
  nb::object out = nb::steal(PyList_New(static_cast<Py_ssize_t>(spans.size())));
  if (!out.is_valid()) throw nb::python_error();
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    PyObject* text = items[i];
    const bool is_str = PyUnicode_Check(text);
    for (; k < static_cast<size_t>(bounds[i + 1]); ++k) {
      const ragd::ChunkSpan& s = spans[k];
      PyObject* chunk_text =
          is_str ? PyUnicode_Substring(text, static_cast<Py_ssize_t>(s.begin), static_cast<Py_ssize_t>(s.end))
                 : PyUnicode_DecodeUTF8(args[i].bytes.data() + s.byte_begin,
                                        static_cast<Py_ssize_t>(s.byte_end - s.byte_begin), "strict");
      if (!chunk_text) throw nb::python_error();
      PyList_SetItem(out.ptr(), static_cast<Py_ssize_t>(k), chunk_text);  // steals
      starts[k] = static_cast<int64_t>(s.begin);
      ends[k] = static_cast<int64_t>(s.end);
    }
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
          [](const Splitter& self, nb::handle text) {
            return split_without_gil(self, text, [&](const ragd::Utf8View& s) { return self.core.split_chars(s); });
          },
          "text"_a, nb::sig("def split_chars(self, text: str | bytes) -> list"),
          "Chunks sized in code points, exactly as LangChain splits them. ValueError names the byte "
          "offset of invalid UTF-8.")
      .def("split_chars_many", &split_chars_many, "texts"_a,
           nb::sig("def split_chars_many(self, texts: typing.Sequence[str | bytes]) -> "
                   "tuple[list[str], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], "
                   "numpy.typing.NDArray[numpy.int64]]"),
           "split_chars over many documents in one call, the GIL released once: returns (texts, starts, "
           "ends, bounds), document i's chunks being texts[bounds[i]:bounds[i + 1]] with code-point "
           "offsets starts and ends (int64 arrays). ValueError names the document (texts[i]) and the "
           "byte offset of invalid UTF-8.")
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
}
