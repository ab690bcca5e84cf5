// Convolution backward-weight (the spec: reference::conv_backward_weight_at in common/reference.h) on the
// phased layout (conv_layout.h): gw[co][k] = sum_n,e gy[co][e] * X[k][e].
// With at least 16 output channels per group it is a GEMM over the real outputs, B = X^T packed straight
// from the runs by in-register transposes; with fewer, dot products of gy rows with the runs along the
// extended grid (vectorised along e), where 0 * inf at garbage columns is redone with x masked there.
// Groups of one or two vectors of output channels on small images (ResNeXt) take a third form instead, on
// channel-minor copies of x and gy: broadcast x elements times vectors of gy, summed in registers.
// A kernel whose one window is the whole input is a matrix product with x read in place.
#include <algorithm>
#include <cstring>
#include <vector>

#include <omp.h>

#include "conv_layout.h"
#include "gemm.h"
#include "kernels.h"

namespace convlab::cpu {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- the GEMM form -------------------------------------------------------------------------------------

// The GEMM's B as a packer (PackB): B[j][c] = run c at output j0 + j of a chunk of images (xq, image_step
// apart, ending at `end`), the transposed im2col, packed straight from the runs. An output row is contiguous
// in every run (col_step 1), or every other element (col_step 2: a 1x1 conv's x read in place at stride 2),
// so `lanes` runs at up to `lanes` outputs of one row are that many vector loads (two, and their even lanes)
// and one transpose; loads that overhang the row end (into the run's slack, or the next row or channel of x
// itself when it is read in place) land in rows that are not stored, and stop at `end`.
template <class T>
struct TransposedRuns {
  const T* xq;
  const T* end;
  const int64_t* x_off;
  int64_t image_step, oh, ow, row_step, col_step, j0;
  void operator()(T* buf, int64_t k0, int64_t kc, int64_t n0, int64_t nc) const;
};

// The elements of one vector at p that lie before `end`, zero beyond.
template <class T>
Vec<T> load_until(const T* p, const T* end) {
  if (p + lanes<T> <= end) return load(p);
  Vec<T> v{};
  std::memcpy(&v, p, std::clamp<int64_t>(end - p, 0, lanes<T>) * sizeof(T));
  return v;
}

template <class T>
void TransposedRuns<T>::operator()(T* buf, int64_t k0, int64_t kc, int64_t n0, int64_t nc) const {
  constexpr int L = lanes<T>;
  constexpr int64_t nr = gemm_nr<T>;
  const int64_t pix = oh * ow, first = j0 + k0;
  for (int64_t c0 = 0; c0 < ceil_div(nc, nr) * nr; c0 += L) {
    T* dst = buf + c0 / nr * kc * nr + c0 % nr;
    const int64_t cols = std::clamp<int64_t>(nc - c0, 0, L);
    if (cols == 0) {
      for (int64_t jj = 0; jj < kc; jj++) store(dst + jj * nr, Vec<T>{});
      continue;
    }
    const T* run[L];
    Mask<T> keep;
    for (int c = 0; c < L; c++) {
      run[c] = xq + x_off[n0 + c0 + std::min<int64_t>(c, cols - 1)];
      keep[c] = c < cols ? -1 : 0;
    }
    // Output first + jj is (image i, row oy, column ox), walked row piece by row piece.
    int64_t i = first / pix, oy = first % pix / ow, ox = first % ow;
    for (int64_t jj = 0; jj < kc;) {
      const int64_t e = i * image_step + oy * row_step + ox * col_step, t = std::min({int64_t(L), ow - ox, kc - jj});
      Vec<T> v[L];
      for (int c = 0; c < L; c++)
        v[c] = col_step == 1 ? load_until(run[c] + e, end)
                             : even_lanes<T>(load_until(run[c] + e, end), load_until(run[c] + e + L, end));
      transpose_block<T>(v);
      for (int64_t r = 0; r < t; r++) store(dst + (jj + r) * nr, keep ? v[r] : Vec<T>{});
      jj += t, ox += t;
      if (ox == ow) ox = 0, oy++;
      if (oy == oh) oy = 0, i++;
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
WeightBlocking weight_blocking(int64_t threads, int64_t G, int64_t K, int64_t P, int64_t size) {
  const int64_t want = 4 * threads, slivers = ceil_div(K, gemm_nr<T>);
  // Parts of >= 256 outputs, their copies of gw (size elements each) within the workspace bound.
  const int64_t max_parts = std::max<int64_t>(1, std::min(P / 256, 1 + kWorkspaceElements / size));
  int64_t n_blocks = std::max(ceil_div(slivers * gemm_nr<T>, gemm_sizes<T>().nc), std::min(ceil_div(want, G), slivers / 4));
  int64_t parts = std::clamp<int64_t>(ceil_div(want, G * n_blocks), 1, max_parts);
  if (G * n_blocks * parts < want) n_blocks = std::min(slivers, ceil_div(want, G * parts));
  while (G * n_blocks * parts % threads && parts < max_parts) parts++;
  while (G * n_blocks * parts % threads && n_blocks < slivers) n_blocks++;
  return {slivers, n_blocks, parts};
}

// gw += the parts' partial sums, in a fixed order (bit-identical at a given thread count), a piece at a
// time (unit stride, vectorised).
template <class T>
void add_parts(T* gw, const T* part_buf, int64_t parts, int64_t size) {
  constexpr int64_t piece = 1024;
#pragma omp parallel for schedule(static) if (size * (parts - 1) >= kParallelMin)
  for (int64_t e0 = 0; e0 < size; e0 += piece) {
    const int64_t len = std::min(piece, size - e0);
    for (int64_t s = 1; s < parts; s++) {
      T* __restrict dst = gw + e0;
      const T* __restrict src = part_buf + (s - 1) * size + e0;
      for (int64_t e = 0; e < len; e++) dst[e] += src[e];
    }
  }
}

// Whether to gather gy across images into one row per channel (a copy of c_out*pix elements per image).
// Read in place, one image's outputs end in a partial kc-deep slice, so every image adds the task's whole
// cog x K block of C into gw once more than pix/kc would: gather when those extra C elements outnumber
// the copied ones. (ResNet-18's 4x4 outputs: 16 outputs, then 512 x 4608 C elements loaded and stored.)
template <class T>
bool gather_images(const ConvParams& p, int64_t K) {
  const int64_t pix = p.oh * p.ow, kc = gemm_sizes<T>().kc;
  return p.n > 1 && (ceil_div(pix, kc) * kc - pix) * K > pix * kc;
}

// gy of images [0, nn) as one c_out x nn*pix matrix: row co holds channel co of every image in turn.
template <class T>
const T* grad_output_by_channel(const T* gy, int64_t nn, const ConvParams& p) {
  const int64_t pix = p.oh * p.ow;
  T* out = scratch<T>(slot_output, nn * p.c_out * pix);
#pragma omp parallel for schedule(static)
  for (int64_t co = 0; co < p.c_out; co++)
    for (int64_t i = 0; i < nn; i++) std::copy_n(gy + (i * p.c_out + co) * pix, pix, out + (co * nn + i) * pix);
  return out;
}

// gw[g] = gy_g (cog x P) @ X_g^T (P x K) over the P real outputs, on the GEMM: A is gy, in place (one image
// a segment of the reduction) or gathered (the chunk's images one segment), B the transposed im2col packed
// straight from the runs. Only real outputs enter: no garbage-column NaN. Loop order per task: segments of
// its part's outputs in this chunk, then gemm_block's (panel, kc-deep output slice packed, mc gy rows
// sweeping each sliver MR at a time).
// Whether the GEMM form's packer reads x itself: a 1x1 conv whose outputs all read x (no padding they reach) at
// column stride 1 or 2. ResNet's 1x1/2 downsamples spent ~40 % of their time copying x's even rows and columns
// into the phased layout first.
bool runs_in_x(const ConvParams& p) {
  return p.kh == 1 && p.kw == 1 && p.pad_top == 0 && p.pad_left == 0 && p.stride_w <= 2 &&
         (p.oh - 1) * p.stride_h < p.h && (p.ow - 1) * p.stride_w < p.w;
}

template <class T>
void backward_weight_gemm(const T* x, const T* gy, const ConvParams& p, T* gw) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  const int64_t pix = p.oh * p.ow, P = p.n * pix, size = p.c_out * K;
  // The runs: x's channels at its strides, or the phased copy's runs (one channel of chan elements).
  const bool in_x = runs_in_x(p);
  const Phased q = in_x ? Phased{} : phased(p);
  const int64_t image_step = in_x ? p.c_in * p.h * p.w : p.c_in * q.chan;
  const int64_t row_step = in_x ? p.stride_h * p.w : q.wq, col_step = in_x ? p.stride_w : 1;
  const std::vector<int64_t> x_off = in_x ? strided_offsets(p.c_in, p.h * p.w) : run_offsets(p, q);
  const std::vector<int64_t> c_off = strided_offsets(cog, K);
  const WeightBlocking bl = weight_blocking<T>(omp_get_max_threads(), G, K, P, size);
  T* part_buf = bl.parts > 1 ? scratch<T>(slot_weight, (bl.parts - 1) * size) : nullptr;
  const bool gather = gather_images<T>(p, K);
  const int64_t tasks = G * bl.n_blocks * bl.parts, chunk = std::min(in_x ? p.n : images_per_chunk(p, q),
      gather ? std::max<int64_t>(1, kWorkspaceElements / (p.c_out * pix)) : p.n);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0), first = n0 * pix, last = (n0 + nn) * pix;
    const T* xq = in_x ? x + n0 * p.c_in * p.h * p.w : build_phased<T>(x + n0 * p.c_in * p.h * p.w, nn, p, q);
    // Segment i of the chunk's outputs (seg long) is the matrix a + i*c_out*pix, rows of seg.
    const int64_t seg = gather ? nn * pix : pix;
    const T* a = gather ? grad_output_by_channel<T>(gy + n0 * p.c_out * pix, nn, p) : gy + n0 * p.c_out * pix;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      const int64_t s = t % bl.parts, b = t / bl.parts % bl.n_blocks, g = t / (bl.parts * bl.n_blocks);
      const int64_t s0 = P * s / bl.parts, s1 = P * (s + 1) / bl.parts;  // the outputs part s sums
      const int64_t c0 = bl.slivers * b / bl.n_blocks * gemm_nr<T>;
      const int64_t c1 = std::min(K, bl.slivers * (b + 1) / bl.n_blocks * gemm_nr<T>);
      const Rows<T> out{(s == 0 ? gw : part_buf + (s - 1) * size) + g * cog * K, c_off.data()};
      const int64_t end = std::min(s1, last) - first;  // outputs [.., end) of the chunk are part s's
      for (int64_t lo = std::max(s0, first) - first, hi; lo < end; lo = hi) {
        const int64_t i = lo / seg;
        hi = std::min(end, (i + 1) * seg);
        const PackB<T> pack = TransposedRuns<T>{xq, xq + nn * image_step, x_off.data() + g * K, image_step, p.oh, p.ow,
                                                row_step, col_step, lo};
        const MatrixView<T> ag = row_major(a + i * p.c_out * pix + g * cog * seg + lo - i * seg, cog, hi - lo, seg);
        gemm_block(ag, pack, out, {0, cog, c0, c1}, first + lo > s0 ? Update::add : Update::store);
      }
    }
  }
  if (bl.parts > 1) add_parts(gw, part_buf, bl.parts, size);
}

