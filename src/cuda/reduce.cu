// Row reductions of a contiguous (rows, n) array. One warp reduces one segment of a row: lanes stride the
// segment (coalesced), then combine by shuffles in a fixed order, so results are deterministic. Few long
// rows are first cut into chunks whose partials (rows, chunks) are reduced again by the same kernel.
#include <cmath>
#include <limits>

#include "common.cuh"

namespace convlab::cuda {
namespace {

constexpr int64_t kFillWarps = 8192;  // about what an H100/H200 keeps resident
constexpr int64_t kMinChunk = 1024;   // elements per warp below which splitting costs more than it gains

struct Split {
  int64_t chunk, chunks;
};

// Cuts rows of length n into chunks when there are too few rows to give every resident warp work.
Split plan_split(int64_t rows, int64_t n) {
  if (rows >= kFillWarps || n <= 2 * kMinChunk) return {n, 1};
  int64_t chunks = std::min(ceil_div(n, kMinChunk), ceil_div(kFillWarps, rows));
  int64_t chunk = ceil_div(n, chunks);
  return {chunk, ceil_div(n, chunk)};
}

template <class T>
__device__ T combine(ReduceOp op, T a, T b) {
  if (op == ReduceOp::sum) return a + b;
  if (op == ReduceOp::max) return (a > b || a != a) ? a : b;  // NaN propagates
  return (a < b || a != a) ? a : b;
}

// What a lane with no elements contributes: 0 for sum, the other end of T's range for max and min.
template <class T>
T identity(ReduceOp op) {
  if (op == ReduceOp::sum) return T(0);
  constexpr bool inf = std::numeric_limits<T>::has_infinity;
  if (op == ReduceOp::max) return inf ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::lowest();
  return inf ? std::numeric_limits<T>::infinity() : std::numeric_limits<T>::max();
}

// out[row * chunks + c] = op over a[row, c*chunk : (c+1)*chunk].
template <class T>
__global__ void reduce_kernel(ReduceOp op, T identity, const T* a, int64_t rows, int64_t n, Split split, T* out) {
  int lane = threadIdx.x % kWarp;
  for (int64_t seg = thread_index() / kWarp; seg < rows * split.chunks; seg += thread_count() / kWarp) {
    int64_t row = seg / split.chunks, begin = seg % split.chunks * split.chunk;
    int64_t end = std::min(n, begin + split.chunk);
    T acc = identity;
    for (int64_t j = begin + lane; j < end; j += kWarp) acc = combine(op, acc, a[row * n + j]);
    for (int offset = kWarp / 2; offset > 0; offset /= 2) acc = combine(op, acc, __shfl_down_sync(0xffffffffu, acc, offset));
    if (lane == 0) out[seg] = acc;
  }
}

// Whether (v, i) beats the best so far (bv, bi): NaN beats numbers, a larger (kMax) or smaller value wins,
// ties go to the smaller index (the first extreme); bi < 0 means nothing seen yet.
template <bool kMax, class T>
__device__ bool beats(T v, int64_t i, T bv, int64_t bi) {
  if (i < 0) return false;
  if (bi < 0) return true;
  bool nan = v != v, bnan = bv != bv;
  if (nan != bnan) return nan;
  if (!nan && v != bv) return kMax ? v > bv : v < bv;
  return i < bi;
}

// Per segment: the best (value, index) of a[row, segment]; index is the column, or taken from `index`
// when a holds partial results. The last pass writes only the index, into `final_index`.
template <bool kMax, class T>
__global__ void arg_kernel(const T* a, const int64_t* index, int64_t rows, int64_t n, Split split,
                           T* best_value, int64_t* best_index, int64_t* final_index) {
  int lane = threadIdx.x % kWarp;
  for (int64_t seg = thread_index() / kWarp; seg < rows * split.chunks; seg += thread_count() / kWarp) {
    int64_t row = seg / split.chunks, begin = seg % split.chunks * split.chunk;
    int64_t end = std::min(n, begin + split.chunk);
    T bv = T(0);
    int64_t bi = -1;
    for (int64_t j = begin + lane; j < end; j += kWarp) {
      T v = a[row * n + j];
      int64_t i = index ? index[row * n + j] : j;
      if (beats<kMax>(v, i, bv, bi)) bv = v, bi = i;
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      T v = __shfl_down_sync(0xffffffffu, bv, offset);
      int64_t i = __shfl_down_sync(0xffffffffu, bi, offset);
      if (beats<kMax>(v, i, bv, bi)) bv = v, bi = i;
    }
    if (lane != 0) continue;
    if (final_index) final_index[seg] = bi;
    else best_value[seg] = bv, best_index[seg] = bi;
  }
}

template <class T>
void reduce_rows_impl(ReduceOp op, const T* a, int64_t rows, int64_t n, T* out) {
  Split split = plan_split(rows, n);
  if (split.chunks == 1) {
    reduce_kernel<<<blocks_for(rows * kWarp), kThreads>>>(op, identity<T>(op), a, rows, n, split, out);
    check_launch("reduce_rows");
    return;
  }
  Workspace<T> partial(rows * split.chunks);
  reduce_kernel<<<blocks_for(rows * split.chunks * kWarp), kThreads>>>(op, identity<T>(op), a, rows, n, split,
                                                                       partial.ptr);
  check_launch("reduce_rows");
  reduce_rows_impl(op, partial.ptr, rows, split.chunks, out);
}

template <bool kMax, class T>
void arg_reduce_rows_impl(const T* a, const int64_t* index, int64_t rows, int64_t n, int64_t* out) {
  Split split = plan_split(rows, n);
  if (split.chunks == 1) {
    arg_kernel<kMax, T><<<blocks_for(rows * kWarp), kThreads>>>(a, index, rows, n, split, nullptr, nullptr, out);
    check_launch("arg_reduce_rows");
    return;
  }
  Workspace<T> value(rows * split.chunks);
  Workspace<int64_t> where(rows * split.chunks);
  arg_kernel<kMax, T><<<blocks_for(rows * split.chunks * kWarp), kThreads>>>(a, index, rows, n, split, value.ptr,
                                                                             where.ptr, nullptr);
  check_launch("arg_reduce_rows");
  arg_reduce_rows_impl<kMax>(value.ptr, where.ptr, rows, split.chunks, out);
}

}  // namespace

void reduce_rows(ReduceOp op, const NDArray& a, NDArray& out) {
  // rows come from out, so a may be any contiguous array of rows * n elements
  const int64_t rows = out.size();
  if (rows == 0) return;
  const int64_t n = a.size() / rows;
  dispatch_dtype<DTypes::numeric>(a.dtype, [&](auto t) {
    using T = decltype(t);
    reduce_rows_impl(op, a.data<T>(), rows, n, out.data<T>());
  });
}

void arg_reduce_rows(ReduceOp op, const NDArray& a, NDArray& out) {
  // rows come from out, so a may be any contiguous array of rows * n elements
  const int64_t rows = out.size();
  if (rows == 0) return;
  const int64_t n = a.size() / rows;
  dispatch_dtype<DTypes::numeric>(a.dtype, [&](auto t) {
    using T = decltype(t);
    if (op == ReduceOp::max) arg_reduce_rows_impl<true, T>(a.data<T>(), nullptr, rows, n, out.data<int64_t>());
    else arg_reduce_rows_impl<false, T>(a.data<T>(), nullptr, rows, n, out.data<int64_t>());
  });
}

}  // namespace convlab::cuda
