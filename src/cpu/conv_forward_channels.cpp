// Convolution forward for few output channels per group (the spec: reference::conv_forward_at in
// common/reference.h), as a direct kernel over the zero-padded input xp with the weight w read per tap k:
//   y[n][g*cog + co][oy][ox] = sum_k xp[n][g*cig + ci][oy*sh + i*dh][ox*sw + j*dw] * w[g*cog + co][k],  k = (ci, i, j)
// in one of two register layouts. Stride 1 (pixel lanes): consecutive outputs of a row-major plane as the
// lanes, a few output channels as the rows of the tile; a vector of the input feeds every row and a weight
// broadcast every vector, over a band of xp laid out flat (row pitch wp), the columns past ow computed and
// dropped. Channel lanes (strides, more than 16 channels a group): output channels in lanes, output pixels
// (real outputs, across images) as the tile's rows, each input element broadcast from where it lies and the
// weight packed as wt[g][k][co]; the outputs in windows of the same live taps, read from x itself and
// skipping the taps in the padding, or, where windows would be many and small, all from xp.
// Either way the input is never packed per output channel: the GEMM path packs B for a few rows of A (c_out
// 1: the pack and the phased copy were ~all of dcgan_d_5's forward) and rounds them up to 8-row strips
// (ResNeXt's 4-32 channels per group).
#include "conv_forward_channels.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "conv_layout.h"
#include "gemm.h"
#include "workspace.h"

