// Indexing: gather out[o, j, i] = a[o, index[o, j, i], i]; scatter out[o, index[o, j, i], i] (+)= src[o, j, i];
// where out = cond ? a : b; nonzero lists the positions of a != 0. Loop order: gather in parallel over blocks
// of (o, j) rows, where over rows of out; scatter over (o, block of i) columns with j walked serially (each
// output element takes its contributions in index order, whatever the thread count); nonzero over equal
// chunks of the flat array. One index per row of i (index_select, take, put) moves whole rows.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels.h"

namespace convlab::cpu {

namespace {

// Elements one gather task writes (whole rows of i), and columns of i one scatter task owns: enough work to
// amortise a task and keep the innermost loop vectorised, little enough that the tasks share out.
constexpr int64_t kGatherTask = 4096;
constexpr int64_t kScatterColumns = 256;

// An entry of [-n, n) as a position along an axis of length n.
template <class I>
int64_t wrap(I k, int64_t n) {
  return k < 0 ? k + n : k;
}

template <class T, class I>
void gather_typed(const NDArray& a, const NDArray& index, NDArray& out) {
  const int64_t outer = out.shape[0], n_i = out.shape[1], inner = out.shape[2], n_a = a.shape[1];
  const int64_t so = index.strides[0], sj = index.strides[1], si = index.strides[2];
  const int64_t rows = std::max<int64_t>(1, kGatherTask / inner), blocks = (n_i + rows - 1) / rows;
  const T* pa = a.data<T>();
  const I* pi = index.data<I>();
  T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (out.size() >= kParallelMin)
  for (int64_t task = 0; task < outer * blocks; ++task) {
    const int64_t o = task / blocks, j0 = task % blocks * rows, j1 = std::min(n_i, j0 + rows);
    const T* x = pa + o * n_a * inner;
    const I* idx = pi + o * so;
    T* y = po + o * n_i * inner;
    if (inner == 1) {  // along the last axis: one element per index
      for (int64_t j = j0; j < j1; ++j) y[j] = x[wrap(idx[j * sj], n_a)];
    } else if (si == 0) {  // one index per row of i (index_select, take): row copies
      for (int64_t j = j0; j < j1; ++j) std::copy_n(x + wrap(idx[j * sj], n_a) * inner, inner, y + j * inner);
    } else {
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = 0; i < inner; ++i) y[j * inner + i] = x[wrap(idx[j * sj + i * si], n_a) * inner + i];
    }
  }
}

template <class T, class I>
void scatter_typed(const NDArray& index, const NDArray& src, NDArray& out, bool accumulate) {
  const int64_t outer = src.shape[0], n_i = src.shape[1], inner = src.shape[2], n_out = out.shape[1];
  const int64_t so = index.strides[0], sj = index.strides[1], si = index.strides[2];
  const int64_t blocks = (inner + kScatterColumns - 1) / kScatterColumns;
  const I* pi = index.data<I>();
  const T* ps = src.data<T>();
  T* po = out.data<T>();
  const auto update = [accumulate](T& t, T s) { t = accumulate ? static_cast<T>(t + s) : s; };
#pragma omp parallel for schedule(static) if (src.size() >= kParallelMin)
  for (int64_t task = 0; task < outer * blocks; ++task) {
    const int64_t o = task / blocks, i0 = task % blocks * kScatterColumns;
    const int64_t i1 = std::min(inner, i0 + kScatterColumns);
    const I* idx = pi + o * so;
    const T* s = ps + o * n_i * inner;
    T* y = po + o * n_out * inner;
    if (inner == 1) {  // along the last axis: one element per index
      for (int64_t j = 0; j < n_i; ++j) update(y[wrap(idx[j * sj], n_out)], s[j]);
    } else if (si == 0) {  // one index per row of i (index_add, put): row updates
      for (int64_t j = 0; j < n_i; ++j) {
        T* row = y + wrap(idx[j * sj], n_out) * inner;
        for (int64_t i = i0; i < i1; ++i) update(row[i], s[j * inner + i]);
      }
    } else {
      for (int64_t j = 0; j < n_i; ++j)
        for (int64_t i = i0; i < i1; ++i) update(y[wrap(idx[j * sj + i * si], n_out) * inner + i], s[j * inner + i]);
    }
  }
}

// cond, a and b are views broadcast to out's shape: each row of out's last axis finds its three starts by
// unravelling the row number.
template <class T>
void where_typed(const NDArray& cond, const NDArray& a, const NDArray& b, NDArray& out) {
  const int nd = out.ndim();
  const int64_t n = nd == 0 ? 1 : out.shape[nd - 1], rows = out.size() / n;
  const auto last = [&](const NDArray& x) { return nd == 0 ? int64_t{0} : x.strides[nd - 1]; };
  const int64_t sc = last(cond), sa = last(a), sb = last(b);
  const bool* pc = cond.data<bool>();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (out.size() >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t oc = 0, oa = 0, ob = 0;
    for (int64_t d = nd - 2, rest = r; d >= 0; --d) {
      const int64_t k = rest % out.shape[d];
      rest /= out.shape[d];
      oc += k * cond.strides[d], oa += k * a.strides[d], ob += k * b.strides[d];
    }
    T* y = po + r * n;
    for (int64_t i = 0; i < n; ++i) y[i] = pc[oc + i * sc] ? pa[oa + i * sa] : pb[ob + i * sb];
  }
}

// The flat array cut into one chunk per thread; chunk c covers [c * len, min(size, (c + 1) * len)).
struct Chunks {
  int64_t count, len;
};

Chunks chunks_of(int64_t size) {
  const int64_t threads = size >= kParallelMin ? omp_get_max_threads() : 1;
  const int64_t len = std::max<int64_t>(1, (size + threads - 1) / threads);
  return {(size + len - 1) / len, len};
}

template <class T>
std::vector<int64_t> count_chunks(const T* x, int64_t size, const Chunks& ch) {
  std::vector<int64_t> counts(ch.count);
#pragma omp parallel for schedule(static) if (ch.count > 1)
  for (int64_t c = 0; c < ch.count; ++c) {
    int64_t k = 0;
    for (int64_t e = c * ch.len, end = std::min(size, e + ch.len); e < end; ++e) k += x[e] != T(0);
    counts[c] = k;
  }
  return counts;
}

template <class T>
int64_t count_nonzero_typed(const NDArray& a) {
  const std::vector<int64_t> counts = count_chunks(a.data<T>(), a.size(), chunks_of(a.size()));
  int64_t total = 0;
  for (int64_t k : counts) total += k;
  return total;
}

// Chunk c writes its rows from the count of all chunks before it, so rows stay in row-major order.
template <class T>
void nonzero_typed(const NDArray& a, NDArray& out) {
  const T* x = a.data<T>();
  const int64_t size = a.size();
  const int nd = a.ndim();
  const Chunks ch = chunks_of(size);
  std::vector<int64_t> first = count_chunks(x, size, ch);
  for (int64_t c = 0, before = 0; c < ch.count; ++c) {  // counts -> exclusive prefix sums
    const int64_t k = first[c];
    first[c] = before;
    before += k;
  }
  int64_t* po = out.data<int64_t>();
#pragma omp parallel for schedule(static) if (ch.count > 1)
  for (int64_t c = 0; c < ch.count; ++c) {
    int64_t* y = po + first[c] * nd;
    for (int64_t e = c * ch.len, end = std::min(size, e + ch.len); e < end; ++e) {
      if (x[e] == T(0)) continue;
      for (int64_t d = nd - 1, rest = e; d >= 0; --d) {
        y[d] = rest % a.shape[d];
        rest /= a.shape[d];
      }
      y += nd;
    }
  }
}

}  // namespace

