// Pooling over contiguous (N, C, H, W) planes, one thread per output element (forward) or per input
// element (backward). Backward gathers: each input element adds up the gradients of the windows that use
// it in a fixed order, so there are no atomics and results are deterministic.
#include <cmath>

#include "common.cuh"

namespace convlab::cuda {
namespace {

// Plane index of the maximum of window (oh, ow), scanned row by row as PyTorch does: a strictly larger
// value or any NaN takes over, so ties keep the first maximum and among NaNs the last wins. -1 when the
// window holds no real input (dilation over the padding).
template <class T>
__device__ int64_t window_argmax(const T* plane, const PoolParams& p, int64_t oh, int64_t ow) {
  int64_t best_i = -1;
  T best = T(0);
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
    if (ih < 0 || ih >= p.h) continue;
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
      if (iw < 0 || iw >= p.w) continue;
      T v = plane[ih * p.w + iw];
      if (best_i < 0 || v > best || v != v) best = v, best_i = ih * p.w + iw;
    }
  }
  return best_i;
}

// y[n, c, oh, ow] = x[n, c, argmax of the window]; -inf for a window without real input.
template <class T>
__global__ void max_forward_kernel(const T* x, T* y, PoolParams p) {
  const int64_t ohw = p.oh * p.ow, total = p.n * p.c * ohw;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const T* plane = x + i / ohw * p.h * p.w;
    int64_t best = window_argmax(plane, p, i % ohw / p.ow, i % p.ow);
    y[i] = best < 0 ? T(-INFINITY) : plane[best];
  }
}

// argmax[n, c, oh, ow] = plane index of the window's maximum (or -1), recomputed with the forward's rule.
template <class T>
__global__ void max_argmax_kernel(const T* x, int64_t* argmax, PoolParams p) {
  const int64_t ohw = p.oh * p.ow, total = p.n * p.c * ohw;
  for (int64_t i = thread_index(); i < total; i += thread_count())
    argmax[i] = window_argmax(x + i / ohw * p.h * p.w, p, i % ohw / p.ow, i % p.ow);
}

// The window indices o along one axis whose taps o*s - pad + k*dil (k < kernel) include position i, found
// per tap: k gives a window when i + pad - k*dil is a non-negative multiple of s below out*s.
__device__ inline int64_t window_of_tap(int64_t i, int64_t k, int64_t stride, int64_t pad, int64_t dil,
                                        int64_t out) {
  int64_t t = i + pad - k * dil;
  if (t < 0 || t % stride != 0 || t / stride >= out) return -1;
  return t / stride;
}

// gx[n, c, ih, iw] = sum of gy[n, c, oh, ow] over the windows whose argmax is (ih, iw), taps in window order.
template <class T>
__global__ void max_backward_kernel(const int64_t* argmax, const T* gy, T* gx, PoolParams p) {
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow, total = p.n * p.c * hw;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    int64_t plane = i / hw, ih = i % hw / p.w, iw = i % p.w;
    T acc = T(0);
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      int64_t oh = window_of_tap(ih, kh, p.stride_h, p.pad_h, p.dil_h, p.oh);
      if (oh < 0) continue;
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        int64_t ow = window_of_tap(iw, kw, p.stride_w, p.pad_w, p.dil_w, p.ow);
        int64_t o = plane * ohw + oh * p.ow + ow;
        if (ow >= 0 && argmax[o] == i % hw) acc += gy[o];
      }
    }
    gx[i] = acc;
  }
}

// A box window along one axis: real input [lo, hi) and this axis' factor of the divisor.
struct Span {
  int64_t lo, hi, divisor;
};

// PyTorch's average-pool window: [start, start + k) is first cut at the end of the right padding, which
// fixes the divisor with count_include_pad (ceil_mode windows can run past it), then cut to the input.
__device__ inline Span avg_span(int64_t o, int64_t len, int64_t k, int64_t stride, int64_t pad,
                                bool count_include_pad) {
  int64_t start = o * stride - pad, end = std::min(start + k, len + pad);
  int64_t lo = std::max<int64_t>(start, 0), hi = std::min(end, len);
  return {lo, hi, count_include_pad ? end - start : hi - lo};
}

