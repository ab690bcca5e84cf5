// C (+)= A @ B: the macro-kernel walks nc-wide panels and kc-deep slices of B (packed into NR-wide slivers),
// then blocks of mc rows of A; each sliver of the panel is swept by the block's MR-row strips while both sit
// in L1, so B streams from L2 once per block instead of once per strip.
#include "gemm.h"

#include <algorithm>
#include <fstream>
#include <string>

#include <omp.h>
#include <unistd.h>

namespace convlab::cpu {

namespace {

// The size sysfs (else glibc's cpuid reading) gives for the level-`level` data cache, 0 where neither says.
int64_t read_cache_bytes(int level) {
  for (int i = 0; i < 8; i++) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level_file(dir + "level"), type_file(dir + "type"), size_file(dir + "size");
    int l = 0;
    std::string type, size;
    if (!(level_file >> l) || !(type_file >> type) || !(size_file >> size)) break;
    if (l != level || type == "Instruction") continue;
    const int64_t value = std::stoll(size);
    const char unit = size.back();
    return unit == 'K' ? value << 10 : unit == 'M' ? value << 20 : value;
  }
  const long from_cpuid = sysconf(level == 1 ? _SC_LEVEL1_DCACHE_SIZE : _SC_LEVEL2_CACHE_SIZE);
  return std::max<long>(from_cpuid, 0);
}

}  // namespace

// Read once: the dispatch rules ask on every convolution call, and three sysfs files a level cost ~80 us
// (a 1x1 conv on a 14x14 image at batch 1 took 1.7x its time).
int64_t cache_bytes(int level, int64_t fallback) {
  static const int64_t l1 = read_cache_bytes(1), l2 = read_cache_bytes(2);
  const int64_t bytes = level == 1 ? l1 : level == 2 ? l2 : read_cache_bytes(level);
  return bytes > 0 ? bytes : fallback;
}

namespace {

// The depth kc of a K slice: every slice loads and stores each C tile once more, so the slice is as deep as
// keeps one MR x kc strip of A in half of L1d; B's slivers need not fit L1 (a tile streaming its sliver from
// L3 ran at ~99 % of the FMA peak on Zen 4). The panel kc x nc spans twice L2: its slivers stream well from
// L3 too, and each panel is one more pass over A. On Zen 4 (32 KiB L1d, 1 MiB L2) with AVX-512: kc = 512,
// nc = 1008 fp32 columns (kc = 80, from a B sliver in half of L1d, ran 1024^3 at ~70 % of peak, 512 at ~85 %).
template <class T>
GemmSizes sizes_from_caches() {
  constexpr int64_t nr = gemm_nr<T>;
  const int64_t l1 = cache_bytes(1, 32 << 10), l2 = cache_bytes(2, 1 << 20);
  const int64_t kc = std::clamp<int64_t>(l1 / 2 / (gemm_mr * sizeof(T)) / 16 * 16, 64, 1024);
  const int64_t nc = std::max<int64_t>(nr, 2 * l2 / (kc * sizeof(T)) / nr * nr);
  // mc: 4 strips per sweep (one left resnet_stem's backward-weight 25 % slower, the whole of A 7x7_512's
  // forward 15 %).
  return {kc, 4 * gemm_mr, nc};
}

// The position and extent of one register tile of C (rows <= MR, cols <= NR; the rest is overhang).
struct Tile {
  int64_t m, n, rows, cols;
};

// Where a micro-tile finds row k of its B sliver (NR columns, contiguous): a packed sliver (kc x NR, rows NR
// apart), or B itself, row k at base + off[k] (read in place).
template <class T>
struct PackedSliver {
  const T* b;
  const T* row(int64_t k) const { return b + k * gemm_nr<T>; }
};
template <class T>
struct RunSliver {
  const T* base;
  const int64_t* off;
  const T* row(int64_t k) const { return base + off[k]; }
};

// acc[i][v] = sum_k A[i][k] * b[k][v*lanes ...] for the kc columns of the strip `a` (its first row is the
// tile's): k outermost so the MR x V accumulators live in registers (A is broadcast straight from its rows,
// rows past the edge repeat the last one); then the tile is stored (or added) into C, through a small buffer
// when it hangs over C's edge. V < NV only for a last sliver of fewer columns (a K = 147 backward-weight
// spent 30 % of its time on the zero columns of a whole sliver).
template <class T, int V, class Sliver>
void micro_tile(int64_t kc, MatrixView<T> a, Sliver b, Rows<T> c, Tile t, bool add) {
  constexpr int L = lanes<T>;
  const T* ar[gemm_mr];
  for (int i = 0; i < gemm_mr; i++) ar[i] = a.at(std::min<int64_t>(i, t.rows - 1), 0);
  Vec<T> acc[gemm_mr][V] = {};
  auto fma_steps = [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; k++) {
      const T* bk = b.row(k);
      Vec<T> bv[V];
      for (int v = 0; v < V; v++) bv[v] = load(bk + v * L);
      for (int i = 0; i < gemm_mr; i++) {
        T ai = ar[i][k * a.col_stride];
        for (int v = 0; v < V; v++) acc[i][v] += ai * bv[v];
      }
    }
  };
  // The C tile is touched only after the k loop: its cache misses start 64 steps (~1500 cycles of FMAs)
  // before the end, so they overlap the last FMAs; started at the top, a deep slice's B stream evicted them.
  const int64_t k_prefetch = std::max<int64_t>(0, kc - 64);
  fma_steps(0, k_prefetch);
  for (int64_t i = 0; i < t.rows; i++)
    for (int v = 0; v < V; v++) __builtin_prefetch(c.base + c.off[t.m + i] + t.n + v * L, 1);
  fma_steps(k_prefetch, kc);
  for (int64_t i = 0; i < t.rows; i++) {
    T* dst = c.base + c.off[t.m + i] + t.n;
    if (t.cols == V * L) {
      for (int v = 0; v < V; v++) store(dst + v * L, add ? acc[i][v] + load(dst + v * L) : acc[i][v]);
    } else {
      T tile[V * L];
      for (int v = 0; v < V; v++) store(tile + v * L, acc[i][v]);
      for (int64_t j = 0; j < t.cols; j++) dst[j] = add ? dst[j] + tile[j] : tile[j];
    }
  }
}