// ---- one window: a matrix product --------------------------------------------------------------------

// A kernel as large as its input, no leading padding and one output: that output's window is the whole image: X^T's row for
// image i is x's group block of image i itself (K = cig*h*w contiguous elements), so gw_g = gy_g^T @ x_g is
// a matrix product with B read in place (DCGAN's last discriminator layer: 512 x 4x4 -> 1; the GEMM form
// copied x into the phased layout, 6x its size at 4x4, then packed it 16 runs at a time for one output).
bool whole_window(const ConvParams& p) {
  return p.kh == p.h && p.kw == p.w && p.pad_top == 0 && p.pad_left == 0 && p.oh == 1 && p.ow == 1 && p.n > 0;
}

template <class T>
void backward_weight_matmul(const T* x, const T* gy, const ConvParams& p, T* gw) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.h * p.w;
  const std::vector<int64_t> b_off = strided_offsets(p.n, p.c_in * p.h * p.w), c_off = strided_offsets(cog, K);
  const GemmBlocking bl = gemm_blocking<T>(G, cog, K);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < G * bl.m_blocks * bl.n_blocks; task++) {
    const int64_t g = task / (bl.m_blocks * bl.n_blocks), mi = task / bl.n_blocks % bl.m_blocks, ni = task % bl.n_blocks;
    gemm_block(transposed(gy + g * cog, cog, p.n, p.c_out), Rows<const T>{x + g * K, b_off.data()},
               Rows<T>{gw + g * cog * K, c_off.data()}, bl.block(mi, ni, cog, K), Update::store);
  }
}

