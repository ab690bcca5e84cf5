// Padding: out[o_0, ..., o_{d-1}] = a[src_0(o_0), ..., src_{d-1}(o_{d-1})], or `value` where some src_k
// falls outside (constant mode). Loop order: output rows (every axis but the last) in parallel; within a
// row the interior is one contiguous copy and only the two edges go through the index map.
#include <algorithm>
#include <vector>

#include "kernels.h"

namespace convlab::cpu {

namespace {

// Input index that output index o (along an axis of length n padded by lo in front) reads, or -1 for the
// constant fill. The frontend guarantees reflect pads < n and circular pads <= n, so one fold suffices.
int64_t source_index(int64_t o, int64_t n, int64_t lo, PadMode mode) {
  const int64_t i = o - lo;
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::constant: return -1;
    case PadMode::reflect: return i < 0 ? -i : 2 * (n - 1) - i;  // the edge element is not repeated
    case PadMode::replicate: return i < 0 ? 0 : n - 1;
    case PadMode::circular: return ((i % n) + n) % n;
  }
  return -1;
}

template <class T>
void pad_typed(const NDArray& a, const std::vector<std::pair<int64_t, int64_t>>& pads, PadMode mode, T value,
               NDArray& out) {
  // A 0-d array is one element along one axis with no pads (it has no pairs).
  const Shape in_shape = a.ndim() == 0 ? Shape{1} : a.shape;
  const Shape out_shape = out.ndim() == 0 ? Shape{1} : out.shape;
  const int nd = static_cast<int>(in_shape.size());
  const auto lo_of = [&](int d) { return d < static_cast<int>(pads.size()) ? pads[d].first : int64_t{0}; };
  const Shape in_strides = contiguous_strides(in_shape);
  std::vector<std::vector<int64_t>> src(nd);
  for (int d = 0; d < nd; ++d) {
    src[d].resize(out_shape[d]);
    for (int64_t o = 0; o < out_shape[d]; ++o) src[d][o] = source_index(o, in_shape[d], lo_of(d), mode);
  }
  const int64_t n = in_shape[nd - 1], on = out_shape[nd - 1], lo = lo_of(nd - 1);
  const int64_t rows = on == 0 ? 0 : out.size() / on;
  const T* pa = a.data<T>();
  T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (out.size() >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    T* y = po + r * on;
    int64_t in_off = 0;
    for (int64_t d = nd - 2, rest = r; d >= 0; --d) {
      const int64_t s = src[d][rest % out_shape[d]];
      rest /= out_shape[d];
      if (s < 0) {
        in_off = -1;
        break;
      }
      in_off += s * in_strides[d];
    }
    if (in_off < 0) {
      std::fill(y, y + on, value);
      continue;
    }
    const T* x = pa + in_off;
    const std::vector<int64_t>& last = src[nd - 1];
    for (int64_t o = 0; o < lo; ++o) y[o] = last[o] < 0 ? value : x[last[o]];
    std::copy(x, x + n, y + lo);
    for (int64_t o = lo + n; o < on; ++o) y[o] = last[o] < 0 ? value : x[last[o]];
  }
}

}  // namespace

void pad(const NDArray& a, const std::vector<std::pair<int64_t, int64_t>>& pads, PadMode mode, double value,
         NDArray& out) {
  dispatch_dtype<DTypes::floating>(a.dtype, [&](auto t) {
    using T = decltype(t);
    pad_typed<T>(a, pads, mode, static_cast<T>(value), out);
  });
}

}  // namespace convlab::cpu