namespace convlab::cpu {

namespace {

template <class T>
constexpr int64_t max_lanes = kVecBytes / sizeof(T);

// Rows and columns of the zero-padded input xp: those some output reads, from -pad_top / -pad_left on.
int64_t padded_rows(const ConvParams& p) { return (p.oh - 1) * p.stride_h + (p.kh - 1) * p.dil_h + 1; }
int64_t padded_cols(const ConvParams& p) { return (p.ow - 1) * p.stride_w + (p.kw - 1) * p.dil_w + 1; }

// dst[0, n) = src[0, n), or zeros where src is null, in vectors of Bytes, the last overlapping the one
// before: a band's rows are short (7-58 elements), and memmove / memset calls on them were 17 % of
// resnext50_l2_b1's forward.
template <class T, int Bytes = kVecBytes>
void put_run(T* dst, const T* src, int64_t n) {
  constexpr int64_t L = Bytes / sizeof(T);
  if constexpr (Bytes > 16) {
    if (n < L) return put_run<T, Bytes / 2>(dst, src, n);
  } else if (n < L) {
    for (int64_t i = 0; i < n; i++) dst[i] = src ? src[i] : T(0);
    return;
  }
  Vec<T, Bytes> v = {};
  for (int64_t i = 0;; i += L) {
    const int64_t at = std::min(i, n - L);
    if (src) std::memcpy(&v, src + at, Bytes);
    std::memcpy(dst + at, &v, Bytes);
    if (at == n - L) return;
  }
}

// Row u of one channel's xp (wp elements) from that channel's plane of x.
template <class T>
void pad_row(const T* plane, int64_t u, const ConvParams& p, int64_t wp, T* row) {
  const int64_t iy = u - p.pad_top;
  const int64_t c_lo = std::clamp<int64_t>(p.pad_left, 0, wp), c_hi = std::clamp<int64_t>(p.pad_left + p.w, c_lo, wp);
  if (iy < 0 || iy >= p.h || c_lo > 0 || c_hi < wp) put_run<T>(row, nullptr, wp);
  if (iy >= 0 && iy < p.h) put_run(row + c_lo, plane + iy * p.w + c_lo - p.pad_left, c_hi - c_lo);
}

// Images [0, nn) of x zero-padded into the calling thread's slot_input: xp (nn, c_in, hp, wp).
template <class T>
const T* pad_input(const T* x, int64_t nn, const ConvParams& p) {
  const int64_t hp = padded_rows(p), wp = padded_cols(p), plane = hp * wp;
  T* out = scratch<T>(slot_input, nn * p.c_in * plane);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < nn * p.c_in; nc++)
    for (int64_t u = 0; u < hp; u++) pad_row(x + nc * p.h * p.w, u, p, wp, out + nc * plane + u * wp);
  return out;
}

// p on nn images of its zero-padded input xp: no padding, every tap of every output inside.
ConvParams on_padded(const ConvParams& p, int64_t nn) {
  ConvParams q = p;
  q.n = nn, q.h = padded_rows(p), q.w = padded_cols(p), q.pad_top = q.pad_left = 0;
  return q;
}

// Pixel rows of a tile with V vectors of output channels: as many as leave registers for the V weight
// vectors and a broadcast, but at most 12, since each row keeps its own input pointer in a general-purpose
// register.
template <int V>
constexpr int tile_rows = std::min(12, (kVecRegisters - V - 1) / V);

// The tile's channel vectors for cog output channels: V full vectors, or one, the narrowest that holds them
// (a 256-bit FMA does as many useful lanes per cycle as a 512-bit one half empty).
struct TileShape {
  int bytes, v;
};
template <class T>
TileShape tile_shape(int64_t cog) {
  constexpr int64_t L = max_lanes<T>;
  if (cog > L) return {kVecBytes, cog > 2 * L ? 3 : 2};
  int bytes = 16;
  while (bytes < kVecBytes && bytes / int64_t(sizeof(T)) < cog) bytes *= 2;
  return {bytes, 1};
}

// Rows [r0, r0 + lanes) and columns [c0, c0 + lanes) of the matrix src (row stride ld, `cols` columns, zero
// past the last), transposed: v[c][r] = src[r0 + r][c0 + c].
template <class T>
void transposed_block(const T* src, int64_t ld, int64_t cols, int64_t r0, int64_t c0, Vec<T>* v) {
  constexpr int64_t L = lanes<T>;
  const int64_t cn = std::min(L, cols - c0);
  for (int64_t r = 0; r < L; r++) {
    v[r] = Vec<T>{};
    if (cn == L) v[r] = load(src + (r0 + r) * ld + c0);
    else std::memcpy(&v[r], src + (r0 + r) * ld + c0, cn * sizeof(T));
  }
  transpose_block<T>(v);
}

// wt[g][k][lane] = w[g*cog + lane][k] for lane < cog, 0 up to `width` lanes: whole vectors of channels in
// lanes x lanes blocks of w transposed in registers (the scalar transposed copy was 8 % of resnext50_l4_b1's
// forward), the lanes past the last whole vector element by element (dcgan_d_5's one channel: a transposed
// block would be 15 rows of zeros); then wt[groups*K + g*width + lane] = bias[g*cog + lane], 0 past cog or
// without a bias: the tiles' first values.
template <class T>
void pack_weight(const T* w, const T* bias, const ConvParams& p, int64_t width, T* wt) {
  constexpr int64_t L = lanes<T>;
  const int64_t cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw, whole = cog / L * L;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < p.groups; g++) {
    const T* wg = w + g * cog * K;
    T* dst = wt + g * K * width;
    if (cog < width) std::fill(dst, dst + K * width, T(0));
    for (int64_t c0 = 0; c0 < whole; c0 += L)
      for (int64_t k0 = 0; k0 < K; k0 += L) {
        Vec<T> v[L];
        transposed_block(wg, K, K, c0, k0, v);
        for (int64_t k = 0; k < std::min(L, K - k0); k++) store(dst + (k0 + k) * width + c0, v[k]);
      }
    for (int64_t lane = whole; lane < cog; lane++)
      for (int64_t k = 0; k < K; k++) dst[k * width + lane] = wg[lane * K + k];
    T* b = wt + p.groups * K * width + g * width;
    for (int64_t lane = 0; lane < width; lane++) b[lane] = bias && lane < cog ? bias[g * cog + lane] : T(0);
  }
}

// Outputs along one axis in runs [o0, o1) whose taps inside x are the same, kernel indices [lo, hi): on
// 7x7 with a 3x3 kernel and padding 1, rows {0}, {1..5}, {6}.
struct TapRun {
  int64_t o0, o1, lo, hi;
};
std::vector<TapRun> tap_runs(int64_t out, int64_t stride, int64_t pad, int64_t dil, int64_t k, int64_t in) {
  std::vector<TapRun> runs;
  for (int64_t o = 0; o < out; o++) {
    int64_t lo, hi;
    in_range(o * stride - pad, dil, in, k, lo, hi);
    if (runs.empty() || runs.back().lo != lo || runs.back().hi != hi) runs.push_back({o, o + 1, lo, hi});
    else runs.back().o1 = o + 1;
  }
  return runs;
}

