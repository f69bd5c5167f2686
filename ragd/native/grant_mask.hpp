// The permission mask of a filter with grants (proto ragd.v1.Grant; Python:
// ragd/index/columns.py FilterColumns.mask), in one pass over the columns:
//
//   alive & updated_at in range & OR over grants g of
//     type in g.types & project in g.project_ids & (tracker in g.tracker_ids or
//     g has none) & visibility(g) & private-note rule(g)
//
// with visibility ALL: true, DEFAULT: !private or own, OWN: own; own = one of
// the row's owners is a principal (the user or one of their groups); and the
// private-note rule: a private note is visible when g.private_notes or the
// user (not 0) wrote it.
//
// How the OR of up to 1,000 grants stays one cheap pass: everything a grant
// tests about a row except its project, type and tracker is four bits (private,
// own, private note, written by the user), so a grant is a 16-bit truth table
// over those bits; the grants of one (project, type, tracker) OR into one
// table. Projects covered by the same grants share a project class, trackers
// listed by the same grants a tracker class, and the filter is compiled into
//   project code -> project class     (a dense array per search, from an IdMap of the grants' ids)
//   tracker code -> tracker class     (likewise; class 0: listed by no grant)
//   [project class][type][tracker class] -> 16-bit truth table
// so that a row costs three lookups and a shift, whatever the number of grants
// (measured in benchmarks/hot_loops.py against filter_mask.hpp). When that
// table would be too large (thousands of distinct grant combinations, beyond
// any real Redmine), rows are evaluated grant by grant instead: slower, same
// result.
//
// The pass is bound by memory traffic at 1M rows, so it reads few bytes per row:
// project and type come packed in one uint32 key (a dense project code and the
// type code; FilterColumns keeps the codes), trackers as int32 codes, and the
// owners and the note's writer only for the rows whose answer depends on them
// (a private row under a DEFAULT grant, any row under OWN; a private note).
//
// Header-only, like filter_mask.hpp, so that the GoogleTest suite and the
// sanitizer builds use it without Python; grant_mask.cpp holds the binding.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "filter_mask.hpp"

