// Convolution forward (the spec: reference::conv_forward_at in common/reference.h) on the phased layout
// (conv_layout.h): y[co][e] = sum_k W[co][k] * X[k][e], one GEMM per (image, group) whose B rows are the
// runs. Small images (conv_layout.h) instead run one GEMM per group over the real outputs of all images of a
// chunk, B packed straight from the runs.
#include <algorithm>
#include <cmath>
#include <vector>

#include <omp.h>

#include "conv_forward_channels.h"
#include "conv_layout.h"
#include "gemm.h"
#include "kernels.h"

namespace convlab::cpu {

namespace {

// Images per chunk of the small-image path: the phased input and the c_out x P output both within the bound.
int64_t column_chunk(const ConvParams& p, const Phased& q) {
  return std::min(images_per_chunk(p, q), std::max<int64_t>(1, kWorkspaceElements / (p.c_out * p.oh * p.ow)));
}

// A rectangle of the output grid, rows [oy0, oy1) x columns [ox0, ox1).
struct OutputRect {
  int64_t oy0, oy1, ox0, ox1;
  int64_t area() const { return (oy1 - oy0) * (ox1 - ox0); }
};

// B[k][j] = run k of the phased chunk xq at output j = (i, oy, ox) of the rectangle r of each image, packed
// into the kc x NR slivers of gemm_block: B[k0:k0+kc, n0:n0+nc] (zero past nc). Within a run, the outputs
// of an image are rows of r's width (one run of the whole rectangle when it spans rows of wq columns), so
// each sliver row is a few segments, copied in whole vectors into a row buffer (the next segment overwrites
// what one wrote past its end) and stored. A vector may also read past its segment: inside the run's slack,
// except on x itself (q.identity, no slack), whose segments end in single elements.
template <class T>
void pack_output_columns(T* buf, const T* xq, const int64_t* run, const ConvParams& p, const Phased& q,
                         const OutputRect& r, int64_t k0, int64_t kc, int64_t n0, int64_t nc) {
  constexpr int L = lanes<T>;
  constexpr int64_t nr = gemm_nr<T>;
  const int64_t rw = r.ox1 - r.ox0, pix = r.area(), contiguous = rw == q.wq ? pix : rw;
  struct Segment {
    int64_t src, dst, len;
  };
  for (int64_t s0 = 0; s0 < nc; s0 += nr) {
    const int64_t cols = std::min(nr, nc - s0);
    Segment seg[nr];  // at most one segment per column
    int64_t count = 0;
    for (int64_t j = n0 + s0, end = j + cols; j < end; count++) {
      const int64_t i = j / pix, e = j % pix, len = std::min(contiguous - e % contiguous, end - j);
      seg[count] = {i * p.c_in * q.chan + (r.oy0 + e / rw) * q.wq + r.ox0 + e % rw, j - n0 - s0, len};
      j += len;
    }
    T* dst = buf + s0 * kc;
    for (int64_t kk = 0; kk < kc; kk++) {
      const T* src = xq + run[k0 + kk];
      T line[nr + L];
      for (int64_t s = 0; s < count; s++) {
        const T* from = src + seg[s].src;
        T* to = line + seg[s].dst;
        const int64_t len = seg[s].len, vector_end = q.identity ? len / L * L : (len + L - 1) / L * L;
        for (int v = 0; v <= gemm_nv; v++)  // a fixed trip count: an open loop here compiled to memmove calls
          if (v * L < vector_end) store(to + v * L, load(from + v * L));
        for (int64_t e = vector_end; e < len; e++) to[e] = from[e];
      }
      std::fill(line + cols, line + nr, T(0));
      for (int v = 0; v < gemm_nv; v++) store(dst + kk * nr + v * L, load(line + v * L));
    }
  }
}

// Blocks of C for the column GEMM's tasks, at least one per thread over the groups. A task streams its rows
// of A and packs its columns of B, so each row block packs B once more and each column block streams A once
// more: the longer side of the block is halved (rows down to 64, columns to one sliver). Few columns (batch
// 1: 49..196) are then packed by every task while A, up to 18 MB of weights, streams once; cut into column
// blocks first, each thread streamed all of A for a 48-wide block. A last sliver of fewer than NR columns
// joins the block before it: alone, it streamed all of A's rows for one column (49 = 48 + 1). One task per
// thread, not 4: each more row block packs B again (ResNet-18 layer 4 at batch 1, 1 thread: 0.74 -> 0.91 of
// PyTorch's time with 4).
struct ColumnBlocks {
  int64_t mb, nb, m_blocks, n_blocks;
  Block block(int64_t mi, int64_t ni, int64_t m, int64_t n) const {
    return {mi * mb, std::min(m, (mi + 1) * mb), ni * nb, ni + 1 == n_blocks ? n : (ni + 1) * nb};
  }
};

template <class T>
ColumnBlocks column_blocking(int64_t groups, int64_t m, int64_t n) {
  constexpr int64_t nr = gemm_nr<T>;
  const int64_t want = omp_get_max_threads(), whole = std::max<int64_t>(1, n / nr);
  auto blocks = [](int64_t total, int64_t per) { return (total + per - 1) / per; };
  int64_t mb = blocks(m, gemm_mr) * gemm_mr, slivers = whole;  // slivers: whole slivers per column block
  while (groups * blocks(m, mb) * blocks(whole, slivers) < want) {
    if (mb > 64 && (mb >= slivers * nr || slivers == 1)) mb = blocks(mb / 2, gemm_mr) * gemm_mr;
    else if (slivers > 1) slivers = blocks(slivers, 2);
    else break;
  }
  return {mb, slivers * nr, blocks(m, mb), blocks(whole, slivers)};
}

// y[n0 + i][co][j] = yc[co][i*pix + j] + bias[co] for the nn images of a chunk (yc rows ld apart).
template <class T>
void scatter_images(const T* yc, int64_t ld, const T* bias, const ConvParams& p, int64_t n0, int64_t nn, T* y) {
  const int64_t pix = p.oh * p.ow;
#pragma omp parallel for schedule(static)
  for (int64_t ic = 0; ic < nn * p.c_out; ic++) {
    int64_t i = ic / p.c_out, co = ic % p.c_out;
    const T* src = yc + co * ld + i * pix;
    T* dst = y + (n0 + i) * p.c_out * pix + co * pix;
    const T b = bias ? bias[co] : T(0);
    for (int64_t j = 0; j < pix; j++) dst[j] = src[j] + b;
  }
}

// sum_k a[k] * b[k] in whole vectors, then the tail.
template <class T>
T dot(const T* a, const T* b, int64_t k) {
  constexpr int L = lanes<T>;
  Vec<T> acc = {};
  int64_t e = 0;
  for (; e + L <= k; e += L) acc += load(a + e) * load(b + e);
  T sum = hsum<T>(acc);
  for (; e < k; e++) sum += a[e] * b[e];
  return sum;
}

// yc[co][j] = sum_k W[co][k] * X[k][j] for fewer columns than vector lanes (batch-1 squeeze-excite convs on
// 1x1 images: one). The GEMM packs whole slivers of NR columns per row of B and broadcasts an element of A per
// multiply-add into vectors of a few useful lanes; dot products along K run whole vectors, but pay a
// horizontal sum per output, so they are taken while each column's dot spans at least 2 vectors
// (dots_pay). B's columns are gathered into rows first, bt[g][j][k].
template <class T>
void forward_dots(const T* xq, const T* w, const int64_t* run, const ConvParams& p, const Phased& q, int64_t cols,
                  T* yc, int64_t ld) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw, pix = p.oh * p.ow;
  std::vector<T> bt(G * cols * K);
  for (int64_t g = 0; g < G; g++)
    for (int64_t j = 0; j < cols; j++) {
      const T* src = xq + j / pix * p.c_in * q.chan + j % pix / p.ow * q.wq + j % p.ow;
      for (int64_t k = 0; k < K; k++) bt[(g * cols + j) * K + k] = src[run[g * K + k]];
    }
#pragma omp parallel for schedule(static)
  for (int64_t co = 0; co < p.c_out; co++)
    for (int64_t j = 0; j < cols; j++) yc[co * ld + j] = dot(w + co * K, bt.data() + (co / cog * cols + j) * K, K);
}

// 1 thread, 1x1 images, c_in -> c_out x columns, GEMM -> dots: 48 -> 1152 x 1 27.5 -> 11.6 us, x 2 29.5 ->
// 21.1, x 3 31.7 -> 39.1; 1152 -> 48 x 1..8 33-61 -> 8-32; 28 -> 672 x 1 12.3 -> 10.6, x 2 13.8 -> 16.7.
template <class T>
bool dots_pay(int64_t cols, int64_t k) {
  return cols < lanes<T> && 2 * cols * lanes<T> <= k;
}

// yc[co][j] = sum_k W[co][k] * X[k][j] over the cols real outputs of a chunk: one GEMM per group, B packed
// from the runs (no im2col matrix, no garbage columns).
template <class T>
void column_gemm(const T* xq, const T* w, const int64_t* run, const ConvParams& p, const Phased& q, int64_t cols,
                 T* yc, int64_t ld) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  const std::vector<int64_t> c_off = strided_offsets(p.c_out, ld);
  const ColumnBlocks bl = column_blocking<T>(G, cog, cols);
  const int64_t tasks = G * bl.m_blocks * bl.n_blocks;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < tasks; t++) {
    int64_t ni = t % bl.n_blocks, mi = t / bl.n_blocks % bl.m_blocks, g = t / (bl.n_blocks * bl.m_blocks);
    const int64_t* run_g = run + g * K;
    const PackB<T> b = [&](T* buf, int64_t k0, int64_t kc, int64_t b0, int64_t bn) {
      pack_output_columns(buf, xq, run_g, p, q, {0, p.oh, 0, p.ow}, k0, kc, b0, bn);
    };
    Rows<T> c{yc, c_off.data() + g * cog};
    gemm_block(row_major(w + g * cog * K, cog, K, K), b, c, bl.block(mi, ni, cog, cols), Update::store);
  }
}

