// The table of kernels one device provides. Frontends (ops.cpp) validate arguments, allocate outputs and
// pick the table by the inputs' device; kernels trust their arguments and write every element of `out`.
// Adding a device means filling in one of these tables, nothing else.
#pragma once
#include <cstddef>
#include <utility>
#include <vector>

#include "ndarray.h"
#include "params.h"

namespace convlab {

enum class BinaryOp {
  add, sub, mul, div, pow, maximum, minimum, floor_divide, remainder,  // the operands' dtype
  eq, ne, lt, le, gt, ge, logical_and, logical_or, logical_xor,         // bool
  bitwise_and, bitwise_or, bitwise_xor                                   // integers and bool only
};
inline bool gives_bool(BinaryOp op) { return op >= BinaryOp::eq && op <= BinaryOp::logical_xor; }
inline bool is_bitwise(BinaryOp op) { return op >= BinaryOp::bitwise_and; }

enum class UnaryOp {
  exp, log, sqrt, tanh, sigmoid, erf,  // floats only
  neg, relu, abs, sign, floor, ceil, round, logical_not, bitwise_not
};
inline bool is_transcendental(UnaryOp op) { return op <= UnaryOp::erf; }

enum class ReduceOp { sum, max, min };

// One optimizer step's options, as the Python optimizers hold them (see Backend::sgd_step / adam_step).
struct SgdOptions {
  double lr = 0, weight_decay = 0, momentum = 0, dampening = 0;
  bool nesterov = false, maximize = false;
  bool first_step = false;  // the momentum buffer holds nothing yet: it starts as the gradient
};
struct AdamOptions {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  int64_t step = 1;  // t, counted from 1, for the bias corrections
  bool maximize = false, decoupled_weight_decay = false;
};
enum class PadMode { constant, reflect, replicate, circular };

struct Backend {
  // Memory. Copies between host and device are synchronous.
  void* (*alloc)(size_t bytes);
  void (*release)(void* ptr);
  void (*to_host)(void* dst, const void* src, size_t bytes);
  void (*from_host)(void* dst, const void* src, size_t bytes);

  // Element-wise. a and b are views already broadcast to out's shape (any strides, 0 and negative
  // included) and of the dtype the op computes in; out is contiguous, of that dtype too or bool for the
  // ops that give bool. binary_scalar computes op(a, s), or op(s, a) when scalar_first, with s converted
  // to a's dtype. Integer floor_divide/remainder by 0 write 0 (the frontend refuses a zero divisor);
  // integer pow to a negative power is 1 / x truncated (1, -1 or 0), as in PyTorch. unary: out has a's
  // dtype, or bool for logical_not.
  void (*binary)(BinaryOp op, const NDArray& a, const NDArray& b, NDArray& out);
  void (*binary_scalar)(BinaryOp op, const NDArray& a, double s, bool scalar_first, NDArray& out);
  void (*unary)(UnaryOp op, const NDArray& a, NDArray& out);
  // clamp(a, lo, hi) = min(max(a, lo), hi) in one pass (ReLU6, hardtanh): NaN stays NaN, lo > hi gives hi
  // everywhere (as in PyTorch); -inf / inf for a missing bound. a floating, any strides; out contiguous, a's
  // shape and dtype.
  void (*clamp)(const NDArray& a, double lo, double hi, NDArray& out);
  // The gradient of clamp(a, lo, hi) (ReLU, ReLU6, hardtanh): out = g where lo < y and not y >= hi, else 0,
  // y being the clamp's output (or a: the same positions pass). hi NaN means no upper limit (ReLU: y = inf
  // passes; hardtanh's hi = inf does not, as in PyTorch); NaN in y passes nothing. g, y and out have one
  // shape (any strides for g and y), floating, one dtype; out is contiguous.
  void (*clamp_backward)(const NDArray& g, const NDArray& y, double lo, double hi, NDArray& out);
  // Optimizer steps in place (common/optim_math.h gives each element's update), over p's shape: p, its
  // gradient g and the state arrays are floating, of one dtype, any strides (none written overlaps another
  // or g). sgd_step: buf null without momentum. adam_step: v_max null without amsgrad.
  void (*sgd_step)(const NDArray& p, const NDArray& g, const NDArray* buf, const SgdOptions& o);
  void (*adam_step)(const NDArray& p, const NDArray& g, const NDArray& m, const NDArray& v, const NDArray* v_max,
                    const AdamOptions& o);
  // dst = src element by element over one shape; any strides on both sides; converts dtype.
  void (*copy)(const NDArray& src, const NDArray& dst);
  void (*fill)(const NDArray& dst, double value);

