// Convolution backward-input (the spec: reference::conv_backward_input_at in common/reference.h) on the
// phased layout (conv_layout.h). Stride 1 with many outputs per weight: the adjoint is itself a convolution,
// run as a forward pass on the flipped weight. Strided with few output channels per group (or up to 256 on many
// outputs): each stride phase of gx is such a convolution of gy with the sub-kernel of the taps landing on it
// (backward_input_phases).
// Other strides, and stride 1 where few outputs share each weight: gxq[k][e] += sum_co W[co][k] * gy[co][e],
// a GEMM whose C rows are the runs (scatter-added), then un-phased into gx; small images instead run that
// GEMM over the real outputs of a chunk of images into an explicit c_in*taps x P matrix, then col2im.
#include <algorithm>
#include <cstring>
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

// The taps of one kernel axis that a stride phase of gx reads (backward_input_phases), or all of them:
// k0 + j*step for j < taps, read by the forward on gy in reverse (its j-th tap is k0 + (taps - 1 - j)*step).
struct TapAxis {
  int64_t k0 = 0, step = 1, taps = 0;
};

// wf[g][ci][co][(jh, jw)] = w[g][co][ci][rows tap jh][cols tap jw], taps reversed: the weight (or the
// sub-kernel of one stride phase) flipped and transposed per group. 16 weight rows at a time, while every ci
// writes one run of 16*taps, taps innermost: each (co, ci) copies its taps reversed into consecutive elements
// (only kernels of several taps are flipped, flip_pays). Taps outside co (stride-taps stores) took ~1 ns an
// element on ASPP's 2048x256x3x3, this ~0.35 (aspp r12 15.1 -> 11.8-12.1 ms).
template <class T>
void flip_weight(const T* w, const ConvParams& p, const TapAxis& rows, const TapAxis& cols, T* wf) {
  const int64_t G = p.groups, cig = p.c_in_per_group(), cog = p.c_out_per_group(), taps = p.kh * p.kw;
  const int64_t sub = rows.taps * cols.taps, co_blocks = (cog + 15) / 16;
  std::vector<int64_t> src_tap(sub);  // offset of the j-th flipped tap from the last tap the sub-kernel reads
  const int64_t last = (rows.k0 + (rows.taps - 1) * rows.step) * p.kw + cols.k0 + (cols.taps - 1) * cols.step;
  for (int64_t jh = 0; jh < rows.taps; jh++)
    for (int64_t jw = 0; jw < cols.taps; jw++) src_tap[jh * cols.taps + jw] = -(jh * rows.step * p.kw + jw * cols.step);
#pragma omp parallel for schedule(static)
  for (int64_t gb = 0; gb < G * co_blocks; gb++) {
    int64_t g = gb / co_blocks, co0 = gb % co_blocks * 16, co1 = std::min(cog, co0 + 16);
    for (int64_t ci = 0; ci < cig; ci++)
      for (int64_t co = co0; co < co1; co++) {
        const T* src = w + ((g * cog + co) * cig + ci) * taps + last;
        T* dst = wf + ((g * cig + ci) * cog + co) * sub;
        for (int64_t t = 0; t < sub; t++) dst[t] = src[src_tap[t]];
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
// the flip of its 4x4 weight would cost 2 ms). And small images (the column path, whose col2im was a quarter
// of resnet18_l4_conv2's time) from 384 outputs on, now that the flip costs ~0.35 ns an element: 7x7 x 8
// (resnet18_l4_conv2) 1.46-1.58 -> 1.30-1.32, 8x8 x 8 (inception_v3_7b_3x3dbl) 1.52-1.65 -> 1.34-1.35; 7x7 x 4
// stays (resnet_7x7_512 1.15-1.31 -> 1.38-1.42 flipped), and so do single images of 361-600 outputs on the
// runs GEMM (deeplabv3_layer4_conv2_d2 1.07-1.13 -> 1.24, unet_enc3_b 1.14-1.17 -> 1.24 flipped).
template <class T>
bool flip_pays(const ConvParams& p) {
  if (p.stride_h != 1 || p.stride_w != 1 || p.kh * p.kw == 1) return false;
  const int64_t outputs = p.n * p.oh * p.ow;
  return outputs >= 640 || (outputs >= 384 && small_images<T>(p, phased(p))) || mostly_padding(p) ||
         (p.c_out_per_group() < 64 && !mostly_padding(adjoint_params(p)));
}

// Strided kernels of several taps whose adjoint GEMM reduces over fewer than 64 output channels per group
// (flip_pays' bound) run their stride phases as flipped forwards (backward_input_phases), when those have 8
// or more output channels per group. 1-thread CPU time against PyTorch: ResNeXt's grouped 3x3/2 (8, 16, 32
// per group) 0.41-0.42 / 2.55-2.67 / 1.50-1.69 -> 0.24-0.29 / 1.69-1.73 / 0.54-0.61, DeepSpeech2's 21x11/(2,1)
// 1.83-1.88 -> 1.09-1.11. Nor the stems (3 input channels: the phases' forward of 3 output channels, 0.28 ->
// 1.19). Dense layers of up to 256 output channels per group too once n*oh*ow >= 1024, now that the phases
// stay in L2 for the interleave (all 29 strided dense layers of the sweep forced on the phases, two
// alternated runs): ResNet-18 l2_conv1 / l3_conv1 0.96 / 1.20-1.22 -> 0.77-0.84 / 1.03-1.08, ResNet-50
// l2_b0 / l3_b0 0.93-0.97 / 1.21-1.22 -> 0.79-0.80 / 1.03-1.06, Inception 6a_3x3dbl_3 0.99-1.03 -> 0.79-0.82,
// DCGAN d_2 1.22 -> 1.03-1.06. Not fewer outputs (7x7 at batch 1-8, 8x8 x 8, 14x14 at batch 1: 0.75-1.02 ->
// 1.0-1.7), nor 320 channels and more (Inception 6a/7a, ResNet-18 layer 4, wav2vec2: 0.9-1.0 -> 1.0-1.2),
// whose adjoint reduction is deep already, nor kernels of one tap a phase (UNet's 2x2/2 transposed convs:
// the phases reduce no deeper; unet_up1 0.80 -> 0.86). Transposed convs run these kernels as their forward:
// DCGAN's 4x4/2 g_4 and dcgan_transposed 1.27-1.36 -> 0.95-1.04.
inline bool phases_pay(const ConvParams& p) {
  const int64_t cog = p.c_out_per_group(), outputs = p.n * p.oh * p.ow, taps = p.kh * p.kw;
  return (p.stride_h > 1 || p.stride_w > 1) && taps > 1 && p.c_in_per_group() >= 8 &&
         (cog < 64 || (cog <= 256 && outputs >= 1024 && taps > p.stride_h * p.stride_w));
}

template <class T>
void backward_input_stride1(const T* gy, const T* w, const ConvParams& p, T* gx) {
  T* wf = scratch<T>(slot_weight, p.c_in * p.c_out_per_group() * p.kh * p.kw);
  flip_weight(w, p, TapAxis{0, 1, p.kh}, TapAxis{0, 1, p.kw}, wf);
  forward_gemm<T>(gy, wf, nullptr, adjoint_params(p), gx);
}

// One axis of a stride phase of gx: the inputs y = y0 + r*stride (r < len) with (y + pad) % stride == a. They
// are reached by the taps kh with kh*dil % stride == a only, k0 + j*step (step = stride/gcd(stride, dil)),
// and tap kh reads gy[u - m] at u = (y + pad - a)/stride, m = (kh*dil - a)/stride, m growing by dil/gcd per
// tap: along this axis the phase is a stride-1 correlation of gy with those taps reversed, dilation dil/gcd,
// leading pad m(last tap) - u(y0) (negative: a crop).
struct PhaseAxis {
  TapAxis taps;
  int64_t y0 = 0, len = 0, dil = 1, pad = 0;
};

inline PhaseAxis phase_axis(int64_t a, int64_t k, int64_t dil, int64_t pad, int64_t stride, int64_t in) {
  PhaseAxis r;
  const int64_t g = std::gcd(stride, dil);
  r.taps.step = stride / g, r.dil = dil / g;
  int64_t k0 = 0;
  while (k0 < std::min(k, r.taps.step) && k0 * dil % stride != a) k0++;
  r.taps.k0 = k0;
  r.taps.taps = k0 < std::min(k, r.taps.step) ? (k - 1 - k0) / r.taps.step + 1 : 0;
  r.y0 = ((a - pad) % stride + stride) % stride;
  r.len = r.y0 < in ? (in - r.y0 + stride - 1) / stride : 0;
  r.pad = (k0 * dil - a) / stride + (r.taps.taps - 1) * r.dil - (r.y0 + pad - a) / stride;
  return r;
}

// The forward conv of phase (ra, rb) on nn images of gy: c_out/groups x its taps deep, outputs the phase's.
inline ConvParams phase_params(const ConvParams& p, const PhaseAxis& ra, const PhaseAxis& rb, int64_t nn) {
  ConvParams f = p;
  f.n = nn, f.c_in = p.c_out, f.c_out = p.c_in;
  f.h = p.oh, f.w = p.ow, f.oh = ra.len, f.ow = rb.len;
  f.kh = ra.taps.taps, f.kw = rb.taps.taps;
  f.stride_h = f.stride_w = 1;
  f.pad_top = ra.pad, f.pad_left = rb.pad, f.dil_h = ra.dil, f.dil_w = rb.dil;
  return f;
}

// Lanes 0, 1, ... of a and b alternated: a[0], b[0], a[1], b[1], ... (vpermt2ps).
template <class T, int... J>
inline Vec<T> zip_halves(Vec<T, kVecBytes / 2> a, Vec<T, kVecBytes / 2> b, std::integer_sequence<int, J...>) {
  return __builtin_shufflevector(a, b, (J % 2 ? lanes<T> / 2 + J / 2 : J / 2)...);
}

// One row of gx at stride 2 from its two column phases: dst[2s] = se[s] (n_e of them), dst[2s + 1] = so[s]
// (n_o = n_e or n_e - 1), lanes/2 pairs a vector. With `spill` the last vector is stored whole, past the row
// into later rows of its plane that are rewritten after it, and reads up to lanes/2 - 1 elements past se and so
// (the phase buffers have that slack); else the last pairs go one by one. Rows of 28 (ResNeXt's l3_b0) as a
// scalar loop (the compiler's 16-wide loop never ran on 14 pairs) made interleave_phases 30 % of the pass.
template <class T>
void interleave_row(const T* se, const T* so, int64_t n_e, int64_t n_o, T* dst, bool spill) {
  constexpr int64_t half = lanes<T> / 2;
  using Half = Vec<T, kVecBytes / 2>;
  const int64_t vec_end = spill ? n_e : n_o / half * half;
  int64_t s = 0;
  for (; s < vec_end; s += half) {
    Half a, b;
    std::memcpy(&a, se + s, sizeof a);
    std::memcpy(&b, so + s, sizeof b);
    store(dst + 2 * s, zip_halves<T>(a, b, std::make_integer_sequence<int, lanes<T>>{}));
  }
  for (; s < n_o; s++) dst[2 * s] = se[s], dst[2 * s + 1] = so[s];
  if (s < n_e) dst[2 * s] = se[s];
}

// gx of the nn images of a chunk from the phases' forward outputs, parts[a*sw + b][i][c][r][s] = gx[n0 + i][c]
// [rows[a].y0 + r*sh][cols[b].y0 + s*sw] (null: a phase no tap reaches, stride > kernel: zeros). Row by row,
// each taking its columns from the sw phases of its row in turn, so every row of gx is filled while it sits in
// L1: phase by phase, each strided pass over all of gx was 18 % of ResNeXt's l3_b0 backward-input. Stride 2
// with both column phases reached stores the two interleaved in one loop, which the compiler vectorises.
template <class T>
void interleave_phases(const std::vector<const T*>& parts, const std::vector<PhaseAxis>& rows,
                       const std::vector<PhaseAxis>& cols, const ConvParams& p, int64_t n0, int64_t nn, T* gx) {
  const int64_t sh = p.stride_h, sw = p.stride_w, even = p.pad_left % 2;  // stride 2: the phase of even columns
  std::vector<int64_t> phase_of(p.h), row_of(p.h);  // two divisions per row were a third of the time here
  // What interleave_row stores of a row when it spills: whole vectors of pairs (only stride 2 has cols[even]).
  const int64_t spill_end = sw == 2 ? (cols[even].len + lanes<T> / 2 - 1) / (lanes<T> / 2) * lanes<T> : 0;
  for (int64_t y = 0; y < p.h; y++) {
    phase_of[y] = (y + p.pad_top) % sh;
    row_of[y] = (y - rows[phase_of[y]].y0) / sh;
  }
#pragma omp parallel for schedule(static)
  for (int64_t ic = 0; ic < nn * p.c_in; ic++) {
    T* plane = gx + (n0 * p.c_in + ic) * p.h * p.w;
    for (int64_t y = 0; y < p.h; y++) {
      const int64_t a = phase_of[y], r = row_of[y];
      if (sw == 2 && parts[a * 2] && parts[a * 2 + 1]) {
        const int64_t n_e = cols[even].len, n_o = cols[1 - even].len;  // odd columns: n_e or one fewer
        const T* se = parts[a * 2 + even] + (ic * rows[a].len + r) * n_e;
        const T* so = parts[a * 2 + 1 - even] + (ic * rows[a].len + r) * n_o;
        interleave_row(se, so, n_e, n_o, plane + y * p.w, y * p.w + spill_end <= p.h * p.w);
        continue;
      }
      for (int64_t b = 0; b < sw; b++) {
        const int64_t len = cols[b].len;
        T* dst = plane + y * p.w + cols[b].y0;
        const T* part = parts[a * sw + b];
        if (!part) {
          for (int64_t s = 0; s < len; s++) dst[s * sw] = T(0);
          continue;
        }
        const T* src = part + (ic * rows[a].len + r) * len;
        for (int64_t s = 0; s < len; s++) dst[s * sw] = src[s];
      }
    }
  }
}

// Strided: each stride phase of gx is a stride-1 correlation of gy with the sub-kernel of the taps that land
// on it (phase_axis), run as a forward pass on that sub-kernel flipped. Its reduction is c_out/groups x the
// phase's taps deep, where the adjoint GEMM's is c_out/groups (ResNeXt's 8-32), and C is stored, not
// scatter-added. The sub-kernels are flipped once (together a copy of w), then per chunk of images every
// phase's forward runs into its buffer and the buffers are interleaved into gx.
template <class T>
void backward_input_phases(const T* gy, const T* w, const ConvParams& p, T* gx) {
  const int64_t sh = p.stride_h, sw = p.stride_w, phases = sh * sw;
  std::vector<PhaseAxis> rows(sh), cols(sw);
  for (int64_t a = 0; a < sh; a++) rows[a] = phase_axis(a, p.kh, p.dil_h, p.pad_top, sh, p.h);
  for (int64_t b = 0; b < sw; b++) cols[b] = phase_axis(b, p.kw, p.dil_w, p.pad_left, sw, p.w);
  auto live = [&](int64_t ab) {
    const PhaseAxis &ra = rows[ab / sw], &rb = cols[ab % sw];
    return ra.taps.taps > 0 && rb.taps.taps > 0 && ra.len > 0 && rb.len > 0;
  };
  std::vector<int64_t> w_off(phases + 1, 0);  // the flipped sub-kernels one after another
  for (int64_t ab = 0; ab < phases; ab++)
    w_off[ab + 1] = w_off[ab] + (live(ab) ? p.c_in * p.c_out_per_group() * rows[ab / sw].taps.taps * cols[ab % sw].taps.taps : 0);
  // Images per chunk: as many as L2 holds of gx (at least one), so that interleave_phases reads the phases'
  // outputs back from the cache they were just written to; all 8 images of ResNeXt's l3_b0 at once (12.8 MB)
  // left a quarter of the pass to interleave_phases. Phases on small images (small_images: their forward runs
  // the images of a chunk as one GEMM) keep the whole workspace's worth: l4_b0's 7x7 phases, an image a
  // chunk, 0.52-0.57 -> 0.67-0.78 of PyTorch's time. Phase (0, 0) always holds tap (0, 0).
  static const int64_t l2 = cache_bytes(2, 1 << 20);  // sysfs is read once
  const int64_t image = p.c_in * p.h * p.w, max_chunk = std::clamp<int64_t>(kWorkspaceElements / image, 1, p.n);
  const ConvParams f0 = phase_params(p, rows[0], cols[0], 1);
  const int64_t in_l2 = l2 / (image * int64_t(sizeof(T)));
  const int64_t chunk = small_images<T>(f0, phased(f0)) ? max_chunk : std::clamp<int64_t>(in_l2, 1, max_chunk);
  // Then the phases' outputs of a chunk, and the slack interleave_row reads past them.
  T* wf = scratch<T>(slot_weight, w_off[phases] + chunk * image + lanes<T>);
  for (int64_t ab = 0; ab < phases; ab++)
    if (live(ab)) flip_weight(w, p, rows[ab / sw].taps, cols[ab % sw].taps, wf + w_off[ab]);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    std::vector<const T*> parts(phases, nullptr);
    T* out = wf + w_off[phases];  // the phases' outputs together are one chunk of gx
    for (int64_t ab = 0; ab < phases; ab++) {
      if (!live(ab)) continue;
      const PhaseAxis &ra = rows[ab / sw], &rb = cols[ab % sw];
      on_live_taps(static_cast<const T*>(wf + w_off[ab]), phase_params(p, ra, rb, nn), [&](const T* wl, const ConvParams& f) {
        forward_gemm<T>(gy + n0 * p.c_out * p.oh * p.ow, wl, nullptr, f, out);
      });
      parts[ab] = out;
      out += nn * p.c_in * ra.len * rb.len;
    }
    interleave_phases(parts, rows, cols, p, n0, nn, gx);
  }
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
  if (flip_pays<T>(p) || (stride1 && few_out_channels<T>(adjoint_params(p))))
    return backward_input_stride1<T>(gy, w, p, gx);
  if (phases_pay(p)) return backward_input_phases<T>(gy, w, p, gx);
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