// ---- the channel-minor form ---------------------------------------------------------------------------

// Groups of half a vector to two vectors of output channels over small outputs (ResNeXt's 8-32 channel groups
// on 7x7 to 28x28): the GEMM form's pack transposes 16 outputs of one row per block, so a 7-wide row used 7 of 16
// (the pack and the stride-phased copy took half the time). Here x and gy are turned channel-minor
// (pixel-major, as NHWC): gt holds a group's outputs, V vectors of channels each, and each task copies the
// zero-padded window of its R input channels, image by image, into a buffer of its own (xt), and gt too
// where it is the group's only task. Then
// gw[co][ci, tap] = sum over the outputs o of gt[o][co] * xt[first(o) + tap][ci] is one FMA of a gy vector
// by a broadcast x element, and R input channels x V vectors of co stay in registers through the whole batch:
// no C reloads, no packing, only real outputs (padding zeros are terms, as in reference.h).
struct ChannelMinor {
  int64_t hp, wp, vl;  // the padded window's rows and columns; gt's row length (V vectors of the tile)
  int64_t pitch;       // elements of a window pixel in xt: the tile's R rows
  int64_t g_image;     // elements of one image's gt (all groups)
};

// The tile: R input channels by V vectors of W bytes of output channels, R x V accumulators, V vectors of gy
// and a broadcast in registers. Groups of at most half a register's lanes (ResNeXt's 8 channels in float32
// on AVX-512) take half-width vectors: the same lanes a cycle where the FMA units are half as wide (Zen 4),
// never fewer than the full width with half its lanes idle.
template <class T, int V, int W>
struct MinorTile {
  static constexpr int lanes = W / int(sizeof(T));
  static constexpr int R = W < kVecBytes ? 8 : V == 1 ? (kVecRegisters >= 32 ? 16 : 8) : (kVecRegisters >= 32 ? 8 : 4);
  static constexpr int U = W < kVecBytes && kVecRegisters >= 32 ? 3 : 1;  // taps of a kernel row per pass
  using Vector = Vec<T, W>;
};

template <class T>
ChannelMinor channel_minor(const ConvParams& p, int64_t vector_lanes, int64_t rows) {
  ChannelMinor m;
  m.hp = (p.oh - 1) * p.stride_h + (p.kh - 1) * p.dil_h + 1;
  m.wp = (p.ow - 1) * p.stride_w + (p.kw - 1) * p.dil_w + 1;
  m.vl = ceil_div(p.c_out_per_group(), vector_lanes) * vector_lanes;
  m.pitch = rows, m.g_image = p.groups * p.oh * p.ow * m.vl;
  return m;
}

// The first n lanes of v at d (whole, half and quarter vectors as single stores).
template <class T>
inline void store_first(T* d, const Vec<T>& v, int n) {
  constexpr int L = lanes<T>;
  if (n == L) store(d, v);
  else if (n == L / 2) std::memcpy(d, &v, L / 2 * sizeof(T));
  else if (n == L / 4) std::memcpy(d, &v, L / 4 * sizeof(T));
  else std::memcpy(d, &v, n * sizeof(T));
}

// Up to L planes (src[c] for c < count, `area` elements each) channel-minor: channel c of pixel j goes to
// dst(j)[c] for c < width (zeros past count), or nowhere where dst(j) is null. Whole groups of L pixels
// through an L x L register transpose.
template <class T, class Dst>
void to_channel_minor(const T* const* src, int count, int64_t area, int width, Dst dst) {
  constexpr int L = lanes<T>;
  int64_t j = 0;
  for (; j + L <= area; j += L) {
    Vec<T> v[L];
    for (int c = 0; c < L; c++) v[c] = c < count ? load(src[c] + j) : Vec<T>{};
    transpose_block<T>(v);
    for (int k = 0; k < L; k++)
      if (T* d = dst(j + k)) store_first(d, v[k], width);
  }
  for (; j < area; j++)
    if (T* d = dst(j))
      for (int c = 0; c < width; c++) d[c] = c < count ? src[c][j] : T(0);
}

// x rows [0, rows) and columns [0, cols) land in the window at (top, left); the rest of it is zeros. at: x pixel
// j (of those rows) -> its window pixel past that corner, -1 outside.
struct WindowPixels {
  int64_t rows, cols, top, left;
  std::vector<int64_t> at;
};

WindowPixels window_pixels(const ConvParams& p, const ChannelMinor& m) {
  WindowPixels w;
  w.rows = std::clamp<int64_t>(m.hp - p.pad_top, 0, p.h);
  w.cols = std::clamp<int64_t>(m.wp - p.pad_left, 0, p.w);
  w.top = std::min(p.pad_top, m.hp), w.left = std::min(p.pad_left, m.wp);
  w.at.resize(w.rows * p.w);
  for (int64_t j = 0; j < w.rows * p.w; j++) w.at[j] = j % p.w < w.cols ? j / p.w * m.wp + j % p.w : -1;
  return w;
}

