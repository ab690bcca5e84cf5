// Tiled convolution, and the locally connected layer as its tile == output case. Output (oh, ow) uses weight
// set t = (oh % tile_h, ow % tile_w), a (C_out, K = C_in*KH*KW) matrix, so the output positions of one set
// form one GEMM over their patches (rows r: the (n, oh, ow) of set t, im2col gathered R rows at a time):
//   forward          y[r][co]      = sum_k patch[r][k] * w_t[co][k] + bias[t][co]
//   backward-input   dpatch[r][k]  = sum_co gy[r][co] * w_t[co][k], added back (col2im) into gx
//   backward-weight  gw_t[co][k]   = sum_r gy[r][co] * patch[r][k]
// Tasks own disjoint outputs (forward: row chunks of a set; backward-input: (image, channel block);
// backward-weight: (set, channel block)), and each sums in a fixed order: no atomics, same result every run.
#include <algorithm>
#include <vector>

#include <omp.h>

#include "kernels.h"

namespace convlab::cpu {

namespace {

constexpr int64_t kRows = 32;  // patch rows gathered per step: R x K stays in L2 for K up to a few thousand

// The output positions that use weight set t: oh = ti + a*tile_h (a < rows_h), ow = tj + b*tile_w (b < rows_w).
struct TileSet {
  int64_t ti, tj, rows_h, rows_w;
  int64_t per_image() const { return rows_h * rows_w; }
};

TileSet tile_set(const TiledParams& p, int64_t t) {
  TileSet s{t / p.tile_w, t % p.tile_w, 0, 0};
  if (s.ti < p.oh) s.rows_h = (p.oh - s.ti + p.tile_h - 1) / p.tile_h;
  if (s.tj < p.ow) s.rows_w = (p.ow - s.tj + p.tile_w - 1) / p.tile_w;
  return s;
}

struct Position {
  int64_t n, oh, ow;
};

// Rows [r0, r0 + count) of set s, numbered image by image.
void positions(const TiledParams& p, const TileSet& s, int64_t r0, int64_t count, Position* pos) {
  for (int64_t i = 0; i < count; i++) {
    int64_t r = r0 + i, q = r % s.per_image();
    pos[i] = {r / s.per_image(), s.ti + q / s.rows_w * p.tile_h, s.tj + q % s.rows_w * p.tile_w};
  }
}

// patch[i][(c - c0)*KH*KW + kh*KW + kw] = x[n][c][oh*sh - pt + kh*dh][ow*sw - pl + kw*dw] (0 in the padding)
// for channels [c0, c1) of each position.
template <class T>
void gather_patches(const T* x, const TiledParams& p, const Position* pos, int64_t rows, int64_t c0, int64_t c1,
                    T* patch) {
  const int64_t cols = (c1 - c0) * p.kh * p.kw;
  for (int64_t i = 0; i < rows; i++) {
    T* dst = patch + i * cols;
    for (int64_t c = c0; c < c1; c++) {
      const T* plane = x + (pos[i].n * p.c_in + c) * p.h * p.w;
      for (int64_t kh = 0; kh < p.kh; kh++) {
        int64_t ih = pos[i].oh * p.stride_h - p.pad_top + kh * p.dil_h;
        for (int64_t kw = 0; kw < p.kw; kw++) {
          int64_t iw = pos[i].ow * p.stride_w - p.pad_left + kw * p.dil_w;
          *dst++ = ih >= 0 && ih < p.h && iw >= 0 && iw < p.w ? plane[ih * p.w + iw] : T(0);
        }
      }
    }
  }
}

// The adjoint of gather_patches: gx[n][c][ih][iw] += patch[i][...] for the taps inside the input.
template <class T>
void scatter_patches(const T* patch, const TiledParams& p, const Position* pos, int64_t rows, int64_t c0, int64_t c1,
                     T* gx) {
  const int64_t cols = (c1 - c0) * p.kh * p.kw;
  for (int64_t i = 0; i < rows; i++) {
    const T* src = patch + i * cols;
    for (int64_t c = c0; c < c1; c++) {
      T* plane = gx + (pos[i].n * p.c_in + c) * p.h * p.w;
      for (int64_t kh = 0; kh < p.kh; kh++) {
        int64_t ih = pos[i].oh * p.stride_h - p.pad_top + kh * p.dil_h;
        for (int64_t kw = 0; kw < p.kw; kw++, src++) {
          int64_t iw = pos[i].ow * p.stride_w - p.pad_left + kw * p.dil_w;
          if (ih >= 0 && ih < p.h && iw >= 0 && iw < p.w) plane[ih * p.w + iw] += *src;
        }
      }
    }
  }
}

// c[i][j] = sum_p a[i][p] * b[j][p] (A @ B^T, both rows contiguous along p): four dot products per pass.
template <class T>
void gemm_abt(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; i++) {
    const T* ai = a + i * lda;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      const T *b0 = b + j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
      T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int64_t q = 0; q < k; q++) {
        s0 += ai[q] * b0[q], s1 += ai[q] * b1[q], s2 += ai[q] * b2[q], s3 += ai[q] * b3[q];
      }
      c[i * ldc + j] = s0, c[i * ldc + j + 1] = s1, c[i * ldc + j + 2] = s2, c[i * ldc + j + 3] = s3;
    }
    for (; j < n; j++) {
      const T* bj = b + j * ldb;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t q = 0; q < k; q++) s += ai[q] * bj[q];
      c[i * ldc + j] = s;
    }
  }
}

