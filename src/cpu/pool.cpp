// Pooling over contiguous (N, C, H, W) planes: max, average and adaptive average, forward and backward.
// One (n, c) plane per OpenMP iteration: backward scatters only inside its own plane, so overlapping
// windows accumulate without races and in a fixed order (results do not depend on the thread count).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"

namespace convlab::cpu {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The taps of a dilated window along one axis that land on real input: positions first + t*dil for
// t < count. The padding holds no taps, so a window may have none at all (dilation over the pad).
struct Taps {
  int64_t first, count;
};

std::vector<Taps> max_taps(int64_t out, int64_t len, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  std::vector<Taps> taps(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t start = o * stride - pad;
    int64_t lo = start < 0 ? ceil_div(-start, dil) : 0;
    int64_t hi = start < len ? std::min(k, ceil_div(len - start, dil)) : 0;
    taps[o] = {start + lo * dil, std::max<int64_t>(hi - lo, 0)};
  }
  return taps;
}

// y[oh, ow] = x[argmax of window (oh, ow)], scanned row by row as PyTorch's CPU kernel does: a strictly
// larger value or any NaN takes over, so ties keep the first maximum and, among NaNs, the last one wins.
// Returns the plane index of that element, or -1 for a window without real taps.
template <class T>
int64_t window_argmax(const T* x, int64_t w, int64_t dil_h, int64_t dil_w, Taps row, Taps col) {
  int64_t best_i = -1;
  T best = -std::numeric_limits<T>::infinity();
  for (int64_t th = 0; th < row.count; ++th) {
    int64_t ih = row.first + th * dil_h;
    for (int64_t tw = 0; tw < col.count; ++tw) {
      int64_t i = ih * w + col.first + tw * dil_w;
      T v = x[i];
      if (best_i < 0 || v > best || std::isnan(v)) {
        best = v;
        best_i = i;
      }
    }
  }
  return best_i;
}

// y[n, c, oh, ow] = max over kh, kw of x[n, c, oh*s_h - p_h + kh*d_h, ow*s_w - p_w + kw*d_w] (real taps only);
// loops: plane (parallel), oh, ow, then the window. A window without real taps gives -inf, as in PyTorch.
template <class T>
void max_pool_forward_t(const NDArray& x, const PoolParams& p, NDArray& y) {
  auto rows = max_taps(p.oh, p.h, p.kh, p.stride_h, p.pad_h, p.dil_h);
  auto cols = max_taps(p.ow, p.w, p.kw, p.stride_w, p.pad_w, p.dil_w);
  const T* xd = x.data<T>();
  T* yd = y.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < p.n * p.c; ++plane) {
    const T* xp = xd + plane * p.h * p.w;
    T* yp = yd + plane * p.oh * p.ow;
    for (int64_t oh = 0; oh < p.oh; ++oh)
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        int64_t i = window_argmax(xp, p.w, p.dil_h, p.dil_w, rows[oh], cols[ow]);
        yp[oh * p.ow + ow] = i < 0 ? -std::numeric_limits<T>::infinity() : xp[i];
      }
  }
}

// gx[argmax of window (oh, ow)] += gy[oh, ow], the argmax recomputed from x with the forward's rule;
// loops: plane (parallel), oh, ow. Several windows may pick one element: their gradients add up.
template <class T>
void max_pool_backward_t(const NDArray& x, const NDArray& gy, const PoolParams& p, NDArray& gx) {
  auto rows = max_taps(p.oh, p.h, p.kh, p.stride_h, p.pad_h, p.dil_h);
  auto cols = max_taps(p.ow, p.w, p.kw, p.stride_w, p.pad_w, p.dil_w);
  const T* xd = x.data<T>();
  const T* gyd = gy.data<T>();
  T* gxd = gx.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < p.n * p.c; ++plane) {
    const T* xp = xd + plane * p.h * p.w;
    const T* gyp = gyd + plane * p.oh * p.ow;
    T* gxp = gxd + plane * p.h * p.w;
    std::fill(gxp, gxp + p.h * p.w, T(0));
    for (int64_t oh = 0; oh < p.oh; ++oh)
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        int64_t i = window_argmax(xp, p.w, p.dil_h, p.dil_w, rows[oh], cols[ow]);
        if (i >= 0) gxp[i] += gyp[oh * p.ow + ow];
      }
  }
}

// A box window along one axis: real input [lo, hi) and this axis' factor of the divisor.
struct Span {
  int64_t lo, hi, divisor;
};

// PyTorch's average-pool window: [start, start + k) is first cut at the end of the right padding, which
// fixes the divisor with count_include_pad (ceil_mode windows can run past it), then cut to the input.
std::vector<Span> avg_spans(int64_t out, int64_t len, int64_t k, int64_t stride, int64_t pad,
                            bool count_include_pad) {
  std::vector<Span> spans(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t start = o * stride - pad;
    int64_t end = std::min(start + k, len + pad);
    int64_t lo = std::max<int64_t>(start, 0), hi = std::min(end, len);
    spans[o] = {lo, hi, count_include_pad ? end - start : hi - lo};
  }
  return spans;
}

