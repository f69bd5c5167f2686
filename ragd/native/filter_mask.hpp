// The permission-filter mask of ragd/index/columns.py (FilterColumns.mask) for
// its common conditions, in one pass over the columns: alive & project allowed
// & type allowed & private visibility & updated_at range. Redmine semantics:
// a private chunk is visible when the filter allows private documents of its
// project, when the user wrote it, or when the user is one of its viewers
// (`viewer_rows`, the chunk ids FilterColumns keeps per user).
//
// Header-only so that the GoogleTest suite and sanitizer builds use it without
// Python; filter_mask.cpp holds the nanobind binding (measured in
// benchmarks/hot_loops.py against the numpy form: issue #4).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ragd {

// Borrowed views of FilterColumns' arrays, `rows` entries each. Booleans are
// read as bytes (any non-zero byte is true), so a bool array with stray bytes
// is not undefined behaviour.
struct MaskColumns {
  size_t rows = 0;
  const uint8_t* alive = nullptr;
  const int64_t* project = nullptr;
  const int32_t* type_code = nullptr;
  const uint8_t* is_private = nullptr;
  const int64_t* author = nullptr;
  const int64_t* updated = nullptr;
};

// One request's conditions. An absent optional is no condition; a present
// but empty set admits nothing (as numpy.isin with no values does).
struct MaskFilter {
  std::optional<std::vector<int64_t>> projects;  // project must be one of these
  std::optional<std::vector<int64_t>> types;     // type_code must be one of these
  bool private_check = false;                    // apply private visibility
  std::vector<int64_t> private_projects;         // private chunks of these projects are visible
  std::optional<int64_t> user;                   // private chunks this author wrote are visible
  std::vector<int64_t> viewer_rows;              // private chunk ids the user may see (each < rows)
  std::optional<int64_t> updated_min, updated_max;  // inclusive bounds
};

// Branch-free lookup in a table over ids [lo, lo + span]: entry span + 1 is a
// zero that every id outside the range reads instead.
template <class T>
struct RangeTable {
  const T* table;
  int64_t lo;
  uint64_t span;

  T at(int64_t x) const {
    // Modular arithmetic: x - lo as uint64 is <= span exactly when lo <= x <= lo + span.
    const uint64_t off = static_cast<uint64_t>(x) - static_cast<uint64_t>(lo);
    // Selected with a mask, not ?: (which GCC compiles into a branch that ids
    // just outside the range, such as other type codes, mispredict half the time).
    const uint64_t inside = uint64_t{0} - static_cast<uint64_t>(off <= span);
    return table[(off & inside) | ((span + 1) & ~inside)];
  }
};

// Membership in a byte table (RangeTable<uint8_t>).
struct TableView : RangeTable<uint8_t> {
  bool contains(int64_t x) const { return at(x) != 0; }
};

// A set of int64 ids: a byte table (TableView) when the ids' range is compact,
// as Redmine project ids and type codes are, otherwise a sorted vector
// searched by bisection.
class IdSet {
 public:
  IdSet() : table_(2, 0) {}  // empty: every id reads the zero at span + 1
  explicit IdSet(std::vector<int64_t> ids) : IdSet() {
    if (ids.empty()) return;
    const auto [lo, hi] = std::minmax_element(ids.begin(), ids.end());
    lo_ = *lo;
    span_ = static_cast<uint64_t>(*hi) - static_cast<uint64_t>(*lo);
    if (span_ < (uint64_t{1} << 16) || (span_ < (uint64_t{1} << 24) && span_ / 64 < ids.size())) {
      table_.assign(static_cast<size_t>(span_) + 2, 0);
      for (const int64_t id : ids) table_[static_cast<size_t>(static_cast<uint64_t>(id) - static_cast<uint64_t>(lo_))] = 1;
    } else {
      table_.clear();
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      sorted_ = std::move(ids);
    }
  }

  bool uses_table() const { return !table_.empty(); }
  TableView table() const { return {{table_.data(), lo_, span_}}; }

  bool contains(int64_t x) const {
    return uses_table() ? table().contains(x) : std::binary_search(sorted_.begin(), sorted_.end(), x);
  }

 private:
  int64_t lo_ = 0;
  uint64_t span_ = 0;
  std::vector<uint8_t> table_;
  std::vector<int64_t> sorted_;
};

