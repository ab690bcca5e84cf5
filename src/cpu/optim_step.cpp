// The optimizers' steps (Backend::sgd_step, adam_step): p and its state updated in place, one element at a
// time by common/optim_math.h, over the walk of elementwise.h. This file is compiled with -ffp-contract=off
// (CMakeLists.txt): each multiply and add rounds on its own, as in PyTorch's sequence of tensor ops, so that
// parameters whose gradient is rounding noise (a bias before batch norm) take PyTorch's steps too.
#include <utility>

#include "../common/optim_math.h"
#include "elementwise.h"
#include "kernels.h"

namespace convlab::cpu {
namespace {

// f(e0, e1, ...) for each element position of K arrays of one shape (any strides), ek the element of
// array k as an lvalue: an in-place update writes through the ones it takes by reference.
// The unit-stride loop is vectorised by `omp simd`: without it GCC kept it scalar (1.5 ns an element), since
// the stores through the references might alias the other arrays and the update's own constants (reloaded
// every element). Neither can happen: ops.cpp refuses written arrays that share memory and hands over a
// copy of g when it shares one, and f is a local copy here.
template <class T, size_t K, class F, size_t... I>
void run_in_place(const std::array<T*, K>& q, const std::array<int64_t, K>& s, int64_t len, const F& update,
                  std::index_sequence<I...>) {
  const F f = update;
  if (((s[I] == 1) && ...)) {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) f(q[I][i]...);
  } else {
    for (int64_t i = 0; i < len; ++i) f(q[I][i * s[I]]...);
  }
}

template <class T, size_t K, class F>
void update_in_place(const std::array<const NDArray*, K>& arrays, const F& f) {
  std::array<const Shape*, K> strides;
  for (size_t k = 0; k < K; ++k) strides[k] = &arrays[k]->strides;
  const auto l = merge_axes<K>(arrays[0]->shape, strides);
  std::array<int64_t, K> inner;
  for (size_t k = 0; k < K; ++k) inner[k] = l.strides[k].back();
  for_each_run(l, [&](const std::array<int64_t, K>& off, int64_t len) {
    std::array<T*, K> q;
    for (size_t k = 0; k < K; ++k) q[k] = arrays[k]->template data<T>() + off[k];
    run_in_place<T, K>(q, inner, len, f, std::make_index_sequence<K>());
  });
}

}  // namespace

void sgd_step(const NDArray& p, const NDArray& g, const NDArray* buf, const SgdOptions& o) {
  dispatch_dtype<DTypes::floating>(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const SgdUpdate<T> update(o);
    if (buf) update_in_place<T, 3>({&p, &g, buf}, update);
    else update_in_place<T, 2>({&p, &g}, update);
  });
}

void adam_step(const NDArray& p, const NDArray& g, const NDArray& m, const NDArray& v, const NDArray* v_max,
               const AdamOptions& o) {
  dispatch_dtype<DTypes::floating>(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const AdamUpdate<T> update(o);
    if (v_max) update_in_place<T, 5>({&p, &g, &m, &v, v_max}, update);
    else update_in_place<T, 4>({&p, &g, &m, &v}, update);
  });
}

}  // namespace convlab::cpu
