#include "kernels.h"

namespace convlab {

const Backend cpu_backend = {
    .alloc = cpu::alloc,
    .release = cpu::release,
    .to_host = cpu::to_host,
    .from_host = cpu::from_host,
    .binary = cpu::binary,
    .binary_scalar = cpu::binary_scalar,
    .unary = cpu::unary,
    .copy = cpu::copy,
    .fill = cpu::fill,
    .reduce_rows = cpu::reduce_rows,
    .arg_reduce_rows = cpu::arg_reduce_rows,
    .matmul = cpu::matmul,
    .pad = cpu::pad,
    .conv_forward = cpu::conv_forward,
    .conv_backward_input = cpu::conv_backward_input,
    .conv_backward_weight = cpu::conv_backward_weight,
    .conv_depthwise_forward = cpu::depthwise_forward,
    .conv_depthwise_backward_input = cpu::depthwise_backward_input,
    // The dot-product form of the general kernel is already the one for few channels per group.
    .conv_depthwise_backward_weight = cpu::conv_backward_weight,
    .conv_redo_nan_grad_input = cpu::redo_nan_grad_input,
    .im2col = cpu::im2col,
    .col2im = cpu::col2im,
    .max_pool_forward = cpu::max_pool_forward,
    .max_pool_backward = cpu::max_pool_backward,
    .avg_pool_forward = cpu::avg_pool_forward,
    .avg_pool_backward = cpu::avg_pool_backward,
    .adaptive_avg_pool_forward = cpu::adaptive_avg_pool_forward,
    .adaptive_avg_pool_backward = cpu::adaptive_avg_pool_backward,
    .batch_norm_stats = cpu::batch_norm_stats,
    .batch_norm_apply = cpu::batch_norm_apply,
    .batch_norm_backward = cpu::batch_norm_backward,
    .gather = cpu::gather,
    .scatter = cpu::scatter,
    .where = cpu::where,
    .count_nonzero = cpu::count_nonzero,
    .nonzero = cpu::nonzero,
    .tiled_conv_forward = cpu::tiled_conv_forward,
    .tiled_conv_backward_input = cpu::tiled_conv_backward_input,
    .tiled_conv_backward_weight = cpu::tiled_conv_backward_weight,
};

}  // namespace convlab
