// im2col (F.unfold) and its adjoint col2im (F.fold) on x (N, C, H, W) <-> cols (N, C*KH*KW, OH*OW):
//   cols[n][(c, kh, kw)][(oh, ow)] = x[n][c][oh*sh + kh*dh - pt][ow*sw + kw*dw - pl]   (0 outside x)
// im2col: one cols row (n, c, kh, kw) per task, the in-range ow of each oh found once so the inner loop is a
// plain strided copy. col2im gathers: each x element sums, in (kh, kw) order, the columns that read it, so
// every element is written once (no races, the same sum on every run).
#include <algorithm>

#include "../common/reference.h"
#include "conv_layout.h"
#include "kernels.h"

namespace convlab::cpu {

namespace {

template <class T>
void im2col_typed(const T* x, const ConvParams& p, T* cols) {
  const int64_t taps = p.kh * p.kw, l = p.oh * p.ow, rows = p.n * p.c_in * taps;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; row++) {
    const int64_t kw = row % p.kw, kh = row / p.kw % p.kh, nc = row / taps;
    const T* plane = x + nc * p.h * p.w;
    T* out = cols + row * l;
    int64_t ow_lo, ow_hi, oh_lo, oh_hi;
    in_range(kw * p.dil_w - p.pad_left, p.stride_w, p.w, p.ow, ow_lo, ow_hi);
    in_range(kh * p.dil_h - p.pad_top, p.stride_h, p.h, p.oh, oh_lo, oh_hi);
    for (int64_t oh = 0; oh < p.oh; oh++) {
      T* o = out + oh * p.ow;
      if (oh < oh_lo || oh >= oh_hi) {
        std::fill(o, o + p.ow, T(0));
        continue;
      }
      const T* src = plane + (oh * p.stride_h + kh * p.dil_h - p.pad_top) * p.w + kw * p.dil_w - p.pad_left;
      std::fill(o, o + ow_lo, T(0));
      for (int64_t ow = ow_lo; ow < ow_hi; ow++) o[ow] = src[ow * p.stride_w];
      std::fill(o + ow_hi, o + p.ow, T(0));
    }
  }
}

// x = reference::fold_at of every element, one input row per task.
template <class T>
void col2im_typed(const T* cols, const ConvParams& p, T* x) {
  const int64_t planes = p.n * p.c_in;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t nc = 0; nc < planes; nc++)
    for (int64_t ih = 0; ih < p.h; ih++)
      for (int64_t iw = 0; iw < p.w; iw++) x[(nc * p.h + ih) * p.w + iw] = reference::fold_at(cols, p, nc, ih, iw);
}

}  // namespace

void im2col(const NDArray& x, const ConvParams& p, NDArray& cols) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    im2col_typed<T>(x.data<T>(), p, cols.data<T>());
  });
}

void col2im(const NDArray& cols, const ConvParams& p, NDArray& x) {
  dispatch_dtype<DTypes::floating>(cols.dtype, [&](auto t) {
    using T = decltype(t);
    col2im_typed<T>(cols.data<T>(), p, x.data<T>());
  });
}

}  // namespace convlab::cpu
