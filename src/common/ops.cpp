// Frontends: check arguments once, allocate outputs, call the inputs' backend. 1-D convolution and pooling
// become 2-D here (a height-1 view), so kernels handle one layout.
#include "ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "conv_dispatch.h"

namespace convlab {
namespace {

void check_device(const char* op, const char* an, const NDArray& a, const char* bn, const NDArray& b) {
  if (a.device() != b.device())
    runtime_error(op, ": ", an, " is on ", device_name(a.device()), " but ", bn, " is on ",
                  device_name(b.device()), "; move both to one device");
}

void check_pair(const char* op, const char* an, const NDArray& a, const char* bn, const NDArray& b) {
  check_device(op, an, a, bn, b);
  if (a.dtype != b.dtype)
    type_error(op, ": ", an, " is ", dtype_name(a.dtype), " but ", bn, " is ", dtype_name(b.dtype),
               "; convert one with astype()");
}

// Convolution, pooling, matmul and transcendental functions are defined for floats only, as in PyTorch's
// kernels; other dtypes are refused here, before any kernel is chosen.
void check_floating(const char* op, const char* arg, const NDArray& a) {
  if (!is_floating(a.dtype))
    type_error(op, ": ", arg, " must be float32 or float64, got ", dtype_name(a.dtype),
               "; convert it with astype('float32')");
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      value_error(op, ": shapes ", shape_str(a), " and ", shape_str(b), " cannot be broadcast together (",
                  da, " vs ", db, " at axis ", i, " of the result)");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Distinct, in-range axes; empty means all.
std::vector<int> resolve_axes(const char* op, const std::vector<int64_t>& axes, int ndim) {
  std::vector<int> out;
  if (axes.empty()) {
    for (int i = 0; i < ndim; ++i) out.push_back(i);
    return out;
  }
  for (int64_t ax : axes) {
    int a = normalize_axis(ax, ndim, op);
    if (std::find(out.begin(), out.end(), a) != out.end()) value_error(op, ": axis ", ax, " is repeated");
    out.push_back(a);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// 1-D signal (N, C, L) -> (N, C, 1, L) so kernels only see 2-D; contiguous either way.
NDArray as_2d(const NDArray& a) {
  NDArray c = a.compact();
  if (c.ndim() == 4) return c;
  return c.view({c.shape[0], c.shape[1], 1, c.shape[2]});
}

Shape spatial_shape(const Shape& lead, int dims, int64_t h, int64_t w) {
  Shape s = lead;
  if (dims == 2) s.push_back(h);
  s.push_back(w);
  return s;
}

Shape spatial_of(const Shape& s) { return Shape(s.begin() + 2, s.end()); }

void check_shape(const char* op, const char* arg, const Shape& got, const Shape& want) {
  if (got != want)
    value_error(op, ": ", arg, " must have shape ", shape_str(want), ", got ", shape_str(got));
}

const char* conv_name(const NDArray& x, bool transposed) {
  if (x.ndim() == 3) return transposed ? "conv_transpose1d" : "conv1d";
  return transposed ? "conv_transpose2d" : "conv2d";
}

Shape weight_shape(int64_t c_out, int64_t c_in_per_group, const std::vector<int64_t>& kernel) {
  Shape s{c_out, c_in_per_group};
  s.insert(s.end(), kernel.begin(), kernel.end());
  return s;
}

void check_bias(const char* op, const NDArray* bias, const NDArray& x, int64_t channels) {
  if (!bias) return;
  check_pair(op, "input", x, "bias", *bias);
  check_shape(op, "bias", bias->shape, {channels});
}

NDArray add_channel_bias(const NDArray& y, const NDArray& bias) {
  Shape s(y.ndim(), 1);
  s[1] = bias.shape[0];
  return binary(BinaryOp::add, y, bias.view(s));
}

}  // namespace

const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "floor_divide",
                                "remainder", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
                                "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor"};
  return names[static_cast<int>(op)];
}

DType result_type(const NDArray& a, const NDArray& b) {
  if ((a.ndim() == 0) == (b.ndim() == 0)) return promote_types(a.dtype, b.dtype);
  const NDArray& dimensioned = a.ndim() == 0 ? b : a;
  const NDArray& zero_dim = a.ndim() == 0 ? a : b;
  return category(zero_dim.dtype) > category(dimensioned.dtype) ? zero_dim.dtype : dimensioned.dtype;
}

DType result_type(const NDArray& a, DType scalar) {
  if (category(scalar) <= category(a.dtype)) return a.dtype;
  return scalar == DType::f64 ? runtime_flags().default_float : scalar;
}

namespace {

// The dtype `op` computes in when its operands (one of them bool if any_bool) promote to `promoted`: true
// division of integers is done in the default float dtype; PyTorch's refusals (subtracting bools, bitwise
// ops on floats, ...) raise here.
DType compute_dtype(BinaryOp op, DType promoted, bool any_bool) {
  const char* name = binary_name(op);
  if (op == BinaryOp::div && !is_floating(promoted)) return runtime_flags().default_float;
  if (op == BinaryOp::sub && any_bool)
    type_error(name, ": subtraction with a bool operand is not supported; use logical_xor() or ^ instead");
  if (promoted == DType::b8 && (op == BinaryOp::pow || op == BinaryOp::floor_divide || op == BinaryOp::remainder))
    type_error(name, ": not supported for two bool operands");
  if (is_bitwise(op) && is_floating(promoted))
    type_error(name, ": operands must be integer or bool, got ", dtype_name(promoted));
  return promoted;
}

NDArray as_dtype(const NDArray& a, DType dtype) { return a.dtype == dtype ? a : a.astype(dtype); }

// Integer division by zero has no value: PyTorch raises on CPU, so convlab raises on every device (for an
// array divisor that reads one flag on the host).
bool divides_integers(BinaryOp op, DType compute) {
  return !is_floating(compute) && (op == BinaryOp::floor_divide || op == BinaryOp::remainder);
}

bool has_zero(const NDArray& a) {
  NDArray any = reduce(ReduceOp::max, binary_scalar(BinaryOp::eq, a, 0.0, false, DType::i64), {}, false);
  return any.to(Device::cpu).data<bool>()[0];
}

[[noreturn]] void zero_division(BinaryOp op) {
  runtime_error(binary_name(op), ": ZeroDivisionError (an integer divisor is 0)");
}

}  // namespace

DType binary_dtype(BinaryOp op, const NDArray& a, const NDArray& b) {
  return compute_dtype(op, result_type(a, b), a.dtype == DType::b8 || b.dtype == DType::b8);
}

DType binary_dtype(BinaryOp op, const NDArray& a, DType scalar_dtype) {
  return compute_dtype(op, result_type(a, scalar_dtype), a.dtype == DType::b8 || scalar_dtype == DType::b8);
}

NDArray binary(BinaryOp op, const NDArray& a, const NDArray& b) {
  const char* name = binary_name(op);
  check_device(name, "a", a, "b", b);
  const DType compute = binary_dtype(op, a, b);
  Shape s = broadcast_shapes(name, a.shape, b.shape);
  if (divides_integers(op, compute) && has_zero(b)) zero_division(op);
  NDArray out = NDArray::empty(s, gives_bool(op) ? DType::b8 : compute, a.device());
  if (out.size() > 0)
    backend(a.device()).binary(op, as_dtype(a, compute).broadcast_to(s), as_dtype(b, compute).broadcast_to(s), out);
  return out;
}

NDArray binary_scalar(BinaryOp op, const NDArray& a, double s, bool scalar_first, DType scalar_dtype) {
  const DType compute = binary_dtype(op, a, scalar_dtype);
  if (!is_floating(compute) && op == BinaryOp::pow && !scalar_first && s < 0)
    runtime_error("pow: integers to negative integer powers are not allowed, got exponent ", s);
  if (divides_integers(op, compute) && (scalar_first ? has_zero(a) : s == 0)) zero_division(op);
  NDArray out = NDArray::empty(a.shape, gives_bool(op) ? DType::b8 : compute, a.device());
  if (out.size() > 0) backend(a.device()).binary_scalar(op, as_dtype(a, compute), s, scalar_first, out);
  return out;
}

const char* unary_name(UnaryOp op) {
  static const char* names[] = {"exp", "log",  "sqrt",  "tanh", "sigmoid", "erf",         "neg",        "relu",
                                "abs", "sign", "floor", "ceil", "round",   "logical_not", "bitwise_not"};
  return names[static_cast<int>(op)];
}

NDArray unary(UnaryOp op, const NDArray& a) {
  const char* name = unary_name(op);
  // As in PyTorch: transcendental functions of integers and bools are in the default float dtype, rounding
  // an integer is a copy.
  if (is_transcendental(op) && !is_floating(a.dtype)) return unary(op, a.astype(runtime_flags().default_float));
  const bool rounding = op == UnaryOp::floor || op == UnaryOp::ceil || op == UnaryOp::round;
  if (rounding && category(a.dtype) == Category::integer) return a.copy();
  if (a.dtype == DType::b8 && op != UnaryOp::sign && op != UnaryOp::logical_not && op != UnaryOp::bitwise_not)
    type_error(name, ": not supported for bool input",
               op == UnaryOp::neg ? "; use logical_not() or ~ instead" : "");
  if (op == UnaryOp::bitwise_not && is_floating(a.dtype))
    type_error(name, ": input must be integer or bool, got ", dtype_name(a.dtype));
  NDArray out = NDArray::empty(a.shape, op == UnaryOp::logical_not ? DType::b8 : a.dtype, a.device());
  if (out.size() > 0) backend(a.device()).unary(op, a, out);
  return out;
}

NDArray clamp(const NDArray& a, std::optional<double> lo, std::optional<double> hi) {
  const char* op = "clamp";
  check_floating(op, "input", a);
  if (!lo && !hi) value_error(op, ": at least one of lo and hi must be given");
  if ((lo && std::isnan(*lo)) || (hi && std::isnan(*hi)))
    value_error(op, ": lo and hi must be numbers, got lo=", lo ? *lo : 0.0, " hi=", hi ? *hi : 0.0);
  const double inf = std::numeric_limits<double>::infinity();
  NDArray out = NDArray::empty(a.shape, a.dtype, a.device());
  if (out.size() > 0) backend(a.device()).clamp(a, lo.value_or(-inf), hi.value_or(inf), out);
  return out;
}

NDArray clamp_backward(const NDArray& g, const NDArray& y, double lo, std::optional<double> hi) {
  const char* op = "clamp_backward";
  check_floating(op, "grad_output", g);
  check_pair(op, "grad_output", g, "output", y);
  check_shape(op, "output", y.shape, g.shape);
  if (std::isnan(lo) || (hi && std::isnan(*hi)))
    value_error(op, ": lo and hi must be numbers, got lo=", lo, " hi=", hi ? *hi : 0.0);
  NDArray out = NDArray::empty(g.shape, g.dtype, g.device());
  if (out.size() > 0) backend(g.device()).clamp_backward(g, y, lo, hi.value_or(std::nan("")), out);
  return out;
}

namespace {

// An array an optimizer step writes, with its argument name.
using Written = std::pair<const char*, const NDArray*>;

// Checks g and the written arrays (p first, then the state) against p; returns g, or a copy of it when it
// shares memory with one of them.
NDArray checked_step_arrays(const char* op, const NDArray& g, const std::vector<Written>& written) {
  const NDArray& p = *written[0].second;
  check_floating(op, "param", p);
  check_pair(op, "param", p, "grad", g);
  check_shape(op, "grad", g.shape, p.shape);
  bool g_shared = false;
  for (size_t i = 0; i < written.size(); ++i) {
    const auto& [name, a] = written[i];
    check_pair(op, "param", p, name, *a);
    check_shape(op, name, a->shape, p.shape);
    for (int d = 0; d < a->ndim(); ++d)
      if (a->strides[d] == 0 && a->shape[d] > 1)
        value_error(op, ": ", name, " is written in place but is broadcast along axis ", d,
                    " (several elements share one memory location); pass a copy");
    for (size_t j = 0; j < i; ++j)
      if (written[j].second->storage == a->storage)
        value_error(op, ": ", written[j].first, " and ", name, " share memory; each is written in place");
    g_shared = g_shared || g.storage == a->storage;
  }
  return g_shared ? g.copy() : g;
}

}  // namespace

void sgd_step(const NDArray& p, const NDArray& g, const NDArray* buf, const SgdOptions& o) {
  std::vector<Written> written{{"param", &p}};
  if (buf) written.push_back({"momentum_buffer", buf});
  const NDArray grad = checked_step_arrays("sgd_step", g, written);
  if (p.size() > 0) backend(p.device()).sgd_step(p, grad, buf, o);
}

void adam_step(const NDArray& p, const NDArray& g, const NDArray& m, const NDArray& v, const NDArray* v_max,
               const AdamOptions& o) {
  std::vector<Written> written{{"param", &p}, {"exp_avg", &m}, {"exp_avg_sq", &v}};
  if (v_max) written.push_back({"max_exp_avg_sq", v_max});
  if (o.step < 1) value_error("adam_step: step must be >= 1 (the steps taken, this one included), got ", o.step);
  const NDArray grad = checked_step_arrays("adam_step", g, written);
  if (p.size() > 0) backend(p.device()).adam_step(p, grad, m, v, v_max, o);
}

void assign(const NDArray& dst, const NDArray& src) {
  if (dst.device() != src.device())
    runtime_error("setitem: destination is on ", device_name(dst.device()), " but value is on ",
                  device_name(src.device()));
  NDArray from = src.broadcast_to(dst.shape);
  // Overlapping views (a[1:] = a[:-1]) would read what they already wrote: read from a copy.
  if (src.storage == dst.storage) from = src.copy().broadcast_to(dst.shape);
  if (dst.size() > 0) backend(dst.device()).copy(from, dst);
}

void fill(const NDArray& dst, double value) {
  if (dst.size() > 0) backend(dst.device()).fill(dst, value);
}

NDArray reduce(ReduceOp op, const NDArray& a, const std::vector<int64_t>& axes, bool keepdims) {
  static const char* names[] = {"sum", "max", "min"};
  const char* name = names[static_cast<int>(op)];
  // As in PyTorch: integers and bools sum to int64; kernels see no bools (their max and min come from int32).
  if (op == ReduceOp::sum && category(a.dtype) != Category::floating && a.dtype != DType::i64)
    return reduce(op, a.astype(DType::i64), axes, keepdims);
  if (a.dtype == DType::b8) return reduce(op, a.astype(DType::i32), axes, keepdims).astype(DType::b8);
  std::vector<int> red = resolve_axes(name, axes, a.ndim());
  std::vector<int> order;
  Shape out_shape, kept_shape;
  int64_t n = 1;
  for (int i = 0; i < a.ndim(); ++i) {
    bool r = std::find(red.begin(), red.end(), i) != red.end();
    if (r) {
      n *= a.shape[i];
      if (keepdims) out_shape.push_back(1);
    } else {
      order.push_back(i);
      out_shape.push_back(a.shape[i]);
      kept_shape.push_back(a.shape[i]);
    }
  }
  if (op != ReduceOp::sum && n == 0)
    value_error(name, ": cannot reduce over a zero-size axis (shape ", shape_str(a.shape), ")");
  order.insert(order.end(), red.begin(), red.end());
  int64_t rows = shape_size(kept_shape);
  NDArray rows_view = a.permute(order).reshape({rows, n}).compact();  // reshape may keep a strided view
  NDArray out = NDArray::empty({rows}, a.dtype, a.device());
  if (rows > 0) backend(a.device()).reduce_rows(op, rows_view, out);
  return out.view(out_shape);
}

NDArray mean(const NDArray& a, const std::vector<int64_t>& axes, bool keepdims) {
  check_floating("mean", "input", a);  // PyTorch has no integer mean either
  NDArray s = reduce(ReduceOp::sum, a, axes, keepdims);
  int64_t n = s.size() == 0 ? 0 : a.size() / s.size();
  return binary_scalar(BinaryOp::div, s, static_cast<double>(n), false, DType::f64);
}

NDArray arg_reduce(ReduceOp op, const NDArray& a, std::optional<int64_t> axis, bool keepdims) {
  const char* name = op == ReduceOp::max ? "argmax" : "argmin";
  if (op == ReduceOp::sum) value_error("arg_reduce: op must be max or min");
  if (a.dtype == DType::b8)
    type_error(name, ": bool input is not supported (as in PyTorch); convert it with astype('int32')");
  if (a.size() == 0)
    value_error(name, ": attempt to get ", name, " of an empty array (shape ", shape_str(a.shape), ")");
  if (!axis) {
    NDArray out = NDArray::empty({1}, DType::i64, a.device());
    backend(a.device()).arg_reduce_rows(op, a.reshape({1, a.size()}).compact(), out);
    return out.view(keepdims ? Shape(a.ndim(), 1) : Shape{});
  }
  int ax = normalize_axis(*axis, a.ndim(), name);
  std::vector<int> order;
  Shape out_shape;
  for (int i = 0; i < a.ndim(); ++i) {
    if (i != ax) order.push_back(i), out_shape.push_back(a.shape[i]);
    else if (keepdims) out_shape.push_back(1);
  }
  order.push_back(ax);
  int64_t rows = a.size() / a.shape[ax];
  NDArray out = NDArray::empty({rows}, DType::i64, a.device());
  backend(a.device()).arg_reduce_rows(op, a.permute(order).reshape({rows, a.shape[ax]}).compact(), out);
  return out.view(out_shape);
}

NDArray matmul(const NDArray& a, const NDArray& b) {
  check_pair("matmul", "a", a, "b", b);
  check_floating("matmul", "a", a);
  if (a.ndim() == 0 || b.ndim() == 0)
    value_error("matmul: operands must have rank >= 1, got shapes ", shape_str(a.shape), " and ", shape_str(b.shape));
  NDArray a2 = a.ndim() == 1 ? a.view({1, a.shape[0]}) : a;
  NDArray b2 = b.ndim() == 1 ? b.view({b.shape[0], 1}) : b;
  int64_t m = a2.shape[a2.ndim() - 2], k = a2.shape[a2.ndim() - 1];
  int64_t kb = b2.shape[b2.ndim() - 2], n = b2.shape[b2.ndim() - 1];
  if (k != kb)
    value_error("matmul: a has shape ", shape_str(a.shape), " and b has shape ", shape_str(b.shape),
                ": contracted dimensions ", k, " and ", kb, " differ");
  Shape batch = broadcast_shapes("matmul", Shape(a2.shape.begin(), a2.shape.end() - 2),
                                 Shape(b2.shape.begin(), b2.shape.end() - 2));
  int64_t nb = shape_size(batch);
  Shape sa = batch, sb = batch, so = batch;
  sa.insert(sa.end(), {m, k});
  sb.insert(sb.end(), {k, n});
  so.insert(so.end(), {m, n});
  NDArray out = NDArray::empty({nb, m, n}, a.dtype, a.device());
  if (out.size() > 0) {
    if (k == 0) fill(out, 0.0);
    else backend(a.device()).matmul(a2.broadcast_to(sa).reshape({nb, m, k}).compact(),
                                    b2.broadcast_to(sb).reshape({nb, k, n}).compact(), out);
  }
  // Drop the axes that 1-D operands were promoted with.
  Shape final_shape = batch;
  if (a.ndim() > 1) final_shape.push_back(m);
  if (b.ndim() > 1) final_shape.push_back(n);
  return out.view(final_shape);
}

PadMode parse_pad_mode(const std::string& mode) {
  if (mode == "constant") return PadMode::constant;
  if (mode == "reflect") return PadMode::reflect;
  if (mode == "replicate") return PadMode::replicate;
  if (mode == "circular") return PadMode::circular;
  value_error("pad: mode must be one of 'constant', 'reflect', 'replicate', 'circular', got '", mode, "'");
}

NDArray pad(const NDArray& a, const Pads& pads, const std::string& mode_name, double value) {
  PadMode mode = parse_pad_mode(mode_name);
  check_floating("pad", "input", a);
  if (static_cast<int>(pads.size()) > a.ndim())
    value_error("pad: pads has ", pads.size(), " (lo, hi) pairs but the array has rank ", a.ndim());
  // Pairs apply to the trailing axes; leading axes are not padded.
  Pads full(a.ndim() - pads.size(), {0, 0});
  full.insert(full.end(), pads.begin(), pads.end());
  Shape out_shape = a.shape;
  for (int d = 0; d < a.ndim(); ++d) {
    auto [lo, hi] = full[d];
    int64_t size = a.shape[d];
    if (lo < 0 || hi < 0) value_error("pad: pads must be >= 0, got (", lo, ", ", hi, ") for axis ", d);
    if (mode == PadMode::reflect && (lo >= size || hi >= size) && (lo > 0 || hi > 0))
      value_error("pad: reflect padding (", lo, ", ", hi, ") must be smaller than the size ", size, " of axis ", d);
    if (mode == PadMode::circular && (lo > size || hi > size))
      value_error("pad: circular padding (", lo, ", ", hi, ") must be at most the size ", size, " of axis ", d);
    if (mode == PadMode::replicate && size == 0 && (lo > 0 || hi > 0))
      value_error("pad: replicate padding needs a non-empty axis ", d);
    out_shape[d] = size + lo + hi;
  }
  NDArray out = NDArray::empty(out_shape, a.dtype, a.device());
  if (out.size() > 0) {
    if (a.size() == 0) fill(out, value);
    else backend(a.device()).pad(a.compact(), full, mode, value, out);
  }
  return out;
}

// ---- convolution -------------------------------------------------------------------------------------

NDArray conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvArgs& args) {
  const char* op = conv_name(x, false);
  check_pair(op, "input", x, "weight", w);
  check_floating(op, "input", x);
  ConvParams p = make_conv_params(op, x.shape, w.shape, args);
  check_bias(op, bias, x, p.c_out);
  int dims = x.ndim() - 2;
  NDArray y = NDArray::empty(spatial_shape({p.n, p.c_out}, dims, p.oh, p.ow), x.dtype, x.device());
  if (y.size() == 0) return y;
  NDArray y4 = y.view({p.n, p.c_out, p.oh, p.ow});
  NDArray b = bias ? bias->compact() : NDArray();
  run_conv_forward(backend(x.device()), as_2d(x), as_2d(w), bias ? &b : nullptr, p, y4);
  return y;
}

NDArray conv_backward_input(const NDArray& gy, const NDArray& w, const std::vector<int64_t>& input_size,
                            const ConvArgs& args) {
  const char* op = conv_name(gy, false);
  check_pair(op, "grad_output", gy, "weight", w);
  check_floating(op, "grad_output", gy);
  if (gy.ndim() != 3 && gy.ndim() != 4)
    value_error(op, ": grad_output must have rank 3 or 4, got shape ", shape_str(gy.shape));
  if (w.ndim() != gy.ndim())
    value_error(op, ": weight must have rank ", gy.ndim(), ", got shape ", shape_str(w.shape));
  Shape xs = {gy.shape[0], w.shape[1] * args.groups};
  xs.insert(xs.end(), input_size.begin(), input_size.end());
  ConvParams p = make_conv_params(op, xs, w.shape, args);
  int dims = gy.ndim() - 2;
  check_shape(op, "grad_output", gy.shape, spatial_shape({p.n, p.c_out}, dims, p.oh, p.ow));
  NDArray gx = NDArray::empty(xs, gy.dtype, gy.device());
  if (gx.size() == 0) return gx;
  NDArray gx4 = gx.view({p.n, p.c_in, p.h, p.w});
  run_conv_backward_input(backend(gy.device()), as_2d(gy), as_2d(w), p, gx4);
  return gx;
}

NDArray conv_backward_weight(const NDArray& x, const NDArray& gy, const std::vector<int64_t>& kernel_size,
                             const ConvArgs& args) {
  const char* op = conv_name(x, false);
  check_pair(op, "input", x, "grad_output", gy);
  check_floating(op, "input", x);
  if (gy.ndim() != x.ndim())
    value_error(op, ": grad_output must have rank ", x.ndim(), ", got shape ", shape_str(gy.shape));
  if (args.groups < 1) value_error(op, ": groups must be >= 1, got ", args.groups);
  Shape ws = weight_shape(gy.shape[1], x.shape.size() > 1 ? x.shape[1] / args.groups : 0, kernel_size);
  ConvParams p = make_conv_params(op, x.shape, ws, args);
  int dims = x.ndim() - 2;
  check_shape(op, "grad_output", gy.shape, spatial_shape({p.n, p.c_out}, dims, p.oh, p.ow));
  NDArray gw = NDArray::empty(ws, x.dtype, x.device());
  NDArray gw4 = gw.view({p.c_out, p.c_in_per_group(), p.kh, p.kw});
  if (p.n == 0) fill(gw, 0.0);
  else run_conv_backward_weight(backend(x.device()), as_2d(x), as_2d(gy), p, gw4);
  return gw;
}

NDArray conv_transpose_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvArgs& args) {
  const char* op = conv_name(x, true);
  check_pair(op, "input", x, "weight", w);
  check_floating(op, "input", x);
  ConvParams p = make_conv_transpose_params(op, x.shape, w.shape, args);
  check_bias(op, bias, x, p.c_in);
  int dims = x.ndim() - 2;
  NDArray y = NDArray::empty(spatial_shape({p.n, p.c_in}, dims, p.h, p.w), x.dtype, x.device());
  if (y.size() == 0) return y;
  NDArray y4 = y.view({p.n, p.c_in, p.h, p.w});
  run_conv_backward_input(backend(x.device()), as_2d(x), as_2d(w), p, y4);
  return bias ? add_channel_bias(y, *bias) : y;
}