namespace detail {

// The conditions with their sets as Set (TableView: the fast path, or IdSet).
template <class Set>
struct Conditions {
  Set projects, types, private_projects;
  bool has_user;
  int64_t user, updated_min, updated_max;
};

// The pass over every row, then the viewer rows again with private
// visibility forced. Columns and sets are copied into locals, and out is
// __restrict: stores through a uint8_t pointer may otherwise alias anything
// and force every pointer to be reloaded per row.
template <bool kProject, bool kType, bool kPrivate, bool kUpdated, class Set>
void run(const MaskColumns& c, const Conditions<Set>& k, const std::vector<int64_t>& viewer_rows,
         uint8_t* __restrict out) {
  const size_t n = c.rows;
  const uint8_t* __restrict alive = c.alive;
  const int64_t* __restrict project = c.project;
  const int32_t* __restrict type_code = c.type_code;
  const uint8_t* __restrict is_private = c.is_private;
  const int64_t* __restrict author = c.author;
  const int64_t* __restrict updated = c.updated;
  const Set projects = k.projects, types = k.types, private_projects = k.private_projects;
  const bool has_user = k.has_user;
  const int64_t user = k.user, updated_min = k.updated_min, updated_max = k.updated_max;
  const auto row = [&](size_t i, bool viewer) -> uint8_t {
    bool ok = alive[i] != 0;
    if constexpr (kProject) ok &= projects.contains(project[i]);
    if constexpr (kType) ok &= types.contains(type_code[i]);
    if constexpr (kPrivate) {
      ok &= viewer | (is_private[i] == 0) | (has_user & (author[i] == user)) | private_projects.contains(project[i]);
    }
    if constexpr (kUpdated) ok &= (updated[i] >= updated_min) & (updated[i] <= updated_max);
    return static_cast<uint8_t>(ok);
  };
  for (size_t i = 0; i < n; ++i) out[i] = row(i, false);
  if constexpr (kPrivate) {
    for (const int64_t r : viewer_rows) out[static_cast<size_t>(r)] = row(static_cast<size_t>(r), true);
  }
}

template <class Set, bool... kFlags>
void dispatch(const MaskColumns& c, const Conditions<Set>& k, const std::vector<int64_t>& viewer_rows,
              uint8_t* out, const bool* flags) {
  if constexpr (sizeof...(kFlags) == 4) {
    run<kFlags..., Set>(c, k, viewer_rows, out);
  } else if (flags[sizeof...(kFlags)]) {
    dispatch<Set, kFlags..., true>(c, k, viewer_rows, out, flags);
  } else {
    dispatch<Set, kFlags..., false>(c, k, viewer_rows, out, flags);
  }
}

}  // namespace detail

// Writes c.rows bytes (0 or 1) to out. Throws std::invalid_argument, before
// writing anything, for a viewer row outside [0, rows) or a null column that
// a condition needs (out and every column must hold c.rows entries).
inline void filter_mask(const MaskColumns& c, const MaskFilter& flt, uint8_t* out) {
  for (const int64_t r : flt.viewer_rows) {
    if (r < 0 || static_cast<uint64_t>(r) >= c.rows)
      throw std::invalid_argument("viewer row " + std::to_string(r) + " is outside the " + std::to_string(c.rows) +
                                  " rows");
  }
  const bool updated = flt.updated_min.has_value() || flt.updated_max.has_value();
  if (c.rows != 0 &&
      (!out || !c.alive || (flt.projects && !c.project) || (flt.types && !c.type_code) ||
       (flt.private_check && (!c.is_private || !c.author || !c.project)) || (updated && !c.updated)))
    throw std::invalid_argument("filter_mask: a column the filter needs is missing");
  IdSet projects, types, private_projects;
  if (flt.projects) projects = IdSet(*flt.projects);
  if (flt.types) types = IdSet(*flt.types);
  if (flt.private_check) private_projects = IdSet(flt.private_projects);
  const bool has_user = flt.private_check && flt.user.has_value();
  const int64_t user = has_user ? *flt.user : 0;
  const int64_t lo = flt.updated_min.value_or(std::numeric_limits<int64_t>::min());
  const int64_t hi = flt.updated_max.value_or(std::numeric_limits<int64_t>::max());
  const bool flags[4] = {flt.projects.has_value(), flt.types.has_value(), flt.private_check, updated};
  if (projects.uses_table() && types.uses_table() && private_projects.uses_table()) {
    const detail::Conditions<TableView> k{projects.table(), types.table(), private_projects.table(), has_user, user,
                                          lo, hi};
    detail::dispatch<TableView>(c, k, flt.viewer_rows, out, flags);
  } else {
    const detail::Conditions<const IdSet&> k{projects, types, private_projects, has_user, user, lo, hi};
    detail::dispatch<const IdSet&>(c, k, flt.viewer_rows, out, flags);
  }
}

}  // namespace ragd

#ifdef NB_VERSION_MAJOR  // included after nanobind.h (bindings.cpp, filter_mask.cpp)
namespace ragd {
// Adds filter_mask() to the module (ragd._native.filter_mask).
void bind_filter_mask(nanobind::module_& m);
}  // namespace ragd
#endif