// xt = the zero-padded window of `count` planes of x (h x w each, plane_step apart), pixel-major with
// m.pitch channels a pixel (zeros past count). Read by one task right after (from L2): a shared copy of all
// windows (ResNeXt's 56x56/2: 26 MB at batch 8) went to memory and back.
template <class T>
void window_channel_minor(const T* x, int64_t plane_step, int64_t count, const ConvParams& p, const ChannelMinor& m,
                          const WindowPixels& px, T* xt) {
  constexpr int L = lanes<T>;
  const int64_t row = m.wp * m.pitch, inner = px.rows * p.w;
  std::fill(xt, xt + px.top * row, T(0));
  for (int64_t u = px.top; u < m.hp; u++) {
    T* r = xt + u * row;
    if (u >= px.top + px.rows) std::fill(r, r + row, T(0));
    else std::fill(r, r + px.left * m.pitch, T(0)), std::fill(r + (px.left + px.cols) * m.pitch, r + row, T(0));
  }
  for (int64_t c0 = 0; c0 < m.pitch; c0 += L) {
    const int n = int(std::clamp<int64_t>(count - c0, 0, L)), width = int(std::min<int64_t>(L, m.pitch - c0));
    const T* src[L];
    for (int c = 0; c < n; c++) src[c] = x + (c0 + c) * plane_step;
    T* corner = xt + (px.top * m.wp + px.left) * m.pitch + c0;
    to_channel_minor(src, n, inner, width, [&](int64_t j) { return px.at[j] < 0 ? nullptr : corner + px.at[j] * m.pitch; });
  }
}

// gg = one group's outputs of one image (its cog planes of gy from gy_g on), pixel-major, m.vl channels a
// pixel (zeros past cog).
template <class T>
void group_grad_channel_minor(const T* gy_g, const ConvParams& p, const ChannelMinor& m, T* gg) {
  constexpr int L = lanes<T>;
  const int64_t cog = p.c_out_per_group(), pix = p.oh * p.ow;
  for (int64_t c0 = 0; c0 < m.vl; c0 += L) {
    const int count = int(std::clamp<int64_t>(cog - c0, 0, L)), width = int(std::min<int64_t>(L, m.vl - c0));
    const T* src[L];
    for (int c = 0; c < count; c++) src[c] = gy_g + (c0 + c) * pix;
    to_channel_minor(src, count, pix, width, [&](int64_t j) { return gg + j * m.vl + c0; });
  }
}

// gt of images [0, nn): every group of every image as above, for tasks that share them.
template <class T>
void grad_output_channel_minor(const T* gy, int64_t nn, const ConvParams& p, const ChannelMinor& m, T* gt) {
  const int64_t G = p.groups, pix = p.oh * p.ow;
#pragma omp parallel for schedule(static)
  for (int64_t ig = 0; ig < nn * G; ig++)
    group_grad_channel_minor(gy + ig * p.c_out_per_group() * pix, p, m, gt + ig * pix * m.vl);
}

// acc (U taps x R x V vectors) += the sums of `rows` output rows of one image for rows ci0 + r of taps
// t..t+U-1 (consecutive columns of the kernel, tap_step apart in the window): gy vectors of the output times
// broadcast x elements of its window. Several taps share each gy vector and keep U*R*V sums in flight
// (8 alone wait on the FMA latency).
template <class T, class Tile, int V, int U>
void channel_minor_tile(const T* xi, const T* gi, int64_t rows, int64_t tap_step, const ConvParams& p,
                        const ChannelMinor& m, typename Tile::Vector* acc) {
  constexpr int R = Tile::R, L = Tile::lanes;
  using Vector = typename Tile::Vector;
  const int64_t row_step = p.stride_h * m.wp * m.pitch, col_step = p.stride_w * m.pitch;
  Vector a[U][R][V];
  for (int u = 0; u < U; u++)
    for (int r = 0; r < R; r++)
      for (int v = 0; v < V; v++) a[u][r][v] = acc[(u * R + r) * V + v];
  for (int64_t oy = 0; oy < rows; oy++) {
    const T* xr = xi + oy * row_step;
    const T* gr = gi + oy * p.ow * m.vl;
    for (int64_t ox = 0; ox < p.ow; ox++) {
      Vector gv[V];
      for (int v = 0; v < V; v++) std::memcpy(&gv[v], gr + ox * m.vl + v * L, sizeof(Vector));
      for (int u = 0; u < U; u++) {
        const T* xs = xr + ox * col_step + u * tap_step;
        for (int r = 0; r < R; r++)
          for (int v = 0; v < V; v++) a[u][r][v] += xs[r] * gv[v];
      }
    }
  }
  for (int u = 0; u < U; u++)
    for (int r = 0; r < R; r++)
      for (int v = 0; v < V; v++) acc[(u * R + r) * V + v] = a[u][r][v];
}

// Output rows per band: the band's window rows (all its taps read) in half of L1d. A whole window of
// ResNeXt's 56x56/2 groups (57x57 pixels of 8 channels, 104 KiB) streamed from L2 once per tap, and the
// tile waited on its broadcasts.
int64_t minor_band(const ConvParams& p, const ChannelMinor& m, int64_t bytes) {
  static const int64_t l1 = cache_bytes(1, 32 << 10);
  const int64_t fit = l1 / 2 / std::max<int64_t>(1, m.wp * m.pitch * bytes);
  return std::clamp<int64_t>((fit - (p.kh - 1) * p.dil_h - 1) / p.stride_h + 1, 1, std::max<int64_t>(1, p.oh));
}

// Rows [ci0, ci0 + R) of group g, every tap: image by image (its window copied into xt, and its gy into gg
// where there is no shared gt) and band by band of
// output rows (the band's window stays in L1 across the taps), each tap's sums kept in acc between bands;
// then gw (+)= them, rows and channels past the group's not stored.
template <class T, class Tile, int V>
void channel_minor_block(const T* x, const T* gy, const T* gt, int64_t nn, const ConvParams& p, const ChannelMinor& m,
                         const WindowPixels& px, int64_t g, int64_t ci0, bool add, typename Tile::Vector* acc, T* xt,
                         T* gg, T* gw) {
  constexpr int R = Tile::R, L = Tile::lanes;
  const int64_t G = p.groups, cig = p.c_in_per_group(), cog = p.c_out_per_group(), taps = p.kh * p.kw;
  const int64_t band = minor_band(p, m, sizeof(T)), plane = p.h * p.w;
  std::fill(acc, acc + taps * R * V, typename Tile::Vector{});
  for (int64_t i = 0; i < nn; i++) {
    window_channel_minor(x + (i * p.c_in + g * cig + ci0) * plane, plane, std::min<int64_t>(R, cig - ci0), p, m, px, xt);
    const int64_t pix = p.oh * p.ow;
    if (!gt) group_grad_channel_minor(gy + (i * p.c_out + g * cog) * pix, p, m, gg);
    const T* gi = gt ? gt + (i * G + g) * pix * m.vl : gg;
    for (int64_t oy = 0; oy < p.oh; oy += band) {
      const T* xb = xt + oy * p.stride_h * m.wp * R;
      const T* gb = gi + oy * p.ow * m.vl;
      const int64_t rows = std::min(band, p.oh - oy), tap_step = p.dil_w * R;
      for (int64_t t = 0; t < taps;) {
        const T* xs = xb + (t / p.kw * p.dil_h * m.wp + t % p.kw * p.dil_w) * R;
        if (t % p.kw + Tile::U <= p.kw) {
          channel_minor_tile<T, Tile, V, Tile::U>(xs, gb, rows, tap_step, p, m, acc + t * R * V);
          t += Tile::U;
        } else {
          channel_minor_tile<T, Tile, V, 1>(xs, gb, rows, tap_step, p, m, acc + t * R * V);
          t++;
        }
      }
    }
  }
  const int64_t K = cig * taps, rows = std::min<int64_t>(R, cig - ci0);
  for (int64_t co = 0; co < cog; co++)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t t = 0; t < taps; t++) {
        T& out = gw[(g * cog + co) * K + (ci0 + r) * taps + t];
        const T v = acc[(t * R + r) * V + co / L][co % L];
        out = add ? out + v : v;
      }
}

