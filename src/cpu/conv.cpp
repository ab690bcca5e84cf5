// Convolution, all three passes, on one data layout. The zero-padded input is split into its stride phases,
//   xq[c][a][b][u][v] = x[c][u*sh + a - pt][v*sw + b - pl]   (0 outside x; u < hq, v < wq),
// so that on the "extended" output grid p = oy*wq + ox (ox < wq; only ox < ow is a real output) kernel tap
// (kh_i, kw_i) reads ONE contiguous run per channel: xq[c][phase(tap)][p + shift(tap)]. The runs are the
// rows of an implicit im2col matrix that is never materialised:
//   forward          y[co][p]  = sum_k W[co][k] * X[k][p]        GEMM, B rows = runs       (k = (ci, tap))
//   backward-input   gxq[k][p] += sum_co W[co][k] * gy[co][p]    GEMM, C rows = runs (scatter-add), un-phase
//   backward-weight  gw[co][k] = sum_n,p gy[co][p] * X[k][p]     GEMM over real p only, B = X^T packed from
//                                                                the runs by in-register transposes
// Small images' forward instead gathers the runs at real outputs into an explicit im2col matrix (one GEMM
// per group over all images of a chunk). Backward-weight with under 16 output channels per group runs
// dot products along the extended grid (vectorised along p).
// Extended-grid columns ox >= ow are garbage in forward and are fed as zeros of gy in backward-input and the
// dot products (0 * inf is NaN: the dot products redo blocks that came out NaN with x masked there too,
// backward-input recomputes NaN elements by the definition when w is not finite).
// Depthwise forward and backward-input go to the direct kernels of conv_depthwise.cpp instead.
#include <algorithm>
#include <numeric>
#include <utility>
#include <vector>

#include <omp.h>

#include "../common/conv_definition.h"
#include "conv_layout.h"
#include "gemm.h"
#include "kernels.h"

namespace convlab::cpu {

namespace {

// Row offsets of the implicit im2col matrix: row g*K + ci*taps + t is tap t of channel g*cig + ci.
std::vector<int64_t> run_offsets(const ConvParams& p, const Phased& q) {
  const int64_t taps = p.kh * p.kw;
  std::vector<int64_t> off(p.c_in * taps);
  for (int64_t c = 0; c < p.c_in; c++)
    for (int64_t t = 0; t < taps; t++) off[c * taps + t] = c * q.chan + q.tap[t];
  return off;
}

std::vector<int64_t> strided_offsets(int64_t rows, int64_t stride) {
  std::vector<int64_t> off(rows);
  for (int64_t r = 0; r < rows; r++) off[r] = r * stride;
  return off;
}

// Small images (an extended grid under 4 tiles: alone, one would round up to whole tiles and pay the
// per-task overheads by itself) use an explicit im2col over the real outputs of a chunk, P = nn*oh*ow.
template <class T>
bool small_images(const ConvParams& p, const Phased& q) {
  return !q.identity && q.np < 4 * gemm_nr<T> && p.oh * p.ow > 0;
}

// Images per chunk of that path: the phased input and the P x c_in*taps matrix both stay within 2^23.
int64_t column_chunk(const ConvParams& p, const Phased& q) {
  return std::min(images_per_chunk(p, q), std::max<int64_t>(1, (int64_t(1) << 23) / (p.oh * p.ow * p.c_in * p.kh * p.kw)));
}

// cols[k*ld + j] = run k of the layout at real output j = (i, oy, ox) of images [0, nn): the K x P im2col
// matrix. One output row per task, each run read along ox.
template <class T>
void gather_columns(const T* xq, const std::vector<int64_t>& x_off, int64_t nn, const ConvParams& p,
                    const Phased& q, T* cols, int64_t ld) {
  const int64_t ck = static_cast<int64_t>(x_off.size());
#pragma omp parallel for schedule(static)
  for (int64_t iy = 0; iy < nn * p.oh; iy++) {
    const T* src = xq + iy / p.oh * p.c_in * q.chan + iy % p.oh * q.wq;
    T* dst = cols + iy * p.ow;
    for (int64_t k = 0; k < ck; k++)
      for (int64_t ox = 0; ox < p.ow; ox++) dst[k * ld + ox] = src[x_off[k] + ox];
  }
}

// y[i][co][j] = sum_k W[co][k] * cols[k][i*pix + j] + bias[co]: one GEMM per group over all P columns.
template <class T>
void forward_columns(const T* x, const T* w, const T* bias, const ConvParams& p, const Phased& q, T* y) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  const int64_t pix = p.oh * p.ow;
  const std::vector<int64_t> x_off = run_offsets(p, q);
  const int64_t chunk = column_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0), cols_n = nn * pix;
    const T* xq = build_phased<T>(x + n0 * p.c_in * p.h * p.w, nn, p, q);
    T* cols = scratch<T>(slot_columns, x_off.size() * cols_n);
    gather_columns(xq, x_off, nn, p, q, cols, cols_n);
    T* yc = scratch<T>(slot_output, p.c_out * cols_n);
    const std::vector<int64_t> b_off = strided_offsets(x_off.size(), cols_n), c_off = strided_offsets(p.c_out, cols_n);
    // Every task packs all K rows of its columns: one task per thread (resnet_7x7_512 forward 5.5 -> 4.8 ms).
    const GemmBlocking bl = gemm_blocking<T>(G, cog, cols_n, 1);
    const int64_t tasks = G * bl.m_blocks * bl.n_blocks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      int64_t ni = t % bl.n_blocks, mi = t / bl.n_blocks % bl.m_blocks, g = t / (bl.n_blocks * bl.m_blocks);
      Rows<const T> b{cols, b_off.data() + g * K};
      Rows<T> c{yc, c_off.data() + g * cog};
      gemm_block(w + g * cog * K, K, 1, K, b, c, false, mi * bl.mb, std::min(cog, (mi + 1) * bl.mb), ni * bl.nb,
                 std::min(cols_n, (ni + 1) * bl.nb));
    }