// A window: the outputs of one row run and one column run, whose taps all land inside x, so that its tiles
// read x in place and skip the taps in the padding (7x7, 3x3, padding 1: 18 % of the tap-output products).
// Its live k = (ci, i, j), in that order (a channel's taps share cache lines), as pairs {x offset from a row's
// first live tap, wt offset}: one table walk, as long as all of K (runs along channels or kernel columns,
// with their own loop each, left 8 % of deepspeech2_conv2's forward in the loops' ends and spilled steps).
struct Window {
  TapRun rows, cols;
  std::vector<int64_t> k_off;
};
std::vector<Window> windows(const ConvParams& p, int64_t width) {
  const int64_t cig = p.c_in_per_group(), chan = p.h * p.w, row = p.dil_h * p.w, col = p.dil_w, kw = p.kw, taps = p.kh * p.kw;
  std::vector<Window> all;
  for (const TapRun& r : tap_runs(p.oh, p.stride_h, p.pad_top, p.dil_h, p.kh, p.h))
    for (const TapRun& c : tap_runs(p.ow, p.stride_w, p.pad_left, p.dil_w, p.kw, p.w)) {
      Window win{r, c, std::vector<int64_t>(2 * cig * (r.hi - r.lo) * (c.hi - c.lo))};
      int64_t* k = win.k_off.data();
      for (int64_t ci = 0; ci < cig; ci++)
        for (int64_t i = r.lo; i < r.hi; i++)
          for (int64_t j = c.lo; j < c.hi; j++, k += 2) {
            k[0] = ci * chan + (i - r.lo) * row + (j - c.lo) * col;
            k[1] = (ci * taps + i * kw + j) * width;
          }
      all.push_back(std::move(win));
    }
  return all;
}

// out[i][lane] = bias[lane] + sum over the window's live k of x[row[i] + x_off(k)] * wt[w_off(k) + lane] for
// the MR pixel rows of a tile: the MR x V accumulators stay in registers over all of them, each broadcast
// feeding V FMAs. Not inlined: inside its callers' loops, the values live across it left the k loop five
// row pointers reloaded from the stack a step (deepspeech2_conv2's forward 5 % slower than with the padded
// copy's old loop).
template <class T, int Bytes, int V, int MR>
__attribute__((noinline)) void channel_tile(const T* const* row, const Window& win, const T* wt, const T* bias,
                                            T* const* out) {
  using VT = Vec<T, Bytes>;
  constexpr int L = Bytes / sizeof(T);
  const T* xr[MR];
  for (int i = 0; i < MR; i++) xr[i] = row[i];
  VT acc[MR][V];
  for (int v = 0; v < V; v++) {
    VT b;
    std::memcpy(&b, bias + v * L, Bytes);
    for (int i = 0; i < MR; i++) acc[i][v] = b;
  }
  const int64_t* const end = win.k_off.data() + win.k_off.size();
  for (const int64_t* k = win.k_off.data(); k != end; k += 2) {
    const int64_t o = k[0];
    VT b[V];
    for (int v = 0; v < V; v++) std::memcpy(&b[v], wt + k[1] + v * L, Bytes);
    for (int i = 0; i < MR; i++) {
      const T a = xr[i][o];
      for (int v = 0; v < V; v++) acc[i][v] += a * b[v];
    }
  }
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < V; v++) std::memcpy(out[i] + v * L, &acc[i][v], Bytes);
}

// channel_tile on the fewest of MR/6, 2MR/6, ..., MR rows (rounded up) that hold `rows`, the rows past `rows`
// repeating the last: a window's last tile, or a small window (the 8 corner outputs of 8 images run 8 rows,
// not 12; deepspeech2's 1-output corner windows 2).
template <class T, int Bytes, int V, int MR, int Part = 1>
void channel_tile_for(int rows, const T* const* row, const Window& win, const T* wt, const T* bias, T* const* out) {
  constexpr int M = (MR * Part + 5) / 6;
  if constexpr (Part < 6)
    if (rows > M) return channel_tile_for<T, Bytes, V, MR, Part + 1>(rows, row, win, wt, bias, out);
  channel_tile<T, Bytes, V, M>(row, win, wt, bias, out);
}