// y[i][co][j] = sum_k W[co][k] * X[k][i*pix + j] + bias[co] over the P = nn*oh*ow real outputs of a chunk of
// images at a time: dot products for a few columns (dots_pay), else the column GEMM.
template <class T>
void forward_columns(const T* x, const T* w, const T* bias, const ConvParams& p, const Phased& q, T* y) {
  const std::vector<int64_t> run = run_offsets(p, q);
  const int64_t chunk = column_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0), cols = nn * p.oh * p.ow, ld = padded_ld<T>(cols);
    const T* xq = build_phased<T>(x + n0 * p.c_in * p.h * p.w, nn, p, q);
    T* yc = scratch<T>(slot_output, p.c_out * ld);
    if (dots_pay<T>(cols, p.c_in_per_group() * p.kh * p.kw)) forward_dots(xq, w, run.data(), p, q, cols, yc, ld);
    else column_gemm(xq, w, run.data(), p, q, cols, yc, ld);
    scatter_images(yc, ld, bias, p, n0, nn, y);
  }
}

// Small images at stride 1 with the images innermost: xm[c][u][v][i] = x[n0 + i][c][u - pt][v - pl] (0 in the
// padding; u < hp = oh + dh*(kh - 1), the rows some output reads, v < wp likewise) for the nn images of a chunk. Output row oy of tap (kh, kw) then
// reads one contiguous run of ow*nn columns (ox, i) per channel, at ((oy + kh*dh)*wp + kw*dw)*nn, so the GEMM
// of each output row reads its B in place (gemm_block_in_place) instead of packing segments of ow columns
// (ResNet-18 32px's 8x8 and 4x4 layers: 12 and 6 segments a sliver row), for a transposing copy of x and of y
// (1/(c_out*taps) and 1/(c_in*taps) of the multiply-adds).
struct ImageMinor {
  int64_t hp, wp, nn;
  int64_t channel() const { return hp * wp * nn; }
};

