// nanobind binding of ragd::filter_mask (filter_mask.hpp): checks every array
// (ndarray_args.hpp, out not overlapping an input) with the GIL held, raising
// ValueError, then runs the pass without it.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "filter_mask.hpp"
#include "ndarray_args.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace ragd {
namespace {

using nbargs::InArray;
using nbargs::checked;
using nbargs::id_vector;

void filter_mask_py(nb::handle out_obj, const InArray& alive, const InArray& project, const InArray& type_code,
                    const InArray& is_private, const InArray& author, const InArray& updated,
                    std::optional<InArray> projects, std::optional<InArray> types, bool private_check,
                    std::optional<InArray> private_projects, std::optional<int64_t> user_id,
                    std::optional<InArray> viewer_rows, std::optional<int64_t> updated_min,
                    std::optional<int64_t> updated_max) {
  const auto [dst, rows] = nbargs::output(out_obj);
  MaskColumns c;
  c.rows = rows;
  c.alive = static_cast<const uint8_t*>(checked(alive, "alive", nb::dtype<bool>(), rows));
  c.project = static_cast<const int64_t*>(checked(project, "project", nb::dtype<int64_t>(), rows));
  c.type_code = static_cast<const int32_t*>(checked(type_code, "type_code", nb::dtype<int32_t>(), rows));
  c.is_private = static_cast<const uint8_t*>(checked(is_private, "private", nb::dtype<bool>(), rows));
  c.author = static_cast<const int64_t*>(checked(author, "author", nb::dtype<int64_t>(), rows));
  c.updated = static_cast<const int64_t*>(checked(updated, "updated", nb::dtype<int64_t>(), rows));

  nbargs::check_no_overlap(dst, rows, {{"alive", &alive}, {"project", &project}, {"type_code", &type_code},
                                      {"private", &is_private}, {"author", &author}, {"updated", &updated}});

  MaskFilter f;
  if (projects) f.projects = id_vector(*projects, "projects");
  if (types) {
    const auto* p = static_cast<const int32_t*>(checked(*types, "types", nb::dtype<int32_t>(), SIZE_MAX));
    f.types = std::vector<int64_t>(p, p + types->shape(0));
  }
  f.private_check = private_check;
  if (private_projects) f.private_projects = id_vector(*private_projects, "private_projects");
  f.user = user_id;
  if (viewer_rows) f.viewer_rows = id_vector(*viewer_rows, "viewer_rows");
  f.updated_min = updated_min;
  f.updated_max = updated_max;
  for (const int64_t r : f.viewer_rows) {
    if (r < 0 || static_cast<uint64_t>(r) >= rows)
      throw nb::value_error(("viewer_rows: row " + std::to_string(r) + " is outside the " + std::to_string(rows) +
                             " rows")
                                .c_str());
  }
  nb::gil_scoped_release release;
  filter_mask(c, f, dst);
}

}  // namespace

void bind_filter_mask(nb::module_& m) {
  m.def("filter_mask", &filter_mask_py, "out"_a, "alive"_a, "project"_a, "type_code"_a, "private"_a, "author"_a,
        "updated"_a, nb::kw_only(), "projects"_a = nb::none(), "types"_a = nb::none(), "private_check"_a = false,
        "private_projects"_a = nb::none(), "user_id"_a = nb::none(), "viewer_rows"_a = nb::none(),
        "updated_min"_a = nb::none(), "updated_max"_a = nb::none(),
        nb::sig("def filter_mask(out: numpy.typing.NDArray[numpy.bool_], alive: numpy.typing.NDArray[numpy.bool_], "
                "project: numpy.typing.NDArray[numpy.int64], type_code: numpy.typing.NDArray[numpy.int32], "
                "private: numpy.typing.NDArray[numpy.bool_], author: numpy.typing.NDArray[numpy.int64], "
                "updated: numpy.typing.NDArray[numpy.int64], *, "
                "projects: numpy.typing.NDArray[numpy.int64] | None = None, "
                "types: numpy.typing.NDArray[numpy.int32] | None = None, private_check: bool = False, "
                "private_projects: numpy.typing.NDArray[numpy.int64] | None = None, user_id: int | None = None, "
                "viewer_rows: numpy.typing.NDArray[numpy.int64] | None = None, updated_min: int | None = None, "
                "updated_max: int | None = None) -> None"),
        "FilterColumns.mask's common conditions in one pass, the GIL released: writes to out (bool or "
        "uint8, one entry per row) alive & project in projects & type_code in types & private visibility "
        "& updated_min <= updated <= updated_max. None is no condition; an empty array admits nothing. "
        "With private_check, a private row is visible when its project is in private_projects, its author "
        "is user_id, or it is one of viewer_rows (row numbers). Raises ValueError for an array of another "
        "dtype, shape or length, a non-contiguous array, out overlapping a column, or a viewer row out of "
        "range.");
}

}  // namespace ragd
