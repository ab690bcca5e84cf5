#include "kernels.h"

namespace convlab {

const Backend cpu_backend = {
    cpu::alloc,
    cpu::release,
    cpu::to_host,
    cpu::from_host,
    cpu::binary,
    cpu::binary_scalar,
    cpu::unary,
    cpu::copy,
    cpu::fill,
    cpu::reduce_rows,
    cpu::arg_reduce_rows,
    cpu::matmul,
    cpu::pad,
    cpu::conv_forward,
    cpu::conv_backward_input,
    cpu::conv_backward_weight,
    cpu::max_pool_forward,
    cpu::max_pool_backward,
    cpu::avg_pool_forward,
    cpu::avg_pool_backward,
    cpu::adaptive_avg_pool_forward,
    cpu::adaptive_avg_pool_backward,
    cpu::gather,
    cpu::scatter,
    cpu::where,
    cpu::count_nonzero,
    cpu::nonzero,
};

}  // namespace convlab
