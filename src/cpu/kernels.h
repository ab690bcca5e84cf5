// The CPU backend's kernels, one family per file: memory.cpp, elementwise.cpp, reduce.cpp, matmul.cpp,
// pad.cpp, conv_forward / conv_backward_input / conv_backward_weight.cpp (on conv_layout, gemm, simd.h,
// workspace), conv_depthwise.cpp, pool.cpp, batch_norm.cpp, index.cpp.
#pragma once
#include "../common/backend.h"

namespace convlab::cpu {

// Below this many elements a thread team costs more than it saves: simple ops run single-threaded.
constexpr int64_t kParallelMin = 32768;

#include "../common/backend_kernels.inc"

// conv_depthwise.cpp: the depthwise layers of common/conv_dispatch.h (groups == c_in, c_out = multiplier *
// c_in), direct kernels on two paths (many small planes side by side, or one plane at a time); on the second
// path backward-weight is the general kernel's dot-product form.
void depthwise_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y);
void depthwise_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx);
void depthwise_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw);

// conv_backward_input.cpp: recomputes gx elements that came out NaN by the definition when w holds inf or
// NaN (both backward-input kernels multiply weights by stand-in zeros).
void redo_nan_grad_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx);

}  // namespace convlab::cpu
