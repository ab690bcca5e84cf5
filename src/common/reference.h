// The specification of every convolution and pooling pass: what one output element is, written straight
// from the definition (PyTorch's semantics), one function per pass. The fast kernels (cpu/conv_*.cpp,
// cpu/conv_depthwise.cpp, cpu/pool.cpp, cuda/conv.cu) compute the same sums in other orders and name the
// function here that they must agree with; the tests check them against it through convlab._C.reference
// (cpu/reference.cpp runs these functions over whole arrays) and check it against NumPy and PyTorch.
// Plain C++ that nvcc also compiles for the device, so the kernels that are written by definition anyway
// (the CUDA depthwise and pooling kernels, the NaN redo of grad-input on both devices) call these.
//
// Arrays are contiguous NCHW; 1-D ops are 2-D with H = 1 (params.h). Which products are terms decides where
// inf and NaN spread, and follows PyTorch (float64): forward and backward-weight read x zero-padded, so a tap
// in the padding is a term 0 * w or 0 * gy (NaN for an infinite one); backward-input sums only the taps that
// land on gy (PyTorch's col2im), so no inf or NaN weight meets a stand-in zero there. An input element that
// no output reads is in no term.
#pragma once
#include <cmath>
#include <cstdint>

#include "params.h"

#ifdef __CUDACC__
#define CONVLAB_HOST_DEVICE __host__ __device__
#else
#define CONVLAB_HOST_DEVICE
#endif

namespace convlab::reference {

// The window o (< out) whose tap k reads position i along one axis, i = o*stride - pad + k*dil, or -1.
CONVLAB_HOST_DEVICE inline int64_t window_of_tap(int64_t i, int64_t k, int64_t stride, int64_t pad, int64_t dil,
                                                 int64_t out) {
  int64_t t = i + pad - k * dil;
  if (t < 0 || t % stride != 0 || t / stride >= out) return -1;
  return t / stride;
}

// ---- convolution: x (N, C_in, H, W), w (C_out, C_in/groups, KH, KW), y (N, C_out, OH, OW) -------------
// Output channel co is in group g = co / (C_out/groups), which reads input channels g*cig + ci, ci < cig =
// C_in/groups. Tap (kh, kw) of output (oh, ow) reads x at ih = oh*sh - pt + kh*dh, iw = ow*sw - pl + kw*dw.

// x[ih, iw] of one channel plane, 0 in the padding.
template <class T>
CONVLAB_HOST_DEVICE T padded(const T* x_chan, const ConvParams& p, int64_t ih, int64_t iw) {
  return ih >= 0 && ih < p.h && iw >= 0 && iw < p.w ? x_chan[ih * p.w + iw] : T(0);
}

// y[n, co, oh, ow] = bias[co] + sum over ci, kh, kw of w[co, ci, kh, kw] * x[n, g*cig + ci, ih, iw] with x
// zero-padded (bias may be null: no bias term).
template <class T>
CONVLAB_HOST_DEVICE T conv_forward_at(const T* x, const T* w, const T* bias, const ConvParams& p, int64_t n,
                                      int64_t co, int64_t oh, int64_t ow) {
  const int64_t cig = p.c_in / p.groups, g = co / (p.c_out / p.groups);
  T sum = bias ? bias[co] : T(0);
  for (int64_t ci = 0; ci < cig; ++ci) {
    const T* x_chan = x + (n * p.c_in + g * cig + ci) * p.h * p.w;
    const T* w_chan = w + (co * cig + ci) * p.kh * p.kw;
    for (int64_t kh = 0; kh < p.kh; ++kh)
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h, iw = ow * p.stride_w - p.pad_left + kw * p.dil_w;
        sum += w_chan[kh * p.kw + kw] * padded(x_chan, p, ih, iw);
      }
  }
  return sum;
}

// Backward-input, the adjoint of the forward (and the transposed conv's forward): gx[n, c, ih, iw] = sum
// over co in c's group and (kh, kw) such that (ih, iw) is tap (kh, kw) of an output (oh, ow) inside gy of
// w[co, c - g*cig, kh, kw] * gy[n, co, oh, ow].
template <class T>
CONVLAB_HOST_DEVICE T conv_backward_input_at(const T* gy, const T* w, const ConvParams& p, int64_t n, int64_t c,
                                             int64_t ih, int64_t iw) {
  const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups, g = c / cig, ci = c % cig;
  T sum = T(0);
  for (int64_t co = g * cog; co < (g + 1) * cog; ++co) {
    const T* gy_chan = gy + (n * p.c_out + co) * p.oh * p.ow;
    const T* w_chan = w + (co * cig + ci) * p.kh * p.kw;
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      int64_t oh = window_of_tap(ih, kh, p.stride_h, p.pad_top, p.dil_h, p.oh);
      if (oh < 0) continue;
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        int64_t ow = window_of_tap(iw, kw, p.stride_w, p.pad_left, p.dil_w, p.ow);
        if (ow >= 0) sum += w_chan[kh * p.kw + kw] * gy_chan[oh * p.ow + ow];
      }
    }
  }
  return sum;
}

