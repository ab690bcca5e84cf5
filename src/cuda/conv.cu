// Dense and grouped convolution as implicit GEMM: the im2col matrix is never stored; each depth step of
// gemm_tile.cuh gathers its 16 rows of it straight from x (or gy) into shared memory, zero where a tap
// falls in the padding. A small per-step table in shared memory holds the decoded (channel, kh, kw) or
// (n, oh, ow) of those 16 depth indices, so the 64-bit divisions happen 16 times per step, not 1024.
#include "../common/reference.h"
#include "gemm_tile.cuh"

namespace convlab::cuda {
namespace {

// 1x1 kernel, stride 1, no padding: im2col is the input itself, so gathers need no table and no bounds.
bool pointwise(const ConvParams& p) {
  return p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 && p.pad_left == 0 &&
         p.oh == p.h && p.ow == p.w;
}

// Stores a tile whose rows are channels g*rows+r of one group and whose columns are pixels of NCHW images
// (plane pixels per channel): out[col / plane, g*rows + r, col % plane] = acc + bias (bias may be null).
template <class T>
__device__ void store_pixel_tile(const T (&acc)[kSub][kSub], T* out, const T* bias, int64_t g, int64_t rows,
                                 int64_t channels, int64_t plane, int64_t pixels, int64_t m0, int64_t p0) {
  for (int j = 0; j < kSub; ++j) {
    int64_t col = p0 + sub_col(j);
    if (col >= pixels) continue;
    T* out_pix = out + (col / plane * channels + g * rows) * plane + col % plane;
    for (int i = 0; i < kSub; ++i) {
      int64_t r = m0 + sub_row(i);
      if (r < rows) out_pix[r * plane] = acc[i][j] + (bias ? bias[g * rows + r] : T(0));
    }
  }
}

// reference::conv_forward_at. Per group: rows co (cog), columns output pixels (n*oh*ow), depth (ci, kh, kw) =
// w's row layout.
template <class T, bool kPointwise>
__global__ void forward_kernel(const T* x, const T* w, const T* bias, T* y, ConvParams p) {
  __shared__ TileStage<T> s;
  __shared__ int64_t tap_chan[kTileK], tap_dh[kTileK], tap_dw[kTileK];  // ci*h*w (-1 past the end), kh*dh, kw*dw
  const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups, taps = p.kh * p.kw, depth = cig * taps;
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow, pixels = p.n * ohw;
  const int64_t tiles_m = ceil_div(cog, kTileM), tiles_n = ceil_div(pixels, kTileN);
  for (int64_t tile = blockIdx.x; tile < p.groups * tiles_m * tiles_n; tile += gridDim.x) {
    int64_t g = tile / (tiles_m * tiles_n), rest = tile % (tiles_m * tiles_n);
    int64_t m0 = rest / tiles_n * kTileM, p0 = rest % tiles_n * kTileN;
    // This thread's B column is one output pixel for the whole depth loop.
    int64_t pix = p0 + b_col(), img = pix / ohw, opix = pix % ohw;
    int64_t ih0 = opix / p.ow * p.stride_h - p.pad_top, iw0 = opix % p.ow * p.stride_w - p.pad_left;
    const T* x_img = x + (img * p.c_in + g * cig) * hw;
    const T* w_g = w + g * cog * depth;
    T acc[kSub][kSub] = {};
    for (int64_t k0 = 0; k0 < depth; k0 += kTileK) {
      if (!kPointwise && threadIdx.x < kTileK) {
        int64_t k = k0 + threadIdx.x, tap = k % taps;
        tap_chan[threadIdx.x] = k < depth ? k / taps * hw : -1;
        tap_dh[threadIdx.x] = tap / p.kw * p.dil_h;
        tap_dw[threadIdx.x] = tap % p.kw * p.dil_w;
      }
      for (int i = 0; i < kSub; ++i) {
        int64_t co = m0 + a_row(i), k = k0 + a_depth();
        s.a[a_depth()][a_row(i)] = co < cog && k < depth ? w_g[co * depth + k] : T(0);
      }
      __syncthreads();
      for (int i = 0; i < kSub; ++i) {
        int kk = b_depth(i);
        T v = T(0);
        if (kPointwise) {
          if (pix < pixels && k0 + kk < depth) v = x_img[(k0 + kk) * hw + opix];
        } else {
          int64_t ih = ih0 + tap_dh[kk], iw = iw0 + tap_dw[kk];
          if (pix < pixels && tap_chan[kk] >= 0 && ih >= 0 && ih < p.h && iw >= 0 && iw < p.w)
            v = x_img[tap_chan[kk] + ih * p.w + iw];
        }
        s.b[kk][b_col()] = v;
      }
      __syncthreads();
      tile_multiply(s, acc);
      __syncthreads();
    }
    store_pixel_tile(acc, y, bias, g, cog, p.c_out, ohw, pixels, m0, p0);
  }
}

// reference::conv_backward_input_at, but taps off the stride grid or outside gy are zeros times w (see
// redo_nan_grad_input). Per group: rows ci (cig), columns input pixels (n*h*w), depth (co, kh, kw): the
// flipped, transposed w.
template <class T, bool kPointwise>
__global__ void backward_input_kernel(const T* gy, const T* w, T* gx, ConvParams p) {
  __shared__ TileStage<T> s;
  // per depth index (co, kh, kw): w offset of (co, ci=0, kh, kw) (-1 past the end), co*oh*ow, kh*dh, kw*dw
  __shared__ int64_t tap_w[kTileK], tap_chan[kTileK], tap_dh[kTileK], tap_dw[kTileK];
  const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups, taps = p.kh * p.kw, depth = cog * taps;
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow, pixels = p.n * hw;
  const int64_t tiles_m = ceil_div(cig, kTileM), tiles_n = ceil_div(pixels, kTileN);
  for (int64_t tile = blockIdx.x; tile < p.groups * tiles_m * tiles_n; tile += gridDim.x) {
    int64_t g = tile / (tiles_m * tiles_n), rest = tile % (tiles_m * tiles_n);
    int64_t m0 = rest / tiles_n * kTileM, p0 = rest % tiles_n * kTileN;
    int64_t pix = p0 + b_col(), img = pix / hw, ipix = pix % hw;
    int64_t ih_pad = ipix / p.w + p.pad_top, iw_pad = ipix % p.w + p.pad_left;
    const T* gy_img = gy + (img * p.c_out + g * cog) * ohw;
    T acc[kSub][kSub] = {};
    for (int64_t k0 = 0; k0 < depth; k0 += kTileK) {
      if (threadIdx.x < kTileK) {
        int64_t k = k0 + threadIdx.x, co = k / taps, tap = k % taps;
        tap_w[threadIdx.x] = k < depth ? (g * cog + co) * cig * taps + tap : -1;
        tap_chan[threadIdx.x] = co * ohw;
        tap_dh[threadIdx.x] = tap / p.kw * p.dil_h;
        tap_dw[threadIdx.x] = tap % p.kw * p.dil_w;
      }
      __syncthreads();
      for (int i = 0; i < kSub; ++i) {
        int64_t ci = m0 + a_row(i), w_off = tap_w[a_depth()];
        s.a[a_depth()][a_row(i)] = ci < cig && w_off >= 0 ? w[w_off + ci * taps] : T(0);
      }
      for (int i = 0; i < kSub; ++i) {
        int kk = b_depth(i);
        T v = T(0);
        if (kPointwise) {
          if (pix < pixels && tap_w[kk] >= 0) v = gy_img[tap_chan[kk] + ipix];
        } else {
          int64_t th = ih_pad - tap_dh[kk], tw = iw_pad - tap_dw[kk];
          bool on_grid = th >= 0 && tw >= 0 && (p.stride_h == 1 || th % p.stride_h == 0) &&
                         (p.stride_w == 1 || tw % p.stride_w == 0);
          if (pix < pixels && tap_w[kk] >= 0 && on_grid) {
            int64_t oh = th / p.stride_h, ow = tw / p.stride_w;
            if (oh < p.oh && ow < p.ow) v = gy_img[tap_chan[kk] + oh * p.ow + ow];
          }
        }
        s.b[kk][b_col()] = v;
      }
      __syncthreads();
      tile_multiply(s, acc);
      __syncthreads();
    }
    store_pixel_tile(acc, gx, static_cast<const T*>(nullptr), g, cig, p.c_in, hw, pixels, m0, p0);
  }
}

// reference::conv_backward_weight_at. Per group: rows co (cog), columns (ci, kh, kw) (cig*kh*kw), depth
// (n, oh, ow). The depth is cut into `splits` ranges; split s writes its partial gw to part + s*|gw| (or to
// gw itself when there is one).
template <class T>
__global__ void backward_weight_kernel(const T* x, const T* gy, T* part, ConvParams p, int64_t splits,
                                       int64_t split_len) {
  __shared__ TileStage<T> s;
  // per depth index (n, oh, ow): gy offset of (n, co=0, oh, ow) (-1 outside this split), x offset of
  // (n, ci=0, 0, 0), oh*sh - pt, ow*sw - pl
  __shared__ int64_t pos_gy[kTileK], pos_x[kTileK], pos_ih[kTileK], pos_iw[kTileK];
  const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups, taps = p.kh * p.kw, cols = cig * taps;
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow, depth = p.n * ohw, gw_size = p.c_out * cols;
  const int64_t tiles_m = ceil_div(cog, kTileM), tiles_n = ceil_div(cols, kTileN);
  const int64_t tiles = p.groups * tiles_m * tiles_n;
  for (int64_t tile = blockIdx.x; tile < splits * tiles; tile += gridDim.x) {
    int64_t split = tile / tiles, g = tile % tiles / (tiles_m * tiles_n), rest = tile % (tiles_m * tiles_n);
    int64_t m0 = rest / tiles_n * kTileM, c0 = rest % tiles_n * kTileN;
    int64_t k_begin = split * split_len, k_end = std::min(depth, k_begin + split_len);
    // This thread's B column is one (ci, kh, kw) for the whole depth loop.
    int64_t col = c0 + b_col(), tap = col % taps;
    int64_t x_chan = (g * cig + col / taps) * hw, dh = tap / p.kw * p.dil_h, dw = tap % p.kw * p.dil_w;
    T acc[kSub][kSub] = {};
    for (int64_t k0 = k_begin; k0 < k_end; k0 += kTileK) {
      if (threadIdx.x < kTileK) {
        int64_t k = k0 + threadIdx.x, img = k / ohw, opix = k % ohw;
        pos_gy[threadIdx.x] = k < k_end ? img * p.c_out * ohw + opix : -1;
        pos_x[threadIdx.x] = img * p.c_in * hw;
        pos_ih[threadIdx.x] = opix / p.ow * p.stride_h - p.pad_top;
        pos_iw[threadIdx.x] = opix % p.ow * p.stride_w - p.pad_left;
      }
      __syncthreads();
      for (int i = 0; i < kSub; ++i) {
        int64_t co = m0 + a_row(i), gy_off = pos_gy[a_depth()];
        s.a[a_depth()][a_row(i)] = co < cog && gy_off >= 0 ? gy[gy_off + (g * cog + co) * ohw] : T(0);
      }
      for (int i = 0; i < kSub; ++i) {
        int kk = b_depth(i);
        int64_t ih = pos_ih[kk] + dh, iw = pos_iw[kk] + dw;
        bool inside = col < cols && pos_gy[kk] >= 0 && ih >= 0 && ih < p.h && iw >= 0 && iw < p.w;
        s.b[kk][b_col()] = inside ? x[pos_x[kk] + x_chan + ih * p.w + iw] : T(0);
      }
      __syncthreads();
      tile_multiply(s, acc);
      __syncthreads();
    }
    T* out = part + split * gw_size;
    for (int i = 0; i < kSub; ++i) {
      int64_t co = m0 + sub_row(i);
      if (co >= cog) continue;
      for (int j = 0; j < kSub; ++j) {
        int64_t c = c0 + sub_col(j);
        if (c < cols) out[(g * cog + co) * cols + c] = acc[i][j];
      }
    }
  }
}

// gw[i] = sum over splits s of part[s*size + i], always in the order s = 0, 1, ...: deterministic.
template <class T>
__global__ void sum_splits_kernel(const T* part, int64_t splits, int64_t size, T* gw) {
  for (int64_t i = thread_index(); i < size; i += thread_count()) {
    T acc = T(0);
    for (int64_t s = 0; s < splits; ++s) acc += part[s * size + i];
    gw[i] = acc;
  }
}

// *flag = 1 when some element is inf or NaN (x - x is 0 only for finite x). Every writer stores the same
// value, so the unordered stores need no atomics.
template <class T>
__global__ void nonfinite_flag_kernel(const T* a, int64_t size, int* flag) {
  for (int64_t i = thread_index(); i < size; i += thread_count())
    if (!(a[i] - a[i] == T(0))) *flag = 1;
}

// When *flag is set, each NaN element of gx is recomputed by the definition, reference::conv_backward_input_at.
template <class T>
__global__ void redo_nan_grad_input_kernel(const T* gy, const T* w, ConvParams p, const int* flag, T* gx) {
  if (!*flag) return;
  const int64_t hw = p.h * p.w;
  for (int64_t i = thread_index(); i < p.n * p.c_in * hw; i += thread_count())
    if (gx[i] != gx[i])
      gx[i] = reference::conv_backward_input_at(gy, w, p, i / hw / p.c_in, i / hw % p.c_in, i % hw / p.w, i % p.w);
}

int64_t tile_count(int64_t groups, int64_t rows, int64_t cols) {
  return groups * ceil_div(rows, kTileM) * ceil_div(cols, kTileN);
}

}  // namespace

void conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  int64_t tiles = tile_count(p.groups, p.c_out_per_group(), p.n * p.oh * p.ow);
  if (tiles == 0) return;
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* b = bias ? bias->data<T>() : nullptr;
    if (pointwise(p))
      forward_kernel<T, true><<<blocks_for(tiles, 1), kThreads>>>(x.data<T>(), w.data<T>(), b, y.data<T>(), p);
    else
      forward_kernel<T, false><<<blocks_for(tiles, 1), kThreads>>>(x.data<T>(), w.data<T>(), b, y.data<T>(), p);
  });
  check_launch("conv_forward");
}

