// ragd::grant_mask against a row-by-row reference written from the grant rule
// in proto/ragd/v1/ragd.proto (message Grant), not from the compiled tables:
// random columns and grants, every IdMap/IdSet layout, the compiled table and
// the grant-by-grant fallback (max_table 0), narrowing, owners past the first
// two (own_rows), keys too large to pack, codes past the dictionaries, extreme
// ids, and the argument checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "grant_mask.hpp"

namespace ragd {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

struct Columns {
  std::vector<uint8_t> alive, flags;
  std::vector<int64_t> project, author, updated, tracker, owner0, owner1;
  std::vector<int32_t> type_code;
  // Derived as FilterColumns keeps them: the packed keys, tracker codes and their dictionaries.
  std::vector<uint32_t> key;
  std::vector<int32_t> tracker_code;
  std::vector<int64_t> project_of_code, tracker_of_code;

  // Codes in order of first appearance; every `overflow`-th row keeps an overflow key
  // although it would pack (the kernel must read such rows from project/type_code).
  void encode(size_t overflow = 0) {
    key.clear();
    tracker_code.clear();
    project_of_code.clear();
    tracker_of_code.clear();
    const auto code = [](std::vector<int64_t>& dict, int64_t id) {
      const auto it = std::find(dict.begin(), dict.end(), id);
      if (it != dict.end()) return static_cast<int64_t>(it - dict.begin());
      dict.push_back(id);
      return static_cast<int64_t>(dict.size() - 1);
    };
    for (size_t i = 0; i < alive.size(); ++i) {
      const int64_t pc = code(project_of_code, project[i]);
      key.push_back(overflow && i % overflow == 0 ? kKeyOverflow : pack_key(pc, type_code[i]));
      tracker_code.push_back(static_cast<int32_t>(code(tracker_of_code, tracker[i])));
    }
  }

