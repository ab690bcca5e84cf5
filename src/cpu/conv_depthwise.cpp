// Depthwise convolution (groups == c_in; output channel co reads input channel co / mult; the spec is
// common/reference.h's conv passes), two direct paths, chosen per pass by channel_path():
// - The plane path: one plane on the phased layout of conv_layout.h, vectorised along the extended output
//   grid p (or phase position r); for few planes (cl.signal's one image).
//     forward          y[co][p]       = sum_t w[co][t] * xq[co/mult][tap_t + p]
//     backward-input   gxq[ci][ph][r] = sum_{j < mult} sum_{t in phase ph} w[ci*mult+j][t] * gy[ci*mult+j][r - shift_t]
//   (the gather form of the adjoint: each gx element is written once, no scatter); backward-weight is the
//   general kernel's dot-product form. A step holds `block` vectors: several independent FMA chains.
// - The channel path: L = lanes<T> planes side by side, pixel-major (one vector = one pixel of L planes), so
//   each term is one FMA of per-lane weights whatever the plane's size, stride or dilation; for many planes
//   (MobileNet's and EfficientNet's layers, 112x112 down to 2x2), in bands of rows that fit in L2 (output rows;
//   backward-input's of gx rows).
//     forward          y[q][o]        = bias + sum_t w[t] * xp[q][first(o) + tap_t]   (xp zero-padded)
//     backward-input   gx[q][a + s*u] = sum_{j < mult} sum_{t in phase a} w[t] * gyp[j][u + r_t]
//     backward-weight  gw[c][t]       = sum_n sum_o gy[n][c][o] * xp[n][c][first(o) + tap_t]
#include <algorithm>
#include <utility>
#include <vector>

#include <omp.h>

#include "../common/reference.h"
#include "conv_layout.h"
#include "gemm.h"
#include "kernels.h"
#include "workspace.h"