// ---- im2col ------------------------------------------------------------------------------------------
// The blocks are the windows of a one-output-channel conv over x, so make_conv_params checks the geometry.

NDArray unfold(const NDArray& x, const std::vector<int64_t>& kernel_size, const ConvArgs& args) {
  const char* op = "unfold";
  check_floating(op, "input", x);
  if (x.ndim() != 4) value_error(op, ": input must be 4-D (N, C, H, W), got shape ", shape_str(x.shape));
  if (kernel_size.size() != 2) value_error(op, ": kernel_size needs 2 values, got ", kernel_size.size());
  ConvParams p = make_conv_params(op, x.shape, weight_shape(1, x.shape[1], kernel_size), args);
  NDArray cols = NDArray::empty({p.n, p.c_in * p.kh * p.kw, p.oh * p.ow}, x.dtype, x.device());
  if (cols.size() > 0) backend(x.device()).im2col(x.compact(), p, cols);
  return cols;
}

NDArray fold(const NDArray& cols, const std::vector<int64_t>& output_size, const std::vector<int64_t>& kernel_size,
             const ConvArgs& args) {
  const char* op = "fold";
  check_floating(op, "input", cols);
  if (cols.ndim() != 3) value_error(op, ": input must be 3-D (N, C*KH*KW, L), got shape ", shape_str(cols.shape));
  if (kernel_size.size() != 2) value_error(op, ": kernel_size needs 2 values, got ", kernel_size.size());
  if (output_size.size() != 2) value_error(op, ": output_size needs 2 values, got ", output_size.size());
  for (int64_t k : kernel_size)
    if (k < 1) value_error(op, ": kernel_size must be >= 1, got ", k);
  for (int64_t s : output_size)
    if (s < 0) value_error(op, ": output_size must be >= 0, got ", s);
  const int64_t taps = kernel_size[0] * kernel_size[1];
  if (cols.shape[1] % taps != 0)
    value_error(op, ": input's dim 1 (", cols.shape[1], ") must be divisible by the product of kernel_size (",
                taps, ")");
  Shape xs = {cols.shape[0], cols.shape[1] / taps, output_size[0], output_size[1]};
  ConvParams p = make_conv_params(op, xs, weight_shape(1, xs[1], kernel_size), args);
  if (cols.shape[2] != p.oh * p.ow)
    value_error(op, ": input has ", cols.shape[2], " blocks (dim 2) but output_size ", shape_str(output_size),
                " holds ", p.oh, " x ", p.ow, " = ", p.oh * p.ow,
                " blocks of this kernel_size, dilation, padding and stride");
  NDArray x = NDArray::empty(xs, cols.dtype, cols.device());
  if (x.size() > 0) backend(cols.device()).col2im(cols.compact(), p, x);
  return x;
}

