// nanobind binding of ragd::grant_mask (grant_mask.hpp): checks every array
// (ndarray_args.hpp) and the grants' offsets with the GIL held, raising
// ValueError, then runs the pass without it.
//
// The grants travel as flat arrays, not Python objects (a thousand grants
// would otherwise be a thousand conversions per search): per grant its
// visibility, private_notes and whether it names trackers, and for its types,
// projects and trackers one concatenated array each with the grants' end
// offsets.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "grant_mask.hpp"
#include "ndarray_args.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace ragd {
namespace {

using nbargs::InArray;
using nbargs::checked;
using nbargs::id_vector;

// The [begin, end) slices of `flat` given the grants' end offsets.
std::vector<std::vector<int64_t>> slices(const InArray& flat, const InArray& ends, size_t grants, const char* name) {
  const std::vector<int64_t> values = id_vector(flat, name);
  const std::string ends_name = std::string(name) + "_ends";
  const auto* e = static_cast<const int64_t*>(checked(ends, ends_name.c_str(), nb::dtype<int64_t>(), grants));
  std::vector<std::vector<int64_t>> out(grants);
  int64_t begin = 0;
  for (size_t g = 0; g < grants; ++g) {
    if (e[g] < begin || static_cast<uint64_t>(e[g]) > values.size())
      throw nb::value_error((ends_name + ": offsets must grow within the " + std::to_string(values.size()) +
                             " values").c_str());
    out[g].assign(values.begin() + begin, values.begin() + e[g]);
    begin = e[g];
  }
  return out;
}

void grant_mask_py(nb::handle out_obj, const InArray& alive, const InArray& project, const InArray& type_code,
                   const InArray& author, const InArray& updated, const InArray& key, const InArray& tracker_code,
                   const InArray& owner0, const InArray& owner1, const InArray& flags,
                   const InArray& project_of_code, const InArray& tracker_of_code, const InArray& visibility,
                   const InArray& private_notes, const InArray& any_tracker, const InArray& types,
                   const InArray& types_ends, const InArray& projects, const InArray& projects_ends,
                   const InArray& trackers, const InArray& trackers_ends, std::optional<InArray> narrow_projects,
                   std::optional<InArray> narrow_types, int64_t user_id, std::optional<InArray> principals,
                   std::optional<InArray> own_rows, std::optional<int64_t> updated_min,
                   std::optional<int64_t> updated_max, size_t max_table) {
  const auto [dst, rows] = nbargs::output(out_obj);
  GrantColumns c;
  c.base.rows = rows;
  c.base.alive = static_cast<const uint8_t*>(checked(alive, "alive", nb::dtype<bool>(), rows));
  c.base.project = static_cast<const int64_t*>(checked(project, "project", nb::dtype<int64_t>(), rows));
  c.base.type_code = static_cast<const int32_t*>(checked(type_code, "type_code", nb::dtype<int32_t>(), rows));
  c.base.author = static_cast<const int64_t*>(checked(author, "author", nb::dtype<int64_t>(), rows));
  c.base.updated = static_cast<const int64_t*>(checked(updated, "updated", nb::dtype<int64_t>(), rows));
  c.key = static_cast<const uint32_t*>(checked(key, "key", nb::dtype<uint32_t>(), rows));
  c.tracker_code = static_cast<const int32_t*>(checked(tracker_code, "tracker_code", nb::dtype<int32_t>(), rows));
  c.owner0 = static_cast<const int64_t*>(checked(owner0, "owner0", nb::dtype<int64_t>(), rows));
  c.owner1 = static_cast<const int64_t*>(checked(owner1, "owner1", nb::dtype<int64_t>(), rows));
  c.flags = static_cast<const uint8_t*>(checked(flags, "flags", nb::dtype<uint8_t>(), rows));
  nbargs::check_no_overlap(dst, rows, {{"alive", &alive}, {"project", &project}, {"type_code", &type_code},
                                      {"author", &author}, {"updated", &updated}, {"key", &key},
                                      {"tracker_code", &tracker_code},
                                      {"owner0", &owner0}, {"owner1", &owner1}, {"flags", &flags}});

  GrantFilter f;
  const size_t n = visibility.ndim() == 1 ? visibility.shape(0) : SIZE_MAX;
  const auto* vis = static_cast<const int32_t*>(checked(visibility, "visibility", nb::dtype<int32_t>(), n));
  const auto* notes = static_cast<const uint8_t*>(checked(private_notes, "private_notes", nb::dtype<bool>(), n));
  const auto* any = static_cast<const uint8_t*>(checked(any_tracker, "any_tracker", nb::dtype<bool>(), n));
  auto type_lists = slices(types, types_ends, n, "types");
  auto project_lists = slices(projects, projects_ends, n, "projects");
  auto tracker_lists = slices(trackers, trackers_ends, n, "trackers");
  f.grants.resize(n);
  for (size_t g = 0; g < n; ++g) {
    if (vis[g] < 1 || vis[g] > 3)
      throw nb::value_error(("visibility: grant " + std::to_string(g) + " has unknown visibility " +
                             std::to_string(vis[g])).c_str());
    Grant& grant = f.grants[g];
    grant.visibility = static_cast<Visibility>(vis[g]);
    grant.private_notes = notes[g] != 0;
    grant.types = std::move(type_lists[g]);
    grant.projects = std::move(project_lists[g]);
    if (!any[g]) grant.trackers = std::move(tracker_lists[g]);
  }
  f.project_of_code = id_vector(project_of_code, "project_of_code");
  f.tracker_of_code = id_vector(tracker_of_code, "tracker_of_code");
  if (narrow_projects) f.projects = id_vector(*narrow_projects, "narrow_projects");
  if (narrow_types) f.types = id_vector(*narrow_types, "narrow_types");
  f.user = user_id;
  if (principals) f.principals = id_vector(*principals, "principals");
  if (own_rows) f.own_rows = id_vector(*own_rows, "own_rows");
  for (const int64_t r : f.own_rows) {
    if (r < 0 || static_cast<uint64_t>(r) >= rows)
      throw nb::value_error(("own_rows: row " + std::to_string(r) + " is outside the " + std::to_string(rows) +
                             " rows").c_str());
  }
  f.updated_min = updated_min;
  f.updated_max = updated_max;
  f.max_table = max_table;
  nb::gil_scoped_release release;
  grant_mask(c, f, dst);
}

}  // namespace

