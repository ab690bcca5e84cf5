// Element-wise kernels over strided views: out[i] = f(a[i], b[i]), f(a[i]), a converting copy, a fill.
// Loop order (elementwise.h): axes are merged where every operand steps across them as one, the merged
// element range is split evenly across threads, and each thread walks its outer axes with an index counter
// while running the innermost axis as a tight loop (unit-stride when every operand allows it, so it vectorises).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "../common/ops.h"
#include "../common/scalar_math.h"
#include "elementwise.h"
#include "kernels.h"

namespace convlab::cpu {

namespace {

// out = f(a, b) element by element; out's element type is what f returns (bool for comparisons).
template <class T, class F>
void map2(const NDArray& a, const NDArray& b, const NDArray& out, F f) {
  using D = decltype(f(T{}, T{}));
  const auto l = merge_axes<3>(out.shape, {&a.strides, &b.strides, &out.strides});
  const int64_t sa = l.strides[0].back(), sb = l.strides[1].back(), so = l.strides[2].back();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  D* po = out.data<D>();
  for_each_run(l, [&](const std::array<int64_t, 3>& off, int64_t len) {
    const T* x = pa + off[0];
    const T* y = pb + off[1];
    D* z = po + off[2];
    if (sa == 1 && sb == 1 && so == 1) {
      for (int64_t i = 0; i < len; ++i) z[i] = f(x[i], y[i]);
    } else {
      for (int64_t i = 0; i < len; ++i) z[i * so] = f(x[i * sa], y[i * sb]);
    }
  });
}

// out = f(a) element by element; S and D are the element types of a and out.
template <class S, class D, class F>
void map1(const NDArray& a, const NDArray& out, F f) {
  const auto l = merge_axes<2>(out.shape, {&a.strides, &out.strides});
  const int64_t sa = l.strides[0].back(), so = l.strides[1].back();
  const S* pa = a.data<S>();
  D* po = out.data<D>();
  for_each_run(l, [&](const std::array<int64_t, 2>& off, int64_t len) {
    const S* x = pa + off[0];
    D* z = po + off[1];
    if (sa == 1 && so == 1) {
      for (int64_t i = 0; i < len; ++i) z[i] = f(x[i]);
    } else {
      for (int64_t i = 0; i < len; ++i) z[i * so] = f(x[i * sa]);
    }
  });
}

// Calls k with the functor computing op on two T's: T for arithmetic (integers wrap around; casts bring
// bool and int32 back from C++'s int promotion), bool for comparisons and logical ops. maximum/minimum
// return the first NaN operand, as NumPy does. Ops a dtype does not have (frontends refuse them) are not
// compiled for it.
template <class T, class K>
void with_binary_op(BinaryOp op, K k) {
  constexpr bool is_bool = std::is_same_v<T, bool>, is_int = std::is_integral_v<T>;
  switch (op) {
    case BinaryOp::add: return k([](T x, T y) { return wrapping_add(x, y); });
    case BinaryOp::mul: return k([](T x, T y) { return wrapping_mul(x, y); });
    case BinaryOp::maximum: return k([](T x, T y) { return (x > y || x != x) ? x : y; });
    case BinaryOp::minimum: return k([](T x, T y) { return (x < y || x != x) ? x : y; });
    case BinaryOp::eq: return k([](T x, T y) { return x == y; });
    case BinaryOp::ne: return k([](T x, T y) { return x != y; });
    case BinaryOp::lt: return k([](T x, T y) { return x < y; });
    case BinaryOp::le: return k([](T x, T y) { return x <= y; });
    case BinaryOp::gt: return k([](T x, T y) { return x > y; });
    case BinaryOp::ge: return k([](T x, T y) { return x >= y; });
    case BinaryOp::logical_and: return k([](T x, T y) { return x != T(0) && y != T(0); });
    case BinaryOp::logical_or: return k([](T x, T y) { return x != T(0) || y != T(0); });
    case BinaryOp::logical_xor: return k([](T x, T y) { return (x != T(0)) != (y != T(0)); });
    default: break;
  }
  if constexpr (!is_bool) {
    switch (op) {
      case BinaryOp::sub: return k([](T x, T y) { return wrapping_sub(x, y); });
      case BinaryOp::div: return k([](T x, T y) { return T(x / y); });  // floats only: the frontend converts
      case BinaryOp::pow: return k([](T x, T y) { return power(x, y); });
      case BinaryOp::floor_divide: return k([](T x, T y) { return floor_divide(x, y); });
      case BinaryOp::remainder: return k([](T x, T y) { return remainder(x, y); });
      default: break;
    }
  }
  if constexpr (is_int) {
    switch (op) {
      case BinaryOp::bitwise_and: return k([](T x, T y) { return T(x & y); });
      case BinaryOp::bitwise_or: return k([](T x, T y) { return T(x | y); });
      case BinaryOp::bitwise_xor: return k([](T x, T y) { return T(x ^ y); });
      default: break;
    }
  }
  runtime_error("internal error: ", binary_name(op), " reached the CPU kernel for a dtype it does not support");
}

// e^x without a libm call, so loops over it vectorise: x = k*ln2 + r with |r| <= ln2/2, e^r - 1 from its
// Taylor series (degree 7 for float, 13 for double: truncation below half an ulp), and 2^k built from
// exponent bits as two factors so that results near overflow and in the subnormal range stay exact.
template <class T>
struct ExpConsts;
template <>
struct ExpConsts<float> {
  using Bits = int32_t;
  static constexpr int mantissa = 23, bias = 127, degree = 7;
  static constexpr float lo = -104.0f, hi = 89.0f;  // beyond these e^x is 0 or inf in float
  static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;  // ln2_hi * k is exact
};
template <>
struct ExpConsts<double> {
  using Bits = int64_t;
  static constexpr int mantissa = 52, bias = 1023, degree = 13;
  static constexpr double lo = -746.0, hi = 710.0;
  static constexpr double ln2_hi = 6.93145751953125e-1, ln2_lo = 1.42860682030941723212e-6;
};

template <class T>
T pow2(typename ExpConsts<T>::Bits k) {
  using C = ExpConsts<T>;
  const typename C::Bits bits = (k + C::bias) << C::mantissa;
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

// Splits e^x = s1 * s2 * (1 + q), returning q = e^r - 1 (accurate even for tiny r, as expm1 needs).
template <class T>
T exp_split(T x, T& s1, T& s2) {
  using C = ExpConsts<T>;
  constexpr T round_magic = T(1.5) * T(typename C::Bits(1) << C::mantissa);  // adding it rounds to integer
  const T xc = x < C::lo ? C::lo : x > C::hi ? C::hi : x == x ? x : T(0);
  const T kf = (xc * T(1.4426950408889634) + round_magic) - round_magic;
  const T r = (xc - kf * C::ln2_hi) - kf * C::ln2_lo;
  T q = T(1);
  for (int i = C::degree; i >= 2; --i) q = T(1) + q * (r * (T(1) / T(i)));  // 1 + r/2 + r^2/6 + ...
  const auto k = static_cast<typename C::Bits>(kf);
  s1 = pow2<T>(k >> 1);
  s2 = pow2<T>(k - (k >> 1));
  return r * q;
}

template <class T>
T fast_exp(T x) {
  T s1, s2;
  const T q = exp_split(x, s1, s2);
  return x == x ? (s1 + s1 * q) * s2 : x;
}

// e^x - 1 for x <= 0 (where s1 * s2 cannot overflow); exactly q when k = 0, so no cancellation near 0.
template <class T>
T fast_expm1_nonpositive(T x) {
  T s1, s2;
  const T q = exp_split(x, s1, s2);
  const T s = s1 * s2;
  return x == x ? (s - T(1)) + s * q : x;
}

// Sigmoid only takes exp of -|x| (<= 1, never overflows): with e = exp(-|x|) it is 1/(1+e) for x >= 0 and
// e/(1+e) below, chosen without a branch. tanh|x| = -m / (2 + m) with m = expm1(-2|x|), then the sign of x.
// relu and sign keep NaN (x < 0 and x > 0 are both false for it).
template <class T, class K>
void with_unary_op(UnaryOp op, K k) {
  constexpr bool is_bool = std::is_same_v<T, bool>, is_int = std::is_integral_v<T> && !is_bool;
  switch (op) {
    case UnaryOp::sign:
      if constexpr (is_bool) return k([](T x) { return x; });
      else return k([](T x) { return x > 0 ? T(1) : x < 0 ? T(-1) : x; });
    case UnaryOp::logical_not: return k([](T x) { return x == T(0); });
    case UnaryOp::bitwise_not:
      if constexpr (is_bool) return k([](T x) { return !x; });
      else if constexpr (is_int) return k([](T x) { return T(~x); });
      else break;
    default: break;
  }
  if constexpr (is_int) {
    switch (op) {
      case UnaryOp::neg: return k([](T x) { return wrapping_neg(x); });
      case UnaryOp::relu: return k([](T x) { return x < 0 ? T(0) : x; });
      case UnaryOp::abs: return k([](T x) { return x < 0 ? wrapping_neg(x) : x; });
      default: break;
    }
  }
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case UnaryOp::neg: return k([](T x) { return -x; });
      case UnaryOp::exp: return k([](T x) { return fast_exp(x); });
      case UnaryOp::log: return k([](T x) { return std::log(x); });
      case UnaryOp::sqrt: return k([](T x) { return std::sqrt(x); });
      case UnaryOp::tanh:
        return k([](T x) {
          const T m = fast_expm1_nonpositive(T(-2) * std::abs(x));
          return std::copysign(-m / (T(2) + m), x);
        });
      case UnaryOp::sigmoid:
        return k([](T x) {
          const T e = fast_exp(-std::abs(x));
          const T s = T(1) / (T(1) + e);
          return x >= 0 ? s : e * s;
        });
      case UnaryOp::erf: return k([](T x) { return std::erf(x); });
      case UnaryOp::relu: return k([](T x) { return x < 0 ? T(0) : x; });
      case UnaryOp::abs: return k([](T x) { return std::abs(x); });
      case UnaryOp::floor: return k([](T x) { return std::floor(x); });
      case UnaryOp::ceil: return k([](T x) { return std::ceil(x); });
      case UnaryOp::round: return k([](T x) { return std::nearbyint(x); });  // default rounding: half to even
      default: break;
    }
  }
  runtime_error("internal error: ", unary_name(op), " reached the CPU kernel for a dtype it does not support");
}

}  // namespace

