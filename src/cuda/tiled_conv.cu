// Tiled convolution, and the locally connected layer as its tile == output case (cpu/tiled_conv.cpp has the
// math): output (oh, ow) uses weight set t = (oh % tile_h, ow % tile_w), a (C_out, K = C_in*KH*KW) matrix.
//   forward          y[r][co]    = sum_k patch[r][k] * w_t[co][k] + bias[t][co]   (r: the (n, oh, ow) of set t)
//   backward-weight  gw_t[co][k] = sum_r gy[r][co] * patch[r][k]
// are GEMMs per weight set in 16x16 shared-memory tiles, the patch gathered from x as the tile loads it (no
// im2col buffer); backward-input is the gather form of the adjoint, one thread per gx element:
//   gx[n][c][ih][iw] = sum_{kh, kw on the stride grid, co} gy[n][co][oh][ow] * w_t(oh, ow)[co][c][kh][kw].
// Every output element is summed by one thread in a fixed order: deterministic, no atomics.
#include "common.cuh"

namespace convlab::cuda {
namespace {

constexpr int kTile = 16, kTileThreads = kTile * kTile;

// The output positions of weight set t: oh = ti + a*tile_h, ow = tj + b*tile_w; rows numbered image by image.
struct TileSet {
  int64_t ti, tj, rows_h, rows_w;
  __device__ TileSet(const TiledParams& p, int64_t t) : ti(t / p.tile_w), tj(t % p.tile_w) {
    rows_h = ti < p.oh ? (p.oh - ti + p.tile_h - 1) / p.tile_h : 0;
    rows_w = tj < p.ow ? (p.ow - tj + p.tile_w - 1) / p.tile_w : 0;
  }
  __device__ int64_t rows(const TiledParams& p) const { return p.n * rows_h * rows_w; }
  // Row r -> its image and output position.
  __device__ void position(const TiledParams& p, int64_t r, int64_t& n, int64_t& oh, int64_t& ow) const {
    int64_t per_image = rows_h * rows_w, q = r % per_image;
    n = r / per_image, oh = ti + q / rows_w * p.tile_h, ow = tj + q % rows_w * p.tile_w;
  }
};

// patch[r][k] for k = (c, kh, kw): x[n][c][oh*sh - pt + kh*dh][ow*sw - pl + kw*dw], 0 in the padding.
template <class T>
__device__ T patch_at(const T* x, const TiledParams& p, int64_t n, int64_t oh, int64_t ow, int64_t k) {
  int64_t c = k / (p.kh * p.kw), kh = k / p.kw % p.kh, kw = k % p.kw;
  int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h, iw = ow * p.stride_w - p.pad_left + kw * p.dil_w;
  if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) return T(0);
  return x[((n * p.c_in + c) * p.h + ih) * p.w + iw];
}

// Blocks of 16x16 threads (ty, tx), laid out 1-D; block b covers set b / (row_blocks * co_blocks), a 16-row by 16-channel tile.
template <class T>
__global__ void forward_kernel(const T* x, const T* w, const T* bias, T* y, TiledParams p, int64_t row_blocks,
                               int64_t co_blocks, int64_t total_blocks) {
  __shared__ T patch[kTile][kTile + 1], weight[kTile][kTile + 1];
  const int ty = threadIdx.x / kTile, tx = threadIdx.x % kTile;
  const int64_t K = p.c_in * p.kh * p.kw;
  for (int64_t b = blockIdx.x; b < total_blocks; b += gridDim.x) {
    const int64_t t = b / (row_blocks * co_blocks), r0 = b / co_blocks % row_blocks * kTile;
    const int64_t co0 = b % co_blocks * kTile;
    const TileSet s(p, t);
    if (r0 >= s.rows(p)) continue;  // the whole block agrees: this set has fewer rows
    int64_t n = 0, oh = 0, ow = 0;  // of the row this thread loads (ty) ...
    const bool load_row = r0 + ty < s.rows(p);
    if (load_row) s.position(p, r0 + ty, n, oh, ow);
    const T* w_t = w + t * p.c_out * K;
    T acc = T(0);  // ... and computes: row r0 + ty, channel co0 + tx
    for (int64_t k0 = 0; k0 < K; k0 += kTile) {
      patch[ty][tx] = load_row && k0 + tx < K ? patch_at(x, p, n, oh, ow, k0 + tx) : T(0);
      weight[ty][tx] = co0 + ty < p.c_out && k0 + tx < K ? w_t[(co0 + ty) * K + k0 + tx] : T(0);
      __syncthreads();
      for (int q = 0; q < kTile; q++) acc += patch[ty][q] * weight[tx][q];
      __syncthreads();
    }
    if (load_row && co0 + tx < p.c_out)
      y[((n * p.c_out + co0 + tx) * p.oh + oh) * p.ow + ow] = acc + (bias ? bias[t * p.c_out + co0 + tx] : T(0));
  }
}

// Block b covers set b / (co_blocks * k_blocks), a 16-channel by 16-column tile of gw_t; rows in steps of 16.
template <class T>
__global__ void backward_weight_kernel(const T* x, const T* gy, T* gw, TiledParams p, int64_t co_blocks,
                                       int64_t k_blocks, int64_t total_blocks) {
  __shared__ T grad[kTile][kTile + 1], patch[kTile][kTile + 1];
  const int ty = threadIdx.x / kTile, tx = threadIdx.x % kTile;
  const int64_t K = p.c_in * p.kh * p.kw;
  for (int64_t b = blockIdx.x; b < total_blocks; b += gridDim.x) {
    const int64_t t = b / (co_blocks * k_blocks), co0 = b / k_blocks % co_blocks * kTile, k0 = b % k_blocks * kTile;
    const TileSet s(p, t);
    T acc = T(0);  // gw_t[co0 + ty][k0 + tx]
    for (int64_t r0 = 0; r0 < s.rows(p); r0 += kTile) {
      int64_t n = 0, oh = 0, ow = 0;  // thread (ty, tx) loads row r0 + ty
      const bool row = r0 + ty < s.rows(p);
      if (row) s.position(p, r0 + ty, n, oh, ow);
      grad[ty][tx] = row && co0 + tx < p.c_out ? gy[((n * p.c_out + co0 + tx) * p.oh + oh) * p.ow + ow] : T(0);
      patch[ty][tx] = row && k0 + tx < K ? patch_at(x, p, n, oh, ow, k0 + tx) : T(0);
      __syncthreads();
      for (int q = 0; q < kTile; q++) acc += grad[q][ty] * patch[q][tx];
      __syncthreads();
    }
    if (co0 + ty < p.c_out && k0 + tx < K) gw[(t * p.c_out + co0 + ty) * K + k0 + tx] = acc;
  }
}

template <class T>
__global__ void backward_input_kernel(const T* gy, const T* w, T* gx, TiledParams p) {
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow, total = p.n * p.c_in * hw;
  const int64_t K = p.c_in * p.kh * p.kw;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const int64_t nc = i / hw, ih = i % hw / p.w, iw = i % p.w, c = nc % p.c_in, n = nc / p.c_in;
    T acc = T(0);
    for (int64_t kh = 0; kh < p.kh; kh++) {
      int64_t a = ih + p.pad_top - kh * p.dil_h;
      if (a < 0 || a % p.stride_h != 0 || a / p.stride_h >= p.oh) continue;
      const int64_t oh = a / p.stride_h;
      for (int64_t kw = 0; kw < p.kw; kw++) {
        int64_t e = iw + p.pad_left - kw * p.dil_w;
        if (e < 0 || e % p.stride_w != 0 || e / p.stride_w >= p.ow) continue;
        const int64_t ow = e / p.stride_w, t = oh % p.tile_h * p.tile_w + ow % p.tile_w;
        const T* g = gy + n * p.c_out * ohw + oh * p.ow + ow;
        const T* wt = w + t * p.c_out * K + (c * p.kh + kh) * p.kw + kw;
        for (int64_t co = 0; co < p.c_out; co++) acc += g[co * ohw] * wt[co * K];
      }
    }
    gx[i] = acc;
  }
}