// Backward-weight: gw[co, ci, kh, kw] = sum over n, oh, ow of gy[n, co, oh, ow] * x[n, g*cig + ci, ih, iw]
// with x zero-padded.
template <class T>
CONVLAB_HOST_DEVICE T conv_backward_weight_at(const T* x, const T* gy, const ConvParams& p, int64_t co, int64_t ci,
                                              int64_t kh, int64_t kw) {
  const int64_t cig = p.c_in / p.groups, g = co / (p.c_out / p.groups);
  T sum = T(0);
  for (int64_t n = 0; n < p.n; ++n) {
    const T* x_chan = x + (n * p.c_in + g * cig + ci) * p.h * p.w;
    const T* gy_chan = gy + (n * p.c_out + co) * p.oh * p.ow;
    for (int64_t oh = 0; oh < p.oh; ++oh)
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h, iw = ow * p.stride_w - p.pad_left + kw * p.dil_w;
        sum += gy_chan[oh * p.ow + ow] * padded(x_chan, p, ih, iw);
      }
  }
  return sum;
}

// F.fold (col2im), the adjoint of F.unfold: with cols (N*C, KH*KW, OH*OW) holding unfold's column of block
// (oh, ow) for tap (kh, kw), x[nc, ih, iw] = sum over the taps (kh, kw), in that order, of the column of the
// block whose tap reads (ih, iw) (none when it falls in the padding or off the stride grid).
template <class T>
CONVLAB_HOST_DEVICE T fold_at(const T* cols, const ConvParams& p, int64_t nc, int64_t ih, int64_t iw) {
  const int64_t l = p.oh * p.ow;
  const T* col = cols + nc * p.kh * p.kw * l;
  T sum = T(0);
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    int64_t oh = window_of_tap(ih, kh, p.stride_h, p.pad_top, p.dil_h, p.oh);
    if (oh < 0) continue;
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      int64_t ow = window_of_tap(iw, kw, p.stride_w, p.pad_left, p.dil_w, p.ow);
      if (ow >= 0) sum += col[(kh * p.kw + kw) * l + oh * p.ow + ow];
    }
  }
  return sum;
}

// ---- pooling: one (n, c) plane of x (H, W) to one plane of y (OH, OW); the pads are symmetric ----------

// Plane index of the maximum of window (oh, ow): its taps oh*sh - ph + kh*dh, ow*sw - pw + kw*dw that land
// on x, scanned row by row; a strictly larger value or any NaN takes over, so ties keep the first maximum
// and among NaNs the last wins (PyTorch's rule). -1 for a window with no tap on x (dilation over the pad).
template <class T>
CONVLAB_HOST_DEVICE int64_t max_pool_argmax(const T* plane, const PoolParams& p, int64_t oh, int64_t ow) {
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

// y[oh, ow] = x[max_pool_argmax of the window], or -inf for a window with no tap on x.
template <class T>
CONVLAB_HOST_DEVICE T max_pool_forward_at(const T* plane, const PoolParams& p, int64_t oh, int64_t ow) {
  int64_t best = max_pool_argmax(plane, p, oh, ow);
  return best < 0 ? T(-INFINITY) : plane[best];
}

// gx[ih, iw] = sum of gy[oh, ow] over the windows that have (ih, iw) as a tap and as their argmax, taps in
// window order. argmax_of(oh, ow) is max_pool_argmax of window (oh, ow) of this plane of x (a kernel may
// read it from a table made by that function).
template <class T, class Argmax>
CONVLAB_HOST_DEVICE T max_pool_backward_at(const T* gy_plane, const PoolParams& p, int64_t ih, int64_t iw,
                                           Argmax argmax_of) {
  T sum = T(0);
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    int64_t oh = window_of_tap(ih, kh, p.stride_h, p.pad_h, p.dil_h, p.oh);
    if (oh < 0) continue;
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      int64_t ow = window_of_tap(iw, kw, p.stride_w, p.pad_w, p.dil_w, p.ow);
      if (ow >= 0 && argmax_of(oh, ow) == ih * p.w + iw) sum += gy_plane[oh * p.ow + ow];
    }
  }
  return sum;
}