  // Reductions over the last axis of a contiguous (rows, n) numeric (not bool) array into out (rows), of
  // a's dtype. max and min propagate NaN. arg_reduce_rows (op max or min) writes the index of the first
  // extreme into the int64 out, where NaN counts as the extreme.
  void (*reduce_rows)(ReduceOp op, const NDArray& a, NDArray& out);
  void (*arg_reduce_rows)(ReduceOp op, const NDArray& a, NDArray& out);

  // Batched matmul, all contiguous: (B, M, K) @ (B, K, N) -> (B, M, N).
  void (*matmul)(const NDArray& a, const NDArray& b, NDArray& out);

  // out = a padded by pads[d] = (lo, hi) along every axis d; a is contiguous.
  void (*pad)(const NDArray& a, const std::vector<std::pair<int64_t, int64_t>>& pads, PadMode mode,
              double value, NDArray& out);

  // Convolution, all contiguous: x (N, C_in, H, W), w (C_out, C_in/groups, KH, KW), y (N, C_out, OH, OW).
  // bias is null or (C_out). backward_input writes gx (N, C_in, H, W) = the transposed conv of gy: only
  // taps that land on gy are terms, but where w holds inf/NaN it may give NaN for a stand-in zero's term
  // (0 * inf), which redo_nan_grad_input then recomputes; backward_weight writes gw (C_out, C_in/groups, KH,
  // KW) = correlation of x with gy, where an input element no output reads is in no term. The frontend picks
  // the general or the depthwise kernels (common/conv_dispatch.h decides which layers are depthwise).
  void (*conv_forward)(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y);
  void (*conv_backward_input)(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx);
  void (*conv_backward_weight)(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw);
  void (*conv_depthwise_forward)(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p,
                                 NDArray& y);
  void (*conv_depthwise_backward_input)(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx);
  void (*conv_depthwise_backward_weight)(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw);
  // Recomputes by the definition (common/reference.h) the elements of gx that are NaN, when w is not
  // finite; leaves gx alone when it is.
  void (*conv_redo_nan_grad_input)(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx);
  // im2col (F.unfold) and its adjoint col2im (F.fold), all contiguous, geometry p of a conv (c_out unused):
  // cols (N, C*KH*KW, OH*OW) with cols[n][(c, kh, kw)][(oh, ow)] = x[n][c][oh*sh + kh*dh - pt][ow*sw + kw*dw - pl]
  // (0 outside x); col2im writes every element of x (N, C, H, W): the sum of the column entries that read it.
  void (*im2col)(const NDArray& x, const ConvParams& p, NDArray& cols);
  void (*col2im)(const NDArray& cols, const ConvParams& p, NDArray& x);

  // Pooling, all contiguous (N, C, H, W) -> (N, C, OH, OW). Max-pool forward picks each window's argmax
  // as PyTorch does (a strictly larger value or any NaN takes over, so ties keep the first maximum in window
  // scan order and among NaNs the last wins) and, when indices is not null, writes it there: int64
  // (N, C, OH, OW), the plane index ih * W + iw, -1 for a window with no tap on x. Max-pool backward
  // routes gy through those indices (an index outside the plane selects nothing), so it never reads x.
  void (*max_pool_forward)(const NDArray& x, const PoolParams& p, NDArray& y, NDArray* indices);
  void (*max_pool_backward)(const NDArray& indices, const NDArray& gy, const PoolParams& p, NDArray& gx);
  void (*avg_pool_forward)(const NDArray& x, const PoolParams& p, NDArray& y);
  void (*avg_pool_backward)(const NDArray& gy, const PoolParams& p, NDArray& gx);
  void (*adaptive_avg_pool_forward)(const NDArray& x, const PoolParams& p, NDArray& y);
  void (*adaptive_avg_pool_backward)(const NDArray& gy, const PoolParams& p, NDArray& gx);