// The tiles of window `win` on output rows [oy0, oy1) of nn images of one group (x at its first image and
// channel), MR outputs each counted image by image, row-major inside one: their outputs go to buf
// (image, row - band0, column, lane; `plane` outputs an image, `width` lanes each), a tile row's vectors whole.
template <class T, int Bytes, int V>
void window_tiles(const T* x, const ConvParams& p, const Window& win, int64_t oy0, int64_t oy1, int64_t nn,
                  int64_t band0, const T* wt, const T* bias, T* buf, int64_t plane) {
  constexpr int MR = tile_rows<V>;
  constexpr int64_t width = V * (Bytes / sizeof(T));
  const int64_t chan = p.h * p.w;
  const int64_t ww = win.cols.o1 - win.cols.o0, count = nn * (oy1 - oy0) * ww;
  const bool live = win.rows.lo < win.rows.hi && win.cols.lo < win.cols.hi;
  for (int64_t r0 = 0; r0 < count; r0 += MR) {
    const int rows = int(std::min<int64_t>(MR, count - r0));
    const T* row[MR];
    T* out[MR];
    int64_t n = r0 / ((oy1 - oy0) * ww), oy = oy0 + r0 % ((oy1 - oy0) * ww) / ww, ox = win.cols.o0 + r0 % ww;
    for (int i = 0; i < MR; i++) {
      // Rows of a window without live taps are never read: they point at x.
      const int64_t iy = live ? oy * p.stride_h - p.pad_top + win.rows.lo * p.dil_h : 0;
      const int64_t ix = live ? ox * p.stride_w - p.pad_left + win.cols.lo * p.dil_w : 0;
      row[i] = x + n * p.c_in * chan + iy * p.w + ix;
      out[i] = buf + (n * plane + (oy - band0) * p.ow + ox) * width;
      if (i + 1 >= rows) continue;  // rows past the tile's repeat its last
      if (++ox == win.cols.o1) {
        ox = win.cols.o0;
        if (++oy == oy1) oy = oy0, n++;
      }
    }
    channel_tile_for<T, Bytes, V, MR>(rows, row, win, wt, bias, out);
  }
}

// Images and output rows per task: whole images where one image's outputs fill at most 1/16 of L2 (64
// KiB), as many as fit, so that the windows' tiles run across images (resnext50_l4's 7x7: all 8); else
// bands of one image's rows that fit, so that consecutive tiles share their input rows (densenet121_d1's
// 56x56 in bands across 8 images: x of a band outgrew L2, 1.11 -> 1.27 of PyTorch's time). The tiles'
// stores stay in that buffer, then go to y in transposed blocks: scattered straight into y, they were 20 % of
// resnext50_l4_b1's forward (ahead of the next tile's loads from x, 4 KiB apart from them, or missing the
// cache). Several threads get 4 tasks each: fewer rows a band, then fewer images.
struct TaskBlock {
  int64_t images, rows;
};
template <class T>
TaskBlock task_block(const ConvParams& p) {
  const int64_t threads = omp_get_max_threads(), tasks = threads > 1 ? 4 * threads : 1;
  const int64_t fit = std::max<int64_t>(1, cache_bytes(2, 1 << 20) / 16 / (p.c_out_per_group() * p.ow * int64_t(sizeof(T))));
  int64_t images = std::clamp<int64_t>(fit / p.oh, 1, p.n), rows = std::clamp<int64_t>(fit, 1, p.oh);
  const int64_t chunks = (p.n + images - 1) / images, bands = (tasks + p.groups * chunks - 1) / (p.groups * chunks);
  rows = std::min(rows, (p.oh + bands - 1) / bands);
  if (p.groups * chunks * ((p.oh + rows - 1) / rows) < tasks)
    images = std::clamp<int64_t>(p.n * p.groups * ((p.oh + rows - 1) / rows) / tasks, 1, images);
  return {images, rows};
}

// Channels [0, cog) of y (channel stride pix) on `plane` outputs from buf's rows of `width` lanes, one an
// output, in lanes x lanes blocks transposed in registers (buf holds lanes rows past the last). The tiles'
// 32 scalar stores a row, into buf laid out as y, were 6 % of resnext50_l4_b1's forward.
template <class T>
void store_transposed(const T* buf, int64_t plane, int64_t width, int64_t cog, int64_t pix, T* y) {
  constexpr int64_t L = lanes<T>;
  for (int64_t p0 = 0; p0 < plane; p0 += L)
    for (int64_t c0 = 0; c0 < cog; c0 += L) {
      Vec<T> v[L];
      transposed_block(buf, width, width, p0, c0, v);
      for (int64_t c = 0; c < std::min(L, cog - c0); c++) {
        if (plane - p0 >= L) store(y + (c0 + c) * pix + p0, v[c]);
        else put_run(y + (c0 + c) * pix + p0, reinterpret_cast<const T*>(&v[c]), plane - p0);
      }
    }
}