// xm of images [0, nn) of x, as above.
template <class T>
void build_image_minor(const T* x, const ConvParams& p, const ImageMinor& m, T* xm) {
  const int64_t plane = p.h * p.w;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < p.c_in; c++) {
    T* dst = xm + c * m.channel();
    std::fill(dst, dst + m.channel(), T(0));
    const int64_t h = std::min(p.h, m.hp - p.pad_top), w = std::min(p.w, m.wp - p.pad_left);  // rows read
    for (int64_t i = 0; i < m.nn; i++) {
      const T* src = x + (i * p.c_in + c) * plane;
      for (int64_t u = 0; u < h; u++)
        for (int64_t v = 0; v < w; v++) dst[((u + p.pad_top) * m.wp + v + p.pad_left) * m.nn + i] = src[u * p.w + v];
    }
  }
}

// y[n0 + i][co][e] = ym[co][e][i] + bias[co] for the nn images of a chunk (ym rows ld apart).
template <class T>
void scatter_image_minor(const T* ym, int64_t ld, const T* bias, const ConvParams& p, int64_t n0, int64_t nn, T* y) {
  const int64_t pix = p.oh * p.ow;
#pragma omp parallel for schedule(static)
  for (int64_t co = 0; co < p.c_out; co++) {
    const T b = bias ? bias[co] : T(0);
    for (int64_t i = 0; i < nn; i++) {
      T* dst = y + ((n0 + i) * p.c_out + co) * pix;
      for (int64_t e = 0; e < pix; e++) dst[e] = ym[co * ld + e * nn + i] + b;
    }
  }
}