namespace convlab::cpu {

namespace {

constexpr int block = 4;

// out[r + v*lanes] for v < block = sum over (weight, source) pairs of weight * src[r + v*lanes].
template <class T>
inline void weighted_sum_step(const T* const* src, const T* weight, int64_t terms, int64_t r, T* out) {
  constexpr int L = lanes<T>;
  Vec<T> acc[block] = {};
  for (int64_t t = 0; t < terms; t++) {
    T wt = weight[t];
    for (int v = 0; v < block; v++) acc[v] += wt * load(src[t] + r + v * L);
  }
  for (int v = 0; v < block; v++) store(out + r + v * L, acc[v]);
}

// One task per (image, input channel, band of output rows): the band's phased rows are built in the
// thread's buffer, then each of its `mult` output channels is computed on the extended grid and compacted
// into y. A band is the conv of the same plane with pad_top moved down by the rows above it; fewer planes
// than threads (cl.signal's one image) are cut into bands so that every thread gets work.
template <class T>
void forward_planes(const T* x, const T* w, const T* bias, const ConvParams& p, T* y) {
  const int64_t taps = p.kh * p.kw, mult = p.c_out / p.c_in, step = block * lanes<T>, planes = p.n * p.c_in;
  const int64_t threads = omp_get_max_threads();
  const int64_t bands = planes >= threads ? 1 : std::min(p.oh, (2 * threads + planes - 1) / planes);
  const int64_t band_rows = (p.oh + bands - 1) / bands;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < planes * bands; task++) {
    const int64_t ic = task / bands, o0 = task % bands * band_rows, o1 = std::min(p.oh, o0 + band_rows);
    if (o0 >= o1) continue;
    ConvParams band = p;
    band.pad_top = p.pad_top - o0 * p.stride_h, band.oh = o1 - o0;
    const Phased q = phased(band, /*allow_identity=*/false);  // steps read past np: keep the slack
    const int64_t np_round = (q.np + step - 1) / step * step;  // <= np + 63: inside the plane's slack
    T* xc = scratch<T>(slot_thread, q.chan + np_round);
    T* buf = xc + q.chan;
    build_phased_channel(x + ic * p.h * p.w, xc, band, q);
    std::vector<const T*> src(taps);
    for (int64_t t = 0; t < taps; t++) src[t] = xc + q.tap[t];
    for (int64_t co = ic * mult; co < (ic + 1) * mult; co++) {
      const int64_t c = co % p.c_out;
      for (int64_t r = 0; r < np_round; r += step) weighted_sum_step(src.data(), w + c * taps, taps, r, buf);
      finish_output<T>(buf, y + (co * p.oh + o0) * p.ow, bias ? bias + c : nullptr, 1, 1, band.oh, p.ow, q.wq);
    }
  }
}

// One task per (image, input channel): the `mult` gy planes that read it are laid on the extended grid
// with `front` leading zeros (so r - shift never leaves the row), the phase planes are gathered, and the
// channel is un-phased into gx.
template <class T>
void backward_input_planes(const T* gy, const T* w, const ConvParams& p, T* gx) {
  const Phased q = phased(p, /*allow_identity=*/false);
  const int64_t taps = p.kh * p.kw, mult = p.c_out / p.c_in, step = block * lanes<T>;
  const int64_t phases = q.sh * q.sw, area = q.hq * q.wq, area_round = (area + step - 1) / step * step;
  int64_t front = 0;
  for (int64_t t = 0; t < taps; t++) front = std::max(front, q.tap[t] % q.plane);
  const int64_t row = (front + area_round + 15) / 16 * 16;
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t ic = 0; ic < p.n * p.c_in; ic++) {
    T* planes = scratch<T>(slot_thread, q.chan + mult * row);
    T* gyp = planes + q.chan;
    for (int64_t j = 0; j < mult; j++) {
      T* dst = gyp + j * row;
      const T* src = gy + (ic * mult + j) * p.oh * p.ow;
      std::fill(dst, dst + row, T(0));
      for (int64_t oy = 0; oy < p.oh; oy++) std::copy(src + oy * p.ow, src + (oy + 1) * p.ow, dst + front + oy * q.wq);
    }
    const int64_t ci = ic % p.c_in;
    for (int64_t ph = 0; ph < phases; ph++) {
      std::vector<const T*> src;
      std::vector<T> weight;
      for (int64_t j = 0; j < mult; j++) {
        for (int64_t t = 0; t < taps; t++) {
          if (q.tap[t] / q.plane != ph) continue;
          src.push_back(gyp + j * row + front - q.tap[t] % q.plane);
          weight.push_back(w[(ci * mult + j) * taps + t]);
        }
      }
      T* out = planes + ph * q.plane;
      if (src.empty()) std::fill(out, out + area, T(0));
      else
        for (int64_t r = 0; r < area_round; r += step) weighted_sum_step(src.data(), weight.data(), int64_t(src.size()), r, out);
    }
    unphase_channel(planes, gx + ic * p.h * p.w, p, q);
  }
}

// ---- The channel path -------------------------------------------------------------------------------------
// A task takes up to L consecutive planes (n, c) (a block may span images) and turns them pixel-major
// (xb[pixel][lane]); padding, stride and dilation become index arithmetic on whole pixels. (The plane path
// computes on rows of the extended grid: for planes of a few pixels those are mostly rounding and garbage
// columns, and each plane pays its own setup.)

// Lanes [0, count) of one task: lane l reads plane src[l] (area elements), out[p * L + l] = src[l][p]; the
// other lanes are 0. Whole groups of L pixels go through an L x L register transpose.
template <class T>
void to_pixel_major(const T* const* src, int count, int64_t area, T* out) {
  constexpr int L = lanes<T>;
  int64_t p = 0;
  for (; p + L <= area; p += L) {
    Vec<T> v[L];
    for (int l = 0; l < L; l++) v[l] = l < count ? load(src[l] + p) : Vec<T>{};
    transpose_block<T>(v);
    for (int k = 0; k < L; k++) store(out + (p + k) * L, v[k]);
  }
  for (; p < area; p++)
    for (int l = 0; l < L; l++) out[p * L + l] = l < count ? src[l][p] : T(0);
}

// The inverse for lanes [0, count): dst[l][p] = in[p * L + l].
template <class T>
void from_pixel_major(const T* in, int count, int64_t area, T* const* dst) {
  constexpr int L = lanes<T>;
  int64_t p = 0;
  for (; p + L <= area; p += L) {
    Vec<T> v[L];
    for (int k = 0; k < L; k++) v[k] = load(in + (p + k) * L);
    transpose_block<T>(v);
    for (int l = 0; l < count; l++) store(dst[l] + p, v[l]);
  }
  for (; p < area; p++)
    for (int l = 0; l < count; l++) dst[l][p] = in[p * L + l];
}

