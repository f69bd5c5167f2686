// Argument checks shared by the nanobind bindings of the permission kernels
// (filter_mask.cpp, grant_mask.cpp): every array is checked (dtype, one
// dimension, rows, contiguity, CPU memory) with the GIL held, raising
// ValueError, before a kernel runs without the GIL.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ragd::nbargs {

namespace nb = nanobind;

using InArray = nb::ndarray<nb::ro>;

inline std::string dtype_name(nb::dlpack::dtype dt) {
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
// `rows` entries (SIZE_MAX: any) of dtype `want` (or `alt`, when given).
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

inline std::vector<int64_t> id_vector(const InArray& a, const char* name) {
  const auto* p = static_cast<const int64_t*>(checked(a, name, nb::dtype<int64_t>(), SIZE_MAX));
  return std::vector<int64_t>(p, p + a.shape(0));
}

// The writable bool/uint8 output array and its rows.
inline std::pair<uint8_t*, size_t> output(nb::handle out_obj) {
  nb::ndarray<> out;
  if (!nb::try_cast(out_obj, out, false)) throw nb::value_error("out: expected a writable bool or uint8 array");
  const size_t rows = out.ndim() == 1 ? out.shape(0) : SIZE_MAX;
  auto* dst = static_cast<uint8_t*>(
      const_cast<void*>(checked(out, "out", nb::dtype<bool>(), rows, nb::dtype<uint8_t>())));
  return {dst, rows};
}

// out is written while the columns are read: it must not share memory with them.
inline void check_no_overlap(const uint8_t* dst, size_t rows,
                             std::initializer_list<std::pair<const char*, const InArray*>> columns) {
  const auto* o = reinterpret_cast<const char*>(dst);
  for (const auto& [name, a] : columns) {
    const auto* p = static_cast<const char*>(a->data());
    if (rows != 0 && p < o + rows && o < p + a->nbytes())
      throw nb::value_error((std::string("out overlaps ") + name).c_str());
  }
}

}  // namespace ragd::nbargs
