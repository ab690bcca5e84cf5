// Batch norm over contiguous (N, C, S) arrays (S = product of the spatial dims), as backend.h defines it.
// One channel per OpenMP iteration: a channel's statistics are reductions over its N runs of S elements,
// summed in double in a fixed order (results do not depend on the thread count). Every pass reads each
// element once per sweep; the elementwise sweep is y = x * scale + shift with per-channel scale and shift,
// the form PyTorch's CPU kernel uses.
#include <cmath>

#include "kernels.h"

namespace convlab::cpu {
namespace {

struct Dims {
  int64_t n, c, s;
};

Dims dims_of(const NDArray& x) { return {x.shape[0], x.shape[1], x.shape[2]}; }

// channel(c) for every channel, in parallel when the array is large; a small one runs on the calling thread
// outside any OpenMP region (even a one-thread region costs ~1 us: see elementwise.cpp).
template <class Channel>
void for_each_channel(const Dims& d, Channel channel) {
  if (d.n * d.c * d.s < kParallelMin) {
    for (int64_t c = 0; c < d.c; ++c) channel(c);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.c; ++c) channel(c);
}

// Two passes per channel: the mean, then the sum of squares about it (no cancellation, unlike E[x^2] - mean^2).
template <class T>
void stats_t(const NDArray& x, NDArray& mean, NDArray& var) {
  const Dims d = dims_of(x);
  const T* xd = x.data<T>();
  T *md = mean.data<T>(), *vd = var.data<T>();
  const double count = double(d.n * d.s);
  for_each_channel(d, [&](int64_t c) {
    double sum = 0;
    for (int64_t n = 0; n < d.n; ++n) {
      const T* row = xd + (n * d.c + c) * d.s;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < d.s; ++i) sum += double(row[i]);
    }
    const double mu = sum / count;
    double sq = 0;
    for (int64_t n = 0; n < d.n; ++n) {
      const T* row = xd + (n * d.c + c) * d.s;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < d.s; ++i) {
        const double v = double(row[i]) - mu;
        sq += v * v;
      }
    }
    md[c] = T(mu);
    vd[c] = T(sq / count);
  });
}

template <class T>
void apply_t(const NDArray& x, const NDArray& mean, const NDArray& var, const NDArray* w, const NDArray* b,
             double eps, NDArray& y) {
  const Dims d = dims_of(x);
  const T *xd = x.data<T>(), *md = mean.data<T>(), *vd = var.data<T>();
  const T *wd = w ? w->data<T>() : nullptr, *bd = b ? b->data<T>() : nullptr;
  T* yd = y.data<T>();
  for_each_channel(d, [&](int64_t c) {
    const double invstd = 1.0 / std::sqrt(double(vd[c]) + eps);
    const double scale = wd ? invstd * double(wd[c]) : invstd;
    const T sc = T(scale), sh = T((bd ? double(bd[c]) : 0.0) - double(md[c]) * scale);
    for (int64_t n = 0; n < d.n; ++n) {
      const int64_t off = (n * d.c + c) * d.s;
      const T* xr = xd + off;
      T* yr = yd + off;
#pragma omp simd
      for (int64_t i = 0; i < d.s; ++i) yr[i] = xr[i] * sc + sh;
    }
  });
}

// Per channel, with xhat = (x - mean) * invstd and M = N * S elements: gb = sum(gy), gw = sum(gy * xhat);
// training: gx = invstd * w * (gy - gb / M - xhat * gw / M); eval (mean and var constants): gx = invstd * w * gy.
template <class T>
void backward_t(const NDArray& x, const NDArray& gy, const NDArray& mean, const NDArray& var, const NDArray* w,
                double eps, bool training, NDArray& gx, NDArray& gw, NDArray& gb) {
  const Dims d = dims_of(x);
  const T *xd = x.data<T>(), *gyd = gy.data<T>(), *md = mean.data<T>(), *vd = var.data<T>();
  const T* wd = w ? w->data<T>() : nullptr;
  T *gxd = gx.data<T>(), *gwd = gw.data<T>(), *gbd = gb.data<T>();
  const double count = double(d.n * d.s);
  for_each_channel(d, [&](int64_t c) {
    const double mu = double(md[c]), invstd = 1.0 / std::sqrt(double(vd[c]) + eps);
    double sum_g = 0, sum_gx = 0;  // sum(gy), sum(gy * (x - mean))
    for (int64_t n = 0; n < d.n; ++n) {
      const int64_t off = (n * d.c + c) * d.s;
      const T *xr = xd + off, *gr = gyd + off;
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int64_t i = 0; i < d.s; ++i) {
        sum_g += double(gr[i]);
        sum_gx += double(gr[i]) * (double(xr[i]) - mu);
      }
    }
    gbd[c] = T(sum_g);
    gwd[c] = T(sum_gx * invstd);
    const double scale = invstd * (wd ? double(wd[c]) : 1.0);
    // gx = gy * a + x * k + shift: the training terms folded into per-channel constants.
    const double k = -scale * invstd * invstd * sum_gx / count, shift = -scale * sum_g / count - mu * k;
    const T ta = T(scale), tk = T(k), ts = T(shift);
    for (int64_t n = 0; n < d.n; ++n) {
      const int64_t off = (n * d.c + c) * d.s;
      const T *xr = xd + off, *gr = gyd + off;
      T* gxr = gxd + off;
      if (training) {
#pragma omp simd
        for (int64_t i = 0; i < d.s; ++i) gxr[i] = gr[i] * ta + xr[i] * tk + ts;
      } else {  // x is in no term: a NaN or inf in x must not reach gx (PyTorch's eval gradient)
#pragma omp simd
        for (int64_t i = 0; i < d.s; ++i) gxr[i] = gr[i] * ta;
      }
    }
  });
}

}  // namespace

void batch_norm_stats(const NDArray& x, NDArray& mean, NDArray& var) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) { stats_t<decltype(t)>(x, mean, var); });
}

void batch_norm_apply(const NDArray& x, const NDArray& mean, const NDArray& var, const NDArray* w,
                      const NDArray* b, double eps, NDArray& y) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) { apply_t<decltype(t)>(x, mean, var, w, b, eps, y); });
}

void batch_norm_backward(const NDArray& x, const NDArray& gy, const NDArray& mean, const NDArray& var,
                         const NDArray* w, double eps, bool training, NDArray& gx, NDArray& gw, NDArray& gb) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    backward_t<decltype(t)>(x, gy, mean, var, w, eps, training, gx, gw, gb);
  });
}

}  // namespace convlab::cpu