// The part of an h x w plane a pass reads: rows [-top, hp - top) and columns [-left, wp - left), 0 outside
// the plane.
struct Window {
  int64_t top, left, hp, wp;
};

// xp (hp x wp pixels) = that window of the pixel-major plane xb (h x w pixels).
template <class T>
void pad_pixels(const T* xb, int64_t h, int64_t w, const Window& win, T* xp) {
  constexpr int L = lanes<T>;
  const int64_t lo = std::clamp<int64_t>(win.left, 0, win.wp), hi = std::clamp<int64_t>(win.left + w, lo, win.wp);
  for (int64_t u = 0; u < win.hp; u++) {
    T* row = xp + u * win.wp * L;
    const int64_t iy = u - win.top;
    if (iy < 0 || iy >= h) {
      std::fill(row, row + win.wp * L, T(0));
      continue;
    }
    std::fill(row, row + lo * L, T(0));
    std::copy(xb + (iy * w + lo - win.left) * L, xb + (iy * w + hi - win.left) * L, row + lo * L);
    std::fill(row + hi * L, row + win.wp * L, T(0));
  }
}

// The terms of one output pixel: weight vector wt[weight[k]] times the input pixel offset[k] elements past
// the pixel's first input.
struct Terms {
  std::vector<int64_t> weight, offset;
  void add(int64_t w, int64_t off) { weight.push_back(w), offset.push_back(off); }
};

// B outputs at once: out[b] = init + sum_k wt[weight_k] * in[b][offset_k] (B independent FMA chains per
// weight loaded).
template <class T, int B>
inline void term_sums(const T* const* in, const Vec<T>* wt, const Terms& terms, Vec<T> init, T* const* out) {
  const int64_t* weight = terms.weight.data();
  const int64_t* offset = terms.offset.data();
  Vec<T> acc[B];
  for (int b = 0; b < B; b++) acc[b] = init;
  for (size_t k = 0; k < terms.weight.size(); k++)
    for (int b = 0; b < B; b++) acc[b] += wt[weight[k]] * load(in[b] + offset[k]);
  for (int b = 0; b < B; b++) store(out[b], acc[b]);
}

// The weight gradient's terms of B outputs: gw[weight_k] += sum_b gy[b] * in[b][offset_k].
template <class T, int B>
inline void term_products(const T* const* in, const Terms& terms, T* const* gy, Vec<T>* gw) {
  const int64_t* weight = terms.weight.data();
  const int64_t* offset = terms.offset.data();
  Vec<T> g[B];
  for (int b = 0; b < B; b++) g[b] = load(gy[b]);
  for (size_t k = 0; k < terms.weight.size(); k++) {
    Vec<T> acc = gw[weight[k]];
    for (int b = 0; b < B; b++) acc += g[b] * load(in[b] + offset[k]);
    gw[weight[k]] = acc;
  }
}

// A rows x cols grid of outputs: output (u, v) reads its terms from in + u * in_row + v * in_col and is at
// out + u * out_row + v * out_col (elements). f(ins, outs, B) takes B outputs: groups of 4 in row-major
// order (across row ends, so small planes keep four chains too), then the last few one by one.
template <class T, class F>
void over_grid(const T* in, int64_t in_row, int64_t in_col, int64_t rows, int64_t cols, T* out, int64_t out_row,
               int64_t out_col, F&& f) {
  const T* ins[4];
  T* outs[4];
  int held = 0;
  for (int64_t u = 0; u < rows; u++)
    for (int64_t v = 0; v < cols; v++) {
      ins[held] = in + u * in_row + v * in_col, outs[held] = out + u * out_row + v * out_col;
      if (++held == 4) f(ins, outs, std::integral_constant<int, 4>{}), held = 0;
    }
  for (int b = 0; b < held; b++) f(ins + b, outs + b, std::integral_constant<int, 1>{});
}