// Adaptive window o covers [floor(o*len/out), ceil((o+1)*len/out)) and averages exactly those elements.
__device__ inline Span adaptive_span(int64_t o, int64_t len, int64_t out) {
  int64_t lo = o * len / out, hi = ceil_div((o + 1) * len, out);
  return {lo, hi, hi - lo};
}

__device__ inline Span row_span(const PoolParams& p, bool adaptive, int64_t oh) {
  return adaptive ? adaptive_span(oh, p.h, p.oh) : avg_span(oh, p.h, p.kh, p.stride_h, p.pad_h, p.count_include_pad);
}

__device__ inline Span col_span(const PoolParams& p, bool adaptive, int64_t ow) {
  return adaptive ? adaptive_span(ow, p.w, p.ow) : avg_span(ow, p.w, p.kw, p.stride_w, p.pad_w, p.count_include_pad);
}

// y[n, c, oh, ow] = sum of x over rows[oh] x cols[ow] / (rows[oh].divisor * cols[ow].divisor).
template <class T>
__global__ void box_forward_kernel(const T* x, T* y, PoolParams p, bool adaptive) {
  const int64_t ohw = p.oh * p.ow, total = p.n * p.c * ohw;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const T* plane = x + i / ohw * p.h * p.w;
    Span r = row_span(p, adaptive, i % ohw / p.ow), c = col_span(p, adaptive, i % p.ow);
    T acc = T(0);
    for (int64_t ih = r.lo; ih < r.hi; ++ih)
      for (int64_t iw = c.lo; iw < c.hi; ++iw) acc += plane[ih * p.w + iw];
    y[i] = acc / T(r.divisor * c.divisor);
  }
}

// The same sum with a warp per window, for windows of kWarpWindow elements or more (global average pooling:
// one window per plane, so one thread per window would leave most of the GPU idle while each walks a
// plane). Lanes stride the window's elements; the shuffle tree adds the lanes in a fixed order.
constexpr int64_t kWarpWindow = 64;

template <class T>
__global__ void box_forward_warp_kernel(const T* x, T* y, PoolParams p, bool adaptive) {
  const int lane = threadIdx.x % kWarp;
  const int64_t ohw = p.oh * p.ow, total = p.n * p.c * ohw;
  for (int64_t i = thread_index() / kWarp; i < total; i += thread_count() / kWarp) {  // whole warps: no divergence
    const T* plane = x + i / ohw * p.h * p.w;
    Span r = row_span(p, adaptive, i % ohw / p.ow), c = col_span(p, adaptive, i % p.ow);
    const int64_t width = c.hi - c.lo, size = (r.hi - r.lo) * width;
    T acc = T(0);
    for (int64_t e = lane; e < size; e += kWarp) acc += plane[(r.lo + e / width) * p.w + c.lo + e % width];
    for (int offset = kWarp / 2; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    if (lane == 0) y[i] = acc / T(r.divisor * c.divisor);
  }
}

// First and last window along one axis that can contain position i: box windows start every `stride`
// and span k (avg) or follow the adaptive rule; callers still test i against each candidate's span.
__device__ inline void candidate_windows(int64_t i, int64_t len, int64_t out, int64_t k, int64_t stride,
                                         int64_t pad, bool adaptive, int64_t& first, int64_t& last) {
  if (adaptive) {
    first = i * out / len;
    last = ceil_div((i + 1) * out, len) - 1;
  } else {
    int64_t lo = i + pad - k + 1;  // windows with start > i - k, i.e. o*stride - pad >= lo - pad
    first = lo <= 0 ? 0 : ceil_div(lo, stride);
    last = (i + pad) / stride;
  }
  first = std::max<int64_t>(first, 0);
  last = std::min(last, out - 1);
}

// gx[n, c, ih, iw] = sum over the windows (oh, ow) whose span holds (ih, iw) of gy[oh, ow] / divisor.
template <class T>
__global__ void box_backward_kernel(const T* gy, T* gx, PoolParams p, bool adaptive) {
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow, total = p.n * p.c * hw;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    int64_t plane = i / hw, ih = i % hw / p.w, iw = i % p.w;
    int64_t oh_first, oh_last, ow_first, ow_last;
    candidate_windows(ih, p.h, p.oh, p.kh, p.stride_h, p.pad_h, adaptive, oh_first, oh_last);
    candidate_windows(iw, p.w, p.ow, p.kw, p.stride_w, p.pad_w, adaptive, ow_first, ow_last);
    const T* gy_plane = gy + plane * ohw;
    T acc = T(0);
    for (int64_t oh = oh_first; oh <= oh_last; ++oh) {
      Span r = row_span(p, adaptive, oh);
      if (ih < r.lo || ih >= r.hi) continue;
      for (int64_t ow = ow_first; ow <= ow_last; ++ow) {
        Span c = col_span(p, adaptive, ow);
        if (iw >= c.lo && iw < c.hi) acc += gy_plane[oh * p.ow + ow] / T(r.divisor * c.divisor);
      }
    }
    gx[i] = acc;
  }
}

