// Frontends: validate once, allocate the output, hand the work to the inputs' device backend.
// bindings.cpp exposes exactly these; nothing below them checks arguments again.
#pragma once
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "backend.h"
#include "ndarray.h"
#include "params.h"

namespace convlab {

using Pads = std::vector<std::pair<int64_t, int64_t>>;

// Element-wise with NumPy broadcasting.
// Operands are promoted to result_type (PyTorch's rules: dtype.h), the dtype out has unless the op gives
// bool; a Python scalar passes as a double with the dtype of its kind (bool, int64 or float64).
const char* binary_name(BinaryOp op);
DType result_type(const NDArray& a, const NDArray& b);
DType result_type(const NDArray& a, DType scalar_dtype);
// The dtype op computes in: result_type, except that true division of integers is float32; TypeError for
// the combinations PyTorch refuses (a bool operand of sub, bitwise ops on floats, ...).
DType binary_dtype(BinaryOp op, const NDArray& a, const NDArray& b);
DType binary_dtype(BinaryOp op, const NDArray& a, DType scalar_dtype);
NDArray binary(BinaryOp op, const NDArray& a, const NDArray& b);
NDArray binary_scalar(BinaryOp op, const NDArray& a, double s, bool scalar_first, DType scalar_dtype);
const char* unary_name(UnaryOp op);
NDArray unary(UnaryOp op, const NDArray& a);
// min(max(a, lo), hi) of a floating array in one pass (Backend::clamp); a missing bound is no limit, at least
// one is given.
NDArray clamp(const NDArray& a, std::optional<double> lo, std::optional<double> hi);
// The gradient of clamp(a, lo, hi) from its output y: g where lo < y < hi, else 0 (Backend::clamp_backward);
// no hi: no upper limit (ReLU's gradient).
NDArray clamp_backward(const NDArray& g, const NDArray& y, double lo, std::optional<double> hi);
// Optimizer steps in place (torch.optim's SGD and Adam/AdamW, one element at a time: optim_math.h): p, its
// gradient g and the state (buf, null without momentum; m, v and v_max, null without amsgrad) are floating
// arrays of p's shape, dtype and device, any strides. p and the state are written: none may have broadcast
// axes or share memory with another; g may share memory with them (it is read from a copy then).
void sgd_step(const NDArray& p, const NDArray& g, const NDArray* buf, const SgdOptions& o);
void adam_step(const NDArray& p, const NDArray& g, const NDArray& m, const NDArray& v, const NDArray* v_max,
               const AdamOptions& o);
void assign(const NDArray& dst, const NDArray& src);  // dst (a view) = src broadcast to dst's shape
void fill(const NDArray& dst, double value);

// Reductions over a set of axes (empty: all axes).
NDArray reduce(ReduceOp op, const NDArray& a, const std::vector<int64_t>& axes, bool keepdims);
NDArray mean(const NDArray& a, const std::vector<int64_t>& axes, bool keepdims);
// sum gives int64 for integers and bools, mean needs floats; max and min keep the dtype.
// argmax / argmin (op max or min): int64 index of the first extreme, NaN counting as the extreme.
NDArray arg_reduce(ReduceOp op, const NDArray& a, std::optional<int64_t> axis, bool keepdims);

// a @ b with NumPy's matmul rules (1-D operands promoted, batch dims broadcast).
NDArray matmul(const NDArray& a, const NDArray& b);

// pads: one (lo, hi) per axis, from the first; fewer pairs than axes pad the trailing axes.
NDArray pad(const NDArray& a, const Pads& pads, const std::string& mode, double value);
PadMode parse_pad_mode(const std::string& mode);

// Convolution over 1 or 2 spatial dims (x.ndim() == 3 or 4).
NDArray conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvArgs& args);
NDArray conv_backward_input(const NDArray& gy, const NDArray& w, const std::vector<int64_t>& input_size,
                            const ConvArgs& args);
NDArray conv_backward_weight(const NDArray& x, const NDArray& gy, const std::vector<int64_t>& kernel_size,
                             const ConvArgs& args);
// Transposed conv (PyTorch's conv_transpose): w is (C_in, C_out/groups, *k). Its backward passes are
// conv_forward(gy, w) (to input) and conv_backward_weight(gy, x) (to weight) with the same args.
NDArray conv_transpose_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvArgs& args);

// Tiled convolution over 1 or 2 spatial dims: w is (*tile, C_out, C_in, *kernel), bias (*tile, C_out),
// groups 1. unshared: a locally connected layer, whose tile must be the output size.
NDArray tiled_conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvArgs& args,
                           bool unshared);
NDArray tiled_conv_backward_input(const NDArray& gy, const NDArray& w, const std::vector<int64_t>& input_size,
                                  const ConvArgs& args, bool unshared);
NDArray tiled_conv_backward_weight(const NDArray& x, const NDArray& gy, const Shape& weight_shape,
                                   const ConvArgs& args, bool unshared);

