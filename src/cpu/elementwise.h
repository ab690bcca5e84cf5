// The walk every element-wise CPU kernel shares (elementwise.cpp, optim_step.cpp): K operands of one shape
// with any strides, their axes merged where all of them allow it, the element range split evenly across
// threads, each thread running the innermost axis as a tight loop.
#pragma once
#include <omp.h>

#include <algorithm>
#include <array>

#include "../common/ndarray.h"
#include "kernels.h"

namespace convlab::cpu {

// K operands laid over one shape: size-1 axes dropped, neighbours merged where every operand's outer
// stride equals its inner stride times the inner length (a contiguous array becomes one flat run).
template <size_t K>
struct Layout {
  Shape shape;
  std::array<Shape, K> strides;
  int64_t size = 1;
};

template <size_t K>
Layout<K> merge_axes(const Shape& shape, const std::array<const Shape*, K>& strides) {
  Layout<K> l;
  for (size_t d = 0; d < shape.size(); ++d) {
    l.size *= shape[d];
    if (shape[d] == 1) continue;
    bool merge = !l.shape.empty();
    for (size_t k = 0; k < K && merge; ++k) merge = l.strides[k].back() == (*strides[k])[d] * shape[d];
    if (merge) l.shape.back() *= shape[d];
    else l.shape.push_back(shape[d]);
    for (size_t k = 0; k < K; ++k) {
      if (merge) l.strides[k].back() = (*strides[k])[d];
      else l.strides[k].push_back((*strides[k])[d]);
    }
  }
  if (l.shape.empty()) {  // a single element
    l.shape.push_back(1);
    for (auto& s : l.strides) s.push_back(1);
  }
  return l;
}

// Calls run(off, len) for each run of len consecutive elements along the innermost axis within the element
// range [begin, end); off[k] is the element offset of the run's first element in operand k.
template <size_t K, class Run>
void runs_in_range(const Layout<K>& l, int64_t begin, int64_t end, Run& run) {
  if (begin >= end) return;
  const int nd = static_cast<int>(l.shape.size());
  const int64_t inner = l.shape[nd - 1];
  Shape idx(nd, 0);
  std::array<int64_t, K> off{};
  int64_t col = begin % inner, rest = begin / inner;
  for (int d = nd - 2; d >= 0; --d) {
    idx[d] = rest % l.shape[d];
    rest /= l.shape[d];
  }
  for (size_t k = 0; k < K; ++k) {
    off[k] = col * l.strides[k][nd - 1];
    for (int d = 0; d < nd - 1; ++d) off[k] += idx[d] * l.strides[k][d];
  }
  for (int64_t left = end - begin;;) {
    const int64_t len = std::min(inner - col, left);
    run(off, len);
    left -= len;
    if (left == 0) break;
    for (size_t k = 0; k < K; ++k) off[k] -= col * l.strides[k][nd - 1];
    col = 0;
    for (int d = nd - 2; d >= 0; --d) {  // odometer step to the next row
      for (size_t k = 0; k < K; ++k) off[k] += l.strides[k][d];
      if (++idx[d] < l.shape[d]) break;
      for (size_t k = 0; k < K; ++k) off[k] -= l.shape[d] * l.strides[k][d];
      idx[d] = 0;
    }
  }
}

// runs_in_range over every element. Threads take equal slices of the element range, so a single long row
// is split as well as many short ones. Below kParallelMin elements the calling thread runs it without
// entering an OpenMP region: even a one-thread region costs a team and a futex wake-up (~1 us here), a
// fifth of a small op's whole cost.
template <size_t K, class Run>
void for_each_run(const Layout<K>& l, Run run) {
  const int64_t total = l.size;
  if (total < kParallelMin) return runs_in_range(l, 0, total, run);
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t chunk = (total + nt - 1) / nt;
    const int64_t begin = std::min(total, t * chunk);
    runs_in_range(l, begin, std::min(total, begin + chunk), run);
  }
}

}  // namespace convlab::cpu
