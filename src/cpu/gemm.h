// The one GEMM behind matmul and the convolutions: C (+)= A @ B, BLIS style. A is read in place with any
// strides; B is read through row offsets (row k starts at base + off[k], columns contiguous), so
// a convolution hands in rows of its padded input instead of an im2col copy; C is written through row
// offsets too, which lets backward-input scatter-add its result straight into the input gradient.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>

#include "simd.h"
#include "workspace.h"

namespace convlab::cpu {

// Register tile of the micro-kernel: MR rows of C by NR = NV vectors of columns. Its MR*NV accumulators,
// NV vectors of B and one broadcast of A must fit the ISA's vector registers, or the tile spills to the
// stack in the innermost loop: 8 x 3 on AVX-512 (28 of 32 registers), 6 x 2 with 16 (AVX2, SSE: 15).
constexpr int64_t gemm_mr = kVecRegisters >= 32 ? 8 : 6;
constexpr int gemm_nv = kVecRegisters >= 32 ? 3 : 2;
template <class T>
constexpr int64_t gemm_nr = gemm_nv * lanes<T>;

// Size in bytes of this machine's level-`level` data cache (Linux sysfs, else glibc's cpuid reading), or
// `fallback` where neither says.
int64_t cache_bytes(int level, int64_t fallback);

// Cache blocking, from this machine's caches (gemm.cpp). K is cut into kc-deep slices, as deep as keeps one
// A strip (MR x kc) in L1 (each slice stores every C tile once more); B is packed a panel (kc x nc) at a
// time into NR-wide slivers, and each sliver is swept by mc rows of A (4 strips) before the next.
struct GemmSizes {
  int64_t kc, mc, nc;
};
template <class T>
const GemmSizes& gemm_sizes();

// A, read in place: A[i][j] = data[i*row_stride + j*col_stride]. The micro-kernel broadcasts single elements
// of A, so a transposed operand costs nothing: row_major() and transposed() say which one a call passes.
template <class T>
struct MatrixView {
  const T* data;
  int64_t rows, cols, row_stride, col_stride;
  const T* at(int64_t i, int64_t j) const { return data + i * row_stride + j * col_stride; }
};
// The rows x cols matrix stored row-major with leading dimension ld.
template <class T>
MatrixView<T> row_major(const T* data, int64_t rows, int64_t cols, int64_t ld) {
  return {data, rows, cols, ld, 1};
}
// The transpose of the cols x rows matrix stored row-major with leading dimension ld.
template <class T>
MatrixView<T> transposed(const T* data, int64_t rows, int64_t cols, int64_t ld) {
  return {data, rows, cols, 1, ld};
}

// B or C given by rows: row r starts at base + off[r], its columns contiguous.
template <class T>
struct Rows {
  T* base;
  const int64_t* off;
};

// B handed in as a packer: pack(buf, k0, kc, n0, nc) writes B[k0:k0+kc, n0:n0+nc] into buf as ceil(nc/NR)
// slivers of kc x NR (row-major inside a sliver, zero past nc), for a B that is not rows in memory
// (backward-weight's transposed im2col, packed straight from the convolution's runs).
template <class T>
using PackB = std::function<void(T* buf, int64_t k0, int64_t kc, int64_t n0, int64_t nc)>;

// The part of C one call computes: rows [m0, m1), columns [n0, n1).
struct Block {
  int64_t m0, m1, n0, n1;
};
enum class Update { store, add };  // C = A @ B, or C += A @ B

// Serial: C[block] (+)= A[m0:m1, :] @ B[:, n0:n1], with a.cols rows of B. Callers run many of these in
// parallel on disjoint blocks of C.
template <class T>
void gemm_block(MatrixView<T> a, Rows<const T> b, Rows<T> c, Block block, Update update);
template <class T>
void gemm_block(MatrixView<T> a, const PackB<T>& b, Rows<T> c, Block block, Update update);
// The same product with B read in place, no pack: each micro-tile loads its NR columns of row k straight from
// base + off[k]. For B rows that a tile reads well where they lie, each element feeding few strips of A (a
// convolution's runs at stride 1, whose taps share cache lines: conv_forward.cpp's runs_in_place).
template <class T>
void gemm_block_in_place(MatrixView<T> a, Rows<const T> b, Rows<T> c, Block block, Update update);

// How to cut `count` independent m x n GEMMs into parallel tasks of mb x nb blocks of C: whole products
// when there are a few tasks per thread already, else rows are halved first (down to 64: each task then
// streams only its share of A, which small-n products are bound by), then columns (in whole slivers).
struct GemmBlocking {
  int64_t mb, nb, m_blocks, n_blocks;
  Block block(int64_t mi, int64_t ni, int64_t m, int64_t n) const {
    return {mi * mb, std::min(m, (mi + 1) * mb), ni * nb, std::min(n, (ni + 1) * nb)};
  }
};
// per_thread: tasks wanted per thread (fewer when every task packs the same large B panel).
template <class T>
GemmBlocking gemm_blocking(int64_t count, int64_t m, int64_t n, int64_t per_thread = 4);

}  // namespace convlab::cpu