// Forward and backward-weight read x through the window of every tap of every output, with the terms
// w[t] * x[first + tap t] (zeros in the padding are terms, as reference.h's definition has them). Tasks take
// bands of band_rows output rows, so that a band's buffers (its x rows, their window, its outputs) fit in L2.
struct TapWindow {
  int64_t wp, band_rows;
  Terms terms;
};

inline int64_t l2_bytes() {
  static const int64_t l2 = cache_bytes(2, 1 << 20);
  return l2;
}

// Window rows read by `rows` output rows.
inline int64_t window_rows(const ConvParams& p, int64_t rows) { return (rows - 1) * p.stride_h + (p.kh - 1) * p.dil_h + 1; }

template <class T>
TapWindow tap_window(const ConvParams& p) {
  TapWindow tw;
  tw.wp = (p.ow - 1) * p.stride_w + (p.kw - 1) * p.dil_w + 1;
  const int64_t vector = lanes<T> * int64_t(sizeof(T));
  auto bytes = [&](int64_t rows) { return (window_rows(p, rows) * (p.w + tw.wp) + rows * p.ow) * vector; };
  const int64_t per_row = bytes(2) - bytes(1);
  tw.band_rows = std::clamp<int64_t>(1 + (l2_bytes() - bytes(1)) / per_row, 1, p.oh);
  for (int64_t i = 0; i < p.kh; i++)
    for (int64_t j = 0; j < p.kw; j++) tw.terms.add(i * p.kw + j, (i * p.dil_h * tw.wp + j * p.dil_w) * lanes<T>);
  return tw;
}

// Band `index`: output rows [o0, o1), which read x rows [y0, y1) through `win` (its top relative to row y0).
struct Band {
  int64_t o0, o1, y0, y1;
  Window win;
};

Band band(const ConvParams& p, const TapWindow& tw, int64_t index) {
  Band b;
  b.o0 = index * tw.band_rows, b.o1 = std::min(p.oh, b.o0 + tw.band_rows);
  const int64_t first = b.o0 * p.stride_h - p.pad_top, hp = window_rows(p, b.o1 - b.o0);
  b.y0 = std::clamp<int64_t>(first, 0, p.h), b.y1 = std::clamp<int64_t>(first + hp, b.y0, p.h);
  b.win = {b.y0 - first, p.pad_left, hp, tw.wp};
  return b;
}

// xp = the window of band b of lanes [0, count) (lane l's plane at src[l]), via xb (pixel-major x rows).
template <class T>
void band_window(const T* const* src, int count, const ConvParams& p, const Band& b, T* xb, T* xp) {
  const T* rows[lanes<T>];
  for (int l = 0; l < count; l++) rows[l] = src[l] + b.y0 * p.w;
  to_pixel_major(rows, count, (b.y1 - b.y0) * p.w, xb);
  pad_pixels(xb, b.y1 - b.y0, p.w, b.win, xp);
}

// Per-lane weights: wt[t] lane l = w[channel(l) * taps + t] for lanes [0, count), 0 for the others: the
// count weight rows turned tap-major like a plane. (Lane by lane, tap by tap, with a channel's modulo each,
// it took a third of efficientnet's 5x5 forward on 7x7 planes: 25 x 16 scalar stores for 49 outputs.)
template <class T, class Channel>
void lane_weights(const T* w, int count, int64_t taps, Channel channel, Vec<T>* wt) {
  const T* rows[lanes<T>];
  for (int l = 0; l < count; l++) rows[l] = w + channel(l) * taps;
  to_pixel_major(rows, count, taps, reinterpret_cast<T*>(wt));
}

// The pixel-major buffers of one task, carved from the thread's scratch: sizes in vectors.
template <class T>
struct ChannelScratch {
  T* part[5] = {};
  ChannelScratch(std::initializer_list<int64_t> vectors) {
    int64_t total = 0;
    for (int64_t v : vectors) total += v;
    T* at = scratch<T>(slot_thread, total * lanes<T>);
    int i = 0;
    for (int64_t v : vectors) part[i++] = at, at += v * lanes<T>;
  }
  Vec<T>* vectors(int i) const { return reinterpret_cast<Vec<T>*>(part[i]); }
};