template <class T>
void box_forward(const NDArray& x, const PoolParams& p, bool adaptive, NDArray& y, const char* op) {
  const int64_t total = y.size();
  if (total == 0) return;
  const int64_t window = adaptive ? ceil_div(p.h, p.oh) * ceil_div(p.w, p.ow) : p.kh * p.kw;
  if (window >= kWarpWindow)
    box_forward_warp_kernel<<<blocks_for(total * kWarp), kThreads>>>(x.data<T>(), y.data<T>(), p, adaptive);
  else
    box_forward_kernel<<<blocks_for(total), kThreads>>>(x.data<T>(), y.data<T>(), p, adaptive);
  check_launch(op);
}

template <class T>
void box_backward(const NDArray& gy, const PoolParams& p, bool adaptive, NDArray& gx, const char* op) {
  const int64_t total = gx.size();
  if (total == 0) return;
  box_backward_kernel<<<blocks_for(total), kThreads>>>(gy.data<T>(), gx.data<T>(), p, adaptive);
  check_launch(op);
}

}  // namespace

void max_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) {
  const int64_t total = y.size();
  if (total == 0) return;
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    max_forward_kernel<<<blocks_for(total), kThreads>>>(x.data<T>(), y.data<T>(), p);
  });
  check_launch("max_pool_forward");
}

void max_pool_backward(const NDArray& x, const NDArray& gy, const PoolParams& p, NDArray& gx) {
  const int64_t outputs = gy.size(), total = gx.size();
  if (total == 0) return;
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    Workspace<int64_t> argmax(outputs);
    if (outputs > 0) {
      max_argmax_kernel<<<blocks_for(outputs), kThreads>>>(x.data<T>(), argmax.ptr, p);
      check_launch("max_pool_backward (argmax)");
    }
    max_backward_kernel<<<blocks_for(total), kThreads>>>(argmax.ptr, gy.data<T>(), gx.data<T>(), p);
    check_launch("max_pool_backward");
  });
}

void avg_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) { box_forward<decltype(t)>(x, p, false, y, "avg_pool_forward"); });
}

void avg_pool_backward(const NDArray& gy, const PoolParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) { box_backward<decltype(t)>(gy, p, false, gx, "avg_pool_backward"); });
}

void adaptive_avg_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) { box_forward<decltype(t)>(x, p, true, y, "adaptive_avg_pool_forward"); });
}

void adaptive_avg_pool_backward(const NDArray& gy, const PoolParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) { box_backward<decltype(t)>(gy, p, true, gx, "adaptive_avg_pool_backward"); });
}

}  // namespace convlab::cuda
