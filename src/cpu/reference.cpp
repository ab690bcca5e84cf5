// The reference table: the CPU backend with every conv and pool entry replaced by the definition in
// common/reference.h, evaluated one output element at a time over whole host arrays. Slow and plain on
// purpose: convlab._C.reference runs on it, and the tests hold the fast kernels of both devices to it.
#include "../common/reference.h"
#include "kernels.h"

namespace convlab::reference {
namespace {

// out[i] = element(i, T{}) for every element of out, T its float type (element reads its inputs as T*).
// Elements are independent, so threads split them freely.
template <class F>
void for_each_element(NDArray& out, F element) {
  dispatch_dtype<DTypes::floating>(out.dtype, [&](auto t) {
    decltype(t)* o = out.data<decltype(t)>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < out.size(); ++i) o[i] = element(i, t);
  });
}

// Element i of an (N, C, OH, OW) output is (i / (C*OH*OW), i / (OH*OW) % C, row, column); the same for
// the (N, C, H, W) gradients of the inputs.
void conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  const int64_t ohw = p.oh * p.ow;
  for_each_element(y, [&](int64_t i, auto t) {
    using T = decltype(t);
    const T* b = bias ? bias->data<T>() : nullptr;
    return conv_forward_at(x.data<T>(), w.data<T>(), b, p, i / ohw / p.c_out, i / ohw % p.c_out, i % ohw / p.ow,
                           i % p.ow);
  });
}

void conv_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  const int64_t hw = p.h * p.w;
  for_each_element(gx, [&](int64_t i, auto t) {
    using T = decltype(t);
    return conv_backward_input_at(gy.data<T>(), w.data<T>(), p, i / hw / p.c_in, i / hw % p.c_in, i % hw / p.w,
                                  i % p.w);
  });
}

void conv_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) {
  const int64_t taps = p.kh * p.kw, cig = p.c_in_per_group();
  for_each_element(gw, [&](int64_t i, auto t) {
    using T = decltype(t);
    return conv_backward_weight_at(x.data<T>(), gy.data<T>(), p, i / taps / cig, i / taps % cig, i % taps / p.kw,
                                   i % p.kw);
  });
}

// Pooling: element i is (plane i / plane size, row, column); indices, when asked, get each window's argmax.
void max_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y, NDArray* indices) {
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow;
  int64_t* id = indices ? indices->data<int64_t>() : nullptr;
  for_each_element(y, [&](int64_t i, auto t) {
    const decltype(t)* plane = x.data<decltype(t)>() + i / ohw * hw;
    if (id) id[i] = max_pool_argmax(plane, p, i % ohw / p.ow, i % p.ow);
    return max_pool_forward_at(plane, p, i % ohw / p.ow, i % p.ow);
  });
}

// The argmax table is the forward's indices.
void max_pool_backward(const NDArray& indices, const NDArray& gy, const PoolParams& p, NDArray& gx) {
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow;
  for_each_element(gx, [&](int64_t i, auto t) {
    const int64_t* plane_id = indices.data<int64_t>() + i / hw * ohw;
    auto argmax_of = [&](int64_t oh, int64_t ow) { return plane_id[oh * p.ow + ow]; };
    return max_pool_backward_at(gy.data<decltype(t)>() + i / hw * ohw, p, i % hw / p.w, i % p.w, argmax_of);
  });
}

void box_pool_forward(const NDArray& x, const PoolParams& p, bool adaptive, NDArray& y) {
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow;
  for_each_element(y, [&](int64_t i, auto t) {
    return avg_pool_forward_at(x.data<decltype(t)>() + i / ohw * hw, p, adaptive, i % ohw / p.ow, i % p.ow);
  });
}

void box_pool_backward(const NDArray& gy, const PoolParams& p, bool adaptive, NDArray& gx) {
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow;
  for_each_element(gx, [&](int64_t i, auto t) {
    return avg_pool_backward_at(gy.data<decltype(t)>() + i / hw * ohw, p, adaptive, i % hw / p.w, i % p.w);
  });
}

Backend make_table() {
  Backend b = cpu_backend;
  b.conv_forward = conv_forward;
  b.conv_backward_input = conv_backward_input;
  b.conv_backward_weight = conv_backward_weight;
  b.conv_depthwise_forward = conv_forward;  // the definition has no special case
  b.conv_depthwise_backward_input = conv_backward_input;
  b.conv_depthwise_backward_weight = conv_backward_weight;
  b.max_pool_forward = max_pool_forward;
  b.max_pool_backward = max_pool_backward;
  b.avg_pool_forward = [](const NDArray& x, const PoolParams& p, NDArray& y) {
    box_pool_forward(x, p, false, y);
  };
  b.avg_pool_backward = [](const NDArray& gy, const PoolParams& p, NDArray& gx) {
    box_pool_backward(gy, p, false, gx);
  };
  b.adaptive_avg_pool_forward = [](const NDArray& x, const PoolParams& p, NDArray& y) {
    box_pool_forward(x, p, true, y);
  };
  b.adaptive_avg_pool_backward = [](const NDArray& gy, const PoolParams& p, NDArray& gx) {
    box_pool_backward(gy, p, true, gx);
  };
  return b;
}

}  // namespace
}  // namespace convlab::reference

namespace convlab {

const Backend& reference_backend() {
  static const Backend table = reference::make_table();
  return table;
}

}  // namespace convlab