// Tasks of L consecutive output planes (n, co) (a block may span images) and one band of output rows:
// y = bias + sum_t w[t] * x over each output's window.
template <class T>
void forward_channels(const T* x, const T* w, const T* bias, const ConvParams& p, T* y) {
  constexpr int L = lanes<T>;
  const TapWindow tw = tap_window<T>(p);
  const int64_t taps = p.kh * p.kw, mult = p.c_out / p.c_in, blocks = (p.n * p.c_out + L - 1) / L;
  const int64_t bands = (p.oh + tw.band_rows - 1) / tw.band_rows, hp = window_rows(p, tw.band_rows);
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < blocks * bands; task++) {
    const int64_t q0 = task / bands * L;
    const Band b = band(p, tw, task % bands);
    const int count = int(std::min<int64_t>(L, p.n * p.c_out - q0));
    ChannelScratch<T> s({hp * p.w, hp * tw.wp, tw.band_rows * p.ow, taps});
    auto channel = [&](int l) { return (q0 + l) % p.c_out; };
    const T* src[L];
    T* dst[L];
    for (int l = 0; l < count; l++) {
      src[l] = x + ((q0 + l) / p.c_out * p.c_in + channel(l) / mult) * p.h * p.w;
      dst[l] = y + (q0 + l) * p.oh * p.ow + b.o0 * p.ow;
    }
    band_window(src, count, p, b, s.part[0], s.part[1]);
    lane_weights(w, count, taps, channel, s.vectors(3));
    Vec<T> bv{};
    for (int l = 0; l < count && bias; l++) bv[l] = bias[channel(l)];
    over_grid(s.part[1], p.stride_h * tw.wp * L, p.stride_w * L, b.o1 - b.o0, p.ow, s.part[2], p.ow * L, L,
              [&](const T* const* in, T* const* out, auto B) { term_sums<T, B>(in, s.vectors(3), tw.terms, bv, out); });
    from_pixel_major(s.part[2], count, (b.o1 - b.o0) * p.ow, dst);
  }
}

// gw[c][t] = sum over images and outputs of gy * x at the output's tap t. A task per block of L output
// channels runs over every image and band, so the sum needs no reduction across threads.
template <class T>
void backward_weight_channels(const T* x, const T* gy, const ConvParams& p, T* gw) {
  constexpr int L = lanes<T>;
  const TapWindow tw = tap_window<T>(p);
  const int64_t taps = p.kh * p.kw, mult = p.c_out / p.c_in;
  const int64_t bands = (p.oh + tw.band_rows - 1) / tw.band_rows, hp = window_rows(p, tw.band_rows);
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < p.c_out; c0 += L) {
    const int count = int(std::min<int64_t>(L, p.c_out - c0));
    ChannelScratch<T> s({hp * p.w, hp * tw.wp, tw.band_rows * p.ow, taps});
    Vec<T>* acc = s.vectors(3);
    std::fill(acc, acc + taps, Vec<T>{});
    for (int64_t n = 0; n < p.n; n++)
      for (int64_t index = 0; index < bands; index++) {
        const Band b = band(p, tw, index);
        const T *src[L], *gsrc[L];
        for (int l = 0; l < count; l++) {
          src[l] = x + (n * p.c_in + (c0 + l) / mult) * p.h * p.w;
          gsrc[l] = gy + (n * p.c_out + c0 + l) * p.oh * p.ow + b.o0 * p.ow;
        }
        band_window(src, count, p, b, s.part[0], s.part[1]);
        to_pixel_major(gsrc, count, (b.o1 - b.o0) * p.ow, s.part[2]);
        over_grid(s.part[1], p.stride_h * tw.wp * L, p.stride_w * L, b.o1 - b.o0, p.ow, s.part[2], p.ow * L, L,
                  [&](const T* const* in, T* const* g, auto B) { term_products<T, B>(in, tw.terms, g, acc); });
      }
    for (int l = 0; l < count; l++)
      for (int64_t t = 0; t < taps; t++) gw[(c0 + l) * taps + t] = acc[t][l];
  }
}

// Backward-input in the gather form, phase by phase along one axis: input position a + stride * u (a <
// stride) is read by the taps i with a + pad - i*dil = stride * r_i, from output u + r_i. Output positions
// outside [0, out) read the zero-padded gy (stand-in zeros: conv_dispatch's NaN redo covers infinite weights).
struct AxisPhases {
  int64_t pad = 0, padded = 0;                                  // gy padded by `pad` in front, `padded` long
  std::vector<int64_t> count;                                   // input positions of phase a
  std::vector<std::vector<std::pair<int64_t, int64_t>>> taps;   // phase a: (tap i, r_i + pad)
};