// ---- tiled convolution and locally connected layers ---------------------------------------------------

namespace {
const char* tiled_name(int64_t ndim, bool unshared) {
  if (ndim == 3) return unshared ? "locally_connected1d" : "tiled_conv1d";
  return unshared ? "locally_connected2d" : "tiled_conv2d";
}

// The kernels' 2-D view of a weight, (tile_h, tile_w, C_out, C_in, KH, KW): a 1-D one gets height-1 tile
// and kernel.
NDArray tiled_weight_2d(const NDArray& w) {
  NDArray c = w.compact();
  if (c.ndim() == 6) return c;
  return c.view({1, c.shape[0], c.shape[1], c.shape[2], 1, c.shape[3]});
}
}  // namespace

NDArray tiled_conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvArgs& args,
                           bool unshared) {
  const char* op = tiled_name(x.ndim(), unshared);
  check_pair(op, "input", x, "weight", w);
  check_floating(op, "input", x);
  TiledParams p = make_tiled_params(op, x.shape, w.shape, args, unshared);
  int dims = x.ndim() - 2;
  if (bias) {
    check_pair(op, "input", x, "bias", *bias);
    check_shape(op, "bias", bias->shape, Shape(w.shape.begin(), w.shape.begin() + dims + 1));
  }
  NDArray y = NDArray::empty(spatial_shape({p.n, p.c_out}, dims, p.oh, p.ow), x.dtype, x.device());
  if (y.size() == 0) return y;
  NDArray y4 = y.view({p.n, p.c_out, p.oh, p.ow});
  NDArray b = bias ? bias->compact() : NDArray();
  backend(x.device()).tiled_conv_forward(as_2d(x), tiled_weight_2d(w), bias ? &b : nullptr, p, y4);
  return y;
}