  // Batch norm over contiguous, non-empty x (N, C, S), S the product of the spatial dims; mean, var, w, b,
  // gw, gb contiguous (C) of x's dtype (w, b may be null: 1 and 0). stats writes each channel's mean and
  // biased variance over its N * S elements. apply writes y = (x - mean) / sqrt(var + eps) * w + b.
  // backward writes gb = sum(gy), gw = sum(gy * xhat) with xhat = (x - mean) / sqrt(var + eps), and gx:
  // training (mean and var are x's own statistics) invstd * w * (gy - mean(gy) - xhat * mean(gy * xhat));
  // otherwise (constants) invstd * w * gy. Reductions run in a fixed order (deterministic).
  void (*batch_norm_stats)(const NDArray& x, NDArray& mean, NDArray& var);
  void (*batch_norm_apply)(const NDArray& x, const NDArray& mean, const NDArray& var, const NDArray* w,
                           const NDArray* b, double eps, NDArray& y);
  void (*batch_norm_backward)(const NDArray& x, const NDArray& gy, const NDArray& mean, const NDArray& var,
                              const NDArray* w, double eps, bool training, NDArray& gx, NDArray& gw, NDArray& gb);

  // Indexing along the middle axis of (outer, n, inner) arrays. index is an int32/int64 view of shape
  // (outer, n_index, inner) with any strides (0 where it is broadcast) and every entry in [-n, n) of the axis
  // it indexes, negative ones counting from the end (x[-1]).
  // gather: out[o, j, i] = a[o, index[o, j, i], i]; a and out are contiguous.
  // scatter: out[o, index[o, j, i], i] = src[o, j, i] (or += with accumulate) into the contiguous out that
  // holds the values to update; src is contiguous. j is taken in order for each (o, i), so repeated indices
  // add up (or the last one wins) the same way on every run and device. With unique, no column's index
  // repeats a position (a mask's positions), so a device may also run the j of a column in parallel.
  void (*gather)(const NDArray& a, const NDArray& index, NDArray& out);
  void (*scatter)(const NDArray& index, const NDArray& src, NDArray& out, bool accumulate, bool unique);
  // out = cond ? a : b element by element; cond (bool), a and b are views broadcast to out's shape.
  void (*where)(const NDArray& cond, const NDArray& a, const NDArray& b, NDArray& out);
  // For a contiguous, non-empty a: how many elements are not 0, and their positions as the rows of the
  // int64 out (count, ndim), in row-major order.
  int64_t (*count_nonzero)(const NDArray& a);
  void (*nonzero)(const NDArray& a, NDArray& out);

  // Tiled convolution (a locally connected layer when the tile is the output size), all contiguous:
  // x (N, C_in, H, W), w (tile_h, tile_w, C_out, C_in, KH, KW), bias null or (tile_h, tile_w, C_out),
  // y (N, C_out, OH, OW); output (oh, ow) uses weight set and bias (oh % tile_h, ow % tile_w).
  // backward_input writes gx (the adjoint: only taps that land inside x are terms), backward_weight gw
  // (w's shape; a set no output uses gets zeros).
  void (*tiled_conv_forward)(const NDArray& x, const NDArray& w, const NDArray* bias, const TiledParams& p,
                             NDArray& y);
  void (*tiled_conv_backward_input)(const NDArray& gy, const NDArray& w, const TiledParams& p, NDArray& gx);
  void (*tiled_conv_backward_weight)(const NDArray& x, const NDArray& gy, const TiledParams& p, NDArray& gw);
};

const Backend& backend(Device device);

// The reference table (cpu/reference.cpp): the CPU's, with every conv and pool entry computed by definition
// (common/reference.h) one element at a time. While a UseReference lives on the calling thread, backend()
// gives it for host arrays and refuses device ones: convlab._C.reference so runs the ops' own frontends
// (the same checks, shapes and 1-D handling) on the spec instead of the fast kernels.
const Backend& reference_backend();
class UseReference {
 public:
  UseReference();
  ~UseReference();
  UseReference(const UseReference&) = delete;
  UseReference& operator=(const UseReference&) = delete;

 private:
  bool outer_;  // scopes nest
};

// User switches read by kernels at launch (cl.backends.*): `deterministic` rules out kernels whose float
// results depend on the order atomics land; `allow_tf32` lets float32 GPU matmuls use TF32 tensor cores.
// `default_float` (cl.set_default_dtype) is the float dtype integers promote to, as PyTorch's default dtype.
struct RuntimeFlags {
  bool deterministic = false;
  bool allow_tf32 = false;
  DType default_float = DType::f32;
};
RuntimeFlags& runtime_flags();
bool cuda_compiled();

extern const Backend cpu_backend;
#ifdef CONVLAB_WITH_CUDA
extern const Backend cuda_backend;
#endif

}  // namespace convlab