namespace ragd {

// Per-row flag bits (GrantColumns::flags), written by FilterColumns.
constexpr uint8_t kRowPrivate = 1;      // the document (for a journal: its issue) is private
constexpr uint8_t kRowPrivateNote = 4;  // a journal whose notes are private
// The four bits a grant's truth table is indexed by.
constexpr unsigned kBitPrivate = 0, kBitOwn = 1, kBitNote = 2, kBitNoteAuthor = 3;

enum class Visibility : int { kAll = 1, kDefault = 2, kOwn = 3 };

// The packed (project code, type code) key of a row; kKeyOverflow when either
// code is too large to pack (the row is then read from base.project/type_code).
constexpr unsigned kTypeBits = 12;
constexpr uint32_t kTypeMask = (uint32_t{1} << kTypeBits) - 1;
constexpr uint32_t kKeyOverflow = 0xFFFFFFFFu;
constexpr int64_t kMaxProjectCode = (int64_t{1} << (32 - kTypeBits)) - 2;  // (code << 12 | type) != overflow

inline uint32_t pack_key(int64_t project_code, int64_t type_code) {
  if (project_code < 0 || project_code > kMaxProjectCode || type_code < 0 || type_code > int64_t{kTypeMask})
    return kKeyOverflow;
  return static_cast<uint32_t>((static_cast<uint64_t>(project_code) << kTypeBits) | static_cast<uint64_t>(type_code));
}

// Borrowed column views, `base.rows` entries each (base.is_private is unused:
// the grant rules read `flags`; base.project and base.type_code are read for
// overflow keys only).
struct GrantColumns {
  MaskColumns base;
  const uint32_t* key = nullptr;           // pack_key(project code, type code)
  const int32_t* tracker_code = nullptr;   // index into GrantFilter::tracker_of_code
  const int64_t* owner0 = nullptr;         // the first two owners (0: none)
  const int64_t* owner1 = nullptr;
  const uint8_t* flags = nullptr;          // kRowPrivate | kRowPrivateNote
};

struct Grant {
  std::vector<int64_t> types;                    // type codes
  std::vector<int64_t> projects;
  Visibility visibility = Visibility::kAll;
  std::optional<std::vector<int64_t>> trackers;  // absent: any tracker
  bool private_notes = false;
};

struct GrantFilter {
  std::vector<Grant> grants;                     // ORed; none admits nothing
  std::optional<std::vector<int64_t>> projects;  // narrowing, ANDed (absent: none)
  std::optional<std::vector<int64_t>> types;
  int64_t user = 0;                              // 0: anonymous (writes no note, owns nothing)
  std::vector<int64_t> principals;               // the user and their groups (0 entries ignored)
  std::vector<int64_t> own_rows;                 // rows owned through owners past owner0/owner1 (each < rows)
  std::optional<int64_t> updated_min, updated_max;  // inclusive bounds
  // The codes' dictionaries: project id of each project code, tracker id of each
  // tracker code (codes past their ends belong to rows newer than the dictionaries:
  // outside every grant).
  std::vector<int64_t> project_of_code, tracker_of_code;
  // Largest compiled table (entries) before rows are evaluated grant by grant.
  size_t max_table = size_t{1} << 22;
};

// The 16-bit truth table of one grant over the row bits (kBit*).
inline uint16_t truth_table(Visibility visibility, bool private_notes) {
  uint16_t tt = 0;
  for (unsigned b = 0; b < 16; ++b) {
    const bool is_private = (b >> kBitPrivate) & 1u, own = (b >> kBitOwn) & 1u;
    const bool note = (b >> kBitNote) & 1u, note_author = (b >> kBitNoteAuthor) & 1u;
    bool vis = false;
    switch (visibility) {
      case Visibility::kAll: vis = true; break;
      case Visibility::kDefault: vis = !is_private || own; break;
      case Visibility::kOwn: vis = own; break;
    }
    const bool note_ok = !note || private_notes || note_author;
    if (vis && note_ok) tt = static_cast<uint16_t>(tt | (1u << b));
  }
  return tt;
}

// int64 id -> uint32 value (0: absent): a table when the ids' range is compact
// (IdSet's rule), else sorted pairs searched by bisection.
class IdMap {
 public:
  IdMap() : table_(2, 0) {}
  explicit IdMap(std::vector<std::pair<int64_t, uint32_t>> entries) : IdMap() {
    if (entries.empty()) return;
    std::sort(entries.begin(), entries.end());
    const int64_t lo = entries.front().first, hi = entries.back().first;
    lo_ = lo;
    span_ = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
    if (span_ < (uint64_t{1} << 16) || (span_ < (uint64_t{1} << 24) && span_ / 64 < entries.size())) {
      table_.assign(static_cast<size_t>(span_) + 2, 0);
      for (const auto& [id, v] : entries)
        table_[static_cast<size_t>(static_cast<uint64_t>(id) - static_cast<uint64_t>(lo_))] = v;
    } else {
      table_.clear();
      sorted_ = std::move(entries);
    }
  }

  bool uses_table() const { return !table_.empty(); }
  RangeTable<uint32_t> view() const { return {table_.data(), lo_, span_}; }

  uint32_t get(int64_t x) const {
    if (uses_table()) return view().at(x);
    const auto it = std::lower_bound(sorted_.begin(), sorted_.end(), std::make_pair(x, uint32_t{0}));
    return it != sorted_.end() && it->first == x ? it->second : 0;
  }