// Adaptive window i covers [floor(i*len/out), ceil((i+1)*len/out)) and averages exactly those elements.
std::vector<Span> adaptive_spans(int64_t out, int64_t len) {
  std::vector<Span> spans(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t lo = o * len / out, hi = ceil_div((o + 1) * len, out);
    spans[o] = {lo, hi, hi - lo};
  }
  return spans;
}

// y[n, c, oh, ow] = sum of x[n, c, rows[oh].lo:hi, cols[ow].lo:hi] / (rows[oh].divisor * cols[ow].divisor);
// loops: plane (parallel), oh, ow, window rows, window columns.
template <class T>
void box_pool_forward(const NDArray& x, const PoolParams& p, const std::vector<Span>& rows,
                      const std::vector<Span>& cols, NDArray& y) {
  const T* xd = x.data<T>();
  T* yd = y.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < p.n * p.c; ++plane) {
    const T* xp = xd + plane * p.h * p.w;
    T* yp = yd + plane * p.oh * p.ow;
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const Span& r = rows[oh];
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const Span& c = cols[ow];
        T sum = 0;
        for (int64_t ih = r.lo; ih < r.hi; ++ih)
          for (int64_t iw = c.lo; iw < c.hi; ++iw) sum += xp[ih * p.w + iw];
        yp[oh * p.ow + ow] = sum / T(r.divisor * c.divisor);
      }
    }
  }
}

// gx[n, c, ih, iw] = sum over windows (oh, ow) holding (ih, iw) of gy[n, c, oh, ow] / divisor(oh, ow);
// loops: plane (parallel), oh, ow, then a scatter over the window.
template <class T>
void box_pool_backward(const NDArray& gy, const PoolParams& p, const std::vector<Span>& rows,
                       const std::vector<Span>& cols, NDArray& gx) {
  const T* gyd = gy.data<T>();
  T* gxd = gx.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < p.n * p.c; ++plane) {
    const T* gyp = gyd + plane * p.oh * p.ow;
    T* gxp = gxd + plane * p.h * p.w;
    std::fill(gxp, gxp + p.h * p.w, T(0));
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const Span& r = rows[oh];
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const Span& c = cols[ow];
        T g = gyp[oh * p.ow + ow] / T(r.divisor * c.divisor);
        for (int64_t ih = r.lo; ih < r.hi; ++ih)
          for (int64_t iw = c.lo; iw < c.hi; ++iw) gxp[ih * p.w + iw] += g;
      }
    }
  }
}

}  // namespace

void max_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) {
  if (x.dtype == DType::f32) max_pool_forward_t<float>(x, p, y);
  else max_pool_forward_t<double>(x, p, y);
}

void max_pool_backward(const NDArray& x, const NDArray& gy, const PoolParams& p, NDArray& gx) {
  if (x.dtype == DType::f32) max_pool_backward_t<float>(x, gy, p, gx);
  else max_pool_backward_t<double>(x, gy, p, gx);
}

void avg_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) {
  auto rows = avg_spans(p.oh, p.h, p.kh, p.stride_h, p.pad_h, p.count_include_pad);
  auto cols = avg_spans(p.ow, p.w, p.kw, p.stride_w, p.pad_w, p.count_include_pad);
  if (x.dtype == DType::f32) box_pool_forward<float>(x, p, rows, cols, y);
  else box_pool_forward<double>(x, p, rows, cols, y);
}

void avg_pool_backward(const NDArray& gy, const PoolParams& p, NDArray& gx) {
  auto rows = avg_spans(p.oh, p.h, p.kh, p.stride_h, p.pad_h, p.count_include_pad);
  auto cols = avg_spans(p.ow, p.w, p.kw, p.stride_w, p.pad_w, p.count_include_pad);
  if (gy.dtype == DType::f32) box_pool_backward<float>(gy, p, rows, cols, gx);
  else box_pool_backward<double>(gy, p, rows, cols, gx);
}

void adaptive_avg_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) {
  auto rows = adaptive_spans(p.oh, p.h), cols = adaptive_spans(p.ow, p.w);
  if (x.dtype == DType::f32) box_pool_forward<float>(x, p, rows, cols, y);
  else box_pool_forward<double>(x, p, rows, cols, y);
}

void adaptive_avg_pool_backward(const NDArray& gy, const PoolParams& p, NDArray& gx) {
  auto rows = adaptive_spans(p.oh, p.h), cols = adaptive_spans(p.ow, p.w);
  if (gy.dtype == DType::f32) box_pool_backward<float>(gy, p, rows, cols, gx);
  else box_pool_backward<double>(gy, p, rows, cols, gx);
}

}  // namespace convlab::cpu