NDArray tiled_conv_backward_input(const NDArray& gy, const NDArray& w, const std::vector<int64_t>& input_size,
                                  const ConvArgs& args, bool unshared) {
  const char* op = tiled_name(gy.ndim(), unshared);
  check_pair(op, "grad_output", gy, "weight", w);
  check_floating(op, "grad_output", gy);
  if (gy.ndim() != 3 && gy.ndim() != 4)
    value_error(op, ": grad_output must have rank 3 or 4, got shape ", shape_str(gy.shape));
  int dims = gy.ndim() - 2;
  if (w.ndim() != 2 * dims + 2)
    value_error(op, ": weight must have rank ", 2 * dims + 2, ", got shape ", shape_str(w.shape));
  Shape xs = {gy.shape[0], w.shape[dims + 1]};
  xs.insert(xs.end(), input_size.begin(), input_size.end());
  TiledParams p = make_tiled_params(op, xs, w.shape, args, unshared);
  check_shape(op, "grad_output", gy.shape, spatial_shape({p.n, p.c_out}, dims, p.oh, p.ow));
  NDArray gx = NDArray::empty(xs, gy.dtype, gy.device());
  if (gx.size() == 0) return gx;
  NDArray gx4 = gx.view({p.n, p.c_in, p.h, p.w});
  backend(gy.device()).tiled_conv_backward_input(as_2d(gy), tiled_weight_2d(w), p, gx4);
  return gx;
}