template <class T, int V, int W>
void backward_weight_minor(const T* x, const T* gy, const ConvParams& p, T* gw) {
  using Tile = MinorTile<T, V, W>;
  constexpr int R = Tile::R;
  const ChannelMinor m = channel_minor<T>(p, Tile::lanes, R);
  const WindowPixels px = window_pixels(p, m);
  const int64_t G = p.groups, cig = p.c_in_per_group(), taps = p.kh * p.kw, blocks = ceil_div(cig, R);
  const int64_t acc_size = taps * R * V * Tile::lanes, chunk = std::clamp<int64_t>(kWorkspaceElements / m.g_image, 1, p.n);
  const int64_t window = m.hp * m.wp * R;
  // A group's gy read by one task (all its input channels in one block) is copied by that task too, into
  // L2 beside the window (ResNeXt's 8-16-channel groups: 0.85-0.94 -> 0.66-0.81 of PyTorch's time); read
  // by several (DenseNet's 128 input channels: 16 blocks), it is copied once for all (per task: 1.1-1.2x).
  const bool shared_gy = blocks > 1;
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    const T* gyc = gy + n0 * p.c_out * p.oh * p.ow;
    T* gt = shared_gy ? scratch<T>(slot_output, nn * m.g_image) : nullptr;
    if (shared_gy) grad_output_channel_minor<T>(gyc, nn, p, m, gt);
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < G * blocks; task++) {
      T* buf = scratch<T>(slot_thread, acc_size + window + (shared_gy ? 0 : p.oh * p.ow * m.vl));
      channel_minor_block<T, Tile, V>(x + n0 * p.c_in * p.h * p.w, gyc, gt, nn, p, m, px, task / blocks,
                                      task % blocks * R, n0 > 0, reinterpret_cast<typename Tile::Vector*>(buf),
                                      buf + acc_size, buf + acc_size + window, gw);
    }
  }
}

// ---- the taps form ---------------------------------------------------------------------------------------

// One or two vectors of output channels over fewer input channels than the channel-minor tile's rows, with
// many taps (DeepSpeech2's first layer: 1 channel, a 41x11 kernel at stride 2, 32 outputs): the GEMM form
// packed X^T by 16 x 16 transposes of runs whose 50-wide rows filled 50 of 64 columns, for 32 rows of A.
// Here the tile's rows are R taps of the flattened kernel (ci, kh, kw): gw[co][k] = sum over the outputs o
// of gt[o][co] * xw[first(o) + off(k)], a gy vector (gy channel-minor, as the channel-minor form's gt) times
// an element broadcast from a zero-padded copy of x's window, at the tap's offset in it. No pack, no
// transposes, only real outputs (the padding's zeros are terms, as in reference.h).
template <class T>
struct TapTile {
  static constexpr int R1 = kVecRegisters >= 32 ? 24 : 12;  // taps a tile with one vector of channels
};
template <class T, int V>
constexpr int tap_rows = TapTile<T>::R1 / V;