#pragma omp parallel for schedule(static)
    for (int64_t ic = 0; ic < nn * p.c_out; ic++) {
      int64_t i = ic / p.c_out, co = ic % p.c_out;
      const T* src = yc + co * cols_n + i * pix;
      T* dst = y + (n0 + i) * p.c_out * pix + co * pix;
      const T b = bias ? bias[co] : T(0);
      for (int64_t j = 0; j < pix; j++) dst[j] = src[j] + b;
    }
  }
}

template <class T>
void forward_typed(const T* x, const T* w, const T* bias, const ConvParams& p, T* y) {
  const Phased q = phased(p);
  if (small_images<T>(p, q)) return forward_columns(x, w, bias, p, q, y);
  const int64_t G = p.groups, cig = p.c_in_per_group(), cog = p.c_out_per_group();
  const int64_t K = cig * p.kh * p.kw, np = q.np;
  const std::vector<int64_t> b_off = run_offsets(p, q), c_off = strided_offsets(p.c_out, np);
  const bool direct = q.wq == p.ow;  // no garbage columns: the GEMM writes y itself

  const int64_t chunk = images_per_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    const T* xq = build_phased<T>(x + n0 * p.c_in * p.h * p.w, nn, p, q);
    T* yq = direct ? y + n0 * p.c_out * np : scratch<T>(slot_output, nn * p.c_out * np);
    const GemmBlocking bl = gemm_blocking<T>(nn * G, cog, np);
    const int64_t mb = bl.mb, nb = bl.nb, m_blocks = bl.m_blocks, n_blocks = bl.n_blocks;
    const int64_t tasks = nn * G * m_blocks * n_blocks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      int64_t ni = t % n_blocks, mi = t / n_blocks % m_blocks, g = t / (n_blocks * m_blocks) % G;
      int64_t i = t / (n_blocks * m_blocks * G);
      Rows<const T> b{xq + i * p.c_in * q.chan, b_off.data() + g * K};
      Rows<T> c{yq + i * p.c_out * np, c_off.data() + g * cog};
      gemm_block(w + g * cog * K, K, 1, K, b, c, false, mi * mb, std::min(cog, (mi + 1) * mb), ni * nb,
                 std::min(np, (ni + 1) * nb));
    }
    finish_output<T>(yq, y + n0 * p.c_out * p.oh * p.ow, bias, nn,
                     p.c_out, p.oh, p.ow, q.wq);
  }
}