// y from x read in place: tasks (group, images, band of output rows) run the tiles of every window on their
// outputs into the thread's buffer, then copy it out.
template <class T, int Bytes, int V>
void forward_tiles(const T* x, const T* wt, const ConvParams& p, const std::vector<Window>& wins, T* y) {
  constexpr int64_t width = V * (Bytes / sizeof(T));
  const int64_t cig = p.c_in_per_group(), cog = p.c_out_per_group(), K = cig * p.kh * p.kw, pix = p.oh * p.ow;
  const TaskBlock b = task_block<T>(p);
  const int64_t chunks = (p.n + b.images - 1) / b.images, bands = (p.oh + b.rows - 1) / b.rows;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < p.groups * chunks * bands; t++) {
    const int64_t g = t / (chunks * bands), n0 = t / bands % chunks * b.images, oy0 = t % bands * b.rows;
    const int64_t nn = std::min(b.images, p.n - n0), oy1 = std::min(oy0 + b.rows, p.oh), plane = (oy1 - oy0) * p.ow;
    T* buf = scratch<T>(slot_thread, (nn * plane + lanes<T>) * width);
    for (const Window& win : wins) {
      const int64_t r0 = std::max(win.rows.o0, oy0), r1 = std::min(win.rows.o1, oy1);
      if (r0 < r1)
        window_tiles<T, Bytes, V>(x + (n0 * p.c_in + g * cig) * p.h * p.w, p, win, r0, r1, nn, oy0, wt + g * K * width,
                                  wt + p.groups * K * width + g * width, buf, plane);
    }
    for (int64_t i = 0; i < nn; i++)
      store_transposed(buf + i * plane * width, plane, width, cog, pix, y + ((n0 + i) * p.c_out + g * cog) * pix + oy0 * p.ow);
  }
}

// Entries of the windows' tables, live k summed over the windows: cig x (sum of the row runs' live kernel
// rows) x (the same for columns); the in-place path keeps them at most kMaxTablePairs (1 MiB: deepspeech2_conv2's
// 21x11 kernel has 21 x 11 windows of up to 7392 live k, which its padded copy runs as one).
constexpr int64_t kMaxTablePairs = int64_t(1) << 16;
int64_t table_pairs(const ConvParams& p) {
  int64_t rows = 0, cols = 0;
  for (const TapRun& r : tap_runs(p.oh, p.stride_h, p.pad_top, p.dil_h, p.kh, p.h)) rows += r.hi - r.lo;
  for (const TapRun& c : tap_runs(p.ow, p.stride_w, p.pad_left, p.dil_w, p.kw, p.w)) cols += c.hi - c.lo;
  return p.c_in_per_group() * rows * cols;
}

// Tile rows x k steps the tasks of p run in one group: each window's outputs in a task rounded up to half
// tiles (a tile of fewer rows loads its weights for fewer FMAs), times its live k.
template <class T, int V>
int64_t tile_steps(const ConvParams& p) {
  constexpr int64_t half = tile_rows<V> / 2;
  const TaskBlock b = task_block<T>(p);
  const std::vector<TapRun> row_runs = tap_runs(p.oh, p.stride_h, p.pad_top, p.dil_h, p.kh, p.h);
  const std::vector<TapRun> col_runs = tap_runs(p.ow, p.stride_w, p.pad_left, p.dil_w, p.kw, p.w);
  int64_t steps = 0;
  for (int64_t n0 = 0; n0 < p.n; n0 += b.images)
    for (int64_t oy0 = 0; oy0 < p.oh; oy0 += b.rows)
      for (const TapRun& r : row_runs)
        for (const TapRun& c : col_runs) {
          const int64_t rows = std::min({r.o1, oy0 + b.rows, p.oh}) - std::max(r.o0, oy0);
          const int64_t count = std::min(b.images, p.n - n0) * std::max<int64_t>(rows, 0) * (c.o1 - c.o0);
          steps += (count + half - 1) / half * half * p.c_in_per_group() * (r.hi - r.lo) * (c.hi - c.lo);
        }
  return steps;
}

// x in place where its windows take fewer steps than one window over the zero-padded copy xp, whose
// elements cost about 2 cycles each to copy (a step: V FMAs), and their tables stay small (kernels of a few
// taps). ResNeXt stage 4's 7x7 at batch 8: 3036 vs 3564 steps a group, plus the copy; deepspeech2_conv2
// (21x11 kernel on 81x50, batch 1): its 1-output corner windows make the padded copy cheaper (in place:
// 1.24-1.38 of PyTorch's time vs 1.13-1.17).
template <class T, int Bytes, int V>
void forward_shape(const T* x, const T* w, const T* bias, const ConvParams& p, T* y) {
  constexpr int64_t width = V * (Bytes / sizeof(T));
  T* wt = scratch<T>(slot_columns, p.groups * (p.c_in_per_group() * p.kh * p.kw + 1) * width);
  pack_weight(w, bias, p, width, wt);
  const int64_t image = p.c_in * padded_rows(p) * padded_cols(p);
  const ConvParams q = on_padded(p, p.n);
  const int64_t in_place = tile_steps<T, V>(p), padded = tile_steps<T, V>(q) + 2 * p.n * image / (V * p.groups);
  if (in_place <= padded && table_pairs(p) <= kMaxTablePairs) return forward_tiles<T, Bytes, V>(x, wt, p, windows(p, width), y);
  const std::vector<Window> one = windows(q, width);
  const int64_t chunk = std::max<int64_t>(1, std::min(p.n, kWorkspaceElements / std::max<int64_t>(image, 1)));
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    forward_tiles<T, Bytes, V>(pad_input(x + n0 * p.c_in * p.h * p.w, nn, p), wt, on_padded(p, nn), one,
                               y + n0 * p.c_out * p.oh * p.ow);
  }
}

