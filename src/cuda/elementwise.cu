// Element-wise kernels over strided views: out[i] = f(a[off_a(i)], b[off_b(i)]) for the flat index i of
// out's shape. Adjacent axes that every operand walks as one are merged on the host first, so a contiguous
// operand costs no index math and ranks above kMaxRank only fail when they truly cannot be merged.
#include <array>
#include <cmath>

#include "../common/optim_math.h"
#include "../common/scalar_math.h"
#include "common.cuh"

namespace convlab::cuda {
namespace {

constexpr int kMaxRank = 8;

// Shape and strides of one operand, passed to kernels by value.
struct Strided {
  int rank = 0;
  bool contiguous = true;  // offset(i) == i
  int64_t shape[kMaxRank] = {};
  int64_t stride[kMaxRank] = {};

  __device__ int64_t offset(int64_t i) const {
    if (contiguous) return i;
    int64_t off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      off += (i % shape[d]) * stride[d];
      i /= shape[d];
    }
    return off;
  }
};

// Merges axis d into axis d+1 wherever every operand steps over the pair as over one axis, drops size-1
// axes, and describes each operand over the merged shape.
template <size_t N>
std::array<Strided, N> merge_axes(const char* op, const Shape& shape, const std::array<const Shape*, N>& strides) {
  Shape merged;                        // innermost first while building
  std::array<Shape, N> merged_strides;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    bool joins = !merged.empty();
    for (size_t k = 0; k < N && joins; ++k)
      joins = (*strides[k])[d] == merged_strides[k].back() * merged.back();
    if (joins) {
      merged.back() *= shape[d];
      continue;
    }
    merged.push_back(shape[d]);
    for (size_t k = 0; k < N; ++k) merged_strides[k].push_back((*strides[k])[d]);
  }
  if (merged.size() > kMaxRank) runtime_error(op, ": views of rank above ", kMaxRank, " are not supported on cuda");
  std::array<Strided, N> out;
  for (size_t k = 0; k < N; ++k) {
    Strided& s = out[k];
    s.rank = static_cast<int>(merged.size());
    for (int d = 0; d < s.rank; ++d) {
      s.shape[d] = merged[s.rank - 1 - d];
      s.stride[d] = merged_strides[k][s.rank - 1 - d];
    }
    s.contiguous = s.rank == 0 || (s.rank == 1 && s.stride[0] == 1);
  }
  return out;
}

// op on two T's as a T: comparisons and logical ops give T(1) or T(0), which the kernels store as bool.
// Ops a dtype does not have (frontends refuse them) are not compiled for it.
template <class T>
__device__ T apply(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return wrapping_add(a, b);
    case BinaryOp::mul: return wrapping_mul(a, b);
    case BinaryOp::maximum: return (a > b || a != a) ? a : b;  // NaN propagates, as torch.maximum
    case BinaryOp::minimum: return (a < b || a != a) ? a : b;
    case BinaryOp::eq: return a == b;
    case BinaryOp::ne: return a != b;
    case BinaryOp::lt: return a < b;
    case BinaryOp::le: return a <= b;
    case BinaryOp::gt: return a > b;
    case BinaryOp::ge: return a >= b;
    case BinaryOp::logical_and: return a != T(0) && b != T(0);
    case BinaryOp::logical_or: return a != T(0) || b != T(0);
    case BinaryOp::logical_xor: return (a != T(0)) != (b != T(0));
    default: break;
  }
  if constexpr (!std::is_same_v<T, bool>) {
    switch (op) {
      case BinaryOp::sub: return wrapping_sub(a, b);
      case BinaryOp::div: return T(a / b);  // floats only: the frontend converts integers
      case BinaryOp::pow: return power(a, b);
      case BinaryOp::floor_divide: return floor_divide(a, b);
      case BinaryOp::remainder: return remainder(a, b);
      default: break;
    }
  }
  if constexpr (std::is_integral_v<T>) {
    switch (op) {
      case BinaryOp::bitwise_and: return T(a & b);
      case BinaryOp::bitwise_or: return T(a | b);
      case BinaryOp::bitwise_xor: return T(a ^ b);
      default: break;
    }
  }
  return a;
}

