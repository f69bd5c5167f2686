// nanobind binding of ragd::rerank_top_k (rerank.hpp): checks every array
// (ndarray_args.hpp) with the GIL held, raising ValueError, then scores the
// candidates without it (concurrent searches re-rank in parallel).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <optional>
#include <string>

#include "ndarray_args.hpp"
#include "rerank.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace ragd {
namespace {

using nbargs::InArray;
using nbargs::checked;

size_t rerank_top_k_py(nb::handle out_scores_obj, nb::handle out_ids_obj, const InArray& codes,
                       const InArray& present, const InArray& ids, const InArray& query, const std::string& kind,
                       std::optional<InArray> vmin, std::optional<InArray> vdiff) {
  RerankCopyView c;
  if (kind == "fp16") {
    c.kind = CopyKind::kFp16;
  } else if (kind == "sq8") {
    c.kind = CopyKind::kSq8;
  } else {
    throw nb::value_error(("kind: expected 'fp16' or 'sq8', got '" + kind + "'").c_str());
  }
  c.dim = query.ndim() == 1 ? query.shape(0) : SIZE_MAX;
  const auto* q = static_cast<const float*>(checked(query, "query", nb::dtype<float>(), c.dim));
  if (c.dim == 0) throw nb::value_error("query: expected at least one dimension");
  c.rows = present.ndim() == 1 ? present.shape(0) : SIZE_MAX;
  c.present = static_cast<const uint8_t*>(checked(present, "present", nb::dtype<bool>(), c.rows));
  c.codes = static_cast<const uint8_t*>(checked(codes, "codes", nb::dtype<uint8_t>(), c.rows * c.code_size()));
  if (c.kind == CopyKind::kSq8) {
    if (!vmin || !vdiff) throw nb::value_error("sq8: vmin and vdiff are required");
    c.vmin = static_cast<const float*>(checked(*vmin, "vmin", nb::dtype<float>(), c.dim));
    c.vdiff = static_cast<const float*>(checked(*vdiff, "vdiff", nb::dtype<float>(), c.dim));
  }
  const size_t n = ids.ndim() == 1 ? ids.shape(0) : SIZE_MAX;
  const auto* cand = static_cast<const int64_t*>(checked(ids, "ids", nb::dtype<int64_t>(), n));
  nb::ndarray<> out_scores, out_ids;
  if (!nb::try_cast(out_scores_obj, out_scores, false) || !nb::try_cast(out_ids_obj, out_ids, false))
    throw nb::value_error("out_scores / out_ids: expected writable arrays");
  const size_t k = out_scores.ndim() == 1 ? out_scores.shape(0) : SIZE_MAX;
  auto* os = static_cast<float*>(const_cast<void*>(checked(out_scores, "out_scores", nb::dtype<float>(), k)));
  auto* oi = static_cast<int64_t*>(const_cast<void*>(checked(out_ids, "out_ids", nb::dtype<int64_t>(), k)));
  nb::gil_scoped_release release;
  return rerank_top_k(c, q, cand, n, k, os, oi);
}

}  // namespace

void bind_rerank(nb::module_& m) {
  m.def("rerank_top_k", &rerank_top_k_py, "out_scores"_a, "out_ids"_a, "codes"_a, "present"_a, "ids"_a, "query"_a,
        nb::kw_only(), "kind"_a, "vmin"_a = nb::none(), "vdiff"_a = nb::none(),
        nb::sig("def rerank_top_k(out_scores: numpy.typing.NDArray[numpy.float32], "
                "out_ids: numpy.typing.NDArray[numpy.int64], codes: numpy.typing.NDArray[numpy.uint8], "
                "present: numpy.typing.NDArray[numpy.bool_], ids: numpy.typing.NDArray[numpy.int64], "
                "query: numpy.typing.NDArray[numpy.float32], *, kind: str, "
                "vmin: numpy.typing.NDArray[numpy.float32] | None = None, "
                "vdiff: numpy.typing.NDArray[numpy.float32] | None = None) -> int"),
        "RerankCopy.rerank in one pass, the GIL released: scores the candidate chunk ids against the query "
        "with the rows of the copy (codes: rows x code_size bytes, flat; present: one flag per row; kind "
        "'fp16' or 'sq8', the latter with FAISS QT_8bit's vmin and vdiff), skipping ids that are negative, "
        "past the rows or absent, and writes the best len(out_scores) (score descending, ties in candidate "
        "order) to out_scores / out_ids; returns how many were written.");
  m.def("rerank_uses_f16c", &rerank_uses_f16c, "Whether rerank_top_k decodes fp16 with F16C on this CPU.");
}

}  // namespace ragd