int64_t ceil_blocks(int64_t n) { return ceil_div(n, kTile); }

}  // namespace

void tiled_conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const TiledParams& p, NDArray& y) {
  // Set (0, 0) has the most rows; blocks past a smaller set's rows return at once.
  const int64_t row_blocks = ceil_blocks(p.n * ceil_div(p.oh, p.tile_h) * ceil_div(p.ow, p.tile_w));
  const int64_t co_blocks = ceil_blocks(p.c_out), total = p.tile_h * p.tile_w * row_blocks * co_blocks;
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    forward_kernel<<<blocks_for(total, 1), kTileThreads>>>(
        x.data<T>(), w.data<T>(), bias ? bias->data<T>() : nullptr, y.data<T>(), p, row_blocks, co_blocks, total);
  });
  check_launch("tiled_conv_forward");
}

void tiled_conv_backward_input(const NDArray& gy, const NDArray& w, const TiledParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    backward_input_kernel<<<blocks_for(gx.size()), kThreads>>>(gy.data<T>(), w.data<T>(), gx.data<T>(), p);
  });
  check_launch("tiled_conv_backward_input");
}

void tiled_conv_backward_weight(const NDArray& x, const NDArray& gy, const TiledParams& p, NDArray& gw) {
  const int64_t co_blocks = ceil_blocks(p.c_out), k_blocks = ceil_blocks(p.c_in * p.kh * p.kw);
  const int64_t total = p.tile_h * p.tile_w * co_blocks * k_blocks;
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    backward_weight_kernel<<<blocks_for(total, 1), kTileThreads>>>(x.data<T>(), gy.data<T>(), gw.data<T>(),
                                                                         p, co_blocks, k_blocks, total);
  });
  check_launch("tiled_conv_backward_weight");
}

}  // namespace convlab::cuda