NDArray tiled_conv_backward_weight(const NDArray& x, const NDArray& gy, const Shape& weight_shape,
                                   const ConvArgs& args, bool unshared) {
  const char* op = tiled_name(x.ndim(), unshared);
  check_pair(op, "input", x, "grad_output", gy);
  check_floating(op, "input", x);
  TiledParams p = make_tiled_params(op, x.shape, weight_shape, args, unshared);
  int dims = x.ndim() - 2;
  check_shape(op, "grad_output", gy.shape, spatial_shape({p.n, p.c_out}, dims, p.oh, p.ow));
  NDArray gw = NDArray::empty(weight_shape, x.dtype, x.device());
  NDArray gw6 = gw.view({p.tile_h, p.tile_w, p.c_out, p.c_in, p.kh, p.kw});
  if (p.n == 0) fill(gw, 0.0);
  else backend(x.device()).tiled_conv_backward_weight(as_2d(x), as_2d(gy), p, gw6);
  return gw;
}

// ---- pooling -----------------------------------------------------------------------------------------

namespace {
const char* pool_name(const NDArray& x, const char* kind) {
  static const std::string names[] = {"max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d"};
  int i = (std::string(kind) == "max" ? 0 : 2) + (x.ndim() == 4 ? 1 : 0);
  return names[i].c_str();
}

NDArray pooled(const NDArray& x, const PoolParams& p) {
  return NDArray::empty(spatial_shape({p.n, p.c}, x.ndim() - 2, p.oh, p.ow), x.dtype, x.device());
}

// The input shape a pooling backward writes: grad_output's (N, C) and the input's spatial size.
Shape pooled_input_shape(const char* op, const NDArray& gy, const std::vector<int64_t>& input_size) {
  if (gy.ndim() != 3 && gy.ndim() != 4)
    value_error(op, ": grad_output must have rank 3 or 4, got shape ", shape_str(gy.shape));
  Shape xs = {gy.shape[0], gy.shape[1]};
  xs.insert(xs.end(), input_size.begin(), input_size.end());
  return xs;
}

NDArray as_4d(const NDArray& a, const PoolParams& p, bool output) {
  return a.view({p.n, p.c, output ? p.oh : p.h, output ? p.ow : p.w});
}
}  // namespace

