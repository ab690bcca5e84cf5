// The register-tiled core shared by matmul and the implicit-GEMM convolutions. A block of 256 threads owns
// a 64x64 tile of C = A B and walks the depth in steps of 16: each step the block stages A[64x16] and
// B[16x64] in shared memory (callers gather them however their operands are laid out), then every thread
// adds a 4x4 sub-tile: rows ty + 16*i, columns tx + 16*j, so a warp reads consecutive shared words.
#pragma once
#include "common.cuh"

namespace convlab::cuda {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kSub = 4;
static_assert(kTileM * kTileK == kSub * kThreads && kTileK * kTileN == kSub * kThreads,
              "each thread stages kSub elements of A and of B per depth step");

template <class T>
struct TileStage {
  T a[kTileK][kTileM + 1];  // A transposed; the pad spreads the column-wise stores over the banks
  T b[kTileK][kTileN];
};

// Which element of the staged tiles thread t loads in its i-th slot (i < kSub): A (row, depth) with
// depth fastest, so rows stored along depth are read in runs; B (depth, column) with column fastest.
__device__ inline int a_row(int i) { return threadIdx.x / kTileK + (kThreads / kTileK) * i; }
__device__ inline int a_depth() { return threadIdx.x % kTileK; }
__device__ inline int b_depth(int i) { return threadIdx.x / kTileN + (kThreads / kTileN) * i; }
__device__ inline int b_col() { return threadIdx.x % kTileN; }

// The sub-tile each thread accumulates: rows sub_row(i), columns sub_col(j) of the 64x64 tile.
__device__ inline int sub_row(int i) { return threadIdx.x / 16 + 16 * i; }
__device__ inline int sub_col(int j) { return threadIdx.x % 16 + 16 * j; }

template <class T>
__device__ void tile_multiply(const TileStage<T>& s, T (&acc)[kSub][kSub]) {
#pragma unroll
  for (int k = 0; k < kTileK; ++k) {
    T a[kSub], b[kSub];
#pragma unroll
    for (int i = 0; i < kSub; ++i) a[i] = s.a[k][sub_row(i)];
#pragma unroll
    for (int j = 0; j < kSub; ++j) b[j] = s.b[k][sub_col(j)];
#pragma unroll
    for (int i = 0; i < kSub; ++i)
#pragma unroll
      for (int j = 0; j < kSub; ++j) acc[i][j] += a[i] * b[j];
  }
}

}  // namespace convlab::cuda