// With stride 1 the adjoint is itself a convolution: gx = conv(gy, w flipped and transposed per group) with
// leading pads d*(k-1) - pad (negative ones crop). Run as a forward GEMM its reduction is c_out/groups*taps
// deep instead of c_out/groups, and C is stored rather than scatter-added.
template <class T>
void backward_input_stride1(const T* gy, const T* w, const ConvParams& p, T* gx) {
  const int64_t G = p.groups, cig = p.c_in_per_group(), cog = p.c_out_per_group(), taps = p.kh * p.kw;
  T* wf = scratch<T>(slot_weight, p.c_in * cog * taps);
  // 16 weight rows at a time, each read in order, while every ci writes one run of 16*taps.
  const int64_t co_blocks = (cog + 15) / 16;
#pragma omp parallel for schedule(static)
  for (int64_t gb = 0; gb < G * co_blocks; gb++) {
    int64_t g = gb / co_blocks, co0 = gb % co_blocks * 16, co1 = std::min(cog, co0 + 16);
    for (int64_t ci = 0; ci < cig; ci++)
      for (int64_t co = co0; co < co1; co++)
        for (int64_t t = 0; t < taps; t++)
          wf[((g * cig + ci) * cog + co) * taps + t] = w[((g * cog + co) * cig + ci) * taps + taps - 1 - t];
  }
  ConvParams a = p;
  std::swap(a.c_in, a.c_out);
  a.h = p.oh, a.w = p.ow, a.oh = p.h, a.ow = p.w;
  a.pad_top = p.dil_h * (p.kh - 1) - p.pad_top;
  a.pad_left = p.dil_w * (p.kw - 1) - p.pad_left;
  forward_typed<T>(gy, wf, nullptr, a, gx);
}

template <class T>
void backward_input_typed(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  if (p.stride_h == 1 && p.stride_w == 1) return backward_input_stride1<T>(gy.data<T>(), w.data<T>(), p, gx.data<T>());
  const Phased q = phased(p);
  const int64_t G = p.groups, cig = p.c_in_per_group(), cog = p.c_out_per_group(), taps = p.kh * p.kw;
  const int64_t K = cig * taps, np = q.np;
  const std::vector<int64_t> b_off = strided_offsets(p.c_out, np), c_off = run_offsets(p, q);

  // Row blocks hold whole channels (a multiple of taps) so that tasks scatter into disjoint channels.
  const int64_t unit = std::lcm(gemm_mr, taps), mb = unit * std::max<int64_t>(1, 256 / unit);
  const int64_t m_blocks = (K + mb - 1) / mb;
  const int64_t chunk = images_per_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    const T* gq = extend_grad_output<T>(gy.data<T>() + n0 * p.c_out * p.oh * p.ow, nn, p, q, np);
    T* gxq = q.identity ? gx.data<T>() + n0 * p.c_in * p.h * p.w : scratch<T>(slot_input, nn * p.c_in * q.chan);
    if (!q.identity) std::fill(gxq, gxq + nn * p.c_in * q.chan, T(0));
    const int64_t tasks = nn * G * m_blocks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      int64_t mi = t % m_blocks, g = t / m_blocks % G, i = t / (m_blocks * G);
      Rows<const T> b{gq + i * p.c_out * np, b_off.data() + g * cog};
      Rows<T> c{gxq + i * p.c_in * q.chan, c_off.data() + g * K};
      gemm_block(w.data<T>() + g * cog * K, 1, K, cog, b, c, !q.identity, mi * mb, std::min(K, (mi + 1) * mb), 0, np);
    }
    if (!q.identity) unphase<T>(gxq, gx.data<T>() + n0 * p.c_in * p.h * p.w, nn, p, q);
  }
}

// Per-lane keep masks along p: all ones where p is a real output (ox < ow, p < np), else zero.
template <class T>
using Mask = decltype(Vec<T>{} < Vec<T>{});

