// ragd::rerank_top_k against a reference written from its contract in
// rerank.hpp (decode every row, dot product in double, stable sort): fp16 and
// sq8 copies, candidates that are negative, past the rows or absent,
// duplicates, k larger than the candidates, ties, a dimension that is not a
// multiple of the SIMD width, and the half-precision decode (exhaustively).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "rerank.hpp"

namespace ragd {
namespace {

// float -> half, round to nearest even (normal range and zero only: what the tests draw).
uint16_t to_half(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  const uint32_t sign = (b >> 16) & 0x8000u;
  const int32_t exp = static_cast<int32_t>((b >> 23) & 0xffu) - 127 + 15;
  uint32_t mant = b & 0x7fffffu;
  if (exp <= 0) return static_cast<uint16_t>(sign);
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(h);
}

struct Copy {
  size_t dim;
  CopyKind kind;
  std::vector<uint8_t> codes, present;
  std::vector<float> vmin, vdiff;

  RerankCopyView view() const {
    RerankCopyView v;
    v.codes = codes.data();
    v.present = present.data();
    v.rows = present.size();
    v.dim = dim;
    v.kind = kind;
    v.vmin = vmin.empty() ? nullptr : vmin.data();
    v.vdiff = vdiff.empty() ? nullptr : vdiff.data();
    return v;
  }

  double decoded(size_t row, size_t i) const {
    if (kind == CopyKind::kFp16) {
      uint16_t h;
      std::memcpy(&h, &codes[(row * dim + i) * 2], sizeof h);
      return half_to_float(h);
    }
    return vmin[i] + (codes[row * dim + i] + 0.5) / 255.0 * vdiff[i];
  }
};

Copy random_copy(CopyKind kind, size_t rows, size_t dim, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> byte(0, 255);
  Copy c{dim, kind, {}, std::vector<uint8_t>(rows), {}, {}};
  c.codes.resize(rows * dim * (kind == CopyKind::kFp16 ? 2 : 1));
  for (size_t r = 0; r < rows; ++r) {
    c.present[r] = (r % 7) != 3;  // some rows deleted since
    for (size_t i = 0; i < dim; ++i) {
      if (kind == CopyKind::kFp16) {
        const uint16_t h = to_half(normal(rng) * 0.1f);
        std::memcpy(&c.codes[(r * dim + i) * 2], &h, sizeof h);
      } else {
        c.codes[r * dim + i] = static_cast<uint8_t>(byte(rng));
      }
    }
  }
  if (kind == CopyKind::kSq8) {
    for (size_t i = 0; i < dim; ++i) {
      c.vmin.push_back(-0.3f + 0.01f * static_cast<float>(i % 5));
      c.vdiff.push_back(0.6f + 0.02f * static_cast<float>(i % 3));
    }
  }
  return c;
}

struct Hit {
  double score;
  int64_t id;
};

std::vector<Hit> reference(const Copy& c, const std::vector<float>& q, const std::vector<int64_t>& ids, size_t k) {
  std::vector<Hit> hits;
  for (const int64_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= c.present.size() || !c.present[static_cast<size_t>(id)]) continue;
    double s = 0;
    for (size_t i = 0; i < c.dim; ++i) s += q[i] * c.decoded(static_cast<size_t>(id), i);
    hits.push_back({s, id});
  }
  std::stable_sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.score > b.score; });
  hits.resize(std::min(k, hits.size()));
  return hits;
}

void expect_matches(const Copy& c, const std::vector<float>& q, const std::vector<int64_t>& ids, size_t k) {
  std::vector<float> scores(k, -1.0f);
  std::vector<int64_t> out(k, -7);
  const size_t got = rerank_top_k(c.view(), q.data(), ids.data(), ids.size(), k, scores.data(), out.data());
  const auto want = reference(c, q, ids, k);
  ASSERT_EQ(got, want.size());
  for (size_t r = 0; r < got; ++r) {
    EXPECT_NEAR(scores[r], want[r].score, 1e-4) << "rank " << r;
    // Scores that differ by more than float rounding must come in the reference's order.
    if (r + 1 < got && std::abs(want[r].score - want[r + 1].score) > 1e-4) EXPECT_EQ(out[r], want[r].id) << r;
  }
  for (size_t r = got; r < k; ++r) EXPECT_EQ(out[r], -7) << "untouched past the hits";
}