// acc (R taps x V vectors) += the sums over `rows` output rows of one image: xw is the window at the first
// row, gb its gy rows (m.vl channels a pixel), off the taps' offsets in the window.
template <class T, int V>
void tap_tile(const T* xw, const T* gb, int64_t rows, const int64_t* off, const ConvParams& p, const ChannelMinor& m,
              Vec<T>* acc) {
  constexpr int R = tap_rows<T, V>, L = lanes<T>;
  int64_t o[R];
  std::copy_n(off, R, o);
  Vec<T> a[R][V] = {};
  for (int64_t oy = 0; oy < rows; oy++) {
    const T* xr = xw + oy * p.stride_h * m.wp;
    const T* gr = gb + oy * p.ow * m.vl;
    for (int64_t ox = 0; ox < p.ow; ox++) {
      Vec<T> gv[V];
      for (int v = 0; v < V; v++) gv[v] = load(gr + ox * m.vl + v * L);
      const T* xs = xr + ox * p.stride_w;
      for (int r = 0; r < R; r++) {
        const T b = xs[o[r]];
        for (int v = 0; v < V; v++) a[r][v] += b * gv[v];
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) acc[r * V + v] += a[r][v];
}

// xw = the zero-padded windows (m.hp x m.wp) of every channel of images [0, nn) of x.
template <class T>
void windows(const T* x, int64_t nn, const ConvParams& p, const ChannelMinor& m, T* xw) {
  const int64_t cols = std::clamp<int64_t>(m.wp - p.pad_left, 0, p.w), left = std::min(p.pad_left, m.wp);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < nn * p.c_in; c++)
    for (int64_t u = 0; u < m.hp; u++) {
      T* row = xw + (c * m.hp + u) * m.wp;
      const int64_t y = u - p.pad_top;
      std::fill(row, row + m.wp, T(0));
      if (y >= 0 && y < p.h) std::copy_n(x + (c * p.h + y) * p.w, cols, row + left);
    }
}

// Tiles [t0, t1) of group g over the chunk's nn images, band by band of output rows (the band's gy stays in
// L2 across the tiles), every tile's sums kept in acc; then gw (+)= them. A tile sums pieces of whole rows,
// up to 512 outputs, in registers before adding them into acc, as the GEMM form's kc-deep slices do (one
// float32 chain over an image's 10^4 outputs drifted by 3e-4 where the sum is near 0). The tile reads one
// gy vector per V broadcasts and R*V FMAs, which L2 serves at the FMA rate: bands sized to L1d instead (2 of
// DeepSpeech2's 81 rows) took 1.18-1.21 of PyTorch's time, whole images 1.10-1.13.
template <class T, int V>
void tap_block(const T* xw, const T* gt, int64_t nn, const ConvParams& p, const ChannelMinor& m, const int64_t* off,
               int64_t g, int64_t t0, int64_t t1, bool add, Vec<T>* acc, T* gw) {
  constexpr int R = tap_rows<T, V>, L = lanes<T>;
  const int64_t G = p.groups, cig = p.c_in_per_group(), cog = p.c_out_per_group(), K = cig * p.kh * p.kw;
  const int64_t pix = p.oh * p.ow, window = m.hp * m.wp;
  static const int64_t l2 = cache_bytes(2, 1 << 20);
  const int64_t band = std::clamp<int64_t>(l2 / 2 / (p.ow * m.vl * int64_t(sizeof(T))), 1, p.oh);
  const int64_t piece = std::max<int64_t>(1, 512 / p.ow);  // output rows a tile sums in registers
  std::fill(acc, acc + (t1 - t0) * R * V, Vec<T>{});
  for (int64_t i = 0; i < nn; i++) {
    const T* xi = xw + (i * p.c_in + g * cig) * window;
    const T* gi = gt + (i * G + g) * pix * m.vl;
    for (int64_t y0 = 0; y0 < p.oh; y0 += band)
      for (int64_t t = t0; t < t1; t++)
        for (int64_t oy = y0; oy < std::min(p.oh, y0 + band); oy += piece)
          tap_tile<T, V>(xi + oy * p.stride_h * m.wp, gi + oy * p.ow * m.vl, std::min(piece, std::min(p.oh, y0 + band) - oy),
                         off + t * R, p, m, acc + (t - t0) * R * V);
  }
  for (int64_t co = 0; co < cog; co++)
    for (int64_t k = t0 * R; k < std::min(K, t1 * R); k++) {
      T& out = gw[(g * cog + co) * K + k];
      const T v = acc[(k - t0 * R) * V + co / L][co % L];
      out = add ? out + v : v;
    }
}

// Tasks are (group, range of tiles): as many as threads where the groups are fewer, each streaming the
// chunk's gy and windows once for all its tiles.
template <class T, int V>
void backward_weight_taps(const T* x, const T* gy, const ConvParams& p, T* gw) {
  constexpr int R = tap_rows<T, V>;
  const ChannelMinor m = channel_minor<T>(p, lanes<T>, 1);
  const int64_t G = p.groups, cig = p.c_in_per_group(), K = cig * p.kh * p.kw, tiles = ceil_div(K, R);
  const int64_t window = m.hp * m.wp, image = m.g_image + p.c_in * window;
  const int64_t chunk = std::clamp<int64_t>(kWorkspaceElements / image, 1, p.n);
  const int64_t blocks = std::clamp<int64_t>(ceil_div(omp_get_max_threads(), G), 1, tiles);
  std::vector<int64_t> off(tiles * R, 0);
  for (int64_t k = 0; k < K; k++) {
    const int64_t ci = k / (p.kh * p.kw), kh = k / p.kw % p.kh, kw = k % p.kw;
    off[k] = ci * window + kh * p.dil_h * m.wp + kw * p.dil_w;
  }
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    T* gt = scratch<T>(slot_output, nn * m.g_image);
    T* xw = scratch<T>(slot_input, nn * p.c_in * window);
    grad_output_channel_minor<T>(gy + n0 * p.c_out * p.oh * p.ow, nn, p, m, gt);
    windows<T>(x + n0 * p.c_in * p.h * p.w, nn, p, m, xw);
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < G * blocks; task++) {
      const int64_t g = task / blocks, b = task % blocks, t0 = tiles * b / blocks, t1 = tiles * (b + 1) / blocks;
      Vec<T>* acc = reinterpret_cast<Vec<T>*>(scratch<T>(slot_thread, (t1 - t0) * R * V * lanes<T>));
      tap_block<T, V>(xw, gt, nn, p, m, off.data(), g, t0, t1, n0 > 0, acc, gw);
    }
  }
}

// ---- the dot-product form ------------------------------------------------------------------------------

// R (or S) rows of one operand of a dot_tile: row r of image i starts at row[r] + i*image_step.
template <class T>
struct Strips {
  const T* const* row;
  int64_t image_step;
};
// Where a dot_tile adds its results: out[r*ld + j] for r < rows, j < cols.
template <class T>
struct TileOut {
  T* data;
  int64_t ld, rows, cols;
};

// Dot products of R rows of gy with S runs of x, vectorised along e (len a multiple of the lane count) and
// summed over `images` images, added into out; rows/cols beyond out's size point at row 0 and are not
// stored. When `masked`, x is read through `keep` (zero at garbage columns).
template <class T, int R, int S, bool masked>
void dot_tile(Strips<T> g, Strips<T> x, const Mask<T>* keep, int64_t len, int64_t images, TileOut<T> out) {
  Vec<T> acc[R][S] = {};
  for (int64_t i = 0; i < images; i++) {
    for (int64_t e = 0; e < len; e += lanes<T>) {
      Vec<T> xv[S];
      for (int j = 0; j < S; j++) {
        xv[j] = load(x.row[j] + i * x.image_step + e);
        if constexpr (masked) xv[j] = keep[e / lanes<T>] ? xv[j] : Vec<T>{};
      }
      for (int r = 0; r < R; r++) {
        Vec<T> gv = load(g.row[r] + i * g.image_step + e);
        for (int j = 0; j < S; j++) acc[r][j] += gv * xv[j];
      }
    }
  }
  for (int64_t r = 0; r < out.rows; r++)
    for (int64_t j = 0; j < out.cols; j++) out.data[r * out.ld + j] += hsum<T>(acc[r][j]);
}

