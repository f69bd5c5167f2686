// nanobind binding of ragd::filter_mask (filter_mask.hpp): checks every array
// (dtype, one dimension, rows, contiguity, CPU memory, out not overlapping an
// input) with the GIL held, raising ValueError, then runs the pass without it.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "filter_mask.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace ragd {
namespace {

using InArray = nb::ndarray<nb::ro>;

std::string dtype_name(nb::dlpack::dtype dt) {
  const char* kind = "?";
  switch (static_cast<nb::dlpack::dtype_code>(dt.code)) {
    case nb::dlpack::dtype_code::Int: kind = "int"; break;
    case nb::dlpack::dtype_code::UInt: kind = "uint"; break;
    case nb::dlpack::dtype_code::Float: kind = "float"; break;
    case nb::dlpack::dtype_code::Bool: return dt.lanes == 1 ? "bool" : "bool vector";
    case nb::dlpack::dtype_code::Complex: kind = "complex"; break;
    default: kind = "other"; break;
  }
  return kind + std::to_string(dt.bits) + (dt.lanes == 1 ? "" : "x" + std::to_string(dt.lanes));
}

// The array's data after checking that it is a contiguous 1-d CPU array of
// `rows` entries of dtype `want` (or `alt`, when given).
template <class A>
const void* checked(const A& a, const char* name, nb::dlpack::dtype want, size_t rows,
                    std::optional<nb::dlpack::dtype> alt = std::nullopt) {
  const std::string what = std::string(name) + ": ";
  if (a.device_type() != nb::device::cpu::value) throw nb::value_error((what + "must be in CPU memory").c_str());
  if (a.dtype() != want && !(alt && a.dtype() == *alt))
    throw nb::value_error((what + "expected dtype " + dtype_name(want) + (alt ? " or " + dtype_name(*alt) : "") +
                           ", got " + dtype_name(a.dtype()))
                              .c_str());
  if (a.ndim() != 1)
    throw nb::value_error((what + "expected a 1-d array, got " + std::to_string(a.ndim()) + " dimensions").c_str());
  if (rows != SIZE_MAX && a.shape(0) != rows)
    throw nb::value_error(
        (what + "expected " + std::to_string(rows) + " rows, got " + std::to_string(a.shape(0))).c_str());
  if (a.shape(0) > 1 && a.stride(0) != 1) throw nb::value_error((what + "must be contiguous").c_str());
  return a.data();
}

std::vector<int64_t> id_vector(const InArray& a, const char* name) {
  const auto* p = static_cast<const int64_t*>(checked(a, name, nb::dtype<int64_t>(), SIZE_MAX));
  return std::vector<int64_t>(p, p + a.shape(0));
}

void filter_mask_py(nb::handle out_obj, const InArray& alive, const InArray& project, const InArray& type_code,
                    const InArray& is_private, const InArray& author, const InArray& updated,
                    std::optional<InArray> projects, std::optional<InArray> types, bool private_check,
                    std::optional<InArray> private_projects, std::optional<int64_t> user_id,
                    std::optional<InArray> viewer_rows, std::optional<int64_t> updated_min,
                    std::optional<int64_t> updated_max) {
  nb::ndarray<> out;
  if (!nb::try_cast(out_obj, out, false))
    throw nb::value_error("out: expected a writable bool or uint8 array");
  const size_t rows = out.ndim() == 1 ? out.shape(0) : SIZE_MAX;
  auto* dst = static_cast<uint8_t*>(
      const_cast<void*>(checked(out, "out", nb::dtype<bool>(), rows, nb::dtype<uint8_t>())));
  MaskColumns c;
  c.rows = rows;
  c.alive = static_cast<const uint8_t*>(checked(alive, "alive", nb::dtype<bool>(), rows));
  c.project = static_cast<const int64_t*>(checked(project, "project", nb::dtype<int64_t>(), rows));
  c.type_code = static_cast<const int32_t*>(checked(type_code, "type_code", nb::dtype<int32_t>(), rows));
  c.is_private = static_cast<const uint8_t*>(checked(is_private, "private", nb::dtype<bool>(), rows));
  c.author = static_cast<const int64_t*>(checked(author, "author", nb::dtype<int64_t>(), rows));
  c.updated = static_cast<const int64_t*>(checked(updated, "updated", nb::dtype<int64_t>(), rows));

  // out is written while the columns are read: it must not share memory with them.
  const auto* o = reinterpret_cast<const char*>(dst);
  for (const auto& [name, a] : {std::pair<const char*, const InArray*>{"alive", &alive}, {"project", &project},
                                {"type_code", &type_code}, {"private", &is_private}, {"author", &author},
                                {"updated", &updated}}) {
    const auto* p = static_cast<const char*>(a->data());
    if (rows != 0 && p < o + rows && o < p + a->nbytes())
      throw nb::value_error((std::string("out overlaps ") + name).c_str());
  }

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
