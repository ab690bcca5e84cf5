// The one GEMM behind matmul and the convolutions: C (+)= A @ B, BLIS style. A is read in place with any
// strides; B is read through row offsets (row k starts at base + off[k], columns contiguous), so
// a convolution hands in rows of its padded input instead of an im2col copy; C is written through row
// offsets too, which lets backward-input scatter-add its result straight into the input gradient.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

namespace convlab::cpu {

// 64-byte vectors: one AVX-512 register with -march=native, split by the compiler on baseline x86-64
// (where GCC notes that passing them by value has no fixed ABI: harmless, they never cross a library edge).
#pragma GCC diagnostic ignored "-Wpsabi"
template <class T>
struct VecOf {
  typedef T type __attribute__((vector_size(64)));
};
template <class T>
using Vec = typename VecOf<T>::type;
template <class T>
constexpr int lanes = 64 / sizeof(T);

template <class T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof v);
}
// Sum of the lanes, halving the vector twice first: a serial chain of lanes - 1 scalar adds (the in-order
// sum the compiler may not reorder) cost more than the dot products it finished on small images.
template <class T>
inline T hsum(Vec<T> v) {
  typedef T Half __attribute__((vector_size(32)));
  typedef T Quarter __attribute__((vector_size(16)));
  Half h[2];
  std::memcpy(h, &v, sizeof v);
  Half a = h[0] + h[1];
  Quarter q[2];
  std::memcpy(q, &a, sizeof a);
  Quarter b = q[0] + q[1];
  T s = 0;
  for (int i = 0; i < int(sizeof b / sizeof(T)); i++) s += b[i];
  return s;
}

// Register tile of the micro-kernel: MR rows of C by NR columns (3 vectors), 24 accumulators.
constexpr int64_t gemm_mr = 8;
template <class T>
constexpr int64_t gemm_nr = 3 * lanes<T>;
// K is cut into KC-deep slices so one packed B sliver (KC x NR, 24 KiB) stays in L1 while all A slivers
// of a block stream past it; one B panel holds up to NC columns (KC x NC: 192 KiB fp32, 384 KiB fp64, L2).
constexpr int64_t gemm_kc = 128;
constexpr int64_t gemm_nc = 960;  // a whole number of NR slivers for both types
// Rows of A per sweep of a B sliver: 4 strips, 16 KiB of fp32 A beside the 24 KiB sliver in L1 (one strip
// per sweep left resnet_stem's backward-weight 25 % slower, the whole of A 7x7_512's forward 15 %).
constexpr int64_t gemm_mc = 32;

template <class T>
struct Rows {
  T* base;
  const int64_t* off;  // row r starts at base + off[r]
};

// Serial: C[m0:m1, n0:n1] = (or += when add) A[m0:m1, :] @ B[:, n0:n1], where A[i][j] = a[i*ars + j*acs]
// (row-major, or transposed, read in place: the micro-kernel only broadcasts single elements of A) and B
// has k rows. Callers run many of these in parallel on disjoint parts of C.
template <class T>
void gemm_block(const T* a, int64_t ars, int64_t acs, int64_t k, Rows<const T> b, Rows<T> c, bool add, int64_t m0,
                int64_t m1, int64_t n0, int64_t n1);

// The same with B handed in as a packer: pack(buf, k0, kc, n0, nc) writes B[k0:k0+kc, n0:n0+nc] into buf
// as ceil(nc/NR) slivers of kc x NR (row-major inside a sliver, zero past nc), for a B that is not rows in
// memory (backward-weight's transposed im2col, packed straight from the convolution's runs).
template <class T>
using PackB = std::function<void(T* buf, int64_t k0, int64_t kc, int64_t n0, int64_t nc)>;
template <class T>
void gemm_block(const T* a, int64_t ars, int64_t acs, int64_t k, const PackB<T>& pack, Rows<T> c, bool add,
                int64_t m0, int64_t m1, int64_t n0, int64_t n1);

// How to cut `count` independent m x n GEMMs into parallel tasks of mb x nb blocks of C: whole products
// when there are a few tasks per thread already, else rows are halved first (down to 64: each task then
// streams only its share of A, which small-n products are bound by), then columns (in whole slivers).
struct GemmBlocking {
  int64_t mb, nb, m_blocks, n_blocks;
};
// per_thread: tasks wanted per thread (fewer when every task packs the same large B panel).
template <class T>
GemmBlocking gemm_blocking(int64_t count, int64_t m, int64_t n, int64_t per_thread = 4);

// Grow-only, 64-byte aligned scratch memory, one buffer per (calling thread, slot): repeated calls reuse
// their pages instead of faulting fresh ones in. Contents are undefined on return.
template <class T>
T* scratch(int slot, size_t count);
// slot_thread is the one a worker thread may use inside a parallel region (GEMM's B panel, a plane buffer);
// slot_weight holds a rearranged weight (backward-input's flipped one) or backward-weight's partial sums,
// slot_columns an im2col matrix.
enum ScratchSlot { slot_thread, slot_input, slot_output, slot_weight, slot_columns, slot_count };

}  // namespace convlab::cpu