void binary(BinaryOp op, const NDArray& a, const NDArray& b, NDArray& out) {
  dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    with_binary_op<T>(op, [&](auto f) { map2<T>(a, b, out, f); });
  });
}

void binary_scalar(BinaryOp op, const NDArray& a, double s, bool scalar_first, NDArray& out) {
  dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T c = static_cast<T>(s);
    with_binary_op<T>(op, [&](auto f) {
      using D = decltype(f(c, c));
      if (scalar_first) map1<T, D>(a, out, [=](T x) { return f(c, x); });
      else map1<T, D>(a, out, [=](T x) { return f(x, c); });
    });
  });
}

void unary(UnaryOp op, const NDArray& a, NDArray& out) {
  dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    with_unary_op<T>(op, [&](auto f) { map1<T, decltype(f(T{}))>(a, out, f); });
  });
}

void clamp(const NDArray& a, double lo, double hi, NDArray& out) {
  dispatch_dtype<DTypes::floating>(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T l = T(lo), h = T(hi);
    map1<T, T>(a, out, [=](T x) {
      const T y = x < l ? l : x;  // comparisons with NaN are false: NaN passes through both
      return y > h ? h : y;
    });
  });
}

void clamp_backward(const NDArray& g, const NDArray& y, double lo, double hi, NDArray& out) {
  dispatch_dtype<DTypes::floating>(g.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T l = T(lo), h = T(hi);
    map2<T>(g, y, out, [=](T gv, T yv) { return yv > l && !(yv >= h) ? gv : T(0); });
  });
}

void copy(const NDArray& src, const NDArray& dst) {
  dispatch_dtype(src.dtype, [&](auto s_tag) {
    dispatch_dtype(dst.dtype, [&](auto d_tag) {
      using S = decltype(s_tag);
      using D = decltype(d_tag);
      map1<S, D>(src, dst, [](S x) { return static_cast<D>(x); });
    });
  });
}

void fill(const NDArray& dst, double value) {
  dispatch_dtype(dst.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T v = static_cast<T>(value);
    const auto l = merge_axes<1>(dst.shape, {&dst.strides});
    const int64_t so = l.strides[0].back();
    T* po = dst.data<T>();
    for_each_run(l, [&](const std::array<int64_t, 1>& off, int64_t len) {
      T* z = po + off[0];
      if (so == 1) std::fill(z, z + len, v);
      else for (int64_t i = 0; i < len; ++i) z[i * so] = v;
    });
  });
}

}  // namespace convlab::cpu