TEST(Rerank, HalfDecodeMatchesEveryBitPattern) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    const double sign = (h & 0x8000u) ? -1.0 : 1.0;
    if (exp == 0x1f) {
      EXPECT_TRUE(mant ? std::isnan(f) : std::isinf(f)) << h;
      continue;
    }
    const double want = exp == 0 ? sign * std::ldexp(mant, -24) : sign * std::ldexp(1024 + mant, static_cast<int>(exp) - 25);
    EXPECT_EQ(static_cast<double>(f), want) << h;
    EXPECT_EQ(std::signbit(f), (h & 0x8000u) != 0) << h;
  }
}

TEST(Rerank, RandomCopiesMatchTheReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (const CopyKind kind : {CopyKind::kFp16, CopyKind::kSq8}) {
    for (const size_t dim : {size_t{1}, size_t{7}, size_t{8}, size_t{24}, size_t{384}, size_t{390}}) {
      const size_t rows = 300;
      const Copy c = random_copy(kind, rows, dim, rng);
      for (int trial = 0; trial < 20; ++trial) {
        std::vector<float> q(dim);
        for (auto& x : q) x = normal(rng);
        std::uniform_int_distribution<int64_t> id(-3, static_cast<int64_t>(rows) + 5);  // some out of range
        std::vector<int64_t> ids(static_cast<size_t>(trial * 13 + 1));
        for (auto& x : ids) x = id(rng);
        for (const size_t k : {size_t{1}, size_t{10}, size_t{400}}) expect_matches(c, q, ids, k);
      }
    }
  }
}

TEST(Rerank, TiesKeepCandidateOrderAndNothingIsScoredWithoutARow) {
  std::mt19937 rng(1);
  Copy c = random_copy(CopyKind::kFp16, 10, 16, rng);
  std::fill(c.present.begin(), c.present.end(), uint8_t{1});
  // Rows 2, 5 and 8 identical: equal scores, returned in the candidates' order.
  for (const size_t r : {size_t{5}, size_t{8}}) std::copy_n(&c.codes[2 * 32], 32, &c.codes[r * 32]);
  std::vector<float> q(16, 0.0f);
  q[0] = 1.0f;
  std::vector<float> scores(3);
  std::vector<int64_t> out(3);
  const std::vector<int64_t> ids{8, 2, 5};
  ASSERT_EQ(rerank_top_k(c.view(), q.data(), ids.data(), ids.size(), 3, scores.data(), out.data()), 3u);
  EXPECT_EQ(out, (std::vector<int64_t>{8, 2, 5}));

  c.present[4] = 0;
  const std::vector<int64_t> none{-1, 4, 10, 1 << 30};
  EXPECT_EQ(rerank_top_k(c.view(), q.data(), none.data(), none.size(), 3, scores.data(), out.data()), 0u);
  EXPECT_EQ(rerank_top_k(c.view(), q.data(), none.data(), 0, 3, scores.data(), out.data()), 0u);
}

TEST(Rerank, NanScoresSortLast) {
  std::mt19937 rng(3);
  Copy c = random_copy(CopyKind::kFp16, 4, 8, rng);
  std::fill(c.present.begin(), c.present.end(), uint8_t{1});
  const uint16_t nan = 0x7e00;
  std::memcpy(&c.codes[1 * 16], &nan, sizeof nan);  // row 1 decodes a NaN
  std::vector<float> q(8, 1.0f);
  std::vector<float> scores(4);
  std::vector<int64_t> out(4);
  const std::vector<int64_t> ids{1, 0, 2, 3};
  ASSERT_EQ(rerank_top_k(c.view(), q.data(), ids.data(), ids.size(), 4, scores.data(), out.data()), 4u);
  EXPECT_EQ(out[3], 1);
  EXPECT_TRUE(std::isnan(scores[3]));
}

}  // namespace
}  // namespace ragd
