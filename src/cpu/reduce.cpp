// Row reductions of a contiguous (rows, n) array: out[r] = sum_j a[r, j], max_j / min_j a[r, j], and the
// argmax_j / argmin_j.
// Loop order: rows in parallel; when there are fewer rows than threads each row is cut into one chunk per
// thread, and the chunks' partial results are combined in order afterwards.
#include <omp.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "kernels.h"

namespace convlab::cpu {

namespace {

// Pairwise summation: halve until a block of at most 128, summed with 8 independent accumulators (which
// also vectorises). The rounding error grows like log2(n) instead of n, so a float32 sum of 1e6 elements
// stays within ~1e-6 relative without a wider accumulator.
template <class T>
T pairwise_sum(const T* x, int64_t n) {
  if (n <= 128) {
    T acc[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += x[i + j];
    T tail = 0;
    for (; i < n; ++i) tail += x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
  }
  const int64_t half = n / 16 * 8;  // a multiple of 8 keeps the left half's blocks aligned with the right's
  return pairwise_sum(x, half) + pairwise_sum(x + half, n - half);
}

// The extreme of two values for max (kMax) or min, keeping NaN: once either side is NaN the result is NaN.
template <bool kMax, class T>
T extreme_nan(T m, T x) {
  return ((kMax ? x > m : x < m) || x != x) ? x : m;
}

// The extreme over 16 lanes with plain compares (which skip NaN) plus a separate NaN flag per lane, so
// the loop vectorises; any NaN makes the result NaN.
template <bool kMax, class T>
T row_extreme(const T* x, int64_t n) {
  T acc[16];
  int nan[16] = {};
  std::fill(acc, acc + 16, x[0]);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) {
      acc[j] = (kMax ? x[i + j] > acc[j] : x[i + j] < acc[j]) ? x[i + j] : acc[j];
      nan[j] |= x[i + j] != x[i + j];
    }
  T m = x[0];
  for (int j = 0; j < 16; ++j) {
    if (nan[j]) return std::numeric_limits<T>::quiet_NaN();
    m = extreme_nan<kMax>(m, acc[j]);
  }
  for (; i < n; ++i) m = extreme_nan<kMax>(m, x[i]);
  return m;
}

// First index of the extreme, where NaN counts as more extreme than everything (so the first NaN wins):
// the vectorised row_extreme finds the value, then a scan finds its first occurrence.
template <bool kMax, class T>
int64_t row_arg_extreme(const T* x, int64_t n) {
  const T m = row_extreme<kMax>(x, n);
  int64_t i = 0;
  if (m != m)
    while (x[i] == x[i]) ++i;
  else
    while (x[i] != m) ++i;
  return i;
}

// How rows are cut into chunks: rows are the unit of parallel work unless there are fewer of them than
// threads, then each row is cut into up to one chunk per thread (none of them empty).
struct Split {
  int64_t parts = 1, len = 0;
  bool parallel = false;
};

Split split_rows(int64_t rows, int64_t n) {
  Split s;
  s.parallel = rows * n >= kParallelMin;
  s.len = n;
  if (s.parallel && n > 0 && rows < omp_get_max_threads()) {
    s.len = (n + omp_get_max_threads() - 1) / omp_get_max_threads();
    s.parts = (n + s.len - 1) / s.len;
  }
  return s;
}

// Calls chunk(r, p, lo, hi) for chunk p = [lo, hi) of every row r. A small reduction runs on the calling
// thread outside any OpenMP region (even a one-thread region costs ~1 us: see elementwise.cpp).
template <class Chunk>
void for_each_chunk(int64_t rows, int64_t n, const Split& s, Chunk chunk) {
  auto item = [&](int64_t i) {  // chunk i % parts of row i / parts
    const int64_t r = i / s.parts, p = i % s.parts;
    chunk(r, p, p * s.len, std::min(n, (p + 1) * s.len));
  };
  const int64_t items = rows * s.parts;
  if (!s.parallel) {
    for (int64_t i = 0; i < items; ++i) item(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < items; ++i) item(i);
}

template <class T>
T reduce_chunk(ReduceOp op, const T* x, int64_t n) {
  if (op == ReduceOp::sum) return pairwise_sum(x, n);
  return op == ReduceOp::max ? row_extreme<true>(x, n) : row_extreme<false>(x, n);
}

template <class T>
T combine(ReduceOp op, T a, T b) {
  if (op == ReduceOp::sum) return a + b;
  return op == ReduceOp::max ? extreme_nan<true>(a, b) : extreme_nan<false>(a, b);
}

template <class T>
void reduce_typed(ReduceOp op, const T* a, int64_t rows, int64_t n, T* out) {
  const Split s = split_rows(rows, n);
  std::vector<T> partial(rows * s.parts);
  for_each_chunk(rows, n, s, [&](int64_t r, int64_t p, int64_t lo, int64_t hi) {
    partial[r * s.parts + p] = reduce_chunk(op, a + r * n + lo, hi - lo);
  });
  for (int64_t r = 0; r < rows; ++r) {
    T acc = partial[r * s.parts];
    for (int64_t p = 1; p < s.parts; ++p) acc = combine(op, acc, partial[r * s.parts + p]);
    out[r] = acc;
  }
}

template <bool kMax, class T>
void arg_reduce_typed(const T* a, int64_t rows, int64_t n, int64_t* out) {
  const Split s = split_rows(rows, n);
  std::vector<int64_t> partial(rows * s.parts);
  for_each_chunk(rows, n, s, [&](int64_t r, int64_t p, int64_t lo, int64_t hi) {
    partial[r * s.parts + p] = lo + row_arg_extreme<kMax>(a + r * n + lo, hi - lo);
  });
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = a + r * n;
    int64_t best = partial[r * s.parts];
    // a later chunk wins only with a strictly more extreme value or a first NaN
    for (int64_t p = 1; p < s.parts; ++p) {
      const int64_t i = partial[r * s.parts + p];
      if (x[best] == x[best] && ((kMax ? x[i] > x[best] : x[i] < x[best]) || x[i] != x[i])) best = i;
    }
    out[r] = best;
  }
}

}  // namespace

// rows comes from out, so a's rank does not matter as long as it is contiguous.
void reduce_rows(ReduceOp op, const NDArray& a, NDArray& out) {
  const int64_t rows = out.size(), n = rows == 0 ? 0 : a.size() / rows;
  dispatch_dtype<DTypes::numeric>(a.dtype, [&](auto t) {
    using T = decltype(t);
    reduce_typed(op, a.data<T>(), rows, n, out.data<T>());
  });
}

void arg_reduce_rows(ReduceOp op, const NDArray& a, NDArray& out) {
  const int64_t rows = out.size(), n = rows == 0 ? 0 : a.size() / rows;
  dispatch_dtype<DTypes::numeric>(a.dtype, [&](auto t) {
    using T = decltype(t);
    if (op == ReduceOp::max) arg_reduce_typed<true>(a.data<T>(), rows, n, out.data<int64_t>());
    else arg_reduce_typed<false>(a.data<T>(), rows, n, out.data<int64_t>());
  });
}

}  // namespace convlab::cpu