// c[i][j] += sum_p a[i*ars + p*acs] * b[p][j] (A @ B, A read in place with any strides): rank-1 updates
// along the contiguous rows of B and C, four rows of C per pass so each row of B is loaded once for four.
template <class T>
void gemm_ab_add(int64_t m, int64_t n, int64_t k, const T* a, int64_t ars, int64_t acs, const T* b, int64_t ldb,
                 T* c, int64_t ldc) {
  for (int64_t i0 = 0; i0 < m; i0 += 4) {
    const int64_t rows = std::min<int64_t>(4, m - i0);
    for (int64_t q = 0; q < k; q++) {
      const T* __restrict bq = b + q * ldb;
      for (int64_t i = i0; i < i0 + rows; i++) {
        const T ai = a[i * ars + q * acs];
        T* __restrict ci = c + i * ldc;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) ci[j] += ai * bq[j];
      }
    }
  }
}

int64_t tile_count(const TiledParams& p) { return p.tile_h * p.tile_w; }

// Channel blocks that give about four tasks per thread when `outer` tasks exist already.
int64_t channel_block(const TiledParams& p, int64_t outer) {
  int64_t want = 4 * omp_get_max_threads();
  int64_t splits = std::clamp<int64_t>((want + outer - 1) / outer, 1, p.c_in);
  return (p.c_in + splits - 1) / splits;
}

template <class T>
void forward_typed(const T* x, const T* w, const T* bias, const TiledParams& p, T* y) {
  const int64_t K = p.c_in * p.kh * p.kw, plane = p.oh * p.ow;
  std::vector<int64_t> set_of_task, row_of_task;  // one task per kRows rows of a set
  for (int64_t t = 0; t < tile_count(p); t++)
    for (int64_t r = 0; r < p.n * tile_set(p, t).per_image(); r += kRows) set_of_task.push_back(t), row_of_task.push_back(r);
#pragma omp parallel
  {
    std::vector<T> patch(kRows * K), out(kRows * p.c_out);
    Position pos[kRows];
#pragma omp for schedule(dynamic)
    for (size_t task = 0; task < set_of_task.size(); task++) {
      const int64_t t = set_of_task[task], r0 = row_of_task[task];
      const TileSet s = tile_set(p, t);
      const int64_t rows = std::min(kRows, p.n * s.per_image() - r0);
      positions(p, s, r0, rows, pos);
      gather_patches(x, p, pos, rows, 0, p.c_in, patch.data());
      gemm_abt(rows, p.c_out, K, patch.data(), K, w + t * p.c_out * K, K, out.data(), p.c_out);
      for (int64_t i = 0; i < rows; i++)
        for (int64_t co = 0; co < p.c_out; co++)
          y[(pos[i].n * p.c_out + co) * plane + pos[i].oh * p.ow + pos[i].ow] =
              out[i * p.c_out + co] + (bias ? bias[t * p.c_out + co] : T(0));
    }
  }
}

