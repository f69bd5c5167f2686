// ragd::rerank_top_k (rerank.hpp): the per-candidate dot products and the top k.
#include "rerank.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define RAGD_X86_DISPATCH 1
#endif

namespace ragd {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // infinity, NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);  // normal: rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;  // zero
  } else {
    // subnormal: shift the mantissa up until its leading one is implicit
    uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

namespace {

// Rows ahead whose cache lines are requested while the current one is scored:
// the candidates are scattered over the copy, each row a DRAM miss at 1M+ rows.
constexpr size_t kPrefetchAhead = 4;

inline void prefetch_row(const uint8_t* row, size_t bytes) {
#if defined(__GNUC__) || defined(__clang__)
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(row + off, 0, 0);
#else
  (void)row;
  (void)bytes;
#endif
}

float dot_fp16_portable(const float* q, const uint8_t* row, size_t dim) {
  float acc = 0.0f;
  for (size_t i = 0; i < dim; ++i) {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, sizeof h);
    acc += q[i] * half_to_float(h);
  }
  return acc;
}

#ifdef RAGD_X86_DISPATCH
__attribute__((target("avx2,fma,f16c"))) float dot_fp16_f16c(const float* q, const uint8_t* row, size_t dim) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m128i h0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
    const __m128i h1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i + 16));
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(h0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_cvtph_ps(h1), acc1);
  }
  for (; i + 8 <= dim; i += 8) {
    const __m128i h0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(h0), acc0);
  }
  acc0 = _mm256_add_ps(acc0, acc1);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  float acc = _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
  for (; i < dim; ++i) {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, sizeof h);
    acc += q[i] * half_to_float(h);
  }
  return acc;
}

bool cpu_has_f16c() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
  return has;
}
#endif

using DotFn = float (*)(const float*, const uint8_t*, size_t);

DotFn fp16_dot() {
#ifdef RAGD_X86_DISPATCH
  if (cpu_has_f16c()) return dot_fp16_f16c;
#endif
  return dot_fp16_portable;
}

// sq8: <q, vmin + (c + 0.5) / 255 * vdiff> = base + sum_i w[i] * c[i], with
// w[i] = q[i] * vdiff[i] / 255 and base = sum_i (q[i] * vmin[i] + 0.5 * w[i]),
// both computed once per query.
float dot_sq8(const float* w, float base, const uint8_t* row, size_t dim) {
  float acc = 0.0f;
  for (size_t i = 0; i < dim; ++i) acc += w[i] * static_cast<float>(row[i]);
  return base + acc;
}

}  // namespace

bool rerank_uses_f16c() {
#ifdef RAGD_X86_DISPATCH
  return cpu_has_f16c();
#else
  return false;
#endif
}

size_t rerank_top_k(const RerankCopyView& copy, const float* query, const int64_t* ids, size_t n, size_t k,
                    float* out_scores, int64_t* out_ids) {
  const size_t dim = copy.dim;
  const size_t cs = copy.code_size();
  // The candidates that have a row, in candidate order.
  std::vector<size_t> at;
  at.reserve(n);
  for (size_t j = 0; j < n; ++j) {
    const int64_t id = ids[j];
    if (id >= 0 && static_cast<uint64_t>(id) < copy.rows && copy.present[id]) at.push_back(j);
  }
  std::vector<float> score(at.size());
  const auto row_of = [&](size_t m) { return copy.codes + static_cast<size_t>(ids[at[m]]) * cs; };
  for (size_t m = 0; m < std::min(kPrefetchAhead, at.size()); ++m) prefetch_row(row_of(m), cs);
  if (copy.kind == CopyKind::kFp16) {
    const DotFn dot = fp16_dot();
    for (size_t m = 0; m < at.size(); ++m) {
      if (m + kPrefetchAhead < at.size()) prefetch_row(row_of(m + kPrefetchAhead), cs);
      score[m] = dot(query, row_of(m), dim);
    }
  } else {
    std::vector<float> w(dim);
    float base = 0.0f;
    for (size_t i = 0; i < dim; ++i) {
      w[i] = query[i] * copy.vdiff[i] / 255.0f;
      base += query[i] * copy.vmin[i] + 0.5f * w[i];
    }
    for (size_t m = 0; m < at.size(); ++m) {
      if (m + kPrefetchAhead < at.size()) prefetch_row(row_of(m + kPrefetchAhead), cs);
      score[m] = dot_sq8(w.data(), base, row_of(m), dim);
    }
  }
  const size_t top = std::min(k, at.size());
  std::vector<size_t> order(at.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Score descending, then candidate order (the numpy form's stable argsort); a NaN
  // score (a NaN query) sorts last instead of breaking the ordering.
  const auto better = [&](size_t a, size_t b) {
    const float sa = score[a], sb = score[b];
    const bool na = sa != sa, nb = sb != sb;
    if (na || nb) return !na && nb ? true : (na == nb && a < b);
    return sa > sb || (sa == sb && a < b);
  };
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(top), order.end(), better);
  for (size_t r = 0; r < top; ++r) {
    out_scores[r] = score[order[r]];
    out_ids[r] = ids[at[order[r]]];
  }
  return top;
}

}  // namespace ragd