  GrantColumns view() const {
    GrantColumns c;
    c.base = {alive.size(), alive.data(), project.data(), type_code.data(), nullptr, author.data(), updated.data()};
    c.key = key.data();
    c.tracker_code = tracker_code.data();
    c.owner0 = owner0.data();
    c.owner1 = owner1.data();
    c.flags = flags.data();
    return c;
  }
};

bool in(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// The proto's rule, row by row and grant by grant.
std::vector<uint8_t> reference(const Columns& c, const GrantFilter& f) {
  std::vector<int64_t> principals;
  for (const int64_t p : f.principals)
    if (p != 0) principals.push_back(p);
  std::vector<uint8_t> out(c.alive.size());
  for (size_t i = 0; i < out.size(); ++i) {
    bool ok = c.alive[i] != 0;
    if (f.updated_min) ok = ok && c.updated[i] >= *f.updated_min;
    if (f.updated_max) ok = ok && c.updated[i] <= *f.updated_max;
    if (f.projects) ok = ok && in(*f.projects, c.project[i]);
    if (f.types) ok = ok && in(*f.types, c.type_code[i]);
    const bool own = in(principals, c.owner0[i]) || in(principals, c.owner1[i]) ||
                     in(f.own_rows, static_cast<int64_t>(i));
    const bool is_private = c.flags[i] & kRowPrivate, private_note = c.flags[i] & kRowPrivateNote;
    bool any = false;
    for (const Grant& g : f.grants) {
      if (!in(g.types, c.type_code[i]) || !in(g.projects, c.project[i])) continue;
      if (g.trackers && !in(*g.trackers, c.tracker[i])) continue;
      bool vis = false;
      switch (g.visibility) {
        case Visibility::kAll: vis = true; break;
        case Visibility::kDefault: vis = !is_private || own; break;
        case Visibility::kOwn: vis = own; break;
      }
      if (private_note && !(g.private_notes || (f.user != 0 && c.author[i] == f.user))) vis = false;
      any = any || vis;
    }
    out[i] = ok && any;
  }
  return out;
}

std::vector<uint8_t> run(const Columns& c, GrantFilter f) {
  f.project_of_code = c.project_of_code;
  f.tracker_of_code = c.tracker_of_code;
  std::vector<uint8_t> out(c.alive.size(), 7);  // 7: never written
  grant_mask(c.view(), f, out.data());
  return out;
}

int64_t pick_id(std::mt19937_64& rng, bool spread) {
  switch (rng() % 10) {
    case 0: return kMin;
    case 1: return kMax;
    case 2: return -static_cast<int64_t>(rng() % 3);
    default: return spread ? static_cast<int64_t>(rng() % 4'000'000'000ULL) : static_cast<int64_t>(rng() % 10);
  }
}

Columns random_columns(std::mt19937_64& rng, size_t n, bool spread) {
  Columns c;
  for (size_t i = 0; i < n; ++i) {
    c.alive.push_back(rng() % 10 != 0);
    c.project.push_back(pick_id(rng, spread));
    c.type_code.push_back(rng() % 50 == 0 ? 5000 : static_cast<int32_t>(rng() % 5));  // 5000: too large to pack
    c.tracker.push_back(rng() % 4 == 0 ? 0 : pick_id(rng, spread));
    c.author.push_back(static_cast<int64_t>(rng() % 6));
    c.owner0.push_back(rng() % 3 == 0 ? 0 : static_cast<int64_t>(rng() % 8));
    c.owner1.push_back(rng() % 2 == 0 ? 0 : (rng() % 5 == 0 ? kMax : static_cast<int64_t>(rng() % 8)));
    c.flags.push_back(static_cast<uint8_t>((rng() % 3 == 0 ? kRowPrivate : 0) | (rng() % 4 == 0 ? kRowPrivateNote : 0)));
    c.updated.push_back(rng() % 10 == 0 ? (rng() % 2 ? kMin : kMax) : static_cast<int64_t>(rng() % 100));
  }
  c.encode(rng() % 3 == 0 ? 1 + rng() % 7 : 0);
  return c;
}

GrantFilter random_filter(std::mt19937_64& rng, size_t n, bool spread) {
  const auto ids = [&](size_t most, size_t least = 0) {
    std::vector<int64_t> v(least + rng() % (most + 1));
    for (auto& x : v) x = pick_id(rng, spread);
    return v;
  };
  GrantFilter f;
  for (size_t g = rng() % 7; g > 0; --g) {
    Grant grant;
    for (size_t k = 1 + rng() % 3; k > 0; --k) grant.types.push_back(rng() % 9 == 0 ? 5000 : static_cast<int64_t>(rng() % 7));
    grant.projects = ids(5, 1);
    grant.visibility = static_cast<Visibility>(1 + rng() % 3);
    if (rng() % 2) grant.trackers = ids(3);  // sometimes empty: admits nothing
    grant.private_notes = rng() % 2;
    f.grants.push_back(grant);
  }
  if (rng() % 4 == 0) f.projects = ids(5);
  if (rng() % 4 == 0) {
    f.types.emplace();
    for (size_t k = rng() % 4; k > 0; --k) f.types->push_back(static_cast<int64_t>(rng() % 7));
  }
  f.user = rng() % 4 == 0 ? 0 : static_cast<int64_t>(rng() % 6);
  for (size_t k = rng() % 3; k > 0; --k) f.principals.push_back(rng() % 4 == 0 ? kMax : static_cast<int64_t>(rng() % 8));
  if (f.user) f.principals.push_back(f.user);
  if (n && rng() % 3 == 0)
    for (size_t k = rng() % 5; k > 0; --k) f.own_rows.push_back(static_cast<int64_t>(rng() % n));
  if (rng() % 3 == 0) f.updated_min = rng() % 4 == 0 ? kMin : static_cast<int64_t>(rng() % 100);
  if (rng() % 3 == 0) f.updated_max = rng() % 4 == 0 ? kMax : static_cast<int64_t>(rng() % 100);
  return f;
}

TEST(GrantMask, AgreesWithTheReferenceOnRandomColumnsAndGrants) {
  std::mt19937_64 rng(15);
  for (int round = 0; round < 4000; ++round) {
    const size_t n = rng() % 6 == 0 ? rng() % 3 : rng() % 300;
    const bool spread = rng() % 3 == 0;
    const Columns c = random_columns(rng, n, spread);
    GrantFilter f = random_filter(rng, n, spread);
    const auto want = reference(c, f);
    ASSERT_EQ(run(c, f), want) << "round " << round << " (compiled table)";
    f.max_table = 0;  // grant by grant
    ASSERT_EQ(run(c, f), want) << "round " << round << " (grant by grant)";
  }
}

TEST(GrantMask, TruthTablesFollowTheVisibilityRules) {
  const auto bit = [](bool priv, bool own, bool note, bool author) {
    return (priv << kBitPrivate) | (own << kBitOwn) | (note << kBitNote) | (author << kBitNoteAuthor);
  };
  const uint16_t all = truth_table(Visibility::kAll, false), deflt = truth_table(Visibility::kDefault, false);
  const uint16_t own = truth_table(Visibility::kOwn, true);
  EXPECT_TRUE((all >> bit(true, false, false, false)) & 1);          // ALL: private too
  EXPECT_FALSE((all >> bit(false, false, true, false)) & 1);         // but a private note needs private_notes
  EXPECT_TRUE((all >> bit(false, false, true, true)) & 1);           // or its writer
  EXPECT_FALSE((deflt >> bit(true, false, false, false)) & 1);       // DEFAULT: not someone else's private
  EXPECT_TRUE((deflt >> bit(true, true, false, false)) & 1);         // its owner's
  EXPECT_TRUE((deflt >> bit(false, false, false, false)) & 1);
  EXPECT_FALSE((own >> bit(false, false, false, false)) & 1);        // OWN: only owned
  EXPECT_TRUE((own >> bit(true, true, true, false)) & 1);            // a private note, with private_notes
}

// A user in 200 projects with a role each, a few tracker-limited ones, and
// groups: the realistic shape, large enough for the table layouts to matter.
TEST(GrantMask, ManyGrantsManyRows) {
  std::mt19937_64 rng(200);
  Columns c;
  const size_t n = 20000;
  for (size_t i = 0; i < n; ++i) {
    c.alive.push_back(rng() % 50 != 0);
    c.project.push_back(static_cast<int64_t>(rng() % 400));
    c.type_code.push_back(static_cast<int32_t>(rng() % 4));
    c.tracker.push_back(static_cast<int64_t>(rng() % 6));
    c.author.push_back(static_cast<int64_t>(rng() % 300));
    c.owner0.push_back(static_cast<int64_t>(rng() % 300));
    c.owner1.push_back(rng() % 2 ? static_cast<int64_t>(1000 + rng() % 20) : 0);
    c.flags.push_back(static_cast<uint8_t>((rng() % 5 == 0 ? kRowPrivate : 0) | (rng() % 7 == 0 ? kRowPrivateNote : 0)));
    c.updated.push_back(static_cast<int64_t>(i));
  }
  c.encode();
  GrantFilter f;
  for (int64_t p = 0; p < 200; ++p) {
    Grant g;
    g.types = {0, 1};
    g.projects = {p * 2};
    g.visibility = static_cast<Visibility>(1 + p % 3);
    if (p % 5 == 0) g.trackers = std::vector<int64_t>{1, 2};
    g.private_notes = p % 4 == 0;
    f.grants.push_back(g);
  }
  f.grants.push_back({{2, 3}, {0, 2, 4, 6, 8, 1, 3}, Visibility::kAll, std::nullopt, false});
  f.user = 7;
  f.principals = {7, 1003, 1011};
  f.own_rows = {5, 17, 19999};
  const auto want = reference(c, f);
  EXPECT_EQ(run(c, f), want);
  EXPECT_GT(std::count(want.begin(), want.end(), 1), 1000);
  f.max_table = 0;
  EXPECT_EQ(run(c, f), want);
}

TEST(GrantMask, IdMapLayouts) {
  const IdMap compact({{3, 1}, {1, 2}, {1000, 3}});
  EXPECT_TRUE(compact.uses_table());
  const IdMap extremes({{kMin, 4}, {kMax, 5}});
  EXPECT_FALSE(extremes.uses_table());
  for (const int64_t x : {kMin, kMin + 1, int64_t{-1}, int64_t{0}, int64_t{1}, int64_t{2}, int64_t{3}, int64_t{1000},
                          int64_t{1001}, kMax - 1, kMax}) {
    EXPECT_EQ(compact.get(x), x == 3 ? 1u : x == 1 ? 2u : x == 1000 ? 3u : 0u) << x;
    EXPECT_EQ(extremes.get(x), x == kMin ? 4u : x == kMax ? 5u : 0u) << x;
  }
  EXPECT_EQ(IdMap().get(0), 0u);
}

TEST(GrantMask, RowsNewerThanTheDictionariesAreOutside) {
  // A row written while the search runs may carry a code the dictionaries passed in do not
  // have yet: it is outside every grant (and the kernel reads nothing out of bounds).
  Columns c{{1, 1, 1}, {0, 0, 0}, {1, 2, 3}, {5, 5, 5}, {0, 0, 0}, {7, 8, 9}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  c.encode();
  GrantFilter f;
  f.grants.push_back({{0}, {1, 2, 3}, Visibility::kAll, std::nullopt, false});
  f.grants.push_back({{0}, {1, 2, 3}, Visibility::kAll, std::vector<int64_t>{9}, true});
  f.project_of_code = {1, 2};  // project 3's code is past the end
  f.tracker_of_code = {7, 8};
  for (const size_t table : {size_t{1} << 22, size_t{0}}) {
    f.max_table = table;
    std::vector<uint8_t> out(3, 7);
    grant_mask(c.view(), f, out.data());
    EXPECT_EQ(out, (std::vector<uint8_t>{1, 1, 0}));
  }
}

TEST(GrantMask, NoGrantAdmitsNothingAndNarrowingOnlyNarrows) {
  Columns c{{1, 1, 1}, {0, 0, 0}, {1, 2, 3}, {5, 5, 5}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  c.encode();
  GrantFilter f;
  EXPECT_EQ(run(c, f), (std::vector<uint8_t>{0, 0, 0}));
  f.grants.push_back({{0}, {1, 2}, Visibility::kAll, std::nullopt, false});
  EXPECT_EQ(run(c, f), (std::vector<uint8_t>{1, 1, 0}));
  f.projects = std::vector<int64_t>{2, 3};  // project 3 is in no grant: narrowing never widens
  EXPECT_EQ(run(c, f), (std::vector<uint8_t>{0, 1, 0}));
  f.types = std::vector<int64_t>{};
  EXPECT_EQ(run(c, f), (std::vector<uint8_t>{0, 0, 0}));
}

TEST(GrantMask, BadInputThrowsBeforeWriting) {
  Columns c{{1, 1}, {0, 0}, {1, 2}, {5, 5}, {0, 1}, {0, 0}, {0, 0}, {0, 0}, {0, 0}};
  c.encode();
  GrantFilter f;
  f.grants.push_back({{0}, {1}, Visibility::kAll, std::nullopt, false});
  for (const int64_t bad : {int64_t{-1}, int64_t{2}, kMax, kMin}) {
    f.own_rows = {0, bad};
    std::vector<uint8_t> out(2, 7);
    EXPECT_THROW(grant_mask(c.view(), f, out.data()), std::invalid_argument);
    EXPECT_EQ(out, (std::vector<uint8_t>{7, 7}));
  }
  f.own_rows.clear();
  f.grants[0].visibility = static_cast<Visibility>(0);
  std::vector<uint8_t> out(2, 7);
  EXPECT_THROW(grant_mask(c.view(), f, out.data()), std::invalid_argument);
  EXPECT_EQ(out, (std::vector<uint8_t>{7, 7}));
  GrantColumns missing = c.view();
  missing.key = nullptr;
  f.grants[0].visibility = Visibility::kOwn;
  EXPECT_THROW(grant_mask(missing, f, out.data()), std::invalid_argument);
  GrantColumns none;  // no rows: nothing read, nothing written
  EXPECT_NO_THROW(grant_mask(none, f, nullptr));
}

}  // namespace
}  // namespace ragd