// Vectors of outputs per tile row with R output channels: as many as leave registers for their input
// vectors and a broadcast, at most 6.
template <int R>
constexpr int pixel_vectors = std::clamp((kVecRegisters - 4) / (R + 1), 1, 6);

// y[r][q*L + l] = bias[r] + sum_k x[q*L + l + koff[k]] * w[r*K + k] for the R x P vectors of the tile: each
// input vector feeds R FMAs, each weight broadcast P, the accumulators stay in registers over all of K.
template <class T, int R, int P>
void pixel_tile(const T* x, const int64_t* koff, int64_t K, const T* w, const T* bias, T* y, int64_t ldy) {
  constexpr int L = lanes<T>;
  Vec<T> acc[R][P];
  for (int r = 0; r < R; r++)
    for (int q = 0; q < P; q++) acc[r][q] = Vec<T>{} + (bias ? bias[r] : T(0));
  for (int64_t k = 0; k < K; k++) {
    const T* xk = x + koff[k];
    Vec<T> a[P];
    for (int q = 0; q < P; q++) a[q] = load(xk + q * L);
    for (int r = 0; r < R; r++) {
      const T b = w[r * K + k];
      for (int q = 0; q < P; q++) acc[r][q] += a[q] * b;
    }
  }
  for (int r = 0; r < R; r++)
    for (int q = 0; q < P; q++) store(y + r * ldy + q * L, acc[r][q]);
}

// The last tile of a band on p of its P vectors, the fewest that cover its outputs (resnext50_l3_b1's 14x14
// band: 222 flat outputs, 240 in whole tiles of 48, 224 with a 2-vector tail).
template <class T, int R, int P>
void pixel_tail(int p, const T* x, const int64_t* koff, int64_t K, const T* w, const T* bias, T* y, int64_t ldy) {
  if constexpr (P > 1)
    if (p < P) return pixel_tail<T, R, P - 1>(p, x, koff, K, w, bias, y, ldy);
  pixel_tile<T, R, P>(x, koff, K, w, bias, y, ldy);
}

// The `flat` outputs of R channels over a band's flat xp, into yb (R rows of ldy).
template <class T, int R>
void pixel_rows(const T* xb, const int64_t* koff, int64_t K, const T* w, const T* bias, int64_t flat, T* yb,
                int64_t ldy) {
  constexpr int L = lanes<T>, P = pixel_vectors<R>;
  int64_t f = 0;
  for (; f + P * L <= flat; f += P * L) pixel_tile<T, R, P>(xb + f, koff, K, w, bias, yb + f, ldy);
  if (f < flat) pixel_tail<T, R, P>(int((flat - f + L - 1) / L), xb + f, koff, K, w, bias, yb + f, ldy);
}

// pixel_rows for r (1-8) channels.
template <class T>
void pixel_rows(int r, const T* xb, const int64_t* koff, int64_t K, const T* w, const T* bias, int64_t flat, T* yb,
                int64_t ldy) {
  switch (r) {
    case 1: return pixel_rows<T, 1>(xb, koff, K, w, bias, flat, yb, ldy);
    case 2: return pixel_rows<T, 2>(xb, koff, K, w, bias, flat, yb, ldy);
    case 3: return pixel_rows<T, 3>(xb, koff, K, w, bias, flat, yb, ldy);
    case 4: return pixel_rows<T, 4>(xb, koff, K, w, bias, flat, yb, ldy);
    case 5: return pixel_rows<T, 5>(xb, koff, K, w, bias, flat, yb, ldy);
    case 6: return pixel_rows<T, 6>(xb, koff, K, w, bias, flat, yb, ldy);
    case 7: return pixel_rows<T, 7>(xb, koff, K, w, bias, flat, yb, ldy);
    default: return pixel_rows<T, 8>(xb, koff, K, w, bias, flat, yb, ldy);
  }
}