AxisPhases axis_phases(int64_t size, int64_t out, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  AxisPhases ax;
  const int64_t phases = std::min(stride, size);
  ax.count.resize(phases);
  ax.taps.resize(phases);
  int64_t lo = 0, hi = out;
  for (int64_t a = 0; a < phases; a++) {
    ax.count[a] = (size - a + stride - 1) / stride;
    for (int64_t i = 0; i < k; i++) {
      const int64_t t = a + pad - i * dil;
      if (((t % stride) + stride) % stride != 0) continue;
      const int64_t r = (t - ((t % stride) + stride) % stride) / stride;  // exact: t is a multiple of stride
      ax.taps[a].push_back({i, r});
      lo = std::min(lo, r), hi = std::max(hi, r + ax.count[a]);
    }
  }
  ax.pad = -lo, ax.padded = hi - lo;
  for (auto& list : ax.taps)
    for (auto& tap : list) tap.second += ax.pad;
  return ax;
}

// Backward-input's bands: band_rows rows of gx (a multiple of the row stride, so that every band starts at
// phase 0) read at most gy_rows rows of the zero-padded gy (row r of a phase's taps, shifted by the padding,
// is read from output row u + r). Sized so that a task's buffers (those gy rows, pixel-major and padded per
// multiplier, and the band of gx) fit in L2.
struct GatherBands {
  int64_t band_rows, gy_rows;
};

template <class T>
GatherBands gather_bands(const ConvParams& p, const AxisPhases& rows, const AxisPhases& cols) {
  int64_t r_lo = rows.padded, r_hi = 0;
  for (const auto& list : rows.taps)
    for (auto [i, r] : list) r_lo = std::min(r_lo, r), r_hi = std::max(r_hi, r);
  const int64_t span = std::max<int64_t>(r_hi - r_lo, 0), s = p.stride_h, mult = p.c_out / p.c_in;
  auto gy_rows = [&](int64_t band) { return (band + s - 1) / s + span; };
  auto bytes = [&](int64_t band) {
    return (gy_rows(band) * (p.ow + mult * cols.padded) + band * p.w) * lanes<T> * int64_t(sizeof(T));
  };
  int64_t band = (p.h + s - 1) / s * s;
  while (band > s && bytes(band) > l2_bytes()) band -= std::max<int64_t>(s, (band - s) / s / 8 * s);
  return {band, gy_rows(band)};
}

