// Batch norm over contiguous (N, C, S) arrays as backend.h defines it. Reductions: a block per channel (a
// grid-stride loop over channels), each thread summing a strided share of the channel's N * S elements in
// double, then a fixed tree over the block in shared memory (no atomics: the same result on every run).
// The elementwise parts: one thread per element, the channel's constants recomputed from the (C) arrays,
// which stay in cache.
#include "common.cuh"

namespace convlab::cuda {
namespace {

// The sum of every thread's v over the block (blockDim.x == kThreads, a power of two), returned to all.
__device__ double block_sum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  const double sum = shared[0];
  __syncthreads();  // shared is reused by the next call
  return sum;
}

// Element j of channel c's N * S elements.
__device__ inline int64_t at(int64_t j, int64_t c, int64_t channels, int64_t s) {
  return (j / s * channels + c) * s + j % s;
}

// Two passes per channel: the mean, then the sum of squares about it.
template <class T>
__global__ void stats_kernel(const T* x, int64_t n, int64_t channels, int64_t s, T* mean, T* var) {
  __shared__ double shared[kThreads];
  const int64_t count = n * s;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double sum = 0;
    for (int64_t j = threadIdx.x; j < count; j += kThreads) sum += double(x[at(j, c, channels, s)]);
    const double mu = block_sum(sum, shared) / double(count);
    double sq = 0;
    for (int64_t j = threadIdx.x; j < count; j += kThreads) {
      const double v = double(x[at(j, c, channels, s)]) - mu;
      sq += v * v;
    }
    sq = block_sum(sq, shared);
    if (threadIdx.x == 0) {
      mean[c] = T(mu);
      var[c] = T(sq / double(count));
    }
  }
}

template <class T>
__global__ void apply_kernel(const T* x, const T* mean, const T* var, const T* w, const T* b, double eps,
                             int64_t total, int64_t channels, int64_t s, T* y) {
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const int64_t c = i / s % channels;
    const double scale = rsqrt(double(var[c]) + eps) * (w ? double(w[c]) : 1.0);
    y[i] = T((double(x[i]) - double(mean[c])) * scale + (b ? double(b[c]) : 0.0));
  }
}

// gb = sum(gy), gw = sum(gy * (x - mean)) * invstd per channel.
template <class T>
__global__ void backward_reduce_kernel(const T* x, const T* gy, const T* mean, const T* var, double eps, int64_t n,
                                       int64_t channels, int64_t s, T* gw, T* gb) {
  __shared__ double shared[kThreads];
  const int64_t count = n * s;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    const double mu = double(mean[c]);
    double sum_g = 0, sum_gx = 0;
    for (int64_t j = threadIdx.x; j < count; j += kThreads) {
      const int64_t i = at(j, c, channels, s);
      sum_g += double(gy[i]);
      sum_gx += double(gy[i]) * (double(x[i]) - mu);
    }
    sum_g = block_sum(sum_g, shared);
    sum_gx = block_sum(sum_gx, shared);
    if (threadIdx.x == 0) {
      gb[c] = T(sum_g);
      gw[c] = T(sum_gx * rsqrt(double(var[c]) + eps));
    }
  }
}

// gx = invstd * w * (gy - gb / M - xhat * gw / M) when training, invstd * w * gy otherwise.
template <class T>
__global__ void backward_input_kernel(const T* x, const T* gy, const T* mean, const T* var, const T* w,
                                      const T* gw, const T* gb, double eps, bool training, int64_t total,
                                      int64_t n, int64_t channels, int64_t s, T* gx) {
  const double count = double(n * s);
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const int64_t c = i / s % channels;
    const double invstd = rsqrt(double(var[c]) + eps), scale = invstd * (w ? double(w[c]) : 1.0);
    double g = double(gy[i]);
    if (training) {
      const double xhat = (double(x[i]) - double(mean[c])) * invstd;
      g -= (double(gb[c]) + xhat * double(gw[c])) / count;
    }
    gx[i] = T(g * scale);
  }
}

}  // namespace

void batch_norm_stats(const NDArray& x, NDArray& mean, NDArray& var) {
  const int64_t n = x.shape[0], c = x.shape[1], s = x.shape[2];
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    stats_kernel<<<blocks_for(c, 1), kThreads>>>(x.data<T>(), n, c, s, mean.data<T>(), var.data<T>());
  });
  check_launch("batch_norm_stats");
}

void batch_norm_apply(const NDArray& x, const NDArray& mean, const NDArray& var, const NDArray* w,
                      const NDArray* b, double eps, NDArray& y) {
  const int64_t total = x.size(), c = x.shape[1], s = x.shape[2];
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    apply_kernel<<<blocks_for(total), kThreads>>>(x.data<T>(), mean.data<T>(), var.data<T>(),
                                                  w ? w->data<T>() : nullptr, b ? b->data<T>() : nullptr, eps,
                                                  total, c, s, y.data<T>());
  });
  check_launch("batch_norm_apply");
}

void batch_norm_backward(const NDArray& x, const NDArray& gy, const NDArray& mean, const NDArray& var,
                         const NDArray* w, double eps, bool training, NDArray& gx, NDArray& gw, NDArray& gb) {
  const int64_t total = x.size(), n = x.shape[0], c = x.shape[1], s = x.shape[2];
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    backward_reduce_kernel<<<blocks_for(c, 1), kThreads>>>(x.data<T>(), gy.data<T>(), mean.data<T>(), var.data<T>(),
                                                      eps, n, c, s, gw.data<T>(), gb.data<T>());
    backward_input_kernel<<<blocks_for(total), kThreads>>>(x.data<T>(), gy.data<T>(), mean.data<T>(),
                                                           var.data<T>(), w ? w->data<T>() : nullptr, gw.data<T>(),
                                                           gb.data<T>(), eps, training, total, n, c, s,
                                                           gx.data<T>());
  });
  check_launch("batch_norm_backward");
}

}  // namespace convlab::cuda