// One channel's xp in q's stride-phased layout (conv_layout.h) from that channel's plane of x: its padded rows
// whole into `rows` (pad_row, row_width(q) elements each), then for each phase (a, b) every sw-th element
// from b on. Stride 2 runs in whole vectors, each row's last one spilling into the next row's place (rows go
// in order, the plane's slack takes the last row's): element by element, build_phased_channel's tails were
// 28 % of resnext50_l3_b0's forward (14 of its 15 columns). All rows are padded before any is split: read
// right after its store at another offset, a row waited on store forwarding (24 %).
template <class T>
int64_t row_width(const Phased& q) {
  return ((q.wq + lanes<T> - 1) / lanes<T> * lanes<T> + 1) * q.sw;
}
template <class T>
void phase_channel(const T* plane, const ConvParams& p, const Phased& q, T* rows, T* out) {
  constexpr int64_t L = lanes<T>;
  const int64_t width = row_width<T>(q);
  for (int64_t u = 0; u < q.hq * q.sh; u++) pad_row(plane, u, p, width, rows + u * width);
  for (int64_t ab = 0; ab < q.sh * q.sw; ab++) {
    if (!q.used[ab]) continue;
    const int64_t a = ab / q.sw, b = ab % q.sw;
    T* dst = out + ab * q.plane;
    for (int64_t u = 0; u < q.hq; u++, dst += q.wq) {
      const T* row = rows + (u * q.sh + a) * width + b;
      if (q.sw == 1) put_run(dst, row, q.wq);
      else if (q.sw == 2)
        for (int64_t v = 0; v < q.wq; v += L) store(dst + v, even_lanes<T>(load(row + 2 * v), load(row + 2 * v + L)));
      else
        for (int64_t v = 0; v < q.wq; v++) dst[v] = row[v * q.sw];
    }
    std::fill(out + ab * q.plane + q.hq * q.wq, out + (ab + 1) * q.plane, T(0));
  }
}

// Output rows per band at stride 1: few enough that a band's xp (cig channels of its rows plus the kernel's
// reach) sits in a quarter of L2, and that images x groups x bands make 8 tasks a thread.
int64_t band_rows(const ConvParams& p, int64_t elem) {
  const int64_t reach = (p.kh - 1) * p.dil_h, wp = padded_cols(p);
  const int64_t fit = cache_bytes(2, 1 << 20) / 4 / (p.c_in_per_group() * wp * elem) - reach;
  const int64_t bands = (8 * omp_get_max_threads() + p.n * p.groups - 1) / (p.n * p.groups);
  return std::clamp<int64_t>(std::min(fit, (p.oh + bands - 1) / bands), 1, p.oh);
}

// Tasks (image, group, band of output rows) lay their band of the input out as a flat grid of row pitch
// q.wq in the thread's buffer, where every tap reads one contiguous run: at stride 1 the padded rows
// (pad_row), with strides the whole planes of the group's channels split into stride phases
// (phase_channel; one band). The channels run in chunks of at most 8 tile rows (cog 12: 6 + 6), each
// chunk's rows copied out of the flat grid.
template <class T>
void forward_pixels(const T* x, const T* w, const T* bias, const ConvParams& p, T* y) {
  constexpr int64_t L = lanes<T>;  // a band's last tile reads and writes past its flat outputs by less
  const Phased q = phased(p, false);
  const bool strided = q.sh * q.sw > 1;
  const int64_t cig = p.c_in_per_group(), cog = p.c_out_per_group(), taps = p.kh * p.kw, K = cig * taps;
  const int64_t wq = q.wq, b = strided ? p.oh : band_rows(p, sizeof(T)), bands = (p.oh + b - 1) / b;
  const int64_t rows = b + (p.kh - 1) * p.dil_h, chan = strided ? q.chan : rows * wq, ldy = (b - 1) * wq + p.ow + L;
  const int64_t chunks = (cog + 7) / 8;
  std::vector<int64_t> koff(K);
  for (int64_t k = 0; k < K; k++) koff[k] = k / taps * chan + q.tap[k % taps];
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < p.n * p.groups * bands; t++) {
    const int64_t n = t / (p.groups * bands), g = t / bands % p.groups, oy0 = t % bands * b;
    const int64_t band = std::min(b, p.oh - oy0), flat = (band - 1) * wq + p.ow;
    T* xb = scratch<T>(slot_thread, cig * chan + L + 8 * ldy + (strided ? q.hq * q.sh * row_width<T>(q) : 0));
    T* yb = xb + cig * chan + L;
    for (int64_t ci = 0; ci < cig; ci++) {
      const T* plane = x + (n * p.c_in + g * cig + ci) * p.h * p.w;
      if (strided) phase_channel(plane, p, q, yb + 8 * ldy, xb + ci * chan);
      else
        for (int64_t u = 0; u < rows; u++) pad_row(plane, oy0 + u, p, wq, xb + ci * chan + u * wq);
    }
    std::fill(xb + cig * chan, yb, T(0));
    for (int64_t c = 0, co0 = 0; c < chunks; c++) {
      const int r = int((cog - co0 + chunks - c - 1) / (chunks - c));
      const int64_t co = g * cog + co0;
      pixel_rows<T>(r, xb, koff.data(), K, w + co * K, bias ? bias + co : nullptr, flat, yb, ldy);
      for (int i = 0; i < r; i++)
        for (int64_t oy = 0; oy < band; oy++)
          put_run(y + ((n * p.c_out + co + i) * p.oh + oy0 + oy) * p.ow, yb + i * ldy + oy * wq, p.ow);
      co0 += r;
    }
  }
}

}  // namespace