void bind_grant_mask(nb::module_& m) {
  m.def("grant_mask", &grant_mask_py, "out"_a, "alive"_a, "project"_a, "type_code"_a, "author"_a, "updated"_a,
        "key"_a, "tracker_code"_a, "owner0"_a, "owner1"_a, "flags"_a, nb::kw_only(), "project_of_code"_a,
        "tracker_of_code"_a, "visibility"_a, "private_notes"_a,
        "any_tracker"_a, "types"_a, "types_ends"_a, "projects"_a, "projects_ends"_a, "trackers"_a,
        "trackers_ends"_a, "narrow_projects"_a = nb::none(), "narrow_types"_a = nb::none(), "user_id"_a = 0,
        "principals"_a = nb::none(), "own_rows"_a = nb::none(), "updated_min"_a = nb::none(),
        "updated_max"_a = nb::none(), "max_table"_a = size_t{1} << 22,
        nb::sig("def grant_mask(out: numpy.typing.NDArray[numpy.bool_], alive: numpy.typing.NDArray[numpy.bool_], "
                "project: numpy.typing.NDArray[numpy.int64], type_code: numpy.typing.NDArray[numpy.int32], "
                "author: numpy.typing.NDArray[numpy.int64], updated: numpy.typing.NDArray[numpy.int64], "
                "key: numpy.typing.NDArray[numpy.uint32], tracker_code: numpy.typing.NDArray[numpy.int32], "
                "owner0: numpy.typing.NDArray[numpy.int64], "
                "owner1: numpy.typing.NDArray[numpy.int64], flags: numpy.typing.NDArray[numpy.uint8], *, "
                "project_of_code: numpy.typing.NDArray[numpy.int64], "
                "tracker_of_code: numpy.typing.NDArray[numpy.int64], "
                "visibility: numpy.typing.NDArray[numpy.int32], private_notes: numpy.typing.NDArray[numpy.bool_], "
                "any_tracker: numpy.typing.NDArray[numpy.bool_], types: numpy.typing.NDArray[numpy.int64], "
                "types_ends: numpy.typing.NDArray[numpy.int64], projects: numpy.typing.NDArray[numpy.int64], "
                "projects_ends: numpy.typing.NDArray[numpy.int64], trackers: numpy.typing.NDArray[numpy.int64], "
                "trackers_ends: numpy.typing.NDArray[numpy.int64], "
                "narrow_projects: numpy.typing.NDArray[numpy.int64] | None = None, "
                "narrow_types: numpy.typing.NDArray[numpy.int64] | None = None, user_id: int = 0, "
                "principals: numpy.typing.NDArray[numpy.int64] | None = None, "
                "own_rows: numpy.typing.NDArray[numpy.int64] | None = None, updated_min: int | None = None, "
                "updated_max: int | None = None, max_table: int = 4194304) -> None"),
        "FilterColumns.mask for a filter with grants, in one pass, the GIL released: writes to out (bool "
        "or uint8, one entry per row) alive & updated_min <= updated <= updated_max & OR over the grants "
        "(ragd.v1.Grant's rule). Grant g: visibility[g] (1 all, 2 default, 3 own), private_notes[g], "
        "any_tracker[g], and its slices of types (type codes), projects and trackers (ends: end offsets). "
        "narrow_projects / narrow_types are ANDed; principals are the user and their groups; own_rows are "
        "rows owned beyond owner0/owner1. key: project code << 12 | type code (0xFFFFFFFF: read project and "
        "type_code); project_of_code / tracker_of_code: the codes' ids. flags: 1 private, 4 private note. Raises ValueError for an array "
        "of another dtype, shape or length, bad offsets, an unknown visibility or an own row out of range.");
}

}  // namespace ragd
