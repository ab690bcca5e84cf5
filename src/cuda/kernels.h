// The CUDA backend's kernels, one family per file: memory.cu, elementwise.cu, reduce.cu, matmul.cu,
// pad.cu, conv.cu (dense and grouped: implicit GEMM), conv_depthwise.cu, pool.cu, index.cu.
// Plain C++: bindings and common code may include it without the CUDA headers.
#pragma once
#include "../common/backend.h"

namespace convlab::cuda {

#include "../common/backend_kernels.inc"

// conv_depthwise.cu: the depthwise layers of common/conv_dispatch.h (one input channel per group).
void depthwise_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y);
void depthwise_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx);
void depthwise_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw);

// conv.cu: recomputes gx elements that came out NaN by the definition when w holds inf or NaN (both
// backward-input paths multiply weights by stand-in zeros); common/conv_dispatch.cpp calls it after either.
void redo_nan_grad_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx);

}  // namespace convlab::cuda
