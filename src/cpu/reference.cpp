// The reference table: the CPU backend with every conv and pool entry replaced by the definition in
// common/reference.h, evaluated one output element at a time over whole host arrays. Slow and plain on
// purpose: convlab._C.reference runs on it, and the tests hold the fast kernels of both devices to it.
#include "../common/reference.h"
#include "kernels.h"

namespace convlab::reference {
namespace {

// Calls element(i) for every i < total; elements are independent, so threads split them freely.
template <class F>
void for_each_element(int64_t total, F element) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < total; ++i) element(i);
}

void conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T *xd = x.data<T>(), *wd = w.data<T>(), *b = bias ? bias->data<T>() : nullptr;
    T* yd = y.data<T>();
    const int64_t ohw = p.oh * p.ow;
    for_each_element(y.size(), [&](int64_t i) {
      yd[i] = conv_forward_at(xd, wd, b, p, i / ohw / p.c_out, i / ohw % p.c_out, i % ohw / p.ow, i % p.ow);
    });
  });
}

void conv_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    const T *gyd = gy.data<T>(), *wd = w.data<T>();
    T* gxd = gx.data<T>();
    const int64_t hw = p.h * p.w;
    for_each_element(gx.size(), [&](int64_t i) {
      gxd[i] = conv_backward_input_at(gyd, wd, p, i / hw / p.c_in, i / hw % p.c_in, i % hw / p.w, i % p.w);
    });
  });
}

void conv_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T *xd = x.data<T>(), *gyd = gy.data<T>();
    T* gwd = gw.data<T>();
    const int64_t taps = p.kh * p.kw, cig = p.c_in_per_group();
    for_each_element(gw.size(), [&](int64_t i) {
      gwd[i] = conv_backward_weight_at(xd, gyd, p, i / taps / cig, i / taps % cig, i % taps / p.kw, i % p.kw);
    });
  });
}

// Pooling: element i of an (N, C, OH, OW) or (N, C, H, W) array is (plane i / plane size, row, column).
void max_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y, NDArray* indices) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* xd = x.data<T>();
    T* yd = y.data<T>();
    int64_t* id = indices ? indices->data<int64_t>() : nullptr;
    const int64_t hw = p.h * p.w, ohw = p.oh * p.ow;
    for_each_element(y.size(), [&](int64_t i) {
      const T* plane = xd + i / ohw * hw;
      yd[i] = max_pool_forward_at(plane, p, i % ohw / p.ow, i % p.ow);
      if (id) id[i] = max_pool_argmax(plane, p, i % ohw / p.ow, i % p.ow);
    });
  });
}

// The argmax table is the forward's indices.
void max_pool_backward(const NDArray& indices, const NDArray& gy, const PoolParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    const T* gyd = gy.data<T>();
    const int64_t* id = indices.data<int64_t>();
    T* gxd = gx.data<T>();
    const int64_t hw = p.h * p.w, ohw = p.oh * p.ow;
    for_each_element(gx.size(), [&](int64_t i) {
      const int64_t* plane_id = id + i / hw * ohw;
      auto argmax_of = [&](int64_t oh, int64_t ow) { return plane_id[oh * p.ow + ow]; };
      gxd[i] = max_pool_backward_at(gyd + i / hw * ohw, p, i % hw / p.w, i % p.w, argmax_of);
    });
  });
}

void box_pool_forward(const NDArray& x, const PoolParams& p, bool adaptive, NDArray& y) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* xd = x.data<T>();
    T* yd = y.data<T>();
    const int64_t hw = p.h * p.w, ohw = p.oh * p.ow;
    for_each_element(y.size(), [&](int64_t i) {
      yd[i] = avg_pool_forward_at(xd + i / ohw * hw, p, adaptive, i % ohw / p.ow, i % p.ow);
    });
  });
}

void box_pool_backward(const NDArray& gy, const PoolParams& p, bool adaptive, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    const T* gyd = gy.data<T>();
    T* gxd = gx.data<T>();
    const int64_t hw = p.h * p.w, ohw = p.oh * p.ow;
    for_each_element(gx.size(), [&](int64_t i) {
      gxd[i] = avg_pool_backward_at(gyd + i / hw * ohw, p, adaptive, i % hw / p.w, i % p.w);
    });
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
