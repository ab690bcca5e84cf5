// im2col (F.unfold) and its adjoint col2im (F.fold) on x (N, C, H, W) <-> cols (N, C*KH*KW, OH*OW):
//   cols[n][(c, kh, kw)][(oh, ow)] = x[n][c][oh*sh + kh*dh - pt][ow*sw + kw*dw - pl]   (0 outside x)
// One thread per cols element (im2col, consecutive threads along ow) or per x element (col2im, which gathers
// the columns that read it in (kh, kw) order: no atomics, the same sum as the CPU kernel).
#include "../common/reference.h"
#include "common.cuh"

namespace convlab::cuda {
namespace {

template <class T>
__global__ void im2col_kernel(const T* x, ConvParams p, T* cols, int64_t total) {
  const int64_t l = p.oh * p.ow;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const int64_t ow = i % p.ow, oh = i / p.ow % p.oh, row = i / l;
    const int64_t kw = row % p.kw, kh = row / p.kw % p.kh, nc = row / (p.kh * p.kw);
    const int64_t ih = oh * p.stride_h + kh * p.dil_h - p.pad_top, iw = ow * p.stride_w + kw * p.dil_w - p.pad_left;
    const bool inside = ih >= 0 && ih < p.h && iw >= 0 && iw < p.w;
    cols[i] = inside ? x[(nc * p.h + ih) * p.w + iw] : T(0);
  }
}

// One thread per x element: reference::fold_at.
template <class T>
__global__ void col2im_kernel(const T* cols, ConvParams p, T* x, int64_t total) {
  for (int64_t i = thread_index(); i < total; i += thread_count())
    x[i] = reference::fold_at(cols, p, i / (p.h * p.w), i / p.w % p.h, i % p.w);
}

}  // namespace

void im2col(const NDArray& x, const ConvParams& p, NDArray& cols) {
  const int64_t total = cols.size();
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    im2col_kernel<<<blocks_for(total), kThreads>>>(x.data<T>(), p, cols.data<T>(), total);
  });
  check_launch("im2col");
}

void col2im(const NDArray& cols, const ConvParams& p, NDArray& x) {
  const int64_t total = x.size();
  dispatch_dtype<DTypes::floating>(cols.dtype, [&](auto t) {
    using T = decltype(t);
    col2im_kernel<<<blocks_for(total), kThreads>>>(cols.data<T>(), p, x.data<T>(), total);
  });
  check_launch("col2im");
}

}  // namespace convlab::cuda