// Tasks of L consecutive input planes (n, ci) and one band of gx rows: gx phase (a, b) = sum over the mult
// output channels j of each input channel and the taps of the phase of w * gy, the gy rows of the j stacked
// in one buffer.
template <class T>
void backward_input_channels(const T* gy, const T* w, const ConvParams& p, T* gx) {
  constexpr int L = lanes<T>;
  const AxisPhases rows = axis_phases(p.h, p.oh, p.kh, p.stride_h, p.pad_top, p.dil_h);
  const AxisPhases cols = axis_phases(p.w, p.ow, p.kw, p.stride_w, p.pad_left, p.dil_w);
  const GatherBands gb = gather_bands<T>(p, rows, cols);
  const int64_t taps = p.kh * p.kw, mult = p.c_out / p.c_in, planes = p.n * p.c_in;
  const int64_t plane = gb.gy_rows * cols.padded * L, blocks = (planes + L - 1) / L;
  const int64_t bands = (p.h + gb.band_rows - 1) / gb.band_rows;
  std::vector<Terms> phase_terms;
  for (int64_t a = 0; a < int64_t(rows.taps.size()); a++)
    for (int64_t b = 0; b < int64_t(cols.taps.size()); b++) {
      Terms terms;
      for (int64_t j = 0; j < mult; j++)
        for (auto [i, r] : rows.taps[a])
          for (auto [k, c] : cols.taps[b]) terms.add(j * taps + i * p.kw + k, j * plane + (r * cols.padded + c) * L);
      phase_terms.push_back(std::move(terms));
    }
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < blocks * bands; task++) {
    const int64_t q0 = task / bands * L, y0 = task % bands * gb.band_rows, y1 = std::min(p.h, y0 + gb.band_rows);
    const int count = int(std::min<int64_t>(L, planes - q0));
    // Phase row u of this band: gx row a + stride * u for u in [u0, u1[a]); padded gy rows [g_lo, g_hi) read.
    const int64_t u0 = y0 / p.stride_h;
    std::vector<int64_t> u1(rows.taps.size());
    int64_t g_lo = rows.padded, g_hi = 0;
    for (int64_t a = 0; a < int64_t(rows.taps.size()); a++) {
      u1[a] = std::clamp<int64_t>((y1 - a + p.stride_h - 1) / p.stride_h, u0, rows.count[a]);
      for (auto [i, r] : rows.taps[a])
        if (u1[a] > u0) g_lo = std::min(g_lo, u0 + r), g_hi = std::max(g_hi, u1[a] + r);
    }
    g_hi = std::max(g_hi, g_lo);
    // gy rows [y_lo, y_hi) land in the window at row y_lo + pad - g_lo; the rest is padding.
    const int64_t y_lo = std::clamp<int64_t>(g_lo - rows.pad, 0, p.oh), y_hi = std::clamp<int64_t>(g_hi - rows.pad, y_lo, p.oh);
    const Window win = {y_lo + rows.pad - g_lo, cols.pad, g_hi - g_lo, cols.padded};
    ChannelScratch<T> s({gb.gy_rows * p.ow, mult * gb.gy_rows * cols.padded, gb.band_rows * p.w, mult * taps});
    for (int64_t j = 0; j < mult; j++) {
      auto channel = [&](int l) { return (q0 + l) % p.c_in * mult + j; };
      const T* src[L];
      for (int l = 0; l < count; l++) src[l] = gy + (((q0 + l) / p.c_in * p.c_out + channel(l)) * p.oh + y_lo) * p.ow;
      to_pixel_major(src, count, (y_hi - y_lo) * p.ow, s.part[0]);
      pad_pixels(s.part[0], y_hi - y_lo, p.ow, win, s.part[1] + j * plane);
      lane_weights(w, count, taps, channel, s.vectors(3) + j * taps);
    }
    for (int64_t a = 0; a < int64_t(rows.taps.size()); a++)
      for (int64_t b = 0; b < int64_t(cols.taps.size()); b++)
        over_grid(s.part[1] + (u0 - g_lo) * cols.padded * L, cols.padded * L, L, u1[a] - u0, cols.count[b],
                  s.part[2] + ((a + p.stride_h * u0 - y0) * p.w + b) * L, p.stride_h * p.w * L, p.stride_w * L,
                  [&](const T* const* in, T* const* out, auto B) {
                    term_sums<T, B>(in, s.vectors(3), phase_terms[a * cols.taps.size() + b], Vec<T>{}, out);
                  });
    T* dst[L];
    for (int l = 0; l < count; l++) dst[l] = gx + (q0 + l) * p.h * p.w + y0 * p.w;
    from_pixel_major(s.part[2], count, (y1 - y0) * p.w, dst);
  }
}

// The channel path when at least half of a vector's lanes get a plane (`planes` is how many the pass has
// side by side), else the plane path, whose buffers are one plane each.
template <class T>
bool channel_path(int64_t planes) {
  return 2 * planes >= lanes<T>;
}

}  // namespace

void depthwise_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* b = bias ? bias->data<T>() : nullptr;
    if (channel_path<T>(p.n * p.c_out)) forward_channels<T>(x.data<T>(), w.data<T>(), b, p, y.data<T>());
    else forward_planes<T>(x.data<T>(), w.data<T>(), b, p, y.data<T>());
  });
}

void depthwise_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    if (channel_path<T>(p.n * p.c_in)) backward_input_channels<T>(gy.data<T>(), w.data<T>(), p, gx.data<T>());
    else backward_input_planes<T>(gy.data<T>(), w.data<T>(), p, gx.data<T>());
  });
}

void depthwise_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    if (channel_path<T>(p.c_out)) backward_weight_channels<T>(x.data<T>(), gy.data<T>(), p, gw.data<T>());
    else conv_backward_weight(x, gy, p, gw);  // the general kernel's dot-product form
  });
}

}  // namespace convlab::cpu
