// Frontends: validate once, allocate the output, hand the work to the inputs' device backend.
// bindings.cpp exposes exactly these; nothing below them checks arguments again.
#pragma once
#include <optional>
#include <utility>
#include <vector>

#include "backend.h"
#include "ndarray.h"
#include "params.h"

namespace convlab {

using Pads = std::vector<std::pair<int64_t, int64_t>>;

// Element-wise with NumPy broadcasting.
const char* binary_name(BinaryOp op);
NDArray binary(BinaryOp op, const NDArray& a, const NDArray& b);
NDArray binary_scalar(BinaryOp op, const NDArray& a, double s, bool scalar_first);
const char* unary_name(UnaryOp op);
NDArray unary(UnaryOp op, const NDArray& a);
void assign(const NDArray& dst, const NDArray& src);  // dst (a view) = src broadcast to dst's shape
void fill(const NDArray& dst, double value);

// Reductions over a set of axes (empty: all axes).
NDArray reduce(ReduceOp op, const NDArray& a, const std::vector<int64_t>& axes, bool keepdims);
NDArray mean(const NDArray& a, const std::vector<int64_t>& axes, bool keepdims);
NDArray argmax(const NDArray& a, std::optional<int64_t> axis, bool keepdims);

// a @ b with NumPy's matmul rules (1-D operands promoted, batch dims broadcast).
NDArray matmul(const NDArray& a, const NDArray& b);

// pads: one (lo, hi) per axis, from the first; fewer pairs than axes pad the trailing axes.
NDArray pad(const NDArray& a, const Pads& pads, const std::string& mode, double value);
PadMode parse_pad_mode(const std::string& mode);
// dilate inserts factor-1 zeros between neighbours along each axis: n -> (n-1)*factor+1; undilate keeps
// every factor-th element (its inverse).
NDArray dilate(const NDArray& a, const std::vector<int64_t>& axes, int64_t factor);
NDArray undilate(const NDArray& a, const std::vector<int64_t>& axes, int64_t factor);

// Convolution over 1 or 2 spatial dims (x.ndim() == 3 or 4).
NDArray conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvArgs& args);
NDArray conv_backward_input(const NDArray& gy, const NDArray& w, const std::vector<int64_t>& input_size,
                            const ConvArgs& args);
NDArray conv_backward_weight(const NDArray& x, const NDArray& gy, const std::vector<int64_t>& kernel_size,
                             const ConvArgs& args);
// Transposed conv (PyTorch's conv_transpose): w is (C_in, C_out/groups, *k). Its backward passes are
// conv_forward(gy, w) (to input) and conv_backward_weight(gy, x) (to weight) with the same args.
NDArray conv_transpose_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvArgs& args);

// Pooling over 1 or 2 spatial dims.
NDArray max_pool_forward(const NDArray& x, const PoolArgs& args);
NDArray max_pool_backward(const NDArray& x, const NDArray& gy, const PoolArgs& args);
NDArray avg_pool_forward(const NDArray& x, const PoolArgs& args);
NDArray avg_pool_backward(const NDArray& gy, const std::vector<int64_t>& input_size, const PoolArgs& args);
NDArray adaptive_avg_pool_forward(const NDArray& x, const std::vector<int64_t>& output_size);
NDArray adaptive_avg_pool_backward(const NDArray& gy, const std::vector<int64_t>& input_size);

}  // namespace convlab