 private:
  int64_t lo_ = 0;
  uint64_t span_ = 0;
  std::vector<uint32_t> table_;
  std::vector<std::pair<int64_t, uint32_t>> sorted_;
};

namespace grant_detail {

inline std::vector<int64_t> sorted_unique(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// A grant after narrowing, with its truth table.
struct Compiled {
  std::vector<int64_t> types, projects;  // sorted, unique; types are codes >= 0
  std::optional<std::vector<int64_t>> trackers;
  uint16_t tt;
};

// The filter compiled (see the header comment).
struct Plan {
  IdMap project_class;                  // project -> class (1-based), 0: no grant
  IdMap tracker_class;                  // tracker -> class (1-based), 0: listed by no grant
  // The same by code; one more entry (0) that codes past the dictionaries read.
  std::vector<uint32_t> class_of_project_code, class_of_tracker_code;
  size_t classes = 1;                   // tracker classes incl. 0
  size_t width = 1;                     // type codes 0..width-2, width-1: any other type
  std::vector<uint16_t> table;          // [pclass][type][tclass]; empty: evaluate grant by grant
  // Grant by grant: the compiled grants and each project class's grant indices.
  std::vector<Compiled> grants;
  std::vector<std::vector<uint32_t>> class_grants;
  std::vector<IdSet> grant_types, grant_trackers;
  IdSet principals;
  bool has_user = false, trackers = false, own = false;
  int64_t user = 0;
};

// Groups (id, grant) pairs by id, gives ids with the same grant list the same
// class (appending each new list to `classes`, whose index is the class) and
// returns (id, class) for an IdMap.
inline std::vector<std::pair<int64_t, uint32_t>> classes_by_grants(std::vector<std::pair<int64_t, uint32_t>> pairs,
                                                                 std::vector<std::vector<uint32_t>>& classes) {
  std::sort(pairs.begin(), pairs.end());
  std::vector<std::pair<int64_t, std::vector<uint32_t>>> lists;  // id -> its grants
  for (size_t i = 0; i < pairs.size();) {
    size_t j = i;
    std::vector<uint32_t> grants;
    while (j < pairs.size() && pairs[j].first == pairs[i].first) grants.push_back(pairs[j++].second);
    lists.emplace_back(pairs[i].first, std::move(grants));
    i = j;
  }
  std::vector<size_t> order(lists.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lists[a].second < lists[b].second; });
  std::vector<std::pair<int64_t, uint32_t>> entries;
  for (size_t k = 0; k < order.size(); ++k) {
    const auto& [id, grants] = lists[order[k]];
    if (k == 0 || grants != lists[order[k - 1]].second) classes.push_back(grants);
    entries.emplace_back(id, static_cast<uint32_t>(classes.size() - 1));
  }
  return entries;
}

inline Plan compile(const GrantFilter& f) {
  Plan plan;
  std::optional<IdSet> narrow_projects, narrow_types;
  if (f.projects) narrow_projects.emplace(*f.projects);
  if (f.types) narrow_types.emplace(*f.types);
  int64_t max_type = -1;
  for (const Grant& g : f.grants) {
    Compiled c;
    c.tt = truth_table(g.visibility, g.private_notes);
    for (const int64_t t : g.types)
      if (t >= 0 && t < (int64_t{1} << 20) && (!narrow_types || narrow_types->contains(t))) c.types.push_back(t);
    for (const int64_t p : g.projects)
      if (!narrow_projects || narrow_projects->contains(p)) c.projects.push_back(p);
    c.types = sorted_unique(std::move(c.types));
    c.projects = sorted_unique(std::move(c.projects));
    if (g.trackers) c.trackers = sorted_unique(*g.trackers);
    if (c.tt == 0 || c.types.empty() || c.projects.empty() || (c.trackers && c.trackers->empty())) continue;
    max_type = std::max(max_type, c.types.back());
    plan.grants.push_back(std::move(c));
  }
  const size_t n = plan.grants.size();

  // Project classes: projects covered by the same grants.
  std::vector<std::pair<int64_t, uint32_t>> by_project;  // (project, grant)
  for (uint32_t gi = 0; gi < n; ++gi)
    for (const int64_t p : plan.grants[gi].projects) by_project.emplace_back(p, gi);
  plan.class_grants.emplace_back();  // class 0: no grant
  plan.project_class = IdMap(classes_by_grants(std::move(by_project), plan.class_grants));

  // Tracker classes: trackers listed by the same grants.
  std::vector<std::pair<int64_t, uint32_t>> by_tracker;
  for (uint32_t gi = 0; gi < n; ++gi)
    if (plan.grants[gi].trackers)
      for (const int64_t t : *plan.grants[gi].trackers) by_tracker.emplace_back(t, gi);
  std::vector<std::vector<uint32_t>> tracker_sigs(1);  // class 0: no grant lists it
  plan.tracker_class = IdMap(classes_by_grants(std::move(by_tracker), tracker_sigs));
  plan.classes = tracker_sigs.size();
  plan.trackers = plan.classes > 1;
  plan.class_of_project_code.reserve(f.project_of_code.size() + 1);
  for (const int64_t id : f.project_of_code) plan.class_of_project_code.push_back(plan.project_class.get(id));
  plan.class_of_project_code.push_back(0);
  plan.class_of_tracker_code.reserve(f.tracker_of_code.size() + 1);
  for (const int64_t id : f.tracker_of_code) plan.class_of_tracker_code.push_back(plan.tracker_class.get(id));
  plan.class_of_tracker_code.push_back(0);
  plan.width = static_cast<size_t>(max_type + 2);

  std::vector<int64_t> principals;
  for (const int64_t p : f.principals)
    if (p != 0) principals.push_back(p);
  plan.principals = IdSet(principals);
  // Owners and the note's writer are read only when some grant's answer depends on them.
  bool own_matters = false, author_matters = false;
  for (const Compiled& g : plan.grants) {
    for (unsigned b = 0; b < 16; ++b) {
      own_matters |= ((g.tt >> b) & 1u) != ((g.tt >> (b ^ (1u << kBitOwn))) & 1u);
      author_matters |= ((g.tt >> b) & 1u) != ((g.tt >> (b ^ (1u << kBitNoteAuthor))) & 1u);
    }
  }
  plan.own = !principals.empty() && own_matters;
  plan.has_user = f.user != 0 && author_matters;
  plan.user = f.user;

  // The table, unless it would be too large.
  const size_t pclasses = plan.class_grants.size();
  const double entries = static_cast<double>(pclasses) * static_cast<double>(plan.width) *
                         static_cast<double>(plan.classes);
  if (entries <= static_cast<double>(f.max_table)) {
    // grant -> tracker classes listing it
    std::vector<std::vector<uint32_t>> grant_classes(n);
    for (uint32_t c = 1; c < plan.classes; ++c)
      for (const uint32_t gi : tracker_sigs[c]) grant_classes[gi].push_back(c);
    plan.table.assign(pclasses * plan.width * plan.classes, 0);
    for (size_t pc = 1; pc < pclasses; ++pc) {
      for (const uint32_t gi : plan.class_grants[pc]) {
        const Compiled& g = plan.grants[gi];
        for (const int64_t t : g.types) {
          uint16_t* row = &plan.table[(pc * plan.width + static_cast<size_t>(t)) * plan.classes];
          if (!g.trackers) {
            for (size_t c = 0; c < plan.classes; ++c) row[c] = static_cast<uint16_t>(row[c] | g.tt);
          } else {
            for (const uint32_t c : grant_classes[gi]) row[c] = static_cast<uint16_t>(row[c] | g.tt);
          }
        }
      }
    }
  } else {
    for (const Compiled& g : plan.grants) {
      plan.grant_types.emplace_back(g.types);
      plan.grant_trackers.emplace_back(g.trackers ? *g.trackers : std::vector<int64_t>{});
    }
  }
  return plan;
}

// Class of a code: codes past the dictionary read its final 0 (branch-free clamp).
inline size_t class_of(const uint32_t* classes, size_t size, uint64_t code) {
  return classes[code < size ? code : size];
}

template <bool kUpdated, bool kTracker, bool kOwn, bool kAuthor, class Set>
void run_table(const GrantColumns& c, const Plan& p, int64_t lo, int64_t hi, const std::vector<int64_t>& own_rows,
               uint8_t* __restrict out) {
  const size_t n = c.base.rows;
  const uint8_t* __restrict alive = c.base.alive;
  const uint32_t* __restrict key = c.key;
  const int64_t* __restrict author = c.base.author;
  const int64_t* __restrict updated = c.base.updated;
  const int32_t* __restrict tracker_code = c.tracker_code;
  const int64_t* __restrict owner0 = c.owner0;
  const int64_t* __restrict owner1 = c.owner1;
  const uint8_t* __restrict flags = c.flags;
  const uint16_t* __restrict table = p.table.data();
  const uint32_t* __restrict project_classes = p.class_of_project_code.data();
  const uint32_t* __restrict tracker_classes = p.class_of_tracker_code.data();
  const size_t projects = p.class_of_project_code.size() - 1, trackers = p.class_of_tracker_code.size() - 1;
  const Set principals = [&]() -> Set {
    if constexpr (std::is_same_v<Set, TableView>) return p.principals.table(); else return p.principals;
  }();
  const size_t width = p.width, classes = p.classes;
  const uint64_t other_type = width - 1;
  const int64_t user = p.user;
  const auto row = [&](size_t i, unsigned forced_own) -> uint8_t {
    bool ok = alive[i] != 0;
    if constexpr (kUpdated) ok &= (updated[i] >= lo) & (updated[i] <= hi);
    const uint32_t k = key[i];
    size_t pc;
    uint64_t t;
    if (k != kKeyOverflow) [[likely]] {
      pc = class_of(project_classes, projects, k >> kTypeBits);
      t = k & kTypeMask;
    } else {  // a project or type code too large to pack
      pc = p.project_class.get(c.base.project[i]);
      t = static_cast<uint64_t>(static_cast<int64_t>(c.base.type_code[i]));
    }
    const uint64_t inside = uint64_t{0} - static_cast<uint64_t>(t < other_type);
    const size_t ti = static_cast<size_t>((t & inside) | (other_type & ~inside));
    size_t tc = 0;
    if constexpr (kTracker) tc = class_of(tracker_classes, trackers, static_cast<uint32_t>(tracker_code[i]));
    const unsigned tt = table[(pc * width + ti) * classes + tc];
    const unsigned fl = flags[i];
    unsigned b = (fl & (kRowPrivate | kRowPrivateNote)) | forced_own;
    if constexpr (kAuthor) {
      if (fl & kRowPrivateNote) b |= static_cast<unsigned>(author[i] == user) << kBitNoteAuthor;  // rare
    }
    if constexpr (kOwn) {
      // Only a row whose answer turns on ownership reads its owners.
      if (((tt >> b) ^ (tt >> (b | (1u << kBitOwn)))) & 1u) {
        b |= static_cast<unsigned>(principals.contains(owner0[i]) | principals.contains(owner1[i])) << kBitOwn;
      }
    }
    ok &= ((tt >> b) & 1u) != 0;
    return static_cast<uint8_t>(ok);
  };
  for (size_t i = 0; i < n; ++i) out[i] = row(i, 0);
  for (const int64_t r : own_rows) out[static_cast<size_t>(r)] = row(static_cast<size_t>(r), 1u << kBitOwn);
}

// Grant by grant (a table too large to build).
inline void run_grants(const GrantColumns& c, const Plan& p, const GrantFilter& f, bool updated_check, int64_t lo,
                       int64_t hi, uint8_t* out) {
  const size_t trackers = f.tracker_of_code.size();
  const auto row = [&](size_t i, bool forced_own) -> uint8_t {
    if (!c.base.alive[i]) return 0;
    if (updated_check && (c.base.updated[i] < lo || c.base.updated[i] > hi)) return 0;
    const uint32_t k = c.key[i];
    const size_t projects = p.class_of_project_code.size() - 1;
    const size_t pc = k != kKeyOverflow ? class_of(p.class_of_project_code.data(), projects, k >> kTypeBits)
                                        : p.project_class.get(c.base.project[i]);
    if (pc == 0) return 0;
    const bool own = forced_own || (p.own && (p.principals.contains(c.owner0[i]) || p.principals.contains(c.owner1[i])));
    const bool note_author = p.has_user && c.base.author[i] == p.user;
    const unsigned bits = (c.flags[i] & (kRowPrivate | kRowPrivateNote)) | (static_cast<unsigned>(own) << kBitOwn) |
                          (static_cast<unsigned>(note_author) << kBitNoteAuthor);
    const auto code = static_cast<uint32_t>(c.tracker_code[i]);
    const bool known_tracker = code < trackers;
    for (const uint32_t gi : p.class_grants[pc]) {
      if (!((p.grants[gi].tt >> bits) & 1u)) continue;
      if (!p.grant_types[gi].contains(c.base.type_code[i])) continue;
      if (p.grants[gi].trackers && !(known_tracker && p.grant_trackers[gi].contains(f.tracker_of_code[code]))) continue;
      return 1;
    }
    return 0;
  };
  for (size_t i = 0; i < c.base.rows; ++i) out[i] = row(i, false);
  for (const int64_t r : f.own_rows) out[static_cast<size_t>(r)] = row(static_cast<size_t>(r), true);
}

template <class Set, bool... kFlags>
void dispatch(const GrantColumns& c, const Plan& p, int64_t lo, int64_t hi, const std::vector<int64_t>& own_rows,
              uint8_t* out, const bool* flags) {
  if constexpr (sizeof...(kFlags) == 4) {
    run_table<kFlags..., Set>(c, p, lo, hi, own_rows, out);
  } else if (flags[sizeof...(kFlags)]) {
    dispatch<Set, kFlags..., true>(c, p, lo, hi, own_rows, out, flags);
  } else {
    dispatch<Set, kFlags..., false>(c, p, lo, hi, own_rows, out, flags);
  }
}

}  // namespace grant_detail

// Writes base.rows bytes (0 or 1) to out. Throws std::invalid_argument, before
// writing anything, for an own row outside [0, rows), a null column, or a
// visibility other than ALL, DEFAULT, OWN.
inline void grant_mask(const GrantColumns& c, const GrantFilter& f, uint8_t* out) {
  const size_t rows = c.base.rows;
  for (const int64_t r : f.own_rows) {
    if (r < 0 || static_cast<uint64_t>(r) >= rows)
      throw std::invalid_argument("own row " + std::to_string(r) + " is outside the " + std::to_string(rows) + " rows");
  }
  for (const Grant& g : f.grants) {
    const int v = static_cast<int>(g.visibility);
    if (v < 1 || v > 3) throw std::invalid_argument("grant visibility " + std::to_string(v) + " is unknown");
  }
  const bool updated = f.updated_min.has_value() || f.updated_max.has_value();
  if (rows != 0 && (!out || !c.base.alive || !c.base.project || !c.base.type_code || !c.base.author || !c.key ||
                    !c.tracker_code || !c.owner0 || !c.owner1 || !c.flags || (updated && !c.base.updated)))
    throw std::invalid_argument("grant_mask: a column is missing");
  const grant_detail::Plan plan = grant_detail::compile(f);
  const int64_t lo = f.updated_min.value_or(std::numeric_limits<int64_t>::min());
  const int64_t hi = f.updated_max.value_or(std::numeric_limits<int64_t>::max());
  if (plan.grants.empty()) {  // admits nothing
    std::fill(out, out + rows, uint8_t{0});
    return;
  }
  if (plan.table.empty()) {
    grant_detail::run_grants(c, plan, f, updated, lo, hi, out);
    return;
  }
  const bool flags[4] = {updated, plan.trackers, plan.own, plan.has_user};
  if (plan.principals.uses_table()) {
    grant_detail::dispatch<TableView>(c, plan, lo, hi, f.own_rows, out, flags);
  } else {
    grant_detail::dispatch<const IdSet&>(c, plan, lo, hi, f.own_rows, out, flags);
  }
}

}  // namespace ragd

#ifdef NB_VERSION_MAJOR  // included after nanobind.h (bindings.cpp, grant_mask.cpp)
namespace ragd {
// Adds grant_mask() to the module (ragd._native.grant_mask).
void bind_grant_mask(nanobind::module_& m);
}  // namespace ragd
#endif