// Whether the small images' forward runs on xm (above): stride 1, and rows of at least 2 whole slivers of
// columns (the last sliver of a row is packed).
template <class T>
bool image_minor_pays(const ConvParams& p, int64_t nn) {
  return p.stride_h == 1 && p.stride_w == 1 && p.ow * nn >= 2 * gemm_nr<T>;
}

// Images per chunk of xm: its input and its output both within the workspace bound.
int64_t image_minor_chunk(const ConvParams& p, int64_t hp, int64_t wp) {
  const int64_t in = kWorkspaceElements / std::max<int64_t>(1, p.c_in * hp * wp);
  const int64_t out = kWorkspaceElements / std::max<int64_t>(1, p.c_out * p.oh * p.ow);
  return std::clamp<int64_t>(std::min(in, out), 1, std::max<int64_t>(p.n, 1));
}

// y = conv(x, w) + bias over xm, one GEMM per (group, output row, block of rows of A) in parallel: C row co
// of output row oy is ym[co][oy*ow*nn ...], B row (ci, kh, kw) the run above.
template <class T>
void forward_image_minor(const T* x, const T* w, const T* bias, const ConvParams& p, int64_t chunk, T* y) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), cig = p.c_in_per_group(), taps = p.kh * p.kw;
  const int64_t K = cig * taps, hp = p.oh + p.dil_h * (p.kh - 1), wp = p.ow + p.dil_w * (p.kw - 1);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const ImageMinor m{hp, wp, std::min(chunk, p.n - n0)};
    const int64_t cols = p.ow * m.nn, ld = padded_ld<T>(p.oh * cols);
    std::vector<int64_t> run(G * K);
    for (int64_t c = 0; c < p.c_in; c++)
      for (int64_t t = 0; t < taps; t++)
        run[c * taps + t] = c * m.channel() + (t / p.kw * p.dil_h * wp + t % p.kw * p.dil_w) * m.nn;
    const std::vector<int64_t> c_off = strided_offsets(p.c_out, ld);
    T* xm = scratch<T>(slot_input, p.c_in * m.channel());
    T* ym = scratch<T>(slot_output, p.c_out * ld);
    build_image_minor(x + n0 * p.c_in * p.h * p.w, p, m, xm);
    const GemmBlocking bl = gemm_blocking<T>(G * p.oh, cog, cols);
    const int64_t tasks = G * p.oh * bl.m_blocks * bl.n_blocks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      const int64_t ni = t % bl.n_blocks, mi = t / bl.n_blocks % bl.m_blocks, rest = t / (bl.n_blocks * bl.m_blocks);
      const int64_t oy = rest % p.oh, g = rest / p.oh;
      const MatrixView<T> a = row_major(w + g * cog * K, cog, K, K);
      const Rows<const T> b{xm + oy * wp * m.nn, run.data() + g * K};
      gemm_block_in_place(a, b, Rows<T>{ym + oy * cols, c_off.data() + g * cog}, bl.block(mi, ni, cog, cols),
                          Update::store);
    }
    scatter_image_minor(ym, ld, bias, p, n0, m.nn, y);
  }
}

