// The CUDA kernel table and the runtime helpers the bindings expose.
#include "common.cuh"
#include "runtime.h"

namespace convlab {

namespace cuda {

// Depthwise-style layers (one input channel per group) have too little reduction depth for GEMM tiles.
static bool one_input_channel(const ConvParams& p) { return p.c_in_per_group() == 1; }

static void conv_forward_any(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p,
                             NDArray& y) {
  if (one_input_channel(p)) depthwise_forward(x, w, bias, p, y);
  else conv_forward(x, w, bias, p, y);
}

static void conv_backward_input_any(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  if (one_input_channel(p)) depthwise_backward_input(gy, w, p, gx);
  else conv_backward_input(gy, w, p, gx);
  redo_nan_grad_input(gy, w, p, gx);
}

static void conv_backward_weight_any(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) {
  if (one_input_channel(p)) depthwise_backward_weight(x, gy, p, gw);
  else conv_backward_weight(x, gy, p, gw);
}

}  // namespace cuda

const Backend cuda_backend = {
    .alloc = cuda::alloc,
    .release = cuda::release,
    .to_host = cuda::to_host,
    .from_host = cuda::from_host,
    .binary = cuda::binary,
    .binary_scalar = cuda::binary_scalar,
    .unary = cuda::unary,
    .copy = cuda::copy,
    .fill = cuda::fill,
    .reduce_rows = cuda::reduce_rows,
    .arg_reduce_rows = cuda::arg_reduce_rows,
    .matmul = cuda::matmul,
    .pad = cuda::pad,
    .conv_forward = cuda::conv_forward_any,
    .conv_backward_input = cuda::conv_backward_input_any,
    .conv_backward_weight = cuda::conv_backward_weight_any,
    .max_pool_forward = cuda::max_pool_forward,
    .max_pool_backward = cuda::max_pool_backward,
    .avg_pool_forward = cuda::avg_pool_forward,
    .avg_pool_backward = cuda::avg_pool_backward,
    .adaptive_avg_pool_forward = cuda::adaptive_avg_pool_forward,
    .adaptive_avg_pool_backward = cuda::adaptive_avg_pool_backward,
    .gather = cuda::gather,
    .scatter = cuda::scatter,
    .where = cuda::where,
    .count_nonzero = cuda::count_nonzero,
    .nonzero = cuda::nonzero,
};

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: report none, and leave no error behind
    return 0;
  }
  return count;
}

void cuda_synchronize() { cuda::check(cudaDeviceSynchronize(), "synchronize"); }

}  // namespace convlab
