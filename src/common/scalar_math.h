// Element functions whose integer or floating-point forms need care, written once for the CPU kernels and
// the CUDA kernels (nvcc compiles them for the device too). Python's and PyTorch's conventions: the
// quotient rounds toward minus infinity and the remainder takes the divisor's sign.
#pragma once
#include <cmath>
#include <type_traits>

#ifndef CONVLAB_HOST_DEVICE
#ifdef __CUDACC__
#define CONVLAB_HOST_DEVICE __host__ __device__
#else
#define CONVLAB_HOST_DEVICE
#endif
#endif

namespace convlab {

// -x, x + y, x - y and x * y wrapping around as two's complement does for integers (PyTorch's results),
// where C++ leaves signed overflow undefined: the arithmetic is done unsigned. Floats and bool: plain.
template <class T>
CONVLAB_HOST_DEVICE T wrapping_neg(T x) {
  return static_cast<T>(-static_cast<std::make_unsigned_t<T>>(x));
}

template <class T>
constexpr bool kWraps = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <class T>
CONVLAB_HOST_DEVICE T wrapping_add(T x, T y) {
  if constexpr (kWraps<T>) return T(std::make_unsigned_t<T>(x) + std::make_unsigned_t<T>(y));
  else return T(x + y);
}

template <class T>
CONVLAB_HOST_DEVICE T wrapping_sub(T x, T y) {
  if constexpr (kWraps<T>) return T(std::make_unsigned_t<T>(x) - std::make_unsigned_t<T>(y));
  else return T(x - y);
}

template <class T>
CONVLAB_HOST_DEVICE T wrapping_mul(T x, T y) {
  if constexpr (kWraps<T>) return T(std::make_unsigned_t<T>(x) * std::make_unsigned_t<T>(y));
  else return T(x * y);
}

// x ** y for integers by squaring; a negative y gives 1 / x truncated toward zero, as PyTorch's kernel.
template <class T>
CONVLAB_HOST_DEVICE T int_pow(T x, T y) {
  if (y < 0) return x == 1 ? T(1) : x == -1 ? (y % 2 == 0 ? T(1) : T(-1)) : T(0);
  std::make_unsigned_t<T> result = 1, base = static_cast<std::make_unsigned_t<T>>(x);  // wraps on overflow
  for (; y > 0; y >>= 1) {
    if (y & 1) result *= base;
    base *= base;
  }
  return static_cast<T>(result);
}

// Integer floor division and remainder. A 0 divisor gives 0 (frontends refuse it first); -1 is special
// because lowest / -1 overflows.
template <class T>
CONVLAB_HOST_DEVICE T int_floor_divide(T x, T y) {
  if (y == 0) return T(0);
  if (y == -1) return wrapping_neg(x);
  const T q = x / y;
  return (x % y != 0 && ((x < 0) != (y < 0))) ? T(q - 1) : q;
}

template <class T>
CONVLAB_HOST_DEVICE T int_remainder(T x, T y) {
  if (y == 0 || y == -1) return T(0);
  const T r = x % y;
  return (r != 0 && ((r < 0) != (y < 0))) ? T(r + y) : r;
}

// PyTorch's float floor division: from fmod, so that the quotient is exact where (x - fmod(x, y)) / y is,
// rounded to the nearest integer when that lies within 0.5 and signed like x / y at 0. y == 0 gives x / y.
template <class T>
CONVLAB_HOST_DEVICE T float_floor_divide(T x, T y) {
  using std::copysign, std::floor, std::fmod;  // unqualified below: nvcc's device overloads are found too
  if (y == 0) return x / y;
  const T mod = fmod(x, y);
  T div = (x - mod) / y;
  if (mod != 0 && ((y < 0) != (mod < 0))) div -= T(1);
  if (div == 0) return copysign(T(0), x / y);
  T floor_div = floor(div);
  if (div - floor_div > T(0.5)) floor_div += T(1);
  return floor_div;
}

template <class T>
CONVLAB_HOST_DEVICE T float_remainder(T x, T y) {
  using std::fmod;
  T mod = fmod(x, y);
  if (mod != 0 && ((y < 0) != (mod < 0))) mod += y;
  return mod;
}

// The forms kernels call, for any element type but bool.
template <class T>
CONVLAB_HOST_DEVICE T power(T x, T y) {
  using std::pow;
  if constexpr (std::is_integral_v<T>) return int_pow(x, y);
  else return pow(x, y);
}

template <class T>
CONVLAB_HOST_DEVICE T floor_divide(T x, T y) {
  if constexpr (std::is_integral_v<T>) return int_floor_divide(x, y);
  else return float_floor_divide(x, y);
}

template <class T>
CONVLAB_HOST_DEVICE T remainder(T x, T y) {
  if constexpr (std::is_integral_v<T>) return int_remainder(x, y);
  else return float_remainder(x, y);
}

}  // namespace convlab