// Tap t = kh_i*kw + kw_i of the kernel lands inside x for the outputs of one rectangle (empty for a tap
// that reads only padding).
std::vector<OutputRect> tap_rects(const ConvParams& p) {
  std::vector<OutputRect> rects;
  for (int64_t kh = 0; kh < p.kh; kh++)
    for (int64_t kw = 0; kw < p.kw; kw++) {
      OutputRect r;
      in_range(kh * p.dil_h - p.pad_top, p.stride_h, p.h, p.oh, r.oy0, r.oy1);
      in_range(kw * p.dil_w - p.pad_left, p.stride_w, p.w, p.ow, r.ox0, r.ox1);
      rects.push_back(r);
    }
  return rects;
}

// yc[co][i*pix + (oy, ox)] += ct[co][i*area + (oy - oy0, ox - ox0)] over the rectangle r of nn images.
template <class T>
void add_rect(const T* ct, T* yc, const OutputRect& r, const ConvParams& p, int64_t nn) {
  const int64_t rw = r.ox1 - r.ox0;
  for (int64_t i = 0; i < nn; i++)
    for (int64_t oy = r.oy0; oy < r.oy1; oy++) {
      const T* src = ct + i * r.area() + (oy - r.oy0) * rw;
      T* dst = yc + i * p.oh * p.ow + oy * p.ow + r.ox0;
      for (int64_t j = 0; j < rw; j++) dst[j] += src[j];
    }
}

// The forward pass as one GEMM per tap over the outputs its rectangle holds, y = sum_t W_t X_t: no product
// with padding is formed (ASPP rate 12 on 14x14: 18 % of the full GEMM's). W_t is read in place, its columns
// taps apart, so the taps share the cache lines of w: a task walks panels of rows x slices of input channels
// (each a square-ish block whose w for all taps fills half of L2) and runs every tap's GEMM on it, reading
// that block of w from memory once. A row panel packs B again (1/rows of the multiply-adds), a slice
// reloads C (1/slice). Tap t accumulates in its own columns of ct, summed into the chunk's output yc in tap
// order at the end; a task owns rows of C for every tap, so no two write the same element.
template <class T>
void forward_taps(const T* x, const T* w, const T* bias, const ConvParams& p, const Phased& q,
                  const std::vector<OutputRect>& rects, T* y) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), cig = p.c_in_per_group(), taps = p.kh * p.kw;
  const std::vector<int64_t> run = run_offsets(p, q);
  int64_t live = 0;
  for (const OutputRect& r : rects) live += r.area();
  const int64_t K = cig * taps, chunk = std::min(column_chunk(p, q), std::max<int64_t>(1, kWorkspaceElements / std::max<int64_t>(1, p.c_out * live)));
  const int64_t ldt = padded_ld<T>(chunk * live);
  const std::vector<int64_t> t_off = strided_offsets(p.c_out, ldt);
  const ColumnBlocks bl = column_blocking<T>(G, cog, 1);  // one column: rows only
  const int64_t block = cache_bytes(2, 1 << 20) / 2 / (taps * int64_t(sizeof(T)));  // rows x channels of w
  const int64_t slice = std::max<int64_t>(16, int64_t(std::sqrt(double(block))) / 16 * 16);
  const int64_t panel_max = std::max<int64_t>(gemm_mr, block / slice / gemm_mr * gemm_mr);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0), ld = padded_ld<T>(nn * p.oh * p.ow);
    const T* xq = build_phased<T>(x + n0 * p.c_in * p.h * p.w, nn, p, q);
    T* yc = scratch<T>(slot_output, p.c_out * ld);
    T* ct = scratch<T>(slot_columns, p.c_out * ldt);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t task = 0; task < G * bl.m_blocks; task++) {
      const int64_t g = task / bl.m_blocks, m0 = task % bl.m_blocks * bl.mb, m1 = std::min(cog, m0 + bl.mb);
      const int64_t panels = (m1 - m0 + panel_max - 1) / panel_max;
      const int64_t panel = ((m1 - m0 + panels - 1) / panels + gemm_mr - 1) / gemm_mr * gemm_mr;
      std::vector<int64_t> tap_run(K);  // tap t's run of input channel ci at t*cig + ci
      for (int64_t k = 0; k < K; k++) tap_run[k % taps * cig + k / taps] = run[g * K + k];
      for (int64_t r0 = m0; r0 < m1; r0 += panel)
        for (int64_t c0 = 0; c0 < cig; c0 += slice) {
          const int64_t c1 = std::min(cig, c0 + slice);
          for (int64_t t = 0, col = 0; t < taps; col += nn * rects[t].area(), t++) {
            if (rects[t].area() == 0) continue;
            const PackB<T> b = [&](T* buf, int64_t k0, int64_t kc, int64_t b0, int64_t bn) {
              pack_output_columns(buf, xq, tap_run.data() + t * cig + c0, p, q, rects[t], k0, kc, b0, bn);
            };
            const MatrixView<T> a{w + g * cog * K + c0 * taps + t, cog, c1 - c0, K, taps};
            gemm_block(a, b, Rows<T>{ct + col, t_off.data() + g * cog},
                       {r0, std::min(m1, r0 + panel), 0, nn * rects[t].area()}, c0 == 0 ? Update::store : Update::add);
          }
        }
      for (int64_t co = g * cog + m0; co < g * cog + m1; co++) {
        std::fill(yc + co * ld, yc + co * ld + nn * p.oh * p.ow, T(0));
        for (int64_t t = 0, col = 0; t < taps; col += nn * rects[t].area(), t++)
          add_rect(ct + co * ldt + col, yc + co * ld, rects[t], p, nn);
      }
    }
    scatter_images(yc, ld, bias, p, n0, nn, y);
  }
}

