// Convolution backward-input (the spec: reference::conv_backward_input_at in common/reference.h) on the
// phased layout (conv_layout.h). Stride 1 with many outputs per weight: the adjoint is itself a convolution,
// run as a forward pass on the flipped weight.
// Other strides, and stride 1 where few outputs share each weight: gxq[k][e] += sum_co W[co][k] * gy[co][e],
// a GEMM whose C rows are the runs (scatter-added), then un-phased into gx; small images instead run that
// GEMM over the real outputs of a chunk of images into an explicit c_in*taps x P matrix, then col2im.
#include <algorithm>
#include <numeric>
#include <utility>
#include <vector>

#include "../common/reference.h"
#include "conv_forward_channels.h"
#include "conv_layout.h"
#include "gemm.h"
#include "kernels.h"

namespace convlab::cpu {

namespace {

// wf[g][ci][co][t] = w[g][co][ci][taps - 1 - t]: the weight flipped and transposed per group. 16 weight rows
// at a time, while every ci writes one run of 16*taps, taps innermost: each (co, ci) copies its taps reversed
// into consecutive elements (only kernels of several taps are flipped, flip_pays). Taps outside co (stride-taps
// stores) took ~1 ns an element on ASPP's 2048x256x3x3, this ~0.35 (aspp r12 15.1 -> 11.8-12.1 ms).
template <class T>
void flip_weight(const T* w, const ConvParams& p, T* wf) {
  const int64_t G = p.groups, cig = p.c_in_per_group(), cog = p.c_out_per_group(), taps = p.kh * p.kw;
  const int64_t co_blocks = (cog + 15) / 16;
#pragma omp parallel for schedule(static)
  for (int64_t gb = 0; gb < G * co_blocks; gb++) {
    int64_t g = gb / co_blocks, co0 = gb % co_blocks * 16, co1 = std::min(cog, co0 + 16);
    for (int64_t ci = 0; ci < cig; ci++)
      for (int64_t co = co0; co < co1; co++) {
        const T* src = w + ((g * cog + co) * cig + ci) * taps + taps - 1;
        T* dst = wf + ((g * cig + ci) * cog + co) * taps;
        for (int64_t t = 0; t < taps; t++) dst[t] = src[-t];
      }
  }
}

// The outputs [lo, hi) of each kernel row (or column) whose tap lands inside the input: one in_range (two
// divisions) per tap, not per tap and plane (dcgan_g_1's 1x1-image fold spent a quarter of the pass there).
inline std::vector<std::pair<int64_t, int64_t>> tap_ranges(int64_t k, int64_t dil, int64_t pad, int64_t stride,
                                                            int64_t in, int64_t out) {
  std::vector<std::pair<int64_t, int64_t>> r(k);
  for (int64_t t = 0; t < k; t++) in_range(t * dil - pad, stride, in, out, r[t].first, r[t].second);
  return r;
}

// With stride 1 the adjoint is itself a convolution: gx = conv(gy, w flipped and transposed per group) with
// leading pads d*(k-1) - pad (negative ones crop). Run as a forward GEMM its reduction is c_out/groups*taps
// deep instead of c_out/groups, and C is stored rather than scatter-added; but the flip is a transposing copy
// of the whole weight (~1 ns an element, 1 thread), paid back only when each weight element enters enough
// multiply-adds (flip_pays).
inline ConvParams adjoint_params(const ConvParams& p) {
  ConvParams a = p;
  std::swap(a.c_in, a.c_out);
  a.h = p.oh, a.w = p.ow, a.oh = p.h, a.ow = p.w;
  a.pad_top = p.dil_h * (p.kh - 1) - p.pad_top;
  a.pad_left = p.dil_w * (p.kw - 1) - p.pad_left;
  return a;
}

// Stride 1, taps > 1, when n*oh*ow (the multiply-adds per weight element) is at least 640: 1-thread CPU time
// against PyTorch, the flip + forward GEMM vs the adjoint GEMM without a flip: 56x56 and 28x28 images 1.09-1.12
// vs 1.30-1.60 (resnet18_l2_conv2_n1: 784), 22x33 even (unet_dec2_a: 726), 8x8 x 8 images (512) 1.24-1.40
// vs 1.04-1.17, 7x7 and 14x14 (49-392) 1.26-1.61 vs 0.92-1.28. A 1x1 kernel needs no flip at all: its
// adjoint GEMM reads x's layout in place (efficientnet b1_0_expand 120x160: 1.23 -> 0.89).
// Also when the adjoint GEMM's reduction, c_out/groups deep, is under 64: each C tile is loaded and stored per
// that many multiply-adds (DenseNet's 128 -> 32 3x3 on 7x7, 392 outputs: 1.00 of PyTorch's time flipped, 2.70
// by the adjoint, 2 threads), where the flipped forward reduces over c_out/groups*taps, unless that forward
// reads mostly padding itself (DCGAN's 4x4 on 4x4 -> 1x1: 0.69 -> 3.9 flipped). And when a third or
// more of the tap-output products read padding (DeepLab's ASPP on 14x14, mostly_padding), which the adjoint
// GEMM here computes and discards: the flipped weight's forward runs one GEMM per tap over the outputs each
// reaches (aspp r12: 2.4-2.6 -> 1.7-1.8 of PyTorch's time). Counted on p, not on the adjoint: a transposed
// conv of a 1x1 input (dcgan_g_1) reads no padding here, though as a forward on gy padded by 3 it would (and
// the flip of its 4x4 weight would cost 2 ms).
inline bool flip_pays(const ConvParams& p) {
  if (p.stride_h != 1 || p.stride_w != 1 || p.kh * p.kw == 1) return false;
  return p.n * p.oh * p.ow >= 640 || mostly_padding(p) ||
         (p.c_out_per_group() < 64 && !mostly_padding(adjoint_params(p)));
}

template <class T>
void backward_input_stride1(const T* gy, const T* w, const ConvParams& p, T* gx) {
  T* wf = scratch<T>(slot_weight, p.c_in * p.c_out_per_group() * p.kh * p.kw);
  flip_weight(w, p, wf);
  forward_gemm<T>(gy, wf, nullptr, adjoint_params(p), gx);
}

// gyc[co][i*pix + j] = gy[n0 + i][co][j] for the nn images of a chunk (gyc rows ld apart): the grad output as
// c_out rows over the P = nn*pix real outputs.
template <class T>
void gather_images(const T* gy, const ConvParams& p, int64_t n0, int64_t nn, T* gyc, int64_t ld) {
  const int64_t pix = p.oh * p.ow;
#pragma omp parallel for schedule(static)
  for (int64_t ic = 0; ic < nn * p.c_out; ic++) {
    int64_t i = ic / p.c_out, co = ic % p.c_out;
    std::copy(gy + ((n0 + i) * p.c_out + co) * pix, gy + ((n0 + i) * p.c_out + co + 1) * pix, gyc + co * ld + i * pix);
  }
}

// col2im: every plane (i, ci) of gx sums the columns of its taps, cols[(ci, kh, kw)][i*pix + (oy, ox)] (rows ld
// apart) added at (oy*sh + kh*dh - pt, ox*sw + kw*dw - pl) when that lands inside, taps in (kh, kw) order as
// reference::fold_at sums them. One plane per task: every element is written by one thread, the same way on
// every run.
template <class T>
void fold_columns(const T* cols, int64_t ld, const ConvParams& p, int64_t n0, int64_t nn, T* gx) {
  const int64_t taps = p.kh * p.kw, pix = p.oh * p.ow;
  const auto rows = tap_ranges(p.kh, p.dil_h, p.pad_top, p.stride_h, p.h, p.oh);
  const auto cols_x = tap_ranges(p.kw, p.dil_w, p.pad_left, p.stride_w, p.w, p.ow);
#pragma omp parallel for schedule(static)
  for (int64_t ic = 0; ic < nn * p.c_in; ic++) {
    const int64_t i = ic / p.c_in, ci = ic % p.c_in;
    T* plane = gx + ((n0 + i) * p.c_in + ci) * p.h * p.w;
    std::fill(plane, plane + p.h * p.w, T(0));
    for (int64_t kh = 0; kh < p.kh; kh++) {
      const auto [oy_lo, oy_hi] = rows[kh];
      for (int64_t kw = 0; kw < p.kw; kw++) {
        const auto [ox_lo, ox_hi] = cols_x[kw];
        const T* col = cols + (ci * taps + kh * p.kw + kw) * ld + i * pix;
        for (int64_t oy = oy_lo; oy < oy_hi; oy++) {
          T* dst = plane + (oy * p.stride_h + kh * p.dil_h - p.pad_top) * p.w + kw * p.dil_w - p.pad_left;
          for (int64_t ox = ox_lo; ox < ox_hi; ox++) dst[ox * p.stride_w] += col[oy * p.ow + ox];
        }
      }
    }
  }
}

// col2im from the transposed columns colsT[i*pix + j][(ci, kh, kw)] (rows ldk apart): for every output j of
// image i, last first (so that each element of gx sums its taps in (kh, kw) order, as fold_columns does), and
// every tap landing inside, the row's c_in values of that tap are added into their planes; a long loop over
// channels, where fold_columns would run its tap loops per plane for one output (a 1x1 image: 16 taps of one
// element in each of 512 planes). Tasks are (image, channel block) with the block's planes in half of L2.
template <class T>
void fold_rows(const T* cols, int64_t ldk, const ConvParams& p, int64_t n0, int64_t nn, T* gx) {
  const int64_t taps = p.kh * p.kw, pix = p.oh * p.ow, plane = p.h * p.w;
  static const int64_t l2 = cache_bytes(2, 1 << 20);  // sysfs is read once
  const int64_t cb = std::clamp<int64_t>(l2 / 2 / (plane * int64_t(sizeof(T))), 1, p.c_in);
  const int64_t blocks = (p.c_in + cb - 1) / cb;
#pragma omp parallel for schedule(static)
  for (int64_t ib = 0; ib < nn * blocks; ib++) {
    const int64_t i = ib / blocks, c0 = ib % blocks * cb, c1 = std::min(p.c_in, c0 + cb);
    T* g = gx + (n0 + i) * p.c_in * plane;
    std::fill(g + c0 * plane, g + c1 * plane, T(0));
    for (int64_t j = pix - 1; j >= 0; j--) {
      const T* row = cols + (i * pix + j) * ldk;
      const int64_t oy = j / p.ow, ox = j % p.ow;
      for (int64_t kh = 0; kh < p.kh; kh++) {
        const int64_t y = oy * p.stride_h + kh * p.dil_h - p.pad_top;
        if (y < 0 || y >= p.h) continue;
        for (int64_t kw = 0; kw < p.kw; kw++) {
          const int64_t x = ox * p.stride_w + kw * p.dil_w - p.pad_left;
          if (x < 0 || x >= p.w) continue;
          const T* src = row + kh * p.kw + kw;
          T* dst = g + y * p.w + x;
          for (int64_t ci = c0; ci < c1; ci++) dst[ci * plane] += src[ci * taps];
        }
      }
    }
  }
}

// colsT[j][g*K + k] = sum_co gy[g*cog + co][j] * W[g*cog + co][k] for a few outputs j (batch-1 squeeze-excite
// convs and 1x1-input transposed convs: one): rows of W scaled and added into the output rows, W read once in
// place. The GEMM would pack all of W as B and run its 8-row tile on copies of one row. Tasks are (group,
// block of k) with the block's P rows in half of L1; co runs in order, so every run sums alike.
template <class T>
void columns_by_weight_rows(const T* gyc, int64_t ld, const T* w, const ConvParams& p, int64_t P, T* cols,
                            int64_t ldk) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  static const int64_t l1 = cache_bytes(1, 32 << 10);  // sysfs is read once
  const int64_t kb = std::max<int64_t>(lanes<T>, l1 / 2 / (P * int64_t(sizeof(T))) / lanes<T> * lanes<T>);
  const int64_t blocks = (K + kb - 1) / kb;
#pragma omp parallel for schedule(static)
  for (int64_t gb = 0; gb < G * blocks; gb++) {
    const int64_t g = gb / blocks, k0 = g * K + gb % blocks * kb, k1 = std::min((g + 1) * K, k0 + kb);
    for (int64_t j = 0; j < P; j++) std::fill(cols + j * ldk + k0, cols + j * ldk + k1, T(0));
    for (int64_t co = g * cog; co < (g + 1) * cog; co++) {
      const T* wr = w + co * K - g * K;
      for (int64_t j = 0; j < P; j++) {
        const T a = gyc[co * ld + j];
        T* c = cols + j * ldk;
        for (int64_t k = k0; k < k1; k++) c[k] += a * wr[k];
      }
    }
  }
}

// The columns of a chunk, cols[g*K + k][j] = sum_co W[g*cog + co][k] * gyc[g*cog + co][j] (gyc: c_out rows ld
// apart over P real outputs), one GEMM per group, in one of two orientations; returns colsT's row length, or 0
// when cols is stored as it is (rows ld apart). A last sliver of fewer than NR columns costs the micro-tile as
// much as a whole one (it is bound by A's broadcasts), so when rounding P up to slivers would add over 1/8
// (49 = 48 + 1 for a 7x7 image) the matrix is stored transposed, colsT = gy^T W: the outputs are GEMM rows
// (8 at a time), A = gyc^T read in place, B = W's rows packed as they lie; under 4 outputs, rows of W added
// (columns_by_weight_rows). Otherwise cols = W^T gy, A = W^T in place. 1-thread CPU time against PyTorch:
// resnet18_l4_conv2_n1 1.21 -> 0.98, SE 1x1 images 2.2 -> 1.65 (rows of W: 0.37-1.04); 8x8 images x 8
// (P = 512) 1.04-1.17 as cols vs 1.20-1.23 as colsT.
template <class T>
int64_t columns_gemm(const T* gyc, int64_t ld, const T* w, const ConvParams& p, int64_t P, T* cols) {
  constexpr int64_t nr = gemm_nr<T>;
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  const bool by_outputs = 8 * ((P + nr - 1) / nr * nr) > 9 * P;
  const int64_t ldk = padded_ld<T>(G * K);
  if (by_outputs && P < 4) {
    columns_by_weight_rows(gyc, ld, w, p, P, cols, ldk);
    return ldk;
  }
  const std::vector<int64_t> b_off = by_outputs ? strided_offsets(cog, K) : strided_offsets(p.c_out, ld);
  const std::vector<int64_t> c_off = by_outputs ? strided_offsets(P, ldk) : strided_offsets(G * K, ld);
  const GemmBlocking bl = by_outputs ? gemm_blocking<T>(G, P, K) : gemm_blocking<T>(G, K, P);
  const int64_t tasks = G * bl.m_blocks * bl.n_blocks;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < tasks; t++) {
    int64_t ni = t % bl.n_blocks, mi = t / bl.n_blocks % bl.m_blocks, g = t / (bl.n_blocks * bl.m_blocks);
    const T* wg = w + g * cog * K;
    if (by_outputs) {
      Rows<const T> b{wg, b_off.data()};
      Rows<T> c{cols + g * K, c_off.data()};
      gemm_block(transposed(gyc + g * cog * ld, P, cog, ld), b, c, bl.block(mi, ni, P, K), Update::store);
    } else {
      Rows<const T> b{gyc, b_off.data() + g * cog};
      Rows<T> c{cols, c_off.data() + g * K};
      gemm_block(transposed(wg, K, cog, K), b, c, bl.block(mi, ni, K, P), Update::store);
    }
  }
  return by_outputs ? ldk : 0;
}