// One chunk of images as the dot products see it: gy on the extended grid (rows of ldg), the phased x, the
// run offsets of all groups, the keep masks (null: unmasked) and gw.
template <class T>
struct DotChunk {
  const T* gq;
  const T* xq;
  const int64_t* x_off;
  const Mask<T>* keep;
  T* gw;
  int64_t ldg, nn;
};

// gw[g][co][k0:k1] += the sums over all images of the chunk. Long rows are cut into L1-sized pieces: each
// piece of gy rows is reused across the whole k range, each piece of x runs across all co tiles (from L2).
// Rows no longer than a piece (small images) are instead summed over all images inside one tile, so the
// horizontal sums stay rare.
template <class T, int R, int S, bool masked>
void weight_grad_block(const DotChunk<T>& d, const ConvParams& p, const Phased& q, int64_t g, int64_t k0, int64_t k1) {
  const int64_t cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  const int64_t g_step = p.c_out * d.ldg, x_step = p.c_in * q.chan;
  constexpr int64_t piece = 1024;
  const bool whole = d.ldg <= piece;
  for (int64_t i = 0; i < (whole ? 1 : d.nn); i++) {
    const T* gi = d.gq + i * g_step + g * cog * d.ldg;
    const T* xi = d.xq + i * x_step;
    for (int64_t e0 = 0; e0 < d.ldg; e0 += piece) {
      const int64_t len = std::min(piece, d.ldg - e0);
      for (int64_t co = 0; co < cog; co += R) {
        const T* grow[R];
        for (int r = 0; r < R; r++) grow[r] = gi + (co + r < cog ? co + r : co) * d.ldg + e0;
        for (int64_t k = k0; k < k1; k += S) {
          const T* xrow[S];
          for (int s = 0; s < S; s++) xrow[s] = xi + d.x_off[g * K + (k + s < k1 ? k + s : k)] + e0;
          const TileOut<T> out{d.gw + (g * cog + co) * K + k, K, std::min<int64_t>(R, cog - co), std::min<int64_t>(S, k1 - k)};
          dot_tile<T, R, S, masked>({grow, g_step}, {xrow, x_step}, d.keep + e0 / lanes<T>, len, whole ? d.nn : 1, out);
        }
      }
    }
  }
}

// Tile of the dot products: R x S accumulators, S vectors of x and one of gy in registers (4 x 6 with 32
// registers; 3 x 3 with 16, where 4 x 6 would spill).
constexpr int R = kVecRegisters >= 32 ? 4 : 3, S = kVecRegisters >= 32 ? 6 : 3;

// The dot products run over the whole extended grid: at garbage columns gy is 0, but the x runs there
// hold elements this tap never pairs with a real output (other taps' columns, the next row, elements no
// window reads), and 0 * inf or 0 * NaN is NaN. For finite x those terms are exactly 0, and a NaN from
// them stays NaN through every later sum, so a result without NaN is exact. Such a term, 0 * x[k][e], is
// the same for every co, so it shows in the first row of the group: tasks whose first-row block holds a
// NaN (only possible with inf/NaN data) are recomputed with x masked at garbage columns (in one part).
// Tasks are (group, block of K); with fewer than two a thread (LeNet's first layer: one input channel, 25
// taps, one task) each chunk's images are also cut into parts, summed into copies of gw and added after.
template <class T>
void backward_weight_dot(const T* x, const T* gy, const ConvParams& p, const Phased& q, T* gw) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw, size = p.c_out * K;
  const int64_t ldg = ceil_div(q.np, lanes<T>) * lanes<T>;
  const std::vector<int64_t> x_off = run_offsets(p, q);
  const int64_t kb = 8 * S, k_blocks = ceil_div(K, kb), tasks = G * k_blocks, chunk = images_per_chunk(p, q);
  const int64_t want = 2 * omp_get_max_threads();
  const int64_t parts = std::clamp<int64_t>(ceil_div(want, tasks), 1, std::min(chunk, 1 + kWorkspaceElements / size));
  T* part_buf = parts > 1 ? scratch<T>(slot_weight, (parts - 1) * size) : nullptr;
  std::fill(gw, gw + size, T(0));
  std::vector<char> redo(tasks, 0);
  auto accumulate = [&](const Mask<T>* keep, int64_t parts) {
    const auto block = cog >= R ? (keep ? weight_grad_block<T, R, S, true> : weight_grad_block<T, R, S, false>)
                                : (keep ? weight_grad_block<T, 1, S, true> : weight_grad_block<T, 1, S, false>);
    if (parts > 1) std::fill(part_buf, part_buf + (parts - 1) * size, T(0));
    for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
      const int64_t nn = std::min(chunk, p.n - n0);
      const T* gq = extend_grad_output<T>(gy + n0 * p.c_out * p.oh * p.ow, nn, p, q, ldg);
      const T* xq = build_phased<T>(x + n0 * p.c_in * p.h * p.w, nn, p, q);
#pragma omp parallel for schedule(dynamic, 1)
      for (int64_t ts = 0; ts < tasks * parts; ts++) {
        const int64_t t = ts / parts, s = ts % parts, i0 = nn * s / parts, i1 = nn * (s + 1) / parts;
        if ((keep && !redo[t]) || i0 == i1) continue;
        const int64_t g = t / k_blocks, k0 = t % k_blocks * kb, k1 = std::min(K, k0 + kb);
        const DotChunk<T> d{gq + i0 * p.c_out * ldg, xq + i0 * p.c_in * q.chan, x_off.data(), keep,
                            s == 0 ? gw : part_buf + (s - 1) * size, ldg, i1 - i0};
        block(d, p, q, g, k0, k1);
      }
    }
    if (parts > 1) add_parts(gw, part_buf, parts, size);
  };
  accumulate(nullptr, parts);
  for (int64_t t = 0; t < tasks; t++) {
    const int64_t g = t / k_blocks, k0 = t % k_blocks * kb, k1 = std::min(K, k0 + kb);
    redo[t] = std::any_of(gw + g * cog * K + k0, gw + g * cog * K + k1, [](T v) { return v != v; });
  }
  if (std::find(redo.begin(), redo.end(), 1) == redo.end()) return;
  std::vector<Mask<T>> keep(ldg / lanes<T>);
  for (int64_t e = 0; e < ldg; e++) keep[e / lanes<T>][e % lanes<T>] = e < q.np && e % q.wq < p.ow ? -1 : 0;
  for (int64_t t = 0; t < tasks; t++) {
    if (!redo[t]) continue;
    const int64_t g = t / k_blocks, k0 = t % k_blocks * kb, k1 = std::min(K, k0 + kb);
    for (int64_t co = g * cog; co < (g + 1) * cog; co++) std::fill(gw + co * K + k0, gw + co * K + k1, T(0));
  }
  accumulate(keep.data(), 1);
}