// Up to 16 output channels per group take the pixel lanes (perf.md 32-grouped: ResNeXt's grouped 3x3 with 4-16
// channels per group, which the GEMM rounds up to 8-row strips of A over a packed B), unless the image has
// fewer outputs than a B sliver (DCGAN's 4x4 -> 1x1: the channel lanes, no garbage columns). With strides,
// only where a group's phased planes fit a quarter of L2 and images x groups make 16 tasks (one band each).
template <class T>
bool pixel_lanes(const ConvParams& p) {
  if (p.c_out_per_group() > 16 || p.oh * p.ow < gemm_nr<T>) return false;
  if (p.stride_h * p.stride_w == 1) return true;
  const int64_t group = p.c_in_per_group() * phased(p, false).chan * int64_t(sizeof(T));
  return p.n * p.groups >= 16 && group <= cache_bytes(2, 1 << 20) / 4;
}

// Where broadcasting the input beats the GEMM (1-thread CPU time vs PyTorch, perf.md 30-fewcout): where the
// GEMM pays for its phased copy, B pack and whole tiles on little work per image: strides (ResNeXt's grouped
// 3x3/2), outputs of a few tiles per image (4x4 -> 1x1 in DCGAN, ResNeXt stage 4's 7x7), or, with output
// channels filling two or three vectors (each broadcast then feeds 2-3 FMAs), a deep K (DenseNet's 3x3 ->
// 32 on 56x56: K = 1152). On large images with K = 288 (Inception's 3x3 32 -> 32 on 147x147) the GEMM was
// ahead. Never for 1x1 kernels (x is the GEMM's layout already, and a tile's broadcasts would cross K whole
// planes) nor, in the channel lanes, for K < 64 (stems: the tile's transposed store of cog x MR outputs
// outweighs its FMAs); with one vector or less, only below one B sliver of outputs per image.
template <class T>
bool few_out_channels(const ConvParams& p) {
  constexpr int64_t L = max_lanes<T>, nr = gemm_nr<T>;
  const int64_t cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw, pix = p.oh * p.ow;
  if (cog > 3 * L || p.kh * p.kw == 1 || p.n * pix == 0) return false;
  if (pixel_lanes<T>(p)) return true;
  if (K < 64) return false;
  if (p.stride_h * p.stride_w > 1) return true;
  return cog > L ? pix < 4 * nr || K >= 512 : pix < nr;
}

template <class T>
void forward_channels(const T* x, const T* w, const T* bias, const ConvParams& p, T* y) {
  if (pixel_lanes<T>(p)) return forward_pixels(x, w, bias, p, y);
  const TileShape shape = tile_shape<T>(p.c_out_per_group());
  if (shape.v == 3) return forward_shape<T, kVecBytes, 3>(x, w, bias, p, y);
  if (shape.v == 2) return forward_shape<T, kVecBytes, 2>(x, w, bias, p, y);
  if constexpr (kVecBytes > 32)
    if (shape.bytes == 64) return forward_shape<T, 64, 1>(x, w, bias, p, y);
  if constexpr (kVecBytes > 16)
    if (shape.bytes == 32) return forward_shape<T, 32, 1>(x, w, bias, p, y);
  forward_shape<T, 16, 1>(x, w, bias, p, y);
}

template bool few_out_channels<float>(const ConvParams&);
template bool few_out_channels<double>(const ConvParams&);
template void forward_channels<float>(const float*, const float*, const float*, const ConvParams&, float*);
template void forward_channels<double>(const double*, const double*, const double*, const ConvParams&, double*);

}  // namespace convlab::cpu