// Whether the per-image GEMM on the extended grid reads its B rows (the runs) in place, each micro-tile loading
// its NR columns of row k straight from xq, instead of packing B (pack_b was 11-16 % of the time where
// each packed element fed 8 strips of A). At stride 1 the taps of a kernel row read the same cache lines of
// one input row, so a sliver's rows are ~kh lines per channel that stay in L1 across its strips (1 thread,
// Zen 4: 3x3 and 5x5 layers 5-22 % faster, ResNet, UNet, Inception from 17x17 to 149x149). Not taken: a
// kernel one column wide (Inception's 7x1: each tap its own lines, 0-6 % slower), strides (resnet50_l2_b0
// conv2 and down, the stems: 6-14 % slower, a phase plane per tap), x itself as the layout (no slack past
// a run; 1x1 on 35x35 60 % slower), and a single strip of A over an image beyond L2 (UNet's first layer's
// backward-input, 3 channels: the pack's row-by-row stream beats the tile's scattered rows, 8 %).
template <class T>
bool runs_in_place(const ConvParams& p, const Phased& q, int64_t rows) {
  const bool image_beyond_l2 = p.c_in * q.chan * int64_t(sizeof(T)) > cache_bytes(2, 1 << 20);
  return q.sh == 1 && q.sw == 1 && p.kw > 1 && !q.identity && !(rows <= gemm_mr && image_beyond_l2);
}

// Whether the per-image GEMM runs over the real outputs only (B packed by pack_output_columns, C rows = y)
// rather than the extended grid (B = plain runs, oh*(wq - ow) garbage columns), for tasks of `rows` rows of A
// each: per packed vector of B, garbage costs (garbage / outputs) * rows vector FMAs, the segment packer
// ~8-20 cycles more than pack_b. Measured (1 thread, Zen 4), at that product: deeplab_dilated 37, forward
// 78-79 -> 85-87 % of the FMA peak; resnet_3x3, Inception 5x5 and 6a, dcgan_d_2 at 2-8 and batch-1 14x14
// layers cut into 64-row tasks at 9, 3-10 % slower. From 16 up the real outputs win against pack_b; against
// runs read in place (no pack at all) from 32 up: ResNet-18 32px's 16x16 layer (16) 2-6 % faster on the
// extended grid, deeplab_dilated (37) 6-7 % slower, resnet18_l3_conv2 at batch 8 (37) even.
inline bool real_columns(const ConvParams& p, const Phased& q, int64_t rows, bool in_place) {
  return p.oh * (q.wq - p.ow) * rows >= (in_place ? 32 : 16) * p.oh * p.ow;
}

}  // namespace

