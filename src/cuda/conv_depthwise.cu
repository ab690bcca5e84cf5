// Convolutions with one input channel per group (depthwise, and any layer with c_in == groups): each output
// channel co reads only input channel ci = co / cog, so the GEMM depth is just kh*kw and direct kernels
// beat tiles. Forward and backward-input give one thread per output element; backward-weight one block per
// weight element, reducing n*oh*ow in a fixed order (deterministic, no atomics).
#include "../common/reference.h"
#include "common.cuh"

namespace convlab::cuda {
namespace {

// One thread per output element: reference::conv_forward_at, whose channel loop is one input channel here.
template <class T>
__global__ void forward_kernel(const T* x, const T* w, const T* bias, T* y, ConvParams p) {
  const int64_t ohw = p.oh * p.ow, total = p.n * p.c_out * ohw;
  for (int64_t i = thread_index(); i < total; i += thread_count())
    y[i] = reference::conv_forward_at(x, w, bias, p, i / ohw / p.c_out, i / ohw % p.c_out, i % ohw / p.ow,
                                      i % p.ow);
}

// One thread per input element: reference::conv_backward_input_at over the cog output channels of ci.
template <class T>
__global__ void backward_input_kernel(const T* gy, const T* w, T* gx, ConvParams p) {
  const int64_t hw = p.h * p.w, total = p.n * p.c_in * hw;
  for (int64_t i = thread_index(); i < total; i += thread_count())
    gx[i] = reference::conv_backward_input_at(gy, w, p, i / hw / p.c_in, i / hw % p.c_in, i % hw / p.w, i % p.w);
}

constexpr int kRowsPerBlock = kThreads / kWarp;

// reference::conv_backward_weight_at with one block per weight element: lanes walk ow, warps walk oh (taps
// in the padding too: 0 * gy, so an inf gy spreads as in PyTorch), then a shuffle and a shared-memory pass
// add the 256 partial sums in a fixed order.
template <class T>
__global__ void backward_weight_kernel(const T* x, const T* gy, T* gw, ConvParams p) {
  __shared__ T warp_sums[kRowsPerBlock];
  const int64_t cog = p.c_out / p.groups, taps = p.kh * p.kw, hw = p.h * p.w, ohw = p.oh * p.ow;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  for (int64_t e = blockIdx.x; e < p.c_out * taps; e += gridDim.x) {
    int64_t co = e / taps, dh = e % taps / p.kw * p.dil_h - p.pad_top, dw = e % p.kw * p.dil_w - p.pad_left;
    T acc = T(0);
    for (int64_t img = 0; img < p.n; ++img) {
      const T* gy_chan = gy + (img * p.c_out + co) * ohw;
      const T* x_chan = x + (img * p.c_in + co / cog) * hw;
      for (int64_t oh = warp; oh < p.oh; oh += kRowsPerBlock)
        for (int64_t ow = lane; ow < p.ow; ow += kWarp)
          acc += gy_chan[oh * p.ow + ow] * reference::padded(x_chan, p, oh * p.stride_h + dh, ow * p.stride_w + dw);
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    if (lane == 0) warp_sums[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      T sum = T(0);
      for (int r = 0; r < kRowsPerBlock; ++r) sum += warp_sums[r];
      gw[e] = sum;
    }
    __syncthreads();  // warp_sums is rewritten for the next element
  }
}

}  // namespace

void depthwise_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  int64_t total = y.size();
  if (total == 0) return;
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    forward_kernel<<<blocks_for(total), kThreads>>>(x.data<T>(), w.data<T>(), bias ? bias->data<T>() : nullptr,
                                                    y.data<T>(), p);
  });
  check_launch("conv_forward (depthwise)");
}

void depthwise_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  int64_t total = gx.size();
  if (total == 0) return;
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    backward_input_kernel<<<blocks_for(total), kThreads>>>(gy.data<T>(), w.data<T>(), gx.data<T>(), p);
  });
  check_launch("conv_backward_input (depthwise)");
}

void depthwise_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) {
  int64_t total = gw.size();
  if (total == 0) return;
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    backward_weight_kernel<<<blocks_for(total, 1), kThreads>>>(x.data<T>(), gy.data<T>(), gw.data<T>(), p);
  });
  check_launch("conv_backward_weight (depthwise)");
}

}  // namespace convlab::cuda
