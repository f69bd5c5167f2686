// ragd::filter_mask against a row-by-row reference written from the
// semantics of FilterColumns.mask (ragd/index/columns.py), on random columns
// and filters, both IdSet layouts (table and sorted), extreme ids and bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "filter_mask.hpp"

namespace ragd {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

struct Columns {
  std::vector<uint8_t> alive, is_private;
  std::vector<int64_t> project, author, updated;
  std::vector<int32_t> type_code;

  MaskColumns view() const {
    return {alive.size(), alive.data(), project.data(), type_code.data(), is_private.data(), author.data(),
            updated.data()};
  }
};

bool in(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

std::vector<uint8_t> reference(const Columns& c, const MaskFilter& f) {
  std::vector<uint8_t> out(c.alive.size());
  for (size_t i = 0; i < out.size(); ++i) {
    bool ok = c.alive[i] != 0;
    if (f.projects) ok = ok && in(*f.projects, c.project[i]);
    if (f.types) ok = ok && in(*f.types, c.type_code[i]);
    if (f.private_check && c.is_private[i]) {
      ok = ok && (in(f.private_projects, c.project[i]) || (f.user && c.author[i] == *f.user) ||
                  in(f.viewer_rows, static_cast<int64_t>(i)));
    }
    if (f.updated_min) ok = ok && c.updated[i] >= *f.updated_min;
    if (f.updated_max) ok = ok && c.updated[i] <= *f.updated_max;
    out[i] = ok;
  }
  return out;
}

std::vector<uint8_t> run(const Columns& c, const MaskFilter& f) {
  std::vector<uint8_t> out(c.alive.size(), 7);  // 7: never written
  filter_mask(c.view(), f, out.data());
  return out;
}

// Values from a small range, the extremes and a spread range, so that sets
// get both IdSet layouts.
int64_t pick_id(std::mt19937_64& rng, bool spread) {
  switch (rng() % 8) {
    case 0: return kMin;
    case 1: return kMax;
    case 2: return -static_cast<int64_t>(rng() % 5);
    default: return spread ? static_cast<int64_t>(rng() % 4'000'000'000ULL) : static_cast<int64_t>(rng() % 12);
  }
}

TEST(FilterMask, AgreesWithTheReferenceOnRandomColumnsAndFilters) {
  std::mt19937_64 rng(4);
  for (int round = 0; round < 3000; ++round) {
    const size_t n = rng() % 5 == 0 ? rng() % 3 : rng() % 300;
    const bool spread = rng() % 3 == 0;
    Columns c;
    for (size_t i = 0; i < n; ++i) {
      c.alive.push_back(rng() % 10 != 0);
      c.project.push_back(pick_id(rng, spread));
      c.type_code.push_back(static_cast<int32_t>(rng() % 6));
      c.is_private.push_back(rng() % 3 == 0);
      c.author.push_back(static_cast<int64_t>(rng() % 6));
      c.updated.push_back(rng() % 10 == 0 ? (rng() % 2 ? kMin : kMax) : static_cast<int64_t>(rng() % 100));
    }
    MaskFilter f;
    const auto ids = [&](size_t most) {
      std::vector<int64_t> v(rng() % (most + 1));
      for (auto& x : v) x = pick_id(rng, spread);
      return v;
    };
    if (rng() % 3) f.projects = ids(6);
    if (rng() % 3) {
      f.types.emplace();
      for (size_t k = rng() % 4; k > 0; --k) f.types->push_back(static_cast<int64_t>(rng() % 8));
    }
    f.private_check = rng() % 4 != 0;
    f.private_projects = ids(3);
    if (rng() % 3) f.user = static_cast<int64_t>(rng() % 6);
    if (n && rng() % 2) {
      for (size_t k = rng() % 6; k > 0; --k) f.viewer_rows.push_back(static_cast<int64_t>(rng() % n));
    }
    if (rng() % 3 == 0) f.updated_min = rng() % 4 == 0 ? kMin : static_cast<int64_t>(rng() % 100);
    if (rng() % 3 == 0) f.updated_max = rng() % 4 == 0 ? kMax : static_cast<int64_t>(rng() % 100);
    if (!f.private_check) f.viewer_rows.clear();  // the reference applies viewers only with the check
    ASSERT_EQ(run(c, f), reference(c, f)) << "round " << round;
  }
}

TEST(FilterMask, IdSetLayouts) {
  const IdSet compact({3, 1, 1000});
  EXPECT_TRUE(compact.uses_table());
  const IdSet extremes({kMin, kMax});
  EXPECT_FALSE(extremes.uses_table());
  for (const IdSet* s : {&compact, &extremes}) {
    for (const int64_t x : {kMin, kMin + 1, int64_t{-1}, int64_t{0}, int64_t{1}, int64_t{2}, int64_t{3},
                            int64_t{1000}, int64_t{1001}, kMax - 1, kMax}) {
      const bool want = s == &compact ? (x == 1 || x == 3 || x == 1000) : (x == kMin || x == kMax);
      EXPECT_EQ(s->contains(x), want) << x;
    }
  }
  EXPECT_FALSE(IdSet(std::vector<int64_t>{}).contains(0));
  const IdSet single({kMax});
  EXPECT_TRUE(single.uses_table());
  EXPECT_TRUE(single.contains(kMax));
  EXPECT_FALSE(single.contains(kMin));
  EXPECT_FALSE(single.contains(kMax - 1));
}

TEST(FilterMask, EmptySetAdmitsNothingAndNoConditionAdmitsAlive) {
  Columns c{{1, 1, 0}, {0, 1, 0}, {1, 2, 3}, {5, 5, 5}, {0, 0, 0}, {0, 1, 2}};
  MaskFilter f;
  EXPECT_EQ(run(c, f), (std::vector<uint8_t>{1, 1, 0}));
  f.types = std::vector<int64_t>{};
  EXPECT_EQ(run(c, f), (std::vector<uint8_t>{0, 0, 0}));
}

TEST(FilterMask, ViewerRowsOutsideTheColumnsThrowBeforeWriting) {
  Columns c{{1, 1}, {1, 1}, {1, 2}, {5, 5}, {0, 0}, {0, 1}};
  MaskFilter f;
  f.private_check = true;
  for (const int64_t bad : {int64_t{-1}, int64_t{2}, kMax, kMin}) {
    f.viewer_rows = {0, bad};
    std::vector<uint8_t> out(2, 7);
    EXPECT_THROW(filter_mask(c.view(), f, out.data()), std::invalid_argument);
    EXPECT_EQ(out, (std::vector<uint8_t>{7, 7}));
  }
  f.viewer_rows = {1};
  EXPECT_EQ(run(c, f), (std::vector<uint8_t>{0, 1}));
}

TEST(FilterMask, NoRowsTouchNothing) {
  MaskColumns c;  // every pointer null
  MaskFilter f;
  f.projects = std::vector<int64_t>{1};
  f.private_check = true;
  f.updated_min = 0;
  EXPECT_NO_THROW(filter_mask(c, f, nullptr));
  c.rows = 1;
  uint8_t out = 0;
  EXPECT_THROW(filter_mask(c, f, &out), std::invalid_argument);
}

}  // namespace
}  // namespace ragd
