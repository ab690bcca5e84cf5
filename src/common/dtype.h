// Element types and the one switch from a runtime DType to the C++ type a kernel is instantiated for.
// bool is stored as one byte holding 0 or 1 (C++ bool), as NumPy and PyTorch store it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "errors.h"

namespace convlab {

// Ordered by PyTorch's promotion lattice within and across categories: bool < ints < floats.
enum class DType { b8, i32, i64, f32, f64 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "bool", "int32", "int64", "float32", "float64"
DType parse_dtype(const std::string& name);  // one of those names, else TypeError
inline bool is_floating(DType dtype) { return dtype == DType::f32 || dtype == DType::f64; }

// PyTorch's type promotion. Categories rank bool < integer < floating. Two arrays promote to the larger
// dtype (the enum's order). A Python number, like a 0-dim array beside an array with dimensions, only
// counts when its category is higher: then a number gives int64 or float32 (the defaults), a 0-dim array
// its own dtype.
enum class Category { boolean, integer, floating };
Category category(DType dtype);
DType promote_types(DType a, DType b);

// The DType whose C++ element type is T.
template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, bool>) return DType::b8;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::i32;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::i64;
  else if constexpr (std::is_same_v<T, float>) return DType::f32;
  else return DType::f64;
}

// Which dtypes a kernel is compiled for. Convolution, pooling, matmul and transcendental functions exist
// only for floats, reductions for numbers (bool is reduced as int32), index arrays are int32 or int64: the
// frontends (ops.cpp) convert or refuse other dtypes before a kernel runs.
enum class DTypes { floating, numeric, all, index };

// Calls f(T{}) with T the C++ type of dtype, so one templated kernel body serves every dtype in `set`.
template <DTypes set = DTypes::all, class F>
void dispatch_dtype(DType dtype, F&& f) {
  constexpr bool floats = set != DTypes::index, ints = set != DTypes::floating, bools = set == DTypes::all;
  switch (dtype) {
    case DType::f32: if constexpr (floats) return f(float{}); break;
    case DType::f64: if constexpr (floats) return f(double{}); break;
    case DType::i32: if constexpr (ints) return f(int32_t{}); break;
    case DType::i64: if constexpr (ints) return f(int64_t{}); break;
    case DType::b8: if constexpr (bools) return f(bool{}); break;
  }
  runtime_error("internal error: a kernel was called on ", dtype_name(dtype),
                " data that its frontend should have converted or refused");
}

}  // namespace convlab