// The micro-kernel with as few vectors as cover the tile's columns.
template <class T, int V = gemm_nv, class Sliver>
void micro_tile_any(int64_t kc, MatrixView<T> a, Sliver b, Rows<T> c, Tile t, bool add) {
  if constexpr (V > 1)
    if (t.cols <= (V - 1) * lanes<T>) return micro_tile_any<T, V - 1>(kc, a, b, c, t, add);
  micro_tile<T, V>(kc, a, b, c, t, add);
}

// buf = ceil(nc/NR) slivers of kc x NR: row k0+kk, columns n0 + s*NR ..., zero past nc.
template <class T>
void pack_b(T* buf, Rows<const T> b, int64_t k0, int64_t kc, int64_t n0, int64_t nc) {
  constexpr int L = lanes<T>;
  constexpr int64_t nr = gemm_nr<T>;
  for (int64_t kk = 0; kk < kc; kk++) {
    const T* src = b.base + b.off[k0 + kk] + n0;
    for (int64_t j = 0; j < nc; j += nr) {
      T* dst = buf + j * kc + kk * nr;
      if (j + nr <= nc) {
        for (int v = 0; v < gemm_nv; v++) store(dst + v * L, load(src + j + v * L));
      } else {
        for (int64_t jj = 0; jj < nr; jj++) dst[jj] = j + jj < nc ? src[j + jj] : T(0);
      }
    }
  }
}

}  // namespace

template <class T>
const GemmSizes& gemm_sizes() {
  static const GemmSizes sizes = sizes_from_caches<T>();
  return sizes;
}

template <class T>
void gemm_block(MatrixView<T> a, const PackB<T>& pack, Rows<T> c, Block block, Update update) {
  constexpr int64_t nr = gemm_nr<T>;
  const GemmSizes& s = gemm_sizes<T>();
  const int64_t k = a.cols, panel = (std::min(s.nc, block.n1 - block.n0) + nr - 1) / nr * nr;
  T* buf = scratch<T>(slot_thread, s.kc * panel);
  for (int64_t nc0 = block.n0; nc0 < block.n1; nc0 += s.nc) {
    const int64_t nc = std::min(s.nc, block.n1 - nc0);
    for (int64_t k0 = 0; k0 < k; k0 += s.kc) {
      const int64_t kc = std::min(s.kc, k - k0);
      const bool add = update == Update::add || k0 > 0;
      pack(buf, k0, kc, nc0, nc);
      for (int64_t mb = block.m0; mb < block.m1; mb += s.mc) {
        for (int64_t j = 0; j < nc; j += nr) {
          for (int64_t m = mb; m < std::min(block.m1, mb + s.mc); m += gemm_mr) {
            const Tile t{m, nc0 + j, std::min(gemm_mr, block.m1 - m), std::min(nr, nc - j)};
            const MatrixView<T> strip{a.at(m, k0), t.rows, kc, a.row_stride, a.col_stride};
            micro_tile_any(kc, strip, PackedSliver<T>{buf + j * kc}, c, t, add);
          }
        }
      }
    }
  }
}