// PyTorch's F.unfold (im2col): x (N, C, H, W) -> (N, C*KH*KW, L), L sliding blocks of a conv with these args
// (groups 1); and F.fold (col2im), its adjoint: cols (N, C*KH*KW, L) -> (N, C, *output_size), overlaps summed.
NDArray unfold(const NDArray& x, const std::vector<int64_t>& kernel_size, const ConvArgs& args);
NDArray fold(const NDArray& cols, const std::vector<int64_t>& output_size, const std::vector<int64_t>& kernel_size,
             const ConvArgs& args);

// Pooling over 1 or 2 spatial dims.
// Max pooling; with indices, also each window's argmax (int64, y's shape, the plane index as PyTorch's
// return_indices gives it) for max_pool_backward_indices, which routes gy through them to the input_size
// spatial shape. max_pool_backward(x, gy) is the two composed: the gradient by definition.
NDArray max_pool_forward(const NDArray& x, const PoolArgs& args, NDArray* indices = nullptr);
NDArray max_pool_backward_indices(const NDArray& indices, const NDArray& gy, const std::vector<int64_t>& input_size,
                                  const PoolArgs& args);
NDArray max_pool_backward(const NDArray& x, const NDArray& gy, const PoolArgs& args);
NDArray avg_pool_forward(const NDArray& x, const PoolArgs& args);
NDArray avg_pool_backward(const NDArray& gy, const std::vector<int64_t>& input_size, const PoolArgs& args);
NDArray adaptive_avg_pool_forward(const NDArray& x, const std::vector<int64_t>& output_size);
NDArray adaptive_avg_pool_backward(const NDArray& gy, const std::vector<int64_t>& input_size);

// Batch norm over axis 1 of x (N, C, ...); every other array is (C) of x's dtype and device, weight and bias
// optional. Forward gives (y, mean, var): training normalises by the batch's mean and biased variance (and
// returns them; the caller updates running stats), otherwise by running_mean and running_var (returned).
// Backward takes those mean and var and gives (gx, gw, gb); gw and gb are computed whether weight is given
// or not (they are by-products of gx's reductions).
std::tuple<NDArray, NDArray, NDArray> batch_norm_forward(const NDArray& x, const NDArray* running_mean,
                                                         const NDArray* running_var, const NDArray* weight,
                                                         const NDArray* bias, bool training, double eps);
std::tuple<NDArray, NDArray, NDArray> batch_norm_backward(const NDArray& x, const NDArray& gy, const NDArray& mean,
                                                          const NDArray& var, const NDArray* weight, bool training,
                                                          double eps);

// Indexing. Index arrays are int64 or int32; an entry outside its axis raises IndexError. PyTorch's ops
// (gather, scatter_add, index_select, index_add) take entries in [0, n); take/put/ravel_index, which
// x[idx] and x[idx] = v are built on, also accept [-n, 0) counted from the end, as NumPy and PyTorch do there.
// cond ? a : b with NumPy broadcasting; cond is bool, a and b share a dtype.
NDArray where(const NDArray& cond, const NDArray& a, const NDArray& b);
// torch.gather: out[..., j, ...] = a[..., index[..., j, ...], ...] along axis; out has index's shape.
NDArray gather(const NDArray& a, int64_t axis, const NDArray& index);
// torch.Tensor.scatter_add on zeros of `shape`: gather's adjoint; repeated positions add up.
NDArray scatter_add(const Shape& shape, int64_t axis, const NDArray& index, const NDArray& src);
// torch.Tensor.scatter_ (or scatter_add_ with accumulate) in place into dst, any view; where index repeats a
// position, the last src entry stays (scatter_) or all add up in order (scatter_add_).
void scatter(const NDArray& dst, int64_t axis, const NDArray& index, const NDArray& src, bool accumulate);
// torch.index_select (1-D index) and index_add on zeros of `shape` (its adjoint).
NDArray index_select(const NDArray& a, int64_t axis, const NDArray& index);
NDArray index_add(const Shape& shape, int64_t axis, const NDArray& index, const NDArray& src);
// NumPy's take: a's axis replaced by index's shape. put writes src (broadcast to take's result shape) into
// dst's positions in place, or adds it with accumulate (each position collects its entries in order).
// unique_indices promises that index repeats no entry (a mask's positions): a GPU then writes them all at once.
NDArray take(const NDArray& a, int64_t axis, const NDArray& index);
void put(const NDArray& dst, int64_t axis, const NDArray& index, const NDArray& src, bool accumulate,
         bool unique_indices);
// NumPy's ravel_multi_index: the flat position in an array of shape `sizes` that the index arrays, broadcast
// together, point at; `first_axis` only numbers the axes in error messages.
NDArray ravel_index(const std::vector<NDArray>& indices, const Shape& sizes, int64_t first_axis);
// The positions of a's non-zero elements as the rows of an int64 (count, ndim) array, in row-major order.
NDArray nonzero(const NDArray& a);

}  // namespace convlab
