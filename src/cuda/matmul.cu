// Batched matmul c[b] = a[b] @ b[b], all contiguous: (B, M, K) @ (B, K, N) -> (B, M, N).
// Tiled: each block computes 64x64 tiles of c (grid-stride over batch x row tiles x column tiles, column
// tiles fastest so neighbouring blocks share an A panel in L2), staging 16-deep slices in shared memory.
#include "gemm_tile.cuh"

namespace convlab::cuda {
namespace {

template <class T>
__global__ void matmul_kernel(const T* a, const T* b, T* c, int64_t batch, int64_t m, int64_t k, int64_t n) {
  __shared__ TileStage<T> s;
  const int64_t tiles_m = ceil_div(m, kTileM), tiles_n = ceil_div(n, kTileN);
  for (int64_t tile = blockIdx.x; tile < batch * tiles_m * tiles_n; tile += gridDim.x) {
    int64_t bi = tile / (tiles_m * tiles_n), rest = tile % (tiles_m * tiles_n);
    int64_t m0 = rest / tiles_n * kTileM, n0 = rest % tiles_n * kTileN;
    const T* a_b = a + bi * m * k;
    const T* b_b = b + bi * k * n;
    T acc[kSub][kSub] = {};
    for (int64_t k0 = 0; k0 < k; k0 += kTileK) {
      for (int i = 0; i < kSub; ++i) {
        int64_t row = m0 + a_row(i), depth = k0 + a_depth();
        s.a[a_depth()][a_row(i)] = row < m && depth < k ? a_b[row * k + depth] : T(0);
      }
      for (int i = 0; i < kSub; ++i) {
        int64_t depth = k0 + b_depth(i), col = n0 + b_col();
        s.b[b_depth(i)][b_col()] = depth < k && col < n ? b_b[depth * n + col] : T(0);
      }
      __syncthreads();
      tile_multiply(s, acc);
      __syncthreads();
    }
    T* c_b = c + bi * m * n;
    for (int i = 0; i < kSub; ++i)
      for (int j = 0; j < kSub; ++j) {
        int64_t row = m0 + sub_row(i), col = n0 + sub_col(j);
        if (row < m && col < n) c_b[row * n + col] = acc[i][j];
      }
  }
}

}  // namespace

void matmul(const NDArray& a, const NDArray& b, NDArray& out) {
  int64_t batch = a.shape[0], m = a.shape[1], k = a.shape[2], n = b.shape[2];
  int64_t tiles = batch * ceil_div(m, kTileM) * ceil_div(n, kTileN);
  if (tiles == 0) return;
  dispatch_dtype<DTypes::floating>(a.dtype, [&](auto t) {
    using T = decltype(t);
    matmul_kernel<<<blocks_for(tiles, 1), kThreads>>>(a.data<T>(), b.data<T>(), out.data<T>(), batch, m, k, n);
  });
  check_launch("matmul");
}

}  // namespace convlab::cuda