// Dot products of R rows of gy with S runs of x, vectorised along p (len a multiple of the lane count) and
// summed over `images` images (rows of image i sit i*g_step / i*x_step further on), added into
// gw[i*ldw + j]; rows/cols beyond the tile's real size point at row 0 and are not stored. When `masked`,
// x is read through `keep` (zero at garbage columns).
template <class T, int R, int S, bool masked>
void dot_tile(const T* const* g, const T* const* xr, const Mask<T>* keep, int64_t len, int64_t images,
              int64_t g_step, int64_t x_step, T* gw, int64_t ldw, int64_t rows, int64_t cols) {
  Vec<T> acc[R][S] = {};
  for (int64_t i = 0; i < images; i++) {
    for (int64_t p = 0; p < len; p += lanes<T>) {
      Vec<T> xv[S];
      for (int j = 0; j < S; j++) {
        xv[j] = load(xr[j] + i * x_step + p);
        if constexpr (masked) xv[j] = keep[p / lanes<T>] ? xv[j] : Vec<T>{};
      }
      for (int r = 0; r < R; r++) {
        Vec<T> gv = load(g[r] + i * g_step + p);
        for (int j = 0; j < S; j++) acc[r][j] += gv * xv[j];
      }
    }
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++) gw[r * ldw + j] += hsum<T>(acc[r][j]);
}

// gw[g][co][k0:k1] += the sums over all images of a chunk (x read through keep when masked). Long rows are
// cut into L1-sized pieces: each piece of gy rows is reused across the whole k range, each piece of x runs
// across all co tiles (from L2). Rows no longer than a piece (small images) are instead summed over all
// images inside one tile, so the horizontal sums stay rare.
template <class T, int R, int S, bool masked>
void weight_grad_block(const T* gq, const T* xq, const int64_t* x_off, const Mask<T>* keep, T* gw,
                       const ConvParams& p, const Phased& q, int64_t ldg, int64_t nn, int64_t g, int64_t k0,
                       int64_t k1) {
  const int64_t cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  const int64_t g_step = p.c_out * ldg, x_step = p.c_in * q.chan;
  constexpr int64_t piece = 1024;
  const bool whole = ldg <= piece;
  for (int64_t i = 0; i < (whole ? 1 : nn); i++) {
    const T* gi = gq + i * g_step + g * cog * ldg;
    const T* xi = xq + i * x_step;
    for (int64_t p0 = 0; p0 < ldg; p0 += piece) {
      const int64_t len = std::min(piece, ldg - p0);
      for (int64_t co = 0; co < cog; co += R) {
        const T* grow[R];
        for (int r = 0; r < R; r++) grow[r] = gi + (co + r < cog ? co + r : co) * ldg + p0;
        for (int64_t k = k0; k < k1; k += S) {
          const T* xrow[S];
          for (int s = 0; s < S; s++) xrow[s] = xi + x_off[k + s < k1 ? k + s : k] + p0;
          dot_tile<T, R, S, masked>(grow, xrow, keep + p0 / lanes<T>, len, whole ? nn : 1, g_step, x_step,
                                    gw + (g * cog + co) * K + k, K, std::min<int64_t>(R, cog - co),
                                    std::min<int64_t>(S, k1 - k));
        }
      }
    }
  }
}

// One round of the transpose below: rows i and i + d (bit d of i clear) trade lanes so that afterwards bit d
// of the row index and bit d of the lane index are swapped. Constant shuffles (vpermt2ps / vshuff32x4).
template <class T, int d, int... J>
inline void swap_bit(Vec<T>* v, std::integer_sequence<int, J...>) {
  constexpr int L = lanes<T>;
  for (int i = 0; i < L; i++) {
    if (i & d) continue;
    const Vec<T> a = v[i], b = v[i + d];
    v[i] = __builtin_shufflevector(a, b, (J & d ? L + J - d : J)...);
    v[i + d] = __builtin_shufflevector(a, b, (J & d ? L + J : J + d)...);
  }
}

// v[r][c] -> v[c][r] for one lanes x lanes block: log2(lanes) rounds of swap_bit.
template <class T, int d = lanes<T> / 2>
inline void transpose_block(Vec<T>* v) {
  swap_bit<T, d>(v, std::make_integer_sequence<int, lanes<T>>{});
  if constexpr (d > 1) transpose_block<T, d / 2>(v);
}

