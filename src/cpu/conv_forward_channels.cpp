// Convolution forward for few output channels per group (the spec: reference::conv_forward_at in
// common/reference.h), as a direct kernel over the zero-padded input xp with the weight w read per tap k:
//   y[n][g*cog + co][oy][ox] = sum_k xp[n][g*cig + ci][oy*sh + i*dh][ox*sw + j*dw] * w[g*cog + co][k],  k = (ci, i, j)
// in one of two register layouts. Stride 1 (pixel lanes): consecutive outputs of a row-major plane as the
// lanes, a few output channels as the rows of the tile; a vector of the input feeds every row and a weight
// broadcast every vector, over a band of xp laid out flat (row pitch wp), the columns past ow computed and
// dropped. Strides (channel lanes): output channels in lanes, output pixels (real outputs, across images)
// as the tile's rows, each input element broadcast from where it lies and the weight packed as wt[g][k][co].
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

// The input as the tiles read it: element (n, c, u, v) of xp at data + n*image + c*chan + u*row + v.
template <class T>
struct Source {
  const T* data;
  int64_t row, chan, image;
};

// Rows and columns of xp: those some output reads, from -pad_top / -pad_left on.
int64_t padded_rows(const ConvParams& p) { return (p.oh - 1) * p.stride_h + (p.kh - 1) * p.dil_h + 1; }
int64_t padded_cols(const ConvParams& p) { return (p.ow - 1) * p.stride_w + (p.kw - 1) * p.dil_w + 1; }

// x itself is xp when every tap of every output lands inside x.
bool reads_only_x(const ConvParams& p) {
  return p.pad_top == 0 && p.pad_left == 0 && padded_rows(p) <= p.h && padded_cols(p) <= p.w;
}

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
Source<T> pad_input(const T* x, int64_t nn, const ConvParams& p) {
  const int64_t hp = padded_rows(p), wp = padded_cols(p), plane = hp * wp;
  T* out = scratch<T>(slot_input, nn * p.c_in * plane);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < nn * p.c_in; nc++)
    for (int64_t u = 0; u < hp; u++) pad_row(x + nc * p.h * p.w, u, p, wp, out + nc * plane + u * wp);
  return {out, wp, plane, p.c_in * plane};
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

// wt[g][k][lane] = w[g*cog + lane][k] for lane < cog, 0 up to `width` lanes.
template <class T>
void pack_weight(const T* w, const ConvParams& p, int64_t width, T* wt) {
  const int64_t cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < p.groups; g++) {
    T* dst = wt + g * K * width;
    std::fill(dst, dst + K * width, T(0));
    for (int64_t co = 0; co < cog; co++)
      for (int64_t k = 0; k < K; k++) dst[k * width + co] = w[(g * cog + co) * K + k];
  }
}

// Offset of tap k = (ci, i, j) inside one group's channels of xp.
template <class T>
std::vector<int64_t> tap_offsets(const ConvParams& p, const Source<T>& s) {
  std::vector<int64_t> off;
  for (int64_t ci = 0; ci < p.c_in_per_group(); ci++)
    for (int64_t i = 0; i < p.kh; i++)
      for (int64_t j = 0; j < p.kw; j++) off.push_back(ci * s.chan + i * p.dil_h * s.row + j * p.dil_w);
  return off;
}

// tile[i][lane] = sum_k x[row[i] + koff[k]] * wt[k][lane] for the `rows` pixel rows of a tile (rows past
// the last repeat it): the MR x V accumulators stay in registers over all of K.
template <class T, int Bytes, int V, int MR>
void channel_tile(const T* x, const int64_t* row, int rows, const int64_t* koff, int64_t K, const T* wt, T* tile) {
  using VT = Vec<T, Bytes>;
  constexpr int L = Bytes / sizeof(T);
  const T* xr[MR];
  for (int i = 0; i < MR; i++) xr[i] = x + row[std::min(i, rows - 1)];
  VT acc[MR][V] = {};
  for (int64_t k = 0; k < K; k++) {
    const int64_t o = koff[k];
    VT b[V];
    for (int v = 0; v < V; v++) std::memcpy(&b[v], wt + (k * V + v) * L, Bytes);
    for (int i = 0; i < MR; i++) {
      const T a = xr[i][o];
      for (int v = 0; v < V; v++) acc[i][v] += a * b[v];
    }
  }
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < V; v++) std::memcpy(tile + (i * V + v) * L, &acc[i][v], Bytes);
}

// y for images [n0, n0 + nn) from xp (s), tiles of MR real outputs across the chunk's images.
template <class T, int Bytes, int V>
void forward_tiles(const Source<T>& s, const T* wt, const T* bias, const ConvParams& p, int64_t n0, int64_t nn, T* y) {
  constexpr int MR = tile_rows<V>;
  constexpr int64_t width = V * (Bytes / sizeof(T));
  const int64_t cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw, pix = p.oh * p.ow;
  const std::vector<int64_t> koff = tap_offsets(p, s);
  const int64_t tiles = (nn * pix + MR - 1) / MR, tasks = p.groups * tiles;
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t t = 0; t < tasks; t++) {
    const int64_t g = t / tiles, r0 = t % tiles * MR;
    const int rows = int(std::min<int64_t>(MR, nn * pix - r0));
    int64_t xrow[MR], yrow[MR];
    for (int i = 0; i < rows; i++) {
      const int64_t r = r0 + i, n = r / pix, e = r % pix, oy = e / p.ow, ox = e % p.ow;
      xrow[i] = n * s.image + oy * p.stride_h * s.row + ox * p.stride_w;
      yrow[i] = (n0 + n) * p.c_out * pix + e;
    }
    T tile[MR * width];
    channel_tile<T, Bytes, V, MR>(s.data + g * p.c_in_per_group() * s.chan, xrow, rows, koff.data(), K,
                                  wt + g * K * width, tile);
    for (int64_t co = 0; co < cog; co++) {
      T* out = y + (g * cog + co) * pix;
      const T b = bias ? bias[g * cog + co] : T(0);
      for (int i = 0; i < rows; i++) out[yrow[i]] = tile[i * width + co] + b;
    }
  }
}

template <class T, int Bytes, int V>
void forward_shape(const T* x, const T* w, const T* bias, const ConvParams& p, T* y) {
  constexpr int64_t width = V * (Bytes / sizeof(T));
  T* wt = scratch<T>(slot_columns, p.groups * p.c_in_per_group() * p.kh * p.kw * width);
  pack_weight(w, p, width, wt);
  if (reads_only_x(p)) return forward_tiles<T, Bytes, V>({x, p.w, p.h * p.w, p.c_in * p.h * p.w}, wt, bias, p, 0, p.n, y);
  const int64_t image = p.c_in * padded_rows(p) * padded_cols(p);
  const int64_t chunk = std::max<int64_t>(1, std::min(p.n, kWorkspaceElements / std::max<int64_t>(image, 1)));
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    forward_tiles<T, Bytes, V>(pad_input(x + n0 * p.c_in * p.h * p.w, nn, p), wt, bias, p, n0, nn, y);
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
