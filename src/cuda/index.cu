// Indexing: gather out[o, j, i] = a[o, index[o, j, i], i]; scatter out[o, index[o, j, i], i] (+)= src[o, j, i];
// where out = cond ? a : b; nonzero lists the positions of a != 0. Gather and where: one thread per output
// element. Scatter: one thread per (o, i) column walking j serially, so each output element takes its
// contributions in index order (no atomics); one thread per entry where the index repeats no position.
// Nonzero: one thread per chunk counts, the host turns the counts into each chunk's first row, then each
// thread writes its chunk's rows in order.
#include <vector>

#include "common.cuh"

namespace convlab::cuda {
namespace {

// At most this many chunks for nonzero: enough threads to read the array quickly, few counts to copy.
constexpr int64_t kNonzeroChunks = 65536;

// The (outer, n, inner) geometry every gather and scatter shares; index is walked through its strides
// (0 along axes it is broadcast over).
struct IndexGeometry {
  int64_t outer, n_index, inner, n_data;  // n_data: the indexed axis of a (gather) or of out (scatter)
  int64_t so, sj, si;
};

IndexGeometry geometry_of(const NDArray& index, const NDArray& data) {
  return {index.shape[0], index.shape[1], index.shape[2], data.shape[1],
          index.strides[0], index.strides[1], index.strides[2]};
}

// An entry of [-n, n) as a position along an axis of length n.
template <class I>
__device__ int64_t wrap(I k, int64_t n) {
  return k < 0 ? k + n : k;
}

template <class T, class I>
__global__ void gather_kernel(const T* a, const I* index, IndexGeometry g, T* out, int64_t total) {
  for (int64_t e = thread_index(); e < total; e += thread_count()) {
    const int64_t i = e % g.inner, r = e / g.inner, j = r % g.n_index, o = r / g.n_index;
    const int64_t k = wrap(index[o * g.so + j * g.sj + i * g.si], g.n_data);
    out[e] = a[(o * g.n_data + k) * g.inner + i];
  }
}

template <class T, class I>
__global__ void scatter_kernel(const I* index, const T* src, IndexGeometry g, bool accumulate, T* out,
                               int64_t columns) {
  for (int64_t c = thread_index(); c < columns; c += thread_count()) {
    const int64_t i = c % g.inner, o = c / g.inner;
    T* y = out + o * g.n_data * g.inner + i;
    for (int64_t j = 0; j < g.n_index; ++j) {
      const int64_t k = wrap(index[o * g.so + j * g.sj + i * g.si], g.n_data);
      const T s = src[(o * g.n_index + j) * g.inner + i];
      y[k * g.inner] = accumulate ? static_cast<T>(y[k * g.inner] + s) : s;
    }
  }
}

// Every index entry in parallel: only for an index that never repeats a position within a column.
template <class T, class I>
__global__ void scatter_unique_kernel(const I* index, const T* src, IndexGeometry g, bool accumulate, T* out,
                                      int64_t total) {
  for (int64_t e = thread_index(); e < total; e += thread_count()) {
    const int64_t i = e % g.inner, r = e / g.inner, j = r % g.n_index, o = r / g.n_index;
    T& y = out[(o * g.n_data + wrap(index[o * g.so + j * g.sj + i * g.si], g.n_data)) * g.inner + i];
    y = accumulate ? static_cast<T>(y + src[e]) : src[e];
  }
}

// A shape passed by value, for unravelling flat indices.
struct Dims {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
};

Dims dims_of(const Shape& shape) {
  Dims d;
  d.rank = static_cast<int>(shape.size());
  for (int k = 0; k < d.rank; ++k) d.shape[k] = shape[k];
  return d;
}

// out's shape and the three operands' strides over it.
struct WhereGeometry {
  Dims dims;
  int64_t sc[kMaxRank] = {}, sa[kMaxRank] = {}, sb[kMaxRank] = {};
};

template <class T>
__global__ void where_kernel(const bool* cond, const T* a, const T* b, WhereGeometry g, T* out, int64_t total) {
  for (int64_t e = thread_index(); e < total; e += thread_count()) {
    int64_t oc = 0, oa = 0, ob = 0, rest = e;
    for (int d = g.dims.rank - 1; d >= 0; --d) {
      const int64_t k = rest % g.dims.shape[d];
      rest /= g.dims.shape[d];
      oc += k * g.sc[d], oa += k * g.sa[d], ob += k * g.sb[d];
    }
    out[e] = cond[oc] ? a[oa] : b[ob];
  }
}

struct Chunks {
  int64_t count, len;
};

Chunks chunks_of(int64_t size) {
  const int64_t len = ceil_div(size, std::min(size, kNonzeroChunks));
  return {ceil_div(size, len), len};
}

template <class T>
__global__ void count_kernel(const T* x, int64_t size, Chunks ch, int64_t* counts) {
  for (int64_t c = thread_index(); c < ch.count; c += thread_count()) {
    int64_t k = 0;
    for (int64_t e = c * ch.len, end = std::min(size, e + ch.len); e < end; ++e) k += x[e] != T(0);
    counts[c] = k;
  }
}

template <class T>
__global__ void nonzero_kernel(const T* x, int64_t size, Chunks ch, const int64_t* first, Dims g, int64_t* out) {
  for (int64_t c = thread_index(); c < ch.count; c += thread_count()) {
    int64_t* y = out + first[c] * g.rank;
    for (int64_t e = c * ch.len, end = std::min(size, e + ch.len); e < end; ++e) {
      if (x[e] == T(0)) continue;
      int64_t rest = e;
      for (int d = g.rank - 1; d >= 0; --d) {
        y[d] = rest % g.shape[d];
        rest /= g.shape[d];
      }
      y += g.rank;
    }
  }
}

// Per-chunk counts of a's non-zero elements, on the host.
std::vector<int64_t> chunk_counts(const NDArray& a, const Chunks& ch) {
  Workspace<int64_t> counts(ch.count);
  dispatch_dtype(a.dtype, [&](auto t) {
    using T = decltype(t);
    count_kernel<<<blocks_for(ch.count), kThreads>>>(a.data<T>(), a.size(), ch, counts.ptr);
  });
  check_launch("count_nonzero");
  std::vector<int64_t> host(ch.count);
  to_host(host.data(), counts.ptr, ch.count * sizeof(int64_t));
  return host;
}

}  // namespace

void gather(const NDArray& a, const NDArray& index, NDArray& out) {
  const int64_t total = out.size();
  const IndexGeometry g = geometry_of(index, a);
  dispatch_dtype(a.dtype, [&](auto t) {
    dispatch_dtype<DTypes::index>(index.dtype, [&](auto i) {
      using T = decltype(t);
      using I = decltype(i);
      gather_kernel<<<blocks_for(total), kThreads>>>(a.data<T>(), index.data<I>(), g, out.data<T>(), total);
    });
  });
  check_launch("gather");
}

void scatter(const NDArray& index, const NDArray& src, NDArray& out, bool accumulate, bool unique) {
  const IndexGeometry g = geometry_of(index, out);
  const int64_t columns = g.outer * g.inner, total = src.size();
  dispatch_dtype(src.dtype, [&](auto t) {
    dispatch_dtype<DTypes::index>(index.dtype, [&](auto i) {
      using T = decltype(t);
      using I = decltype(i);
      if (unique)
        scatter_unique_kernel<<<blocks_for(total), kThreads>>>(index.data<I>(), src.data<T>(), g, accumulate,
                                                               out.data<T>(), total);
      else
        scatter_kernel<<<blocks_for(columns), kThreads>>>(index.data<I>(), src.data<T>(), g, accumulate,
                                                           out.data<T>(), columns);
    });
  });
  check_launch("scatter");
}

void where(const NDArray& cond, const NDArray& a, const NDArray& b, NDArray& out) {
  const int64_t total = out.size();
  WhereGeometry g;
  g.dims = dims_of(out.shape);
  for (int d = 0; d < out.ndim(); ++d) {
    g.sc[d] = cond.strides[d], g.sa[d] = a.strides[d], g.sb[d] = b.strides[d];
  }
  dispatch_dtype(out.dtype, [&](auto t) {
    using T = decltype(t);
    where_kernel<<<blocks_for(total), kThreads>>>(cond.data<bool>(), a.data<T>(), b.data<T>(), g, out.data<T>(),
                                                  total);
  });
  check_launch("where");
}

int64_t count_nonzero(const NDArray& a) {
  int64_t total = 0;
  for (int64_t k : chunk_counts(a, chunks_of(a.size()))) total += k;
  return total;
}

void nonzero(const NDArray& a, NDArray& out) {
  const Chunks ch = chunks_of(a.size());
  std::vector<int64_t> first = chunk_counts(a, ch);
  for (int64_t c = 0, before = 0; c < ch.count; ++c) {  // counts -> exclusive prefix sums
    const int64_t k = first[c];
    first[c] = before;
    before += k;
  }
  Workspace<int64_t> first_dev(ch.count);
  from_host(first_dev.ptr, first.data(), ch.count * sizeof(int64_t));
  const Dims g = dims_of(a.shape);
  dispatch_dtype(a.dtype, [&](auto t) {
    using T = decltype(t);
    nonzero_kernel<<<blocks_for(ch.count), kThreads>>>(a.data<T>(), a.size(), ch, first_dev.ptr, g,
                                                       out.data<int64_t>());
  });
  check_launch("nonzero");
}

}  // namespace convlab::cuda