// buf = the GEMM's packed B for B[j][c] = run n0 + c of one image at its real output j0 + j (j < kc, c < nc):
// the transposed im2col, read straight from the runs. An output row is contiguous in every run, so `lanes`
// runs at up to `lanes` outputs of one row are that many vector loads and one transpose; loads that
// overhang the row end (into the run's slack) land in rows that are not stored.
template <class T>
void pack_runs_transposed(T* buf, const T* xi, const int64_t* x_off, int64_t ow, int64_t wq, int64_t j0, int64_t kc,
                          int64_t n0, int64_t nc) {
  constexpr int L = lanes<T>;
  constexpr int64_t nr = gemm_nr<T>;
  for (int64_t c0 = 0; c0 < (nc + nr - 1) / nr * nr; c0 += L) {
    T* dst = buf + c0 / nr * kc * nr + c0 % nr;
    const int64_t cols = std::clamp<int64_t>(nc - c0, 0, L);
    if (cols == 0) {
      for (int64_t jj = 0; jj < kc; jj++) store(dst + jj * nr, Vec<T>{});
      continue;
    }
    const T* run[L];
    Mask<T> keep;
    for (int c = 0; c < L; c++) {
      run[c] = xi + x_off[n0 + c0 + std::min<int64_t>(c, cols - 1)];
      keep[c] = c < cols ? -1 : 0;
    }
    for (int64_t jj = 0, j = j0; jj < kc;) {
      const int64_t e = j / ow * wq + j % ow, t = std::min({int64_t(L), ow - j % ow, kc - jj});
      Vec<T> v[L];
      for (int c = 0; c < L; c++) v[c] = load(run[c] + e);
      transpose_block<T>(v);
      for (int64_t r = 0; r < t; r++) store(dst + (jj + r) * nr, keep ? v[r] : Vec<T>{});
      jj += t, j += t;
    }
  }
}

// Tasks of backward_weight_gemm: each holds all cog rows of its group (the packed B is reused cog times), a
// block of whole slivers of the K columns and a range (part) of the outputs. Columns are cut first, down to
// 4 slivers a block (each block reads all of gy again), then outputs (each part sums into its own copy of
// gw), then columns again down to single slivers; last, both grow to a whole number of rounds over the
// threads (9 equal tasks on 2 threads left one thread idle for a ninth of the call: resnet_3x3).
struct WeightBlocking {
  int64_t slivers, n_blocks, parts;
};
template <class T>
WeightBlocking weight_blocking(int64_t G, int64_t K, int64_t P, int64_t size) {
  const int64_t threads = omp_get_max_threads(), want = 4 * threads, slivers = (K + gemm_nr<T> - 1) / gemm_nr<T>;
  // Parts of >= 256 outputs, their copies of gw (size elements each) within the 2^23 of every workspace.
  const int64_t max_parts = std::max<int64_t>(1, std::min(P / 256, 1 + (int64_t(1) << 23) / size));
  const auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  int64_t n_blocks = std::max(ceil_div(slivers * gemm_nr<T>, gemm_nc), std::min(ceil_div(want, G), slivers / 4));
  int64_t parts = std::clamp<int64_t>(ceil_div(want, G * n_blocks), 1, max_parts);
  if (G * n_blocks * parts < want) n_blocks = std::min(slivers, ceil_div(want, G * parts));
  while (G * n_blocks * parts % threads && parts < max_parts) parts++;
  while (G * n_blocks * parts % threads && n_blocks < slivers) n_blocks++;
  return {slivers, n_blocks, parts};
}

