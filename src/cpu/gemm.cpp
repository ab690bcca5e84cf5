// C (+)= A @ B: the macro-kernel walks NC-wide panels and KC-deep slices of B (packed into NR-wide slivers),
// then blocks of MC rows of A; each sliver of the panel is swept by the block's MR-row strips while both sit in
// L1, so B streams from L2 once per block instead of once per strip.
#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <new>

#include <omp.h>

namespace convlab::cpu {

namespace {

struct ScratchBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  ~ScratchBuffer() { std::free(ptr); }
};

void* scratch_bytes(int slot, size_t bytes) {
  thread_local ScratchBuffer buffers[slot_count];
  ScratchBuffer& b = buffers[slot];
  if (bytes > b.bytes) {
    std::free(b.ptr);
    b.bytes = (bytes + 63) / 64 * 64;
    b.ptr = std::aligned_alloc(64, b.bytes);
    if (!b.ptr) {
      b.bytes = 0;
      throw std::bad_alloc();
    }
  }
  return b.ptr;
}

// acc[i][v] = sum_k A[m+i][k] * b[k][v*lanes ...]: k outermost so the 8 x V accumulators live in registers
// (A is broadcast straight from its rows, rows past the edge repeat the last one); then the tile is stored
// (or added) into C, through a small buffer when it hangs over C's edge. V < 3 only for a last sliver of at
// most 2 vectors' columns (a K = 147 backward-weight spent 30 % of its time on the zero columns of V = 3).
template <class T, int V>
void micro_tile(int64_t kc, const T* a, int64_t ars, int64_t acs, const T* b, Rows<T> c, int64_t m, int64_t n,
                int64_t rows, int64_t cols, bool add) {
  constexpr int L = lanes<T>;
  constexpr int64_t nr = gemm_nr<T>;
  const T* ar[gemm_mr];
  for (int i = 0; i < gemm_mr; i++) ar[i] = a + std::min<int64_t>(i, rows - 1) * ars;
  // The C tile is touched only after the k loop: start its cache misses now so they overlap the FMAs.
  for (int64_t i = 0; i < rows; i++)
    for (int v = 0; v < V; v++) __builtin_prefetch(c.base + c.off[m + i] + n + v * L, 1);
  Vec<T> acc[gemm_mr][V] = {};
  for (int64_t k = 0; k < kc; k++) {
    Vec<T> bv[V];
    for (int v = 0; v < V; v++) bv[v] = load(b + v * L);
    for (int i = 0; i < gemm_mr; i++) {
      T ai = ar[i][k * acs];
      for (int v = 0; v < V; v++) acc[i][v] += ai * bv[v];
    }
    b += nr;
  }
  for (int64_t i = 0; i < rows; i++) {
    T* dst = c.base + c.off[m + i] + n;
    if (cols == V * L) {
      for (int v = 0; v < V; v++) store(dst + v * L, add ? acc[i][v] + load(dst + v * L) : acc[i][v]);
    } else {
      T tile[V * L];
      for (int v = 0; v < V; v++) store(tile + v * L, acc[i][v]);
      for (int64_t j = 0; j < cols; j++) dst[j] = add ? dst[j] + tile[j] : tile[j];
    }
  }
}

// The micro-kernel for a tile of `cols` <= NR columns: as few vectors as cover them.
template <class T>
void micro_tile_any(int64_t kc, const T* a, int64_t ars, int64_t acs, const T* b, Rows<T> c, int64_t m, int64_t n,
                    int64_t rows, int64_t cols, bool add) {
  if (cols > 2 * lanes<T>) micro_tile<T, 3>(kc, a, ars, acs, b, c, m, n, rows, cols, add);
  else if (cols > lanes<T>) micro_tile<T, 2>(kc, a, ars, acs, b, c, m, n, rows, cols, add);
  else micro_tile<T, 1>(kc, a, ars, acs, b, c, m, n, rows, cols, add);
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
        for (int v = 0; v < 3; v++) store(dst + v * L, load(src + j + v * L));
      } else {
        int64_t j1 = nc - j;
        std::copy(src + j, src + nc, dst);
        std::fill(dst + j1, dst + nr, T(0));
      }
    }
  }
}

}  // namespace

