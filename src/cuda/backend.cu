// The CUDA kernel table and the runtime helpers the bindings expose.
#include "common.cuh"
#include "runtime.h"

namespace convlab {

const Backend cuda_backend = {
    .alloc = cuda::alloc,
    .release = cuda::release,
    .to_host = cuda::to_host,
    .from_host = cuda::from_host,
    .binary = cuda::binary,
    .binary_scalar = cuda::binary_scalar,
    .unary = cuda::unary,
    .clamp = cuda::clamp,
    .clamp_backward = cuda::clamp_backward,
    .sgd_step = cuda::sgd_step,
    .adam_step = cuda::adam_step,
    .copy = cuda::copy,
    .fill = cuda::fill,
    .reduce_rows = cuda::reduce_rows,
    .arg_reduce_rows = cuda::arg_reduce_rows,
    .matmul = cuda::matmul,
    .pad = cuda::pad,
    .conv_forward = cuda::conv_forward,
    .conv_backward_input = cuda::conv_backward_input,
    .conv_backward_weight = cuda::conv_backward_weight,
    .conv_depthwise_forward = cuda::depthwise_forward,
    .conv_depthwise_backward_input = cuda::depthwise_backward_input,
    .conv_depthwise_backward_weight = cuda::depthwise_backward_weight,
    .conv_redo_nan_grad_input = cuda::redo_nan_grad_input,
    .im2col = cuda::im2col,
    .col2im = cuda::col2im,
    .max_pool_forward = cuda::max_pool_forward,
    .max_pool_backward = cuda::max_pool_backward,
    .avg_pool_forward = cuda::avg_pool_forward,
    .avg_pool_backward = cuda::avg_pool_backward,
    .adaptive_avg_pool_forward = cuda::adaptive_avg_pool_forward,
    .adaptive_avg_pool_backward = cuda::adaptive_avg_pool_backward,
    .batch_norm_stats = cuda::batch_norm_stats,
    .batch_norm_apply = cuda::batch_norm_apply,
    .batch_norm_backward = cuda::batch_norm_backward,
    .gather = cuda::gather,
    .scatter = cuda::scatter,
    .where = cuda::where,
    .count_nonzero = cuda::count_nonzero,
    .nonzero = cuda::nonzero,
    .tiled_conv_forward = cuda::tiled_conv_forward,
    .tiled_conv_backward_input = cuda::tiled_conv_backward_input,
    .tiled_conv_backward_weight = cuda::tiled_conv_backward_weight,
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