// gw[g] = gy_g (cog x P) @ X_g^T (P x K) over the P real outputs, on the GEMM: A is gy in place (one image's
// rows, reduced along its outputs), B the transposed im2col packed straight from the runs. Only real
// outputs enter: no garbage-column NaN, no extended copy of gy. Loop order per task: images of its part,
// then gemm_block's (panel, 128-deep output slice packed, 32 gy rows sweeping each sliver 8 at a time). The
// parts are added in a fixed order (bit-identical at a given thread count).
template <class T>
void backward_weight_gemm(const T* x, const T* gy, const ConvParams& p, const Phased& q, T* gw) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  const int64_t pix = p.oh * p.ow, P = p.n * pix, size = p.c_out * K;
  const std::vector<int64_t> x_off = run_offsets(p, q), c_off = strided_offsets(cog, K);
  const WeightBlocking bl = weight_blocking<T>(G, K, P, size);
  T* part_buf = bl.parts > 1 ? scratch<T>(slot_weight, (bl.parts - 1) * size) : nullptr;
  const int64_t tasks = G * bl.n_blocks * bl.parts, chunk = images_per_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    const T* xq = build_phased<T>(x + n0 * p.c_in * p.h * p.w, nn, p, q);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      const int64_t s = t % bl.parts, b = t / bl.parts % bl.n_blocks, g = t / (bl.parts * bl.n_blocks);
      const int64_t s0 = P * s / bl.parts, s1 = P * (s + 1) / bl.parts;  // outputs i*pix + j of this part
      const int64_t c0 = bl.slivers * b / bl.n_blocks * gemm_nr<T>;
      const int64_t c1 = std::min(K, bl.slivers * (b + 1) / bl.n_blocks * gemm_nr<T>);
      T* out = (s == 0 ? gw : part_buf + (s - 1) * size) + g * cog * K;
      for (int64_t i = std::max(n0, s0 / pix); i < std::min(n0 + nn, (s1 + pix - 1) / pix); i++) {
        const int64_t j0 = std::max(s0 - i * pix, int64_t(0)), j1 = std::min(s1 - i * pix, pix);
        const T* xi = xq + (i - n0) * p.c_in * q.chan;
        const PackB<T> pack = [&](T* buf, int64_t k0, int64_t kc, int64_t col0, int64_t cols) {
          pack_runs_transposed(buf, xi, x_off.data() + g * K, p.ow, q.wq, j0 + k0, kc, col0, cols);
        };
        gemm_block(gy + (i * p.c_out + g * cog) * pix + j0, pix, 1, j1 - j0, pack, Rows<T>{out, c_off.data()},
                   i * pix + j0 > s0, 0, cog, c0, c1);
      }
    }
  }
  if (bl.parts == 1) return;
  constexpr int64_t piece = 1024;  // parts added in order, a piece at a time (unit stride, vectorised)
#pragma omp parallel for schedule(static)
  for (int64_t e0 = 0; e0 < size; e0 += piece) {
    const int64_t len = std::min(piece, size - e0);
    for (int64_t s = 1; s < bl.parts; s++) {
      T* __restrict dst = gw + e0;
      const T* __restrict src = part_buf + (s - 1) * size + e0;
      for (int64_t e = 0; e < len; e++) dst[e] += src[e];
    }
  }
}

// The dot products run over the whole extended grid: at garbage columns gy is 0, but the x runs there
// hold elements this tap never pairs with a real output (other taps' columns, the next row, elements no
// window reads), and 0 * inf or 0 * NaN is NaN. For finite x those terms are exactly 0, and a NaN from
// them stays NaN through every later sum, so a result without NaN is exact. Such a term, 0 * x[k][p], is
// the same for every co, so it shows in the first row of the group: tasks whose first-row block holds a
// NaN (only possible with inf/NaN data) are recomputed with x masked at garbage columns.
template <class T>
void backward_weight_typed(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) {
  const Phased q = phased(p, /*allow_identity=*/false);  // both forms read past np: keep the slack
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  // The GEMM packs each element of X^T once per cog rows: at cog = 8 (resnext_grouped) the dot products
  // were 1.3x faster, at 16 the two were even.
  if (cog >= 16 && p.n * p.oh * p.ow > 0)  // (no outputs: the dot form's zero fill)
    return backward_weight_gemm<T>(x.data<T>(), gy.data<T>(), p, q, gw.data<T>());
  const int64_t ldg = (q.np + lanes<T> - 1) / lanes<T> * lanes<T>;
  const std::vector<int64_t> x_off = run_offsets(p, q);
  T* out = gw.data<T>();
  std::fill(out, out + p.c_out * K, T(0));

  constexpr int S = 6;
  const int64_t kb = 8 * S, k_blocks = (K + kb - 1) / kb, tasks = G * k_blocks;
  const int64_t chunk = images_per_chunk(p, q);
  std::vector<char> redo(tasks, 0);
  auto accumulate = [&](const Mask<T>* keep) {
    const auto block = cog >= 4 ? (keep ? weight_grad_block<T, 4, S, true> : weight_grad_block<T, 4, S, false>)
                                : (keep ? weight_grad_block<T, 1, S, true> : weight_grad_block<T, 1, S, false>);
    for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
      const int64_t nn = std::min(chunk, p.n - n0);
      const T* xq = build_phased<T>(x.data<T>() + n0 * p.c_in * p.h * p.w, nn, p, q);
      const T* gq = extend_grad_output<T>(gy.data<T>() + n0 * p.c_out * p.oh * p.ow, nn, p, q, ldg);
#pragma omp parallel for schedule(dynamic, 1)
      for (int64_t t = 0; t < tasks; t++) {
        if (keep && !redo[t]) continue;
        int64_t g = t / k_blocks, k0 = t % k_blocks * kb, k1 = std::min(K, k0 + kb);
        block(gq, xq, x_off.data() + g * K, keep, out, p, q, ldg, nn, g, k0, k1);
        if (!keep && n0 + nn == p.n) {
          const T* first = out + g * cog * K;
          redo[t] = std::any_of(first + k0, first + k1, [](T v) { return v != v; });
        }
      }
    }
  };
  accumulate(nullptr);
  if (std::find(redo.begin(), redo.end(), 1) == redo.end()) return;
  std::vector<Mask<T>> keep(ldg / lanes<T>);
  for (int64_t e = 0; e < ldg; e++) keep[e / lanes<T>][e % lanes<T>] = e < q.np && e % q.wq < p.ow ? -1 : 0;
  for (int64_t t = 0; t < tasks; t++) {
    if (!redo[t]) continue;
    int64_t g = t / k_blocks, k0 = t % k_blocks * kb, k1 = std::min(K, k0 + kb);
    for (int64_t co = g * cog; co < (g + 1) * cog; co++) std::fill(out + co * K + k0, out + co * K + k1, T(0));
  }
  accumulate(keep.data());
}

