// Convolutions with one input channel per group (depthwise, and any layer with c_in == groups): each output
// channel co reads only input channel ci = co / copg, so the GEMM depth is just kh*kw and direct kernels
// beat tiles. Forward and backward-input give one thread per output element; backward-weight one block per
// weight element, reducing n*oh*ow in a fixed order (deterministic, no atomics).
#include "common.cuh"

namespace convlab::cuda {
namespace {

// y[n, co, oh, ow] = bias[co] + sum_{kh,kw} w[co, 0, kh, kw] * x[n, co/copg, oh*sh-pt+kh*dh, ow*sw-pl+kw*dw]
template <class T>
__global__ void forward_kernel(const T* x, const T* w, const T* bias, T* y, ConvParams p) {
  const int64_t copg = p.c_out / p.groups, ohw = p.oh * p.ow, total = p.n * p.c_out * ohw;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    int64_t nco = i / ohw, oh = i % ohw / p.ow, ow = i % p.ow;
    int64_t co = nco % p.c_out, img = nco / p.c_out;
    const T* x_chan = x + (img * p.c_in + co / copg) * p.h * p.w;
    const T* w_co = w + co * p.kh * p.kw;
    T acc = bias ? bias[co] : T(0);
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
      if (ih < 0 || ih >= p.h) continue;
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        int64_t iw = ow * p.stride_w - p.pad_left + kw * p.dil_w;
        if (iw >= 0 && iw < p.w) acc += w_co[kh * p.kw + kw] * x_chan[ih * p.w + iw];
      }
    }
    y[i] = acc;
  }
}

// gx[n, ci, ih, iw] = sum_{co in ci's group, kh, kw} w[co, 0, kh, kw] * gy[n, co, oh, ow] over the taps with
// oh*sh = ih+pt-kh*dh and ow*sw = iw+pl-kw*dw (taps off the stride grid add nothing).
template <class T>
__global__ void backward_input_kernel(const T* gy, const T* w, T* gx, ConvParams p) {
  const int64_t copg = p.c_out / p.groups, hw = p.h * p.w, ohw = p.oh * p.ow, total = p.n * p.c_in * hw;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    int64_t nci = i / hw, ih = i % hw / p.w, iw = i % p.w;
    int64_t ci = nci % p.c_in, img = nci / p.c_in;
    T acc = T(0);
    for (int64_t co = ci * copg; co < (ci + 1) * copg; ++co) {
      const T* gy_chan = gy + (img * p.c_out + co) * ohw;
      const T* w_co = w + co * p.kh * p.kw;
      for (int64_t kh = 0; kh < p.kh; ++kh) {
        int64_t th = ih + p.pad_top - kh * p.dil_h;
        if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= p.oh) continue;
        for (int64_t kw = 0; kw < p.kw; ++kw) {
          int64_t tw = iw + p.pad_left - kw * p.dil_w;
          if (tw < 0 || tw % p.stride_w != 0 || tw / p.stride_w >= p.ow) continue;
          acc += w_co[kh * p.kw + kw] * gy_chan[th / p.stride_h * p.ow + tw / p.stride_w];
        }
      }
    }
    gx[i] = acc;
  }
}

constexpr int kRowsPerBlock = kThreads / kWarp;

// gw[co, 0, kh, kw] = sum_{n,oh,ow} gy[n, co, oh, ow] * x[n, co/copg, oh*sh-pt+kh*dh, ow*sw-pl+kw*dw]
// One block per weight element: lanes walk ow, warps walk oh, then a shuffle and a shared-memory pass add
// the 256 partial sums in a fixed order.
template <class T>
__global__ void backward_weight_kernel(const T* x, const T* gy, T* gw, ConvParams p) {
  __shared__ T warp_sums[kRowsPerBlock];
  const int64_t copg = p.c_out / p.groups, taps = p.kh * p.kw, hw = p.h * p.w, ohw = p.oh * p.ow;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  for (int64_t e = blockIdx.x; e < p.c_out * taps; e += gridDim.x) {
    int64_t co = e / taps, dh = e % taps / p.kw * p.dil_h - p.pad_top, dw = e % p.kw * p.dil_w - p.pad_left;
    T acc = T(0);
    for (int64_t img = 0; img < p.n; ++img) {
      const T* gy_chan = gy + (img * p.c_out + co) * ohw;
      const T* x_chan = x + (img * p.c_in + co / copg) * hw;
      for (int64_t oh = warp; oh < p.oh; oh += kRowsPerBlock) {
        int64_t ih = oh * p.stride_h + dh;
        if (ih < 0 || ih >= p.h) continue;
        for (int64_t ow = lane; ow < p.ow; ow += kWarp) {
          int64_t iw = ow * p.stride_w + dw;
          if (iw >= 0 && iw < p.w) acc += gy_chan[oh * p.ow + ow] * x_chan[ih * p.w + iw];
        }
      }
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