// Which form runs. The GEMM packs each element of X^T once per cog rows: at cog = 8 (resnext_grouped) the
// dot products were 1.3x faster, at 16 the two were even. Below 16 the dot products still lose where their
// tile runs mostly empty behind a copy of x: fewer output channels than its R rows (unet's 64 -> 2
// classifier took 2x the GEMM's time, copying 78 MB) or an extended grid of under half a vector
// (squeeze-excite convs on 1x1 images: 3-8x). Reading x in place (1x1 on planes of whole vectors) the dots
// win at any cog < 16 (unet's classifier 1.22-1.28 -> 0.76-0.90 of PyTorch's time). With one input channel
// per group (depthwise-like, LeNet's first layer) K is a few taps and the GEMM loses. (No outputs: the dot
// form's zero fill.)
template <class T>
bool gemm_form(const ConvParams& p, const Phased& q_dot) {
  const int64_t cog = p.c_out_per_group();
  if (p.n * p.oh * p.ow == 0) return false;
  return cog >= 16 || (p.c_in_per_group() > 1 && !q_dot.identity && (cog < R || 2 * q_dot.np <= lanes<T>));
}

// Whether the channel-minor form runs, and on which tile: one or two vectors of output channels per group
// (half-width vectors for over a quarter up to half a register), a kernel of more than one tap (1x1 convs read
// x in place on the GEMM), enough input channels to fill the tile's rows, and a task's window (the tile's
// rows of one image) within half of L2. 1 thread, vs the GEMM form: ResNeXt's 16-32-channel groups on
// 7x7-14x14 outputs 1.2-1.7 -> 0.8-1.0 of PyTorch's time, DenseNet's 3x3 128 -> 32 on 7x7-56x56 1.1 -> 0.9,
// DeepSpeech2's 21x11/2 32 -> 32 1.3-1.5 -> 1.0; lost: 1x1 convs (1.3-2.3x), 3-channel stems (3.5x). Vs the
// dot products at 8 channels a group (half width): ResNeXt 28x28 1.23-1.33 -> 0.8-0.9; at 4 (a quarter) even.
enum class Minor { none, half, one, two };

template <class T>
Minor minor_form(const ConvParams& p) {
  static const int64_t l2 = cache_bytes(2, 1 << 20);
  constexpr int L = lanes<T>;
  const int64_t cog = p.c_out_per_group(), cig = p.c_in_per_group();
  const Minor tile = 2 * cog <= L && kVecBytes >= 32 ? Minor::half : cog <= L ? Minor::one : cog <= 2 * L ? Minor::two : Minor::none;
  const int rows = tile == Minor::half ? MinorTile<T, 1, kVecBytes / 2>::R : tile == Minor::one ? MinorTile<T, 1, kVecBytes>::R
                                                                                               : MinorTile<T, 2, kVecBytes>::R;
  if (tile == Minor::none || 4 * cog <= L || p.kh * p.kw == 1 || p.n * p.oh * p.ow == 0 || cig < rows) return Minor::none;
  const ChannelMinor m = channel_minor<T>(p, L, rows);
  return 2 * m.hp * m.wp * rows * int64_t(sizeof(T)) <= l2 ? tile : Minor::none;
}

// Whether the taps form runs, and with how many vectors of output channels: over half a vector to two
// vectors per group, fewer input channels than the channel-minor tile's rows (there they are its rows), and
// enough taps that the last tile of R is mostly full (3-channel 3x3 stems: K = 27, 3 tiles of 12).
template <class T>
int taps_form(const ConvParams& p) {
  constexpr int L = lanes<T>;
  const int64_t cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  const int V = 2 * cog <= L ? 0 : cog <= L ? 1 : cog <= 2 * L ? 2 : 0;
  const int64_t R = V == 0 ? 1 : TapTile<T>::R1 / V;
  if (V == 0 || p.n * p.oh * p.ow == 0 || p.c_in_per_group() >= MinorTile<T, 2, kVecBytes>::R) return 0;
  return 10 * ceil_div(K, R) * R <= 11 * K ? V : 0;
}

}  // namespace

void conv_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) {
  const SerialScope serial(conv_work(p) < kSerialWork);  // tiny calls (squeeze-excite at batch 1): no teams
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    // The GEMM reads a 1x1 conv's x in place (its packer stops at the end of x); the dot products read
    // whole vectors up to np rounded up, so they read it in place only where its planes are whole vectors.
    const Phased q_dot = phased(p, /*allow_identity=*/p.oh * p.ow % lanes<T> == 0);
    const Minor minor = minor_form<T>(p);
    if (whole_window(p)) backward_weight_matmul<T>(x.data<T>(), gy.data<T>(), p, gw.data<T>());
    else if (minor == Minor::half) backward_weight_minor<T, 1, kVecBytes / 2>(x.data<T>(), gy.data<T>(), p, gw.data<T>());
    else if (minor == Minor::one) backward_weight_minor<T, 1, kVecBytes>(x.data<T>(), gy.data<T>(), p, gw.data<T>());
    else if (minor == Minor::two) backward_weight_minor<T, 2, kVecBytes>(x.data<T>(), gy.data<T>(), p, gw.data<T>());
    else if (const int v = taps_form<T>(p); v == 1) backward_weight_taps<T, 1>(x.data<T>(), gy.data<T>(), p, gw.data<T>());
    else if (v == 2) backward_weight_taps<T, 2>(x.data<T>(), gy.data<T>(), p, gw.data<T>());
    else if (gemm_form<T>(p, q_dot)) backward_weight_gemm<T>(x.data<T>(), gy.data<T>(), p, gw.data<T>());
    else backward_weight_dot<T>(x.data<T>(), gy.data<T>(), p, q_dot, gw.data<T>());
  });
}

}  // namespace convlab::cpu