void gather(const NDArray& a, const NDArray& index, NDArray& out) {
  dispatch_dtype(a.dtype, [&](auto t) {
    dispatch_dtype<DTypes::index>(index.dtype, [&](auto i) { gather_typed<decltype(t), decltype(i)>(a, index, out); });
  });
}

// unique changes nothing here: the columns already give the threads enough work on a CPU.
void scatter(const NDArray& index, const NDArray& src, NDArray& out, bool accumulate, bool unique) {
  dispatch_dtype(src.dtype, [&](auto t) {
    dispatch_dtype<DTypes::index>(index.dtype, [&](auto i) {
      scatter_typed<decltype(t), decltype(i)>(index, src, out, accumulate);
    });
  });
}

void where(const NDArray& cond, const NDArray& a, const NDArray& b, NDArray& out) {
  dispatch_dtype(out.dtype, [&](auto t) { where_typed<decltype(t)>(cond, a, b, out); });
}

int64_t count_nonzero(const NDArray& a) {
  int64_t n = 0;
  dispatch_dtype(a.dtype, [&](auto t) { n = count_nonzero_typed<decltype(t)>(a); });
  return n;
}

void nonzero(const NDArray& a, NDArray& out) {
  dispatch_dtype(a.dtype, [&](auto t) { nonzero_typed<decltype(t)>(a, out); });
}

}  // namespace convlab::cpu