template <class T>
void gemm_block(MatrixView<T> a, Rows<const T> b, Rows<T> c, Block block, Update update) {
  const PackB<T> pack = [b](T* buf, int64_t k0, int64_t kc, int64_t n0, int64_t nc) { pack_b(buf, b, k0, kc, n0, nc); };
  gemm_block(a, pack, c, block, update);
}

// The loops of gemm_block without the panel: each whole sliver of B is read in place by its tiles; a last
// sliver of fewer than NR columns is packed (depth x NR, zero past n1), so no row is read past column n1.
// K is cut into equal slices up to 4 kc deep: the tiles read B from where it lies (L2), not from a sliver
// in L1, so deeper slices cost nothing there and store each C tile fewer times (K 1152-2304 on Zen 4, 1 thread:
// 3-6 % faster in slices of 1152 or 2304 than of 512; 1152 vs 2304 within noise).
template <class T>
void gemm_block_in_place(MatrixView<T> a, Rows<const T> b, Rows<T> c, Block block, Update update) {
  constexpr int64_t nr = gemm_nr<T>;
  const GemmSizes& s = gemm_sizes<T>();
  const int64_t k = a.cols, whole_end = block.n0 + (block.n1 - block.n0) / nr * nr;
  const int64_t slices = (k + 4 * s.kc - 1) / (4 * s.kc), depth = (k + slices - 1) / slices;
  T* tail = whole_end < block.n1 ? scratch<T>(slot_thread, depth * nr) : nullptr;
  for (int64_t k0 = 0; k0 < k; k0 += depth) {
    const int64_t kc = std::min(depth, k - k0);
    const bool add = update == Update::add || k0 > 0;
    if (tail) pack_b(tail, b, k0, kc, whole_end, block.n1 - whole_end);
    for (int64_t mb = block.m0; mb < block.m1; mb += s.mc) {
      for (int64_t n = block.n0; n < block.n1; n += nr) {
        for (int64_t m = mb; m < std::min(block.m1, mb + s.mc); m += gemm_mr) {
          const Tile t{m, n, std::min(gemm_mr, block.m1 - m), std::min(nr, block.n1 - n)};
          const MatrixView<T> strip{a.at(m, k0), t.rows, kc, a.row_stride, a.col_stride};
          if (n < whole_end) micro_tile_any(kc, strip, RunSliver<T>{b.base + n, b.off + k0}, c, t, add);
          else micro_tile_any(kc, strip, PackedSliver<T>{tail}, c, t, add);
        }
      }
    }
  }
}

template <class T>
GemmBlocking gemm_blocking(int64_t count, int64_t m, int64_t n, int64_t per_thread) {
  constexpr int64_t nr = gemm_nr<T>;
  const int64_t want = per_thread * omp_get_max_threads();
  int64_t mb = (m + gemm_mr - 1) / gemm_mr * gemm_mr, nb = std::min(gemm_sizes<T>().nc, (n + nr - 1) / nr * nr);
  auto tasks = [&] { return count * ((m + mb - 1) / mb) * ((n + nb - 1) / nb); };
  while (tasks() < want) {
    if (mb > 64) mb = (mb / 2 + gemm_mr - 1) / gemm_mr * gemm_mr;
    else if (nb > nr) nb = (nb / 2 + nr - 1) / nr * nr;
    else break;
  }
  return {mb, nb, (m + mb - 1) / mb, (n + nb - 1) / nb};
}

#define CONVLAB_GEMM(T)                                                                        \
  template const GemmSizes& gemm_sizes<T>();                                                   \
  template GemmBlocking gemm_blocking<T>(int64_t, int64_t, int64_t, int64_t);                  \
  template void gemm_block<T>(MatrixView<T>, Rows<const T>, Rows<T>, Block, Update);           \
  template void gemm_block<T>(MatrixView<T>, const PackB<T>&, Rows<T>, Block, Update);         \
  template void gemm_block_in_place<T>(MatrixView<T>, Rows<const T>, Rows<T>, Block, Update);
CONVLAB_GEMM(float)
CONVLAB_GEMM(double)

}  // namespace convlab::cpu