void conv_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  int64_t tiles = tile_count(p.groups, p.c_in_per_group(), p.n * p.h * p.w);
  if (tiles == 0) return;
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    if (pointwise(p))
      backward_input_kernel<T, true><<<blocks_for(tiles, 1), kThreads>>>(gy.data<T>(), w.data<T>(), gx.data<T>(), p);
    else
      backward_input_kernel<T, false><<<blocks_for(tiles, 1), kThreads>>>(gy.data<T>(), w.data<T>(), gx.data<T>(), p);
  });
  check_launch("conv_backward_input");
}

// The reduction depth n*oh*ow is usually far longer than gw is wide, so it is split across blocks until
// about kFillBlocks tiles run at once, each split at least kMinSplit deep, the workspace at most kMaxPart.
void conv_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) {
  constexpr int64_t kFillBlocks = 1024, kMinSplit = 256, kMaxPart = int64_t{1} << 28;
  const int64_t cols = p.c_in_per_group() * p.kh * p.kw, depth = p.n * p.oh * p.ow, gw_size = gw.size();
  const int64_t tiles = tile_count(p.groups, p.c_out_per_group(), cols);
  if (tiles == 0) return;
  const int64_t bytes_per_split = gw_size * static_cast<int64_t>(dtype_size(gw.dtype));
  int64_t splits = std::min({ceil_div(kFillBlocks, tiles), ceil_div(depth, kMinSplit),
                             std::max<int64_t>(kMaxPart / bytes_per_split, 1)});
  splits = std::max<int64_t>(splits, 1);
  // Whole depth steps per split, so only the last split has a ragged end.
  const int64_t split_len = ceil_div(ceil_div(depth, splits), kTileK) * kTileK;
  if (split_len > 0) splits = ceil_div(depth, split_len);
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    if (splits == 1) {
      backward_weight_kernel<<<blocks_for(tiles, 1), kThreads>>>(x.data<T>(), gy.data<T>(), gw.data<T>(), p, 1,
                                                                 split_len);
      check_launch("conv_backward_weight");
      return;
    }
    Workspace<T> part(splits * gw_size);
    backward_weight_kernel<<<blocks_for(splits * tiles, 1), kThreads>>>(x.data<T>(), gy.data<T>(), part.ptr, p,
                                                                        splits, split_len);
    check_launch("conv_backward_weight");
    sum_splits_kernel<<<blocks_for(gw_size), kThreads>>>(part.ptr, splits, gw_size, gw.data<T>());
    check_launch("conv_backward_weight (sum of splits)");
  });
}

// The backward-input kernels (here and in conv_depthwise.cu) multiply every weight by zeros standing for
// taps outside gy (padding, off the stride grid), so a weight holding inf or NaN gives 0 * inf = NaN where
// the sum has no such term (PyTorch's col2im has none). Only NaN elements can be wrong, and only if w is not
// finite: a flag computed on the device decides, so the host never waits; with finite w the redo kernel's
// blocks read the flag and return.
void redo_nan_grad_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  constexpr unsigned kRedoBlocks = 1024;  // grid-stride: enough for a rare path, cheap when it exits at once
  Workspace<int> flag(1);
  check(cudaMemsetAsync(flag.ptr, 0, sizeof(int)), "conv_backward_input (non-finite weight flag)");
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    nonfinite_flag_kernel<<<blocks_for(w.size()), kThreads>>>(w.data<T>(), w.size(), flag.ptr);
    redo_nan_grad_input_kernel<<<std::min(blocks_for(gx.size()), kRedoBlocks), kThreads>>>(
        gy.data<T>(), w.data<T>(), p, flag.ptr, gx.data<T>());
  });
  check_launch("conv_backward_input (non-finite weights)");
}

}  // namespace convlab::cuda