// gy rows of positions pos: g[i][co] = gy[n][co][oh][ow].
template <class T>
void gather_grad_rows(const T* gy, const TiledParams& p, const Position* pos, int64_t rows, T* g) {
  for (int64_t i = 0; i < rows; i++)
    for (int64_t co = 0; co < p.c_out; co++)
      g[i * p.c_out + co] = gy[(pos[i].n * p.c_out + co) * p.oh * p.ow + pos[i].oh * p.ow + pos[i].ow];
}

template <class T>
void backward_input_typed(const T* gy, const T* w, const TiledParams& p, T* gx) {
  const int64_t K = p.c_in * p.kh * p.kw, taps = p.kh * p.kw;
  const int64_t cb = channel_block(p, p.n), blocks = (p.c_in + cb - 1) / cb;
#pragma omp parallel
  {
    std::vector<T> dpatch(kRows * cb * taps), g(kRows * p.c_out);
    Position pos[kRows];
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < p.n * blocks; task++) {
      const int64_t n = task / blocks, c0 = task % blocks * cb, c1 = std::min(c0 + cb, p.c_in);
      const int64_t cols = (c1 - c0) * taps;
      std::fill(gx + (n * p.c_in + c0) * p.h * p.w, gx + (n * p.c_in + c1) * p.h * p.w, T(0));
      for (int64_t t = 0; t < tile_count(p); t++) {
        const TileSet s = tile_set(p, t);
        for (int64_t r0 = n * s.per_image(); r0 < (n + 1) * s.per_image(); r0 += kRows) {
          const int64_t rows = std::min(kRows, (n + 1) * s.per_image() - r0);
          positions(p, s, r0, rows, pos);
          gather_grad_rows(gy, p, pos, rows, g.data());
          std::fill(dpatch.begin(), dpatch.begin() + rows * cols, T(0));
          gemm_ab_add(rows, cols, p.c_out, g.data(), p.c_out, 1, w + t * p.c_out * K + c0 * taps, K, dpatch.data(),
                      cols);
          scatter_patches(dpatch.data(), p, pos, rows, c0, c1, gx);
        }
      }
    }
  }
}

template <class T>
void backward_weight_typed(const T* x, const T* gy, const TiledParams& p, T* gw) {
  const int64_t K = p.c_in * p.kh * p.kw, taps = p.kh * p.kw;
  const int64_t cb = channel_block(p, tile_count(p)), blocks = (p.c_in + cb - 1) / cb;
#pragma omp parallel
  {
    std::vector<T> patch(kRows * cb * taps), g(kRows * p.c_out);
    Position pos[kRows];
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tile_count(p) * blocks; task++) {
      const int64_t t = task / blocks, c0 = task % blocks * cb, c1 = std::min(c0 + cb, p.c_in);
      const int64_t cols = (c1 - c0) * taps;
      T* gw_t = gw + t * p.c_out * K + c0 * taps;
      for (int64_t co = 0; co < p.c_out; co++) std::fill(gw_t + co * K, gw_t + co * K + cols, T(0));
      const TileSet s = tile_set(p, t);
      for (int64_t r0 = 0; r0 < p.n * s.per_image(); r0 += kRows) {
        const int64_t rows = std::min(kRows, p.n * s.per_image() - r0);
        positions(p, s, r0, rows, pos);
        gather_grad_rows(gy, p, pos, rows, g.data());
        gather_patches(x, p, pos, rows, c0, c1, patch.data());
        gemm_ab_add(p.c_out, cols, rows, g.data(), 1, p.c_out, patch.data(), cols, gw_t, K);
      }
    }
  }
}

}  // namespace

void tiled_conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const TiledParams& p, NDArray& y) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    forward_typed<T>(x.data<T>(), w.data<T>(), bias ? bias->data<T>() : nullptr, p, y.data<T>());
  });
}

void tiled_conv_backward_input(const NDArray& gy, const NDArray& w, const TiledParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    backward_input_typed<T>(gy.data<T>(), w.data<T>(), p, gx.data<T>());
  });
}

void tiled_conv_backward_weight(const NDArray& x, const NDArray& gy, const TiledParams& p, NDArray& gw) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    backward_weight_typed<T>(x.data<T>(), gy.data<T>(), p, gw.data<T>());
  });
}

}  // namespace convlab::cpu