// A box window along one axis: the real input [lo, hi) it averages and this axis' factor of its divisor.
struct Span {
  int64_t lo, hi, divisor;
};

// PyTorch's average-pool window o: [o*stride - pad, + k) is first cut at the end of the right padding,
// which fixes the divisor with count_include_pad (a ceil_mode window can run past it), then cut to the input.
CONVLAB_HOST_DEVICE inline Span avg_span(int64_t o, int64_t len, int64_t k, int64_t stride, int64_t pad,
                                         bool count_include_pad) {
  int64_t start = o * stride - pad, end = start + k < len + pad ? start + k : len + pad;
  int64_t lo = start > 0 ? start : 0, hi = end < len ? end : len;
  return {lo, hi, count_include_pad ? end - start : hi - lo};
}

// Adaptive window o of out along len covers [floor(o*len/out), ceil((o+1)*len/out)) and averages exactly
// those elements.
CONVLAB_HOST_DEVICE inline Span adaptive_span(int64_t o, int64_t len, int64_t out) {
  int64_t lo = o * len / out, hi = ((o + 1) * len + out - 1) / out;
  return {lo, hi, hi - lo};
}

CONVLAB_HOST_DEVICE inline Span row_span(const PoolParams& p, bool adaptive, int64_t oh) {
  return adaptive ? adaptive_span(oh, p.h, p.oh) : avg_span(oh, p.h, p.kh, p.stride_h, p.pad_h, p.count_include_pad);
}

CONVLAB_HOST_DEVICE inline Span col_span(const PoolParams& p, bool adaptive, int64_t ow) {
  return adaptive ? adaptive_span(ow, p.w, p.ow) : avg_span(ow, p.w, p.kw, p.stride_w, p.pad_w, p.count_include_pad);
}

// Average and adaptive-average pooling: y[oh, ow] = (sum of x over rows r x cols c) / (r.divisor * c.divisor)
// with r = row_span(oh), c = col_span(ow).
template <class T>
CONVLAB_HOST_DEVICE T avg_pool_forward_at(const T* plane, const PoolParams& p, bool adaptive, int64_t oh,
                                          int64_t ow) {
  Span r = row_span(p, adaptive, oh), c = col_span(p, adaptive, ow);
  T sum = T(0);
  for (int64_t ih = r.lo; ih < r.hi; ++ih)
    for (int64_t iw = c.lo; iw < c.hi; ++iw) sum += plane[ih * p.w + iw];
  return sum / T(r.divisor * c.divisor);
}

// The windows [first, last] along one axis that can hold position i: box windows start every `stride` and
// span k (avg), adaptive ones follow their rule; each candidate's span still decides.
CONVLAB_HOST_DEVICE inline void candidate_windows(int64_t i, int64_t len, int64_t out, int64_t k, int64_t stride,
                                                  int64_t pad, bool adaptive, int64_t& first, int64_t& last) {
  if (adaptive) {
    first = i * out / len;
    last = ((i + 1) * out + len - 1) / len - 1;
  } else {
    int64_t lo = i + pad - k + 1;  // windows starting after i - k: o*stride - pad >= lo - pad
    first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    last = (i + pad) / stride;
  }
  if (first < 0) first = 0;
  if (last > out - 1) last = out - 1;
}

// gx[ih, iw] = sum over the windows (oh, ow) whose spans hold (ih, iw) of gy[oh, ow] / divisor.
template <class T>
CONVLAB_HOST_DEVICE T avg_pool_backward_at(const T* gy_plane, const PoolParams& p, bool adaptive, int64_t ih,
                                           int64_t iw) {
  int64_t oh_first, oh_last, ow_first, ow_last;
  candidate_windows(ih, p.h, p.oh, p.kh, p.stride_h, p.pad_h, adaptive, oh_first, oh_last);
  candidate_windows(iw, p.w, p.ow, p.kw, p.stride_w, p.pad_w, adaptive, ow_first, ow_last);
  T sum = T(0);
  for (int64_t oh = oh_first; oh <= oh_last; ++oh) {
    Span r = row_span(p, adaptive, oh);
    if (ih < r.lo || ih >= r.hi) continue;
    for (int64_t ow = ow_first; ow <= ow_last; ++ow) {
      Span c = col_span(p, adaptive, ow);
      if (iw >= c.lo && iw < c.hi) sum += gy_plane[oh * p.ow + ow] / T(r.divisor * c.divisor);
    }
  }
  return sum;
}

}  // namespace convlab::reference