// Small images: the columns of the P = nn*pix real outputs of a chunk of images (columns_gemm), then col2im.
// Only real outputs enter, so no weight meets a stand-in zero.
template <class T>
void backward_input_columns(const T* gy, const T* w, const ConvParams& p, T* gx) {
  const int64_t pix = p.oh * p.ow, rows = p.c_in * p.kh * p.kw;
  const int64_t chunk = std::clamp<int64_t>(kWorkspaceElements / ((rows + p.c_out) * pix), 1, p.n);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0), P = nn * pix, ld = padded_ld<T>(P);
    T* gyc = scratch<T>(slot_output, p.c_out * ld);
    gather_images(gy, p, n0, nn, gyc, ld);
    T* cols = scratch<T>(slot_columns, std::max(rows * ld, P * padded_ld<T>(rows)));
    const int64_t ldk = columns_gemm(gyc, ld, w, p, P, cols);
    if (ldk) fold_rows(cols, ldk, p, n0, nn, gx);
    else fold_columns(cols, ld, p, n0, nn, gx);
  }
}

template <class T>
void backward_input_gemm(const T* gy, const T* w, const ConvParams& p, T* gx) {
  // The flipped weight's forward on the few-output-channels path pays at any P (ResNeXt stage 4's grouped
  // 3x3, 392 outputs: 1.24-1.32 of PyTorch's time vs 5.0-6.6 by the adjoint GEMM).
  const bool stride1 = p.stride_h == 1 && p.stride_w == 1;
  if (flip_pays(p) || (stride1 && few_out_channels<T>(adjoint_params(p))))
    return backward_input_stride1<T>(gy, w, p, gx);
  const Phased q = phased(p);
  // A 1x1 kernel off the identity layout (stride > 1) scatters into one phase of a zeroed phased copy, then
  // un-phases it; the column path writes gx once (1-thread CPU time against PyTorch: resnet18_l3_down
  // 0.67-0.74 -> 0.38-0.46, l2_down 0.45-0.48 -> 0.32-0.34). Strided kernels with taps measured mixed there
  // (resnet18_l3_conv1 1.2 -> 1.1, dcgan_d_2 1.1 -> 1.3, deepspeech2 1.9 -> 2.6) and keep the runs.
  if (small_images<T>(p, q) || (p.kh * p.kw == 1 && !q.identity)) return backward_input_columns<T>(gy, w, p, gx);
  const int64_t G = p.groups, cog = p.c_out_per_group(), taps = p.kh * p.kw;
  const int64_t K = p.c_in_per_group() * taps, np = q.np;
  const std::vector<int64_t> b_off = strided_offsets(p.c_out, np), c_off = run_offsets(p, q);
  // Row blocks hold whole channels (a multiple of taps) so that tasks scatter into disjoint channels. On the
  // identity layout (1x1, stride 1) C is gx itself, stored, so columns may be cut too: one task per image and
  // 256 rows left a thread idle at batch 1 (mobilenetv2_b0_0_project_n1, 32 -> 16 on 112x112: 1.33 of
  // PyTorch's time at 2 threads).
  const int64_t unit = std::lcm(gemm_mr, taps), mb = unit * std::max<int64_t>(1, 256 / unit);
  const Update update = q.identity ? Update::store : Update::add;
  const int64_t chunk = images_per_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    const GemmBlocking bl = q.identity ? gemm_blocking<T>(nn * G, K, np) : GemmBlocking{mb, np, (K + mb - 1) / mb, 1};
    const T* gq = extend_grad_output<T>(gy + n0 * p.c_out * p.oh * p.ow, nn, p, q, np);
    T* gxq = q.identity ? gx + n0 * p.c_in * p.h * p.w : scratch<T>(slot_input, nn * p.c_in * q.chan);
    if (!q.identity) std::fill(gxq, gxq + nn * p.c_in * q.chan, T(0));
    const int64_t tasks = nn * G * bl.m_blocks * bl.n_blocks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      int64_t ni = t % bl.n_blocks, mi = t / bl.n_blocks % bl.m_blocks, g = t / (bl.n_blocks * bl.m_blocks) % G;
      int64_t i = t / (bl.n_blocks * bl.m_blocks * G);
      Rows<const T> b{gq + i * p.c_out * np, b_off.data() + g * cog};
      Rows<T> c{gxq + i * p.c_in * q.chan, c_off.data() + g * K};
      gemm_block(transposed(w + g * cog * K, K, cog, K), b, c, bl.block(mi, ni, K, np), update);
    }
    if (!q.identity) unphase<T>(gxq, gx + n0 * p.c_in * p.h * p.w, nn, p, q);
  }
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
void redo_nan_typed(const T* gy, const T* w, const ConvParams& p, T* gx) {
  const int64_t gx_size = p.n * p.c_in * p.h * p.w, w_size = p.c_out * p.c_in_per_group() * p.kh * p.kw;
  const bool gx_finite_first = gx_size < w_size;  // the cheaper scan decides most calls alone
  auto gx_finite = [&] { return !has_nonfinite(gx, gx_size); };
  auto w_finite = [&] { return !has_nonfinite(w, w_size); };
  if (gx_finite_first ? gx_finite() || w_finite() : w_finite() || gx_finite()) return;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t plane = 0; plane < p.n * p.c_in; plane++)
    for (int64_t i = 0; i < p.h * p.w; i++) {
      T& v = gx[plane * p.h * p.w + i];
      if (v != v) v = reference::conv_backward_input_at(gy, w, p, plane / p.c_in, plane % p.c_in, i / p.w, i % p.w);
    }
}

}  // namespace

void conv_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  const SerialScope serial(conv_work(p) < kSerialWork);
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    on_live_taps(w.data<T>(), p, [&](const T* wl, const ConvParams& pl) {
      backward_input_gemm<T>(gy.data<T>(), wl, pl, gx.data<T>());
    });
  });
}

void redo_nan_grad_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    redo_nan_typed<T>(gy.data<T>(), w.data<T>(), p, gx.data<T>());
  });
}

}  // namespace convlab::cpu