template <class T>
void forward_gemm(const T* x, const T* w, const T* bias, const ConvParams& p, T* y) {
  if (few_out_channels<T>(p)) return forward_channels(x, w, bias, p, y);
  const Phased q = phased(p);
  if (mostly_padding(p)) return forward_taps(x, w, bias, p, q, tap_rects(p), y);
  if (small_images<T>(p, q)) {
    const int64_t chunk = image_minor_chunk(p, p.oh + p.dil_h * (p.kh - 1), p.ow + p.dil_w * (p.kw - 1));
    if (image_minor_pays<T>(p, chunk)) return forward_image_minor(x, w, bias, p, chunk, y);
    return forward_columns(x, w, bias, p, q, y);
  }
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  const std::vector<int64_t> b_off = run_offsets(p, q);
  const int64_t chunk = images_per_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    const GemmBlocking grid = gemm_blocking<T>(nn * G, cog, q.np);
    const bool in_place = runs_in_place<T>(p, q, grid.mb);
    const bool real = real_columns(p, q, grid.mb, in_place);  // else the extended grid
    const bool direct = real || q.wq == p.ow;      // no garbage columns: the GEMM writes y itself
    const int64_t cols = real ? p.oh * p.ow : q.np;
    const std::vector<int64_t> c_off = strided_offsets(p.c_out, cols);
    const T* xq = build_phased<T>(x + n0 * p.c_in * p.h * p.w, nn, p, q);
    T* yq = direct ? y + n0 * p.c_out * cols : scratch<T>(slot_output, nn * p.c_out * cols);
    const GemmBlocking bl = real ? gemm_blocking<T>(nn * G, cog, cols) : grid;
    const int64_t tasks = nn * G * bl.m_blocks * bl.n_blocks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      int64_t ni = t % bl.n_blocks, mi = t / bl.n_blocks % bl.m_blocks, g = t / (bl.n_blocks * bl.m_blocks) % G;
      int64_t i = t / (bl.n_blocks * bl.m_blocks * G);
      const T* xi = xq + i * p.c_in * q.chan;
      const int64_t* run_g = b_off.data() + g * K;
      const MatrixView<T> a = row_major(w + g * cog * K, cog, K, K);
      Rows<T> c{yq + i * p.c_out * cols, c_off.data() + g * cog};
      const Block block = bl.block(mi, ni, cog, cols);
      if (real) {
        const PackB<T> b = [&](T* buf, int64_t k0, int64_t kc, int64_t b0, int64_t bn) {
          pack_output_columns(buf, xi, run_g, p, q, {0, p.oh, 0, p.ow}, k0, kc, b0, bn);
        };
        gemm_block(a, b, c, block, Update::store);
      } else if (in_place) {
        gemm_block_in_place(a, Rows<const T>{xi, run_g}, c, block, Update::store);
      } else {
        gemm_block(a, Rows<const T>{xi, run_g}, c, block, Update::store);
      }
    }
    finish_output<T>(yq, y + n0 * p.c_out * p.oh * p.ow, bias, nn, p.c_out, p.oh, p.ow, real ? p.ow : q.wq);
  }
}

template void forward_gemm<float>(const float*, const float*, const float*, const ConvParams&, float*);
template void forward_gemm<double>(const double*, const double*, const double*, const ConvParams&, double*);

void conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  const SerialScope serial(conv_work(p) < kSerialWork);
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    on_live_taps(w.data<T>(), p, [&](const T* wl, const ConvParams& pl) {
      forward_gemm<T>(x.data<T>(), wl, bias ? bias->data<T>() : nullptr, pl, y.data<T>());
    });
  });
}

}  // namespace convlab::cpu