// True when some element is inf or NaN (x - x is 0 only for finite x); an integer OR, so it vectorises.
template <class T>
bool has_nonfinite(const T* a, int64_t size) {
  int bad = 0;
#pragma omp parallel for reduction(| : bad) if (size >= kParallelMin)
  for (int64_t i = 0; i < size; i++) bad |= !(a[i] - a[i] == T(0));
  return bad != 0;
}

// The fast backward-input paths multiply every weight by zeros standing for taps outside gy (padding, off
// the stride grid, extended-grid columns), so a weight holding inf or NaN gives 0 * inf = NaN where the sum
// has no such term (PyTorch's col2im has none). Only NaN elements can be wrong, and only if w is not
// finite: those are recomputed by the definition. The smaller of gx and w is scanned first, so finite data
// costs one pass over it.
template <class T>
void redo_nan_grad_input(const T* gy, const T* w, const ConvParams& p, T* gx) {
  const int64_t gx_size = p.n * p.c_in * p.h * p.w, w_size = p.c_out * p.c_in_per_group() * p.kh * p.kw;
  const bool gx_finite_first = gx_size < w_size;  // the cheaper scan decides most calls alone
  auto gx_finite = [&] { return !has_nonfinite(gx, gx_size); };
  auto w_finite = [&] { return !has_nonfinite(w, w_size); };
  if (gx_finite_first ? gx_finite() || w_finite() : w_finite() || gx_finite()) return;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t plane = 0; plane < p.n * p.c_in; plane++)
    for (int64_t i = 0; i < p.h * p.w; i++) {
      T& v = gx[plane * p.h * p.w + i];
      if (v != v) v = grad_input_by_definition(gy, w, p, plane / p.c_in, plane % p.c_in, i / p.w, i % p.w);
    }
}

template <class T>
void backward_input_any(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  if (is_depthwise(p)) depthwise_backward_input(gy, w, p, gx);
  else backward_input_typed<T>(gy, w, p, gx);
  redo_nan_grad_input<T>(gy.data<T>(), w.data<T>(), p, gx.data<T>());
}

}  // namespace

void conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  if (is_depthwise(p)) depthwise_forward(x, w, bias, p, y);
  else
    dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
      using T = decltype(t);
      forward_typed<T>(x.data<T>(), w.data<T>(), bias ? bias->data<T>() : nullptr, p, y.data<T>());
    });
}

void conv_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) { backward_input_any<decltype(t)>(gy, w, p, gx); });
}

void conv_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) { backward_weight_typed<decltype(t)>(x, gy, p, gw); });
}

}  // namespace convlab::cpu