NDArray max_pool_forward(const NDArray& x, const PoolArgs& args, NDArray* indices) {
  check_floating(pool_name(x, "max"), "input", x);
  PoolParams p = make_pool_params(pool_name(x, "max"), x.shape, args);
  NDArray y = pooled(x, p);
  if (indices) *indices = NDArray::empty(y.shape, DType::i64, x.device());
  if (y.size() > 0) {
    NDArray y4 = as_4d(y, p, true);
    NDArray id4 = indices ? as_4d(*indices, p, true) : NDArray();
    backend(x.device()).max_pool_forward(as_2d(x), p, y4, indices ? &id4 : nullptr);
  }
  return y;
}

NDArray max_pool_backward_indices(const NDArray& indices, const NDArray& gy, const std::vector<int64_t>& input_size,
                                  const PoolArgs& args) {
  const char* op = pool_name(gy, "max");
  check_device(op, "grad_output", gy, "indices", indices);
  check_floating(op, "grad_output", gy);
  if (indices.dtype != DType::i64)
    type_error(op, ": indices must be int64 (max_pool_forward's), got ", dtype_name(indices.dtype));
  Shape xs = pooled_input_shape(op, gy, input_size);
  PoolParams p = make_pool_params(op, xs, args);
  check_shape(op, "grad_output", gy.shape, spatial_shape({p.n, p.c}, gy.ndim() - 2, p.oh, p.ow));
  check_shape(op, "indices", indices.shape, gy.shape);
  NDArray gx = NDArray::empty(xs, gy.dtype, gy.device());
  if (gx.size() > 0) {
    NDArray gx4 = as_4d(gx, p, false);
    backend(gy.device()).max_pool_backward(as_2d(indices), as_2d(gy), p, gx4);
  }
  return gx;
}

NDArray max_pool_backward(const NDArray& x, const NDArray& gy, const PoolArgs& args) {
  check_pair(pool_name(x, "max"), "input", x, "grad_output", gy);
  NDArray indices;
  max_pool_forward(x, args, &indices);
  return max_pool_backward_indices(indices, gy, Shape(x.shape.begin() + 2, x.shape.end()), args);
}

NDArray avg_pool_forward(const NDArray& x, const PoolArgs& args) {
  check_floating(pool_name(x, "avg"), "input", x);
  PoolParams p = make_pool_params(pool_name(x, "avg"), x.shape, args);
  NDArray y = pooled(x, p);
  if (y.size() > 0) {
    NDArray y4 = as_4d(y, p, true);
    backend(x.device()).avg_pool_forward(as_2d(x), p, y4);
  }
  return y;
}

NDArray avg_pool_backward(const NDArray& gy, const std::vector<int64_t>& input_size, const PoolArgs& args) {
  const char* op = pool_name(gy, "avg");
  check_floating(op, "grad_output", gy);
  Shape xs = pooled_input_shape(op, gy, input_size);
  PoolParams p = make_pool_params(op, xs, args);
  check_shape(op, "grad_output", gy.shape, spatial_shape({p.n, p.c}, gy.ndim() - 2, p.oh, p.ow));
  NDArray gx = NDArray::empty(xs, gy.dtype, gy.device());
  if (gx.size() > 0) {
    NDArray gx4 = as_4d(gx, p, false);
    backend(gy.device()).avg_pool_backward(as_2d(gy), p, gx4);
  }
  return gx;
}

NDArray adaptive_avg_pool_forward(const NDArray& x, const std::vector<int64_t>& output_size) {
  const char* op = x.ndim() == 3 ? "adaptive_avg_pool1d" : "adaptive_avg_pool2d";
  check_floating(op, "input", x);
  PoolParams p = make_adaptive_pool_params(op, x.shape, output_size);
  NDArray y = pooled(x, p);
  if (y.size() > 0) {
    NDArray y4 = as_4d(y, p, true);
    backend(x.device()).adaptive_avg_pool_forward(as_2d(x), p, y4);
  }
  return y;
}

NDArray adaptive_avg_pool_backward(const NDArray& gy, const std::vector<int64_t>& input_size) {
  const char* op = gy.ndim() == 3 ? "adaptive_avg_pool1d" : "adaptive_avg_pool2d";
  check_floating(op, "grad_output", gy);
  Shape xs = pooled_input_shape(op, gy, input_size);
  PoolParams p = make_adaptive_pool_params(op, xs, spatial_of(gy.shape));
  NDArray gx = NDArray::empty(xs, gy.dtype, gy.device());
  if (gx.size() > 0) {
    NDArray gx4 = as_4d(gx, p, false);
    backend(gy.device()).adaptive_avg_pool_backward(as_2d(gy), p, gx4);
  }
  return gx;
}

// ---- batch norm --------------------------------------------------------------------------------------

namespace {

// x (N, C, ...) as the (N, C, S) view the kernels take, after the checks every batch-norm op shares.
NDArray batch_norm_input(const char* op, const NDArray& x, double eps) {
  check_floating(op, "input", x);
  if (x.ndim() < 2) value_error(op, ": input must have at least 2 dims (N, C, ...), got shape ", shape_str(x.shape));
  if (!(eps >= 0)) value_error(op, ": eps must be >= 0, got ", eps);
  int64_t s = 1;
  for (int i = 2; i < x.ndim(); ++i) s *= x.shape[i];
  return x.compact().view({x.shape[0], x.shape[1], s});
}

// A per-channel (C) argument: x's dtype and device, contiguous. Null stays null.
std::optional<NDArray> channel_arg(const char* op, const char* arg, const NDArray& x, const NDArray* a) {
  if (!a) return std::nullopt;
  check_pair(op, "input", x, arg, *a);
  check_shape(op, arg, a->shape, {x.shape[1]});
  return a->compact();
}

const NDArray* ptr(const std::optional<NDArray>& a) { return a ? &*a : nullptr; }

}  // namespace

std::tuple<NDArray, NDArray, NDArray> batch_norm_forward(const NDArray& x, const NDArray* running_mean,
                                                         const NDArray* running_var, const NDArray* weight,
                                                         const NDArray* bias, bool training, double eps) {
  const char* op = "batch_norm";
  NDArray x3 = batch_norm_input(op, x, eps);
  auto w = channel_arg(op, "weight", x, weight), b = channel_arg(op, "bias", x, bias);
  auto rm = channel_arg(op, "running_mean", x, running_mean), rv = channel_arg(op, "running_var", x, running_var);
  const int64_t c = x.shape[1];
  NDArray mean, var;
  if (training) {
    if (x3.shape[0] * x3.shape[2] <= 1)
      value_error(op, ": expected more than 1 value per channel when training, got input shape ", shape_str(x.shape));
    mean = NDArray::empty({c}, x.dtype, x.device());
    var = NDArray::empty({c}, x.dtype, x.device());
    if (c > 0) backend(x.device()).batch_norm_stats(x3, mean, var);
  } else {
    if (!rm || !rv) value_error(op, ": running_mean and running_var are required when training=False");
    mean = *rm, var = *rv;
  }
  NDArray y = NDArray::empty(x.shape, x.dtype, x.device());
  if (x.size() > 0) {
    NDArray y3 = y.view(x3.shape);
    backend(x.device()).batch_norm_apply(x3, mean, var, ptr(w), ptr(b), eps, y3);
  }
  return {y, mean, var};
}