template <class T>
T* scratch(int slot, size_t count) {
  return static_cast<T*>(scratch_bytes(slot, count * sizeof(T)));
}

template <class T>
void gemm_block(const T* a, int64_t ars, int64_t acs, int64_t k, const PackB<T>& pack, Rows<T> c, bool add, int64_t m0,
                int64_t m1, int64_t n0, int64_t n1) {
  constexpr int64_t nr = gemm_nr<T>;
  int64_t panel = (std::min(gemm_nc, n1 - n0) + nr - 1) / nr * nr;
  T* buf = scratch<T>(slot_thread, gemm_kc * panel);
  for (int64_t nc0 = n0; nc0 < n1; nc0 += gemm_nc) {
    int64_t nc = std::min(gemm_nc, n1 - nc0);
    for (int64_t k0 = 0; k0 < k; k0 += gemm_kc) {
      int64_t kc = std::min(gemm_kc, k - k0);
      pack(buf, k0, kc, nc0, nc);
      for (int64_t mb = m0; mb < m1; mb += gemm_mc) {
        for (int64_t j = 0; j < nc; j += nr) {
          for (int64_t m = mb; m < std::min(m1, mb + gemm_mc); m += gemm_mr) {
            micro_tile_any(kc, a + m * ars + k0 * acs, ars, acs, buf + j * kc, c, m, nc0 + j,
                           std::min(gemm_mr, m1 - m), std::min(nr, nc - j), add || k0 > 0);
          }
        }
      }
    }
  }
}

template <class T>
void gemm_block(const T* a, int64_t ars, int64_t acs, int64_t k, Rows<const T> b, Rows<T> c, bool add, int64_t m0, int64_t m1,
                int64_t n0, int64_t n1) {
  const PackB<T> pack = [b](T* buf, int64_t k0, int64_t kc, int64_t n0, int64_t nc) { pack_b(buf, b, k0, kc, n0, nc); };
  gemm_block(a, ars, acs, k, pack, c, add, m0, m1, n0, n1);
}

template <class T>
GemmBlocking gemm_blocking(int64_t count, int64_t m, int64_t n, int64_t per_thread) {
  constexpr int64_t nr = gemm_nr<T>;
  const int64_t want = per_thread * omp_get_max_threads();
  int64_t mb = (m + gemm_mr - 1) / gemm_mr * gemm_mr, nb = std::min(gemm_nc, (n + nr - 1) / nr * nr);
  auto tasks = [&] { return count * ((m + mb - 1) / mb) * ((n + nb - 1) / nb); };
  while (tasks() < want) {
    if (mb > 64) mb = (mb / 2 + gemm_mr - 1) / gemm_mr * gemm_mr;
    else if (nb > nr) nb = (nb / 2 + nr - 1) / nr * nr;
    else break;
  }
  return {mb, nb, (m + mb - 1) / mb, (n + nb - 1) / nb};
}

template GemmBlocking gemm_blocking<float>(int64_t, int64_t, int64_t, int64_t);
template GemmBlocking gemm_blocking<double>(int64_t, int64_t, int64_t, int64_t);
template float* scratch<float>(int, size_t);
template double* scratch<double>(int, size_t);
template int64_t* scratch<int64_t>(int, size_t);
template void gemm_block<float>(const float*, int64_t, int64_t, int64_t, Rows<const float>, Rows<float>, bool,
                                int64_t, int64_t, int64_t, int64_t);
template void gemm_block<double>(const double*, int64_t, int64_t, int64_t, Rows<const double>, Rows<double>, bool,
                                 int64_t, int64_t, int64_t, int64_t);
template void gemm_block<float>(const float*, int64_t, int64_t, int64_t, const PackB<float>&, Rows<float>, bool,
                                int64_t, int64_t, int64_t, int64_t);
template void gemm_block<double>(const double*, int64_t, int64_t, int64_t, const PackB<double>&, Rows<double>, bool,
                                 int64_t, int64_t, int64_t, int64_t);

}  // namespace convlab::cpu