// Likewise: logical_not gives T(1) or T(0), stored as bool.
template <class T>
__device__ T apply(UnaryOp op, T a) {
  constexpr bool is_bool = std::is_same_v<T, bool>, is_int = std::is_integral_v<T> && !is_bool;
  if (op == UnaryOp::logical_not) return a == T(0);
  if constexpr (is_bool) {
    if (op == UnaryOp::bitwise_not) return !a;
    return a;  // sign
  } else if constexpr (is_int) {
    switch (op) {
      case UnaryOp::neg: return wrapping_neg(a);
      case UnaryOp::relu: return a < T(0) ? T(0) : a;
      case UnaryOp::abs: return a < T(0) ? wrapping_neg(a) : a;
      case UnaryOp::sign: return T((a > T(0)) - (a < T(0)));
      case UnaryOp::bitwise_not: return T(~a);
      default: return a;
    }
  } else {
    switch (op) {
      case UnaryOp::neg: return -a;
      case UnaryOp::exp: return exp(a);
      case UnaryOp::log: return log(a);
      case UnaryOp::sqrt: return sqrt(a);
      case UnaryOp::tanh: return tanh(a);
      case UnaryOp::sigmoid: {  // split on the sign so exp never overflows, as the CPU kernel does
        if (a >= T(0)) return T(1) / (T(1) + exp(-a));
        T e = exp(a);
        return e / (T(1) + e);
      }
      case UnaryOp::relu: return a < T(0) ? T(0) : a;  // NaN stays NaN
      case UnaryOp::abs: return fabs(a);
      case UnaryOp::sign: return a > T(0) ? T(1) : a < T(0) ? T(-1) : a;  // 0 and NaN map to themselves
      case UnaryOp::erf: return erf(a);
      case UnaryOp::floor: return floor(a);
      case UnaryOp::ceil: return ceil(a);
      case UnaryOp::round: return rint(a);  // half to even
      default: return a;
    }
  }
}

// The op switch is the same for every thread, so it costs a few uniform branches, not divergence.
// T is the operands' element type, D out's (T, or bool for the ops that give bool).
template <class T, class D>
__global__ void binary_kernel(BinaryOp op, const T* a, Strided sa, const T* b, Strided sb, D* out, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_count())
    out[i] = static_cast<D>(apply(op, a[sa.offset(i)], b[sb.offset(i)]));
}

template <class T, class D>
__global__ void binary_scalar_kernel(BinaryOp op, const T* a, Strided sa, T s, bool scalar_first, D* out,
                                     int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_count()) {
    T v = a[sa.offset(i)];
    out[i] = static_cast<D>(scalar_first ? apply(op, s, v) : apply(op, v, s));
  }
}

template <class T, class D>
__global__ void unary_kernel(UnaryOp op, const T* a, Strided sa, D* out, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_count()) out[i] = static_cast<D>(apply(op, a[sa.offset(i)]));
}

// min(max(a, lo), hi); NaN fails both comparisons and passes through.
template <class T>
__global__ void clamp_kernel(const T* a, Strided sa, T lo, T hi, T* out, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_count()) {
    const T v = a[sa.offset(i)], y = v < lo ? lo : v;
    out[i] = y > hi ? hi : y;
  }
}

template <class T>
__global__ void clamp_backward_kernel(const T* g, Strided sg, const T* y, Strided sy, T lo, T hi, T* out, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_count()) {
    const T v = y[sy.offset(i)];
    out[i] = v > lo && !(v >= hi) ? g[sg.offset(i)] : T(0);
  }
}

// One array of an optimizer step: element i of the step's flat index.
template <class T>
struct Operand {
  T* ptr;
  Strided s;
  __device__ T& operator[](int64_t i) const { return ptr[s.offset(i)]; }
};

template <class T, size_t K>
std::array<Operand<T>, K> operands(const char* op, const std::array<const NDArray*, K>& arrays) {
  std::array<const Shape*, K> strides;
  for (size_t k = 0; k < K; ++k) strides[k] = &arrays[k]->strides;
  const auto s = merge_axes<K>(op, arrays[0]->shape, strides);
  std::array<Operand<T>, K> out;
  for (size_t k = 0; k < K; ++k) out[k] = {arrays[k]->template data<T>(), s[k]};
  return out;
}

// An optimizer step (common/optim_math.h): update(p[i], g[i], state[i]...) in place for each element.
template <class U, class... Ops>
__global__ void step_kernel(U update, int64_t n, Ops... ops) {
  for (int64_t i = thread_index(); i < n; i += thread_count()) update(ops[i]...);
}

// Calls f(T{}, D{}) with T the element type of a and D that of out: T itself or bool.
template <class F>
void dispatch_in_out(DType in, DType out, F&& f) {
  dispatch_dtype(in, [&](auto t) {
    if (out == DType::b8) f(t, bool{});
    else f(t, t);
  });
}

template <class S, class D>
__global__ void copy_kernel(const S* src, Strided ss, D* dst, Strided sd, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_count()) dst[sd.offset(i)] = static_cast<D>(src[ss.offset(i)]);
}

template <class T>
__global__ void fill_kernel(T* dst, Strided sd, T value, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += thread_count()) dst[sd.offset(i)] = value;
}

}  // namespace

void binary(BinaryOp op, const NDArray& a, const NDArray& b, NDArray& out) {
  int64_t n = out.size();
  if (n == 0) return;
  auto s = merge_axes<2>("binary", out.shape, {&a.strides, &b.strides});
  dispatch_in_out(a.dtype, out.dtype, [&](auto t, auto d) {
    using T = decltype(t);
    using D = decltype(d);
    binary_kernel<<<blocks_for(n), kThreads>>>(op, a.data<T>(), s[0], b.data<T>(), s[1], out.data<D>(), n);
  });
  check_launch("binary");
}