std::tuple<NDArray, NDArray, NDArray> batch_norm_backward(const NDArray& x, const NDArray& gy, const NDArray& mean,
                                                          const NDArray& var, const NDArray* weight, bool training,
                                                          double eps) {
  const char* op = "batch_norm_backward";
  NDArray x3 = batch_norm_input(op, x, eps);
  check_pair(op, "input", x, "grad_output", gy);
  check_shape(op, "grad_output", gy.shape, x.shape);
  auto w = channel_arg(op, "weight", x, weight);
  NDArray m = *channel_arg(op, "mean", x, &mean), v = *channel_arg(op, "var", x, &var);
  const int64_t c = x.shape[1];
  NDArray gx = NDArray::empty(x.shape, x.dtype, x.device());
  NDArray gw = NDArray::empty({c}, x.dtype, x.device()), gb = NDArray::empty({c}, x.dtype, x.device());
  if (x.size() > 0) {
    NDArray gx3 = gx.view(x3.shape);
    backend(x.device()).batch_norm_backward(x3, gy.compact().view(x3.shape), m, v, ptr(w), eps, training, gx3, gw,
                                            gb);
  } else {
    fill(gw, 0.0);
    fill(gb, 0.0);
  }
  return {gx, gw, gb};
}

// ---- indexing ----------------------------------------------------------------------------------------

namespace {

// Every entry of index must lie in [0, size), or in [-size, size) where negative entries count from the end.
// Two reductions on the index's device decide it; only their results come to the host.
void check_index(const char* op, const NDArray& index, int64_t size, int axis, bool negative_ok) {
  if (index.dtype != DType::i64 && index.dtype != DType::i32)
    type_error(op, ": index must be an int64 (or int32) array, got ", dtype_name(index.dtype));
  if (index.size() == 0) return;
  const auto extreme = [&](ReduceOp which) {
    return reduce(which, index, {}, false).astype(DType::i64).to(Device::cpu).data<int64_t>()[0];
  };
  const int64_t hi = extreme(ReduceOp::max), lo = extreme(ReduceOp::min);
  if (hi >= size || lo < (negative_ok ? -size : 0))
    index_error(op, ": index ", hi >= size ? hi : lo, " is out of bounds for axis ", axis, " with size ", size);
}

// The element counts before and after `axis`.
std::pair<int64_t, int64_t> outer_inner(const Shape& shape, int axis) {
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= shape[d];
  for (int d = axis + 1; d < static_cast<int>(shape.size()); ++d) inner *= shape[d];
  return {outer, inner};
}

// The (outer, n, inner) view of a contiguous array around `axis`: the layout the gather/scatter kernels see.
NDArray around_axis(const NDArray& a, int axis) {
  const auto [outer, inner] = outer_inner(a.shape, axis);
  return a.view({outer, a.shape[axis], inner});
}

// The flat index as an (outer, n, inner) view that repeats it over the other axes (strides 0).
NDArray repeated(const NDArray& index, int64_t outer, int64_t inner) {
  return index.reshape({1, index.size(), 1}).broadcast_to({outer, index.size(), inner});
}

// The view of a's first shape[d] elements along every axis d.
NDArray leading_block(const NDArray& a, const Shape& shape) {
  std::vector<AxisIndex> idx(a.ndim());
  for (int d = 0; d < a.ndim(); ++d) idx[d] = {false, 0, shape[d], 1};
  return a.index(idx);
}

NDArray zeros_of(const Shape& shape, DType dtype, Device device) {
  NDArray out = NDArray::empty(shape, dtype, device);
  fill(out, 0.0);
  return out;
}

// a's shape with `axis` replaced by index's shape: what take returns and put writes from.
Shape take_shape(const Shape& a, int axis, const Shape& index) {
  Shape s(a.begin(), a.begin() + axis);
  s.insert(s.end(), index.begin(), index.end());
  s.insert(s.end(), a.begin() + axis + 1, a.end());
  return s;
}

// a (index's positions along axis) for the flat index, with index's shape in place of the axis.
NDArray take_along(const NDArray& a, int axis, const NDArray& index) {
  NDArray out = NDArray::empty(take_shape(a.shape, axis, index.shape), a.dtype, a.device());
  if (out.size() == 0) return out;
  NDArray a3 = around_axis(a.compact(), axis);
  NDArray out3 = out.view({a3.shape[0], index.size(), a3.shape[2]});
  backend(a.device()).gather(a3, repeated(index, a3.shape[0], a3.shape[2]), out3);
  return out;
}

// dst (a view, possibly strided) at index3's positions along axis = (or +=) src3. The kernel needs a
// contiguous target: a strided dst is updated in a copy that is written back.
void scatter_into(const NDArray& dst, int axis, const NDArray& index3, const NDArray& src3, bool accumulate,
                  bool unique) {
  NDArray target = dst.compact();
  NDArray target3 = around_axis(target, axis);
  // x[idx] = x[other] would otherwise read values it has already overwritten.
  NDArray from = src3.storage == target.storage ? src3.copy() : src3;
  backend(dst.device()).scatter(index3, from, target3, accumulate, unique);
  if (target.storage != dst.storage) assign(dst, target);
}

// put's work once checked: src has take_shape(dst, axis, index) (broadcasting allowed).
void put_along(const NDArray& dst, int axis, const NDArray& index, const NDArray& src, bool accumulate,
               bool unique) {
  const NDArray full = src.broadcast_to(take_shape(dst.shape, axis, index.shape));
  if (full.size() == 0) return;
  const auto [outer, inner] = outer_inner(dst.shape, axis);
  scatter_into(dst, axis, repeated(index, outer, inner), full.compact().view({outer, index.size(), inner}),
               accumulate, unique);
}

NDArray int64_scalar(int64_t value, Device device) {
  NDArray s = NDArray::empty({}, DType::i64, device);
  fill(s, static_cast<double>(value));
  return s;
}

}  // namespace

NDArray where(const NDArray& cond, const NDArray& a, const NDArray& b) {
  check_device("where", "condition", cond, "input", a);
  check_device("where", "input", a, "other", b);
  if (cond.dtype != DType::b8) type_error("where: condition must be a bool array, got ", dtype_name(cond.dtype));
  if (a.dtype != b.dtype)
    type_error("where: input is ", dtype_name(a.dtype), " but other is ", dtype_name(b.dtype),
               "; convert one with astype()");
  Shape s = broadcast_shapes("where", broadcast_shapes("where", cond.shape, a.shape), b.shape);
  NDArray out = NDArray::empty(s, a.dtype, a.device());
  if (out.size() > 0) backend(a.device()).where(cond.broadcast_to(s), a.broadcast_to(s), b.broadcast_to(s), out);
  return out;
}

