// Pooling over contiguous (N, C, H, W) planes as common/reference.h defines it, one thread per output element
// (forward) or per input element (backward) calling the definition. Backward gathers: each input element adds
// up the gradients of the windows that use it in a fixed order, so there are no atomics and results are
// deterministic.
#include "../common/reference.h"
#include "common.cuh"

namespace convlab::cuda {
namespace {

// One thread per output element: y = x at reference::max_pool_argmax of the window (max_pool_forward_at),
// and that argmax into indices when asked (null: inference, nothing to remember).
template <class T>
__global__ void max_forward_kernel(const T* x, T* y, int64_t* indices, PoolParams p) {
  const int64_t ohw = p.oh * p.ow, total = p.n * p.c * ohw;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const T* plane = x + i / ohw * p.h * p.w;
    const int64_t best = reference::max_pool_argmax(plane, p, i % ohw / p.ow, i % p.ow);
    y[i] = best < 0 ? T(-INFINITY) : plane[best];
    if (indices) indices[i] = best;
  }
}

// One thread per input element: reference::max_pool_backward_at with the forward's indices as the argmax
// table (a thread writes only its own element, so an index outside the plane selects nothing).
template <class T>
__global__ void max_backward_kernel(const int64_t* argmax, const T* gy, T* gx, PoolParams p) {
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow, total = p.n * p.c * hw;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const int64_t* plane_argmax = argmax + i / hw * ohw;
    auto argmax_of = [&](int64_t oh, int64_t ow) { return plane_argmax[oh * p.ow + ow]; };
    gx[i] = reference::max_pool_backward_at(gy + i / hw * ohw, p, i % hw / p.w, i % p.w, argmax_of);
  }
}

// One thread per output element: reference::avg_pool_forward_at.
template <class T>
__global__ void box_forward_kernel(const T* x, T* y, PoolParams p, bool adaptive) {
  const int64_t ohw = p.oh * p.ow, total = p.n * p.c * ohw;
  for (int64_t i = thread_index(); i < total; i += thread_count())
    y[i] = reference::avg_pool_forward_at(x + i / ohw * p.h * p.w, p, adaptive, i % ohw / p.ow, i % p.ow);
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
    reference::Span r = reference::row_span(p, adaptive, i % ohw / p.ow);
    reference::Span c = reference::col_span(p, adaptive, i % p.ow);
    const int64_t width = c.hi - c.lo, size = (r.hi - r.lo) * width;
    T acc = T(0);
    for (int64_t e = lane; e < size; e += kWarp) acc += plane[(r.lo + e / width) * p.w + c.lo + e % width];
    for (int offset = kWarp / 2; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    if (lane == 0) y[i] = acc / T(r.divisor * c.divisor);
  }
}

// One thread per input element: reference::avg_pool_backward_at.
template <class T>
__global__ void box_backward_kernel(const T* gy, T* gx, PoolParams p, bool adaptive) {
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow, total = p.n * p.c * hw;
  for (int64_t i = thread_index(); i < total; i += thread_count())
    gx[i] = reference::avg_pool_backward_at(gy + i / hw * ohw, p, adaptive, i % hw / p.w, i % p.w);
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

void max_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y, NDArray* indices) {
  const int64_t total = y.size();
  if (total == 0) return;
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    int64_t* id = indices ? indices->data<int64_t>() : nullptr;
    max_forward_kernel<<<blocks_for(total), kThreads>>>(x.data<T>(), y.data<T>(), id, p);
  });
  check_launch("max_pool_forward");
}

void max_pool_backward(const NDArray& indices, const NDArray& gy, const PoolParams& p, NDArray& gx) {
  const int64_t total = gx.size();
  if (total == 0) return;
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    max_backward_kernel<<<blocks_for(total), kThreads>>>(indices.data<int64_t>(), gy.data<T>(), gx.data<T>(), p);
  });
  check_launch("max_pool_backward");
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