void binary_scalar(BinaryOp op, const NDArray& a, double s, bool scalar_first, NDArray& out) {
  int64_t n = out.size();
  if (n == 0) return;
  Strided sa = merge_axes<1>("binary_scalar", out.shape, {&a.strides})[0];
  dispatch_in_out(a.dtype, out.dtype, [&](auto t, auto d) {
    using T = decltype(t);
    using D = decltype(d);
    binary_scalar_kernel<<<blocks_for(n), kThreads>>>(op, a.data<T>(), sa, T(s), scalar_first, out.data<D>(), n);
  });
  check_launch("binary_scalar");
}

void unary(UnaryOp op, const NDArray& a, NDArray& out) {
  int64_t n = out.size();
  if (n == 0) return;
  Strided sa = merge_axes<1>("unary", out.shape, {&a.strides})[0];
  dispatch_in_out(a.dtype, out.dtype, [&](auto t, auto d) {
    using T = decltype(t);
    using D = decltype(d);
    unary_kernel<<<blocks_for(n), kThreads>>>(op, a.data<T>(), sa, out.data<D>(), n);
  });
  check_launch("unary");
}

void clamp(const NDArray& a, double lo, double hi, NDArray& out) {
  int64_t n = out.size();
  if (n == 0) return;
  Strided sa = merge_axes<1>("clamp", out.shape, {&a.strides})[0];
  dispatch_dtype<DTypes::floating>(a.dtype, [&](auto t) {
    using T = decltype(t);
    clamp_kernel<<<blocks_for(n), kThreads>>>(a.data<T>(), sa, T(lo), T(hi), out.data<T>(), n);
  });
  check_launch("clamp");
}

void clamp_backward(const NDArray& g, const NDArray& y, double lo, double hi, NDArray& out) {
  int64_t n = out.size();
  if (n == 0) return;
  auto s = merge_axes<2>("clamp_backward", out.shape, {&g.strides, &y.strides});
  dispatch_dtype<DTypes::floating>(g.dtype, [&](auto t) {
    using T = decltype(t);
    clamp_backward_kernel<<<blocks_for(n), kThreads>>>(g.data<T>(), s[0], y.data<T>(), s[1], T(lo), T(hi),
                                                        out.data<T>(), n);
  });
  check_launch("clamp_backward");
}

void sgd_step(const NDArray& p, const NDArray& g, const NDArray* buf, const SgdOptions& o) {
  const int64_t n = p.size();
  dispatch_dtype<DTypes::floating>(p.dtype, [&](auto t) {
    using T = decltype(t);
    const SgdUpdate<T> update(o);
    if (buf) {
      auto a = operands<T, 3>("sgd_step", {&p, &g, buf});
      step_kernel<<<blocks_for(n), kThreads>>>(update, n, a[0], a[1], a[2]);
    } else {
      auto a = operands<T, 2>("sgd_step", {&p, &g});
      step_kernel<<<blocks_for(n), kThreads>>>(update, n, a[0], a[1]);
    }
  });
  check_launch("sgd_step");
}

void adam_step(const NDArray& p, const NDArray& g, const NDArray& m, const NDArray& v, const NDArray* v_max,
               const AdamOptions& o) {
  const int64_t n = p.size();
  dispatch_dtype<DTypes::floating>(p.dtype, [&](auto t) {
    using T = decltype(t);
    const AdamUpdate<T> update(o);
    if (v_max) {
      auto a = operands<T, 5>("adam_step", {&p, &g, &m, &v, v_max});
      step_kernel<<<blocks_for(n), kThreads>>>(update, n, a[0], a[1], a[2], a[3], a[4]);
    } else {
      auto a = operands<T, 4>("adam_step", {&p, &g, &m, &v});
      step_kernel<<<blocks_for(n), kThreads>>>(update, n, a[0], a[1], a[2], a[3]);
    }
  });
  check_launch("adam_step");
}

void copy(const NDArray& src, const NDArray& dst) {
  int64_t n = dst.size();
  if (n == 0) return;
  auto st = merge_axes<2>("copy", dst.shape, {&src.strides, &dst.strides});
  dispatch_dtype(src.dtype, [&](auto s) {
    dispatch_dtype(dst.dtype, [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      copy_kernel<<<blocks_for(n), kThreads>>>(src.data<S>(), st[0], dst.data<D>(), st[1], n);
    });
  });
  check_launch("copy");
}

void fill(const NDArray& dst, double value) {
  int64_t n = dst.size();
  if (n == 0) return;
  Strided sd = merge_axes<1>("fill", dst.shape, {&dst.strides})[0];
  dispatch_dtype(dst.dtype, [&](auto t) {
    using T = decltype(t);
    fill_kernel<<<blocks_for(n), kThreads>>>(dst.data<T>(), sd, T(value), n);
  });
  check_launch("fill");
}

}  // namespace convlab::cuda
