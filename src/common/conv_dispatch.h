// Which kernel of a device runs a convolution pass: the decisions every backend shares, made once here so
// that the CPU and CUDA route the same layers the same way. Backends provide kernels only.
#pragma once
#include "backend.h"

namespace convlab {

// Depthwise (PyTorch's test too): groups > 1 with one input channel per group, so every output channel
// reads a single input channel; its reduction is only the kernel's taps, too shallow for GEMM tiles, and the
// direct kernels win. So does a one-in, one-out convolution (cl.signal's filtering of one image: the GEMM
// ran it at a third of the direct kernel's speed). c_in = groups = 1 with several output channels (LeNet's
// first layer) stays a plain convolution, parallel over its output channels.
bool is_depthwise(const ConvParams& p);

// The passes of backend.h's contract, each on the device's depthwise or general kernel. Backward-input
// then has the elements that came out NaN recomputed by the definition when w is not finite (both kinds of
// kernel multiply weights by stand-in zeros, and 0 * inf is NaN where the true sum has no such term).
void run_conv_forward(const Backend& b, const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p,
                      NDArray& y);
void run_conv_backward_input(const Backend& b, const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx);
void run_conv_backward_weight(const Backend& b, const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw);

}  // namespace convlab