NDArray gather(const NDArray& a, int64_t axis_arg, const NDArray& index) {
  check_device("gather", "input", a, "index", index);
  const int axis = normalize_axis(axis_arg, a.ndim(), "gather");
  if (index.ndim() != a.ndim())
    value_error("gather: index must have the input's rank ", a.ndim(), ", got shape ", shape_str(index.shape));
  for (int d = 0; d < a.ndim(); ++d)
    if (d != axis && index.shape[d] > a.shape[d])
      value_error("gather: index of shape ", shape_str(index.shape), " is larger than the input of shape ",
                  shape_str(a.shape), " along axis ", d);
  check_index("gather", index, a.shape[axis], axis, false);
  NDArray out = NDArray::empty(index.shape, a.dtype, a.device());
  if (out.size() == 0) return out;
  Shape region = index.shape;
  region[axis] = a.shape[axis];
  NDArray out3 = around_axis(out, axis);
  backend(a.device()).gather(around_axis(leading_block(a, region).compact(), axis),
                             around_axis(index.compact(), axis), out3);
  return out;
}

namespace {
// torch.Tensor.scatter_ / scatter_add_ into dst (any view), checked as PyTorch does.
void scatter_checked(const char* op, const NDArray& dst, int64_t axis_arg, const NDArray& index, const NDArray& src,
                     bool accumulate) {
  check_device(op, "index", index, "src", src);
  check_device(op, "self", dst, "src", src);
  if (src.dtype != dst.dtype)
    type_error(op, ": src is ", dtype_name(src.dtype), " but self is ", dtype_name(dst.dtype),
               "; convert one with astype()");
  const int rank = dst.ndim();
  const int axis = normalize_axis(axis_arg, rank, op);
  if (index.ndim() != rank || src.ndim() != rank)
    value_error(op, ": index and src must have the output's rank ", rank, ", got shapes ", shape_str(index.shape),
                " and ", shape_str(src.shape));
  for (int d = 0; d < rank; ++d)
    if (index.shape[d] > src.shape[d] || (d != axis && index.shape[d] > dst.shape[d]))
      value_error(op, ": index of shape ", shape_str(index.shape), " is larger than src ", shape_str(src.shape),
                  " or the output ", shape_str(dst.shape), " along axis ", d);
  check_index(op, index, dst.shape[axis], axis, false);
  if (index.size() == 0) return;
  Shape region = index.shape;
  region[axis] = dst.shape[axis];
  scatter_into(leading_block(dst, region), axis, around_axis(index.compact(), axis),
               around_axis(leading_block(src, index.shape).compact(), axis), accumulate, false);
}
}  // namespace

NDArray scatter_add(const Shape& shape, int64_t axis, const NDArray& index, const NDArray& src) {
  NDArray out = zeros_of(shape, src.dtype, src.device());
  scatter_checked("scatter_add", out, axis, index, src, true);
  return out;
}

void scatter(const NDArray& dst, int64_t axis, const NDArray& index, const NDArray& src, bool accumulate) {
  scatter_checked(accumulate ? "scatter_add_" : "scatter_", dst, axis, index, src, accumulate);
}

NDArray index_select(const NDArray& a, int64_t axis_arg, const NDArray& index) {
  check_device("index_select", "input", a, "index", index);
  const int axis = normalize_axis(axis_arg, a.ndim(), "index_select");
  if (index.ndim() > 1) value_error("index_select: index must be 1-D, got shape ", shape_str(index.shape));
  check_index("index_select", index, a.shape[axis], axis, false);
  return take_along(a, axis, index.reshape({index.size()}));
}

NDArray index_add(const Shape& shape, int64_t axis_arg, const NDArray& index, const NDArray& src) {
  check_device("index_add", "index", index, "source", src);
  const int axis = normalize_axis(axis_arg, static_cast<int>(shape.size()), "index_add");
  if (index.ndim() > 1) value_error("index_add: index must be 1-D, got shape ", shape_str(index.shape));
  check_shape("index_add", "source", src.shape, take_shape(shape, axis, {index.size()}));
  check_index("index_add", index, shape[axis], axis, false);
  NDArray out = zeros_of(shape, src.dtype, src.device());
  put_along(out, axis, index.reshape({index.size()}), src, true, false);
  return out;
}

NDArray take(const NDArray& a, int64_t axis_arg, const NDArray& index) {
  check_device("take", "input", a, "index", index);
  const int axis = normalize_axis(axis_arg, a.ndim(), "take");
  check_index("take", index, a.shape[axis], axis, true);
  return take_along(a, axis, index);
}

void put(const NDArray& dst, int64_t axis_arg, const NDArray& index, const NDArray& src, bool accumulate,
         bool unique_indices) {
  check_device("put", "destination", dst, "index", index);
  check_device("put", "destination", dst, "value", src);
  if (src.dtype != dst.dtype)
    type_error("put: value is ", dtype_name(src.dtype), " but the destination is ", dtype_name(dst.dtype),
               "; convert one with astype()");
  const int axis = normalize_axis(axis_arg, dst.ndim(), "put");
  check_index("put", index, dst.shape[axis], axis, true);
  put_along(dst, axis, index, src, accumulate, unique_indices);
}

NDArray ravel_index(const std::vector<NDArray>& indices, const Shape& sizes, int64_t first_axis) {
  if (indices.empty() || indices.size() != sizes.size())
    value_error("ravel_index: ", indices.size(), " index arrays for ", sizes.size(), " axes");
  const Device device = indices[0].device();
  Shape s = indices[0].shape;
  for (size_t k = 0; k < indices.size(); ++k) {
    check_device("index", "index 0", indices[0], "another index", indices[k]);
    check_index("index", indices[k], sizes[k], static_cast<int>(first_axis + k), true);
    s = broadcast_shapes("index", s, indices[k].shape);
  }
  const NDArray zero = int64_scalar(0, device);
  NDArray flat = zero;
  for (size_t k = 0; k < indices.size(); ++k) {
    const NDArray i = indices[k].dtype == DType::i64 ? indices[k] : indices[k].astype(DType::i64);
    const NDArray n = int64_scalar(sizes[k], device);
    const NDArray wrapped = where(binary(BinaryOp::lt, i, zero), binary(BinaryOp::add, i, n), i);
    flat = binary(BinaryOp::add, binary(BinaryOp::mul, flat, n), wrapped);
  }
  return flat.broadcast_to(s).compact();
}

NDArray nonzero(const NDArray& a) {
  const NDArray c = a.compact();
  const int64_t count = a.size() == 0 ? 0 : backend(a.device()).count_nonzero(c);
  NDArray out = NDArray::empty({count, a.ndim()}, DType::i64, a.device());
  if (count > 0 && a.ndim() > 0) backend(a.device()).nonzero(c, out);
  return out;
}

}  // namespace convlab
