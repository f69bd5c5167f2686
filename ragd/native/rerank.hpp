// The exact re-rank of IVF-PQ candidates from the resident re-rank copy
// (Python: ragd/index/rerank_copy.py RerankCopy.rerank, called by
// ragd/index/vector_index.py for every IVF-PQ search), in one pass:
//
//   for each candidate id: skip it when negative, past the copy's rows or not
//   present (deleted since); score = <query, row decoded from the copy>;
//   keep the k best (score descending, ties in candidate order).
//
// In numpy this was a gather of the candidates' rows (a copy of 400 x 768
// bytes), a conversion to float32 (another copy), a matrix-vector product and
// an argsort, each allocating: measured (perf, 20k and 1M vectors, one
// thread) a quarter of a single-query search, most of it the gather's cache
// misses. Here each row is read once, in place, while the next rows are
// prefetched, and decoded into registers (F16C on x86-64 when the CPU has it,
// checked at run time; a portable loop otherwise).
//
// Copy kinds (RerankCopy.KINDS):
//   fp16: 2 bytes per dimension, IEEE half precision;
//   sq8:  1 byte per dimension, FAISS's ScalarQuantizer QT_8bit (non-uniform):
//         x[i] = vmin[i] + (code[i] + 0.5) / 255 * vdiff[i].
//
// rerank.cpp holds the kernel (in ragd_core, so the GoogleTest suite and the
// sanitizer builds use it without Python); rerank_binding.cpp the binding.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ragd {

enum class CopyKind : int { kFp16 = 0, kSq8 = 1 };

struct RerankCopyView {
  const uint8_t* codes = nullptr;    // rows x code_size bytes, row = chunk id
  const uint8_t* present = nullptr;  // rows flags (bool): the row holds a vector
  size_t rows = 0;
  size_t dim = 0;
  CopyKind kind = CopyKind::kFp16;
  const float* vmin = nullptr;   // sq8: dim entries
  const float* vdiff = nullptr;  // sq8: dim entries

  size_t code_size() const { return kind == CopyKind::kFp16 ? 2 * dim : dim; }
};

// Scores the candidates ids[0..n) against query[0..dim) and writes the best
// min(k, scored) to out_scores / out_ids, best first (ties: the earlier
// candidate first); returns how many were written. Reads nothing else and
// allocates one score per candidate.
size_t rerank_top_k(const RerankCopyView& copy, const float* query, const int64_t* ids, size_t n, size_t k,
                    float* out_scores, int64_t* out_ids);

// One half-precision value as float (exact, subnormals, infinities and NaN
// included): the portable decode, and the reference the tests compare with.
float half_to_float(uint16_t h);

// Whether rerank_top_k decodes fp16 with F16C instructions on this CPU.
bool rerank_uses_f16c();

}  // namespace ragd

#ifdef NB_VERSION_MAJOR  // included after nanobind.h (bindings.cpp, rerank_binding.cpp)
namespace ragd {
// Adds rerank_top_k() to the module (ragd._native.rerank_top_k).
void bind_rerank(nanobind::module_& m);
}  // namespace ragd
#endif
