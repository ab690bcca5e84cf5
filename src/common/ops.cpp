// Frontends: check arguments once, allocate outputs, call the inputs' backend. 1-D convolution and pooling
// become 2-D here (a height-1 view), so kernels handle one layout.
#include "ops.h"

#include <algorithm>

namespace convlab {
namespace {

void check_pair(const char* op, const char* an, const NDArray& a, const char* bn, const NDArray& b) {
  if (a.device() != b.device())
    runtime_error(op, ": ", an, " is on ", device_name(a.device()), " but ", bn, " is on ",
                  device_name(b.device()), "; move both to one device");
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
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
  return names[static_cast<int>(op)];
}

NDArray binary(BinaryOp op, const NDArray& a, const NDArray& b) {
  const char* name = binary_name(op);
  check_pair(name, "a", a, "b", b);
  check_floating(name, "a", a);
  Shape s = broadcast_shapes(name, a.shape, b.shape);
  NDArray out = NDArray::empty(s, a.dtype, a.device());
  if (out.size() > 0) backend(a.device()).binary(op, a.broadcast_to(s), b.broadcast_to(s), out);
  return out;
}

NDArray binary_scalar(BinaryOp op, const NDArray& a, double s, bool scalar_first) {
  check_floating(binary_name(op), "a", a);
  NDArray out = NDArray::empty(a.shape, a.dtype, a.device());
  if (out.size() > 0) backend(a.device()).binary_scalar(op, a, s, scalar_first, out);
  return out;
}

const char* unary_name(UnaryOp op) {
  static const char* names[] = {"neg",  "exp", "log",   "sqrt", "tanh", "sigmoid", "relu",
                                "abs",  "sign", "erf", "floor", "ceil", "round"};
  return names[static_cast<int>(op)];
}

NDArray unary(UnaryOp op, const NDArray& a) {
  check_floating(unary_name(op), "input", a);
  NDArray out = NDArray::empty(a.shape, a.dtype, a.device());
  if (out.size() > 0) backend(a.device()).unary(op, a, out);
  return out;
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
  const char* name = op == ReduceOp::sum ? "sum" : "max";
  check_floating(name, "input", a);
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
  if (op == ReduceOp::max && n == 0)
    value_error("max: cannot reduce over a zero-size axis (shape ", shape_str(a.shape), ")");
  order.insert(order.end(), red.begin(), red.end());
  int64_t rows = shape_size(kept_shape);
  NDArray rows_view = a.permute(order).reshape({rows, n}).compact();  // reshape may keep a strided view
  NDArray out = NDArray::empty({rows}, a.dtype, a.device());
  if (rows > 0) backend(a.device()).reduce_rows(op, rows_view, out);
  return out.view(out_shape);
}

NDArray mean(const NDArray& a, const std::vector<int64_t>& axes, bool keepdims) {
  NDArray s = reduce(ReduceOp::sum, a, axes, keepdims);
  int64_t n = s.size() == 0 ? 0 : a.size() / s.size();
  return binary_scalar(BinaryOp::div, s, static_cast<double>(n), false);
}

NDArray argmax(const NDArray& a, std::optional<int64_t> axis, bool keepdims) {
  check_floating("argmax", "input", a);
  if (a.size() == 0) value_error("argmax: attempt to get argmax of an empty array (shape ", shape_str(a.shape), ")");
  if (!axis) {
    NDArray out = NDArray::empty({1}, a.dtype, a.device());
    backend(a.device()).argmax_rows(a.reshape({1, a.size()}).compact(), out);
    return out.view(keepdims ? Shape(a.ndim(), 1) : Shape{});
  }
  int ax = normalize_axis(*axis, a.ndim(), "argmax");
  std::vector<int> order;
  Shape out_shape;
  for (int i = 0; i < a.ndim(); ++i) {
    if (i != ax) order.push_back(i), out_shape.push_back(a.shape[i]);
    else if (keepdims) out_shape.push_back(1);
  }
  order.push_back(ax);
  int64_t rows = a.size() / a.shape[ax];
  NDArray out = NDArray::empty({rows}, a.dtype, a.device());
  backend(a.device()).argmax_rows(a.permute(order).reshape({rows, a.shape[ax]}).compact(), out);
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

namespace {
// The view of `a` that keeps every factor-th element along `axes`: undilate's result, dilate's target.
NDArray every_nth(const NDArray& a, const std::vector<int64_t>& axes, int64_t factor, const char* op) {
  if (factor < 1) value_error(op, ": factor must be >= 1, got ", factor);
  std::vector<AxisIndex> idx(a.ndim());
  for (int d = 0; d < a.ndim(); ++d) idx[d] = {false, 0, a.shape[d], 1};
  for (int d : resolve_axes(op, axes, a.ndim())) idx[d].step = factor;
  return a.index(idx);
}
}  // namespace

NDArray dilate(const NDArray& a, const std::vector<int64_t>& axes, int64_t factor) {
  if (factor < 1) value_error("dilate: factor must be >= 1, got ", factor);
  Shape out_shape = a.shape;
  std::vector<int> ax = resolve_axes("dilate", axes, a.ndim());
  for (int d : ax) out_shape[d] = a.shape[d] == 0 ? 0 : (a.shape[d] - 1) * factor + 1;
  NDArray out = NDArray::empty(out_shape, a.dtype, a.device());
  fill(out, 0.0);
  assign(every_nth(out, axes, factor, "dilate"), a);
  return out;
}

NDArray undilate(const NDArray& a, const std::vector<int64_t>& axes, int64_t factor) {
  return every_nth(a, axes, factor, "undilate").copy();
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
  backend(x.device()).conv_forward(as_2d(x), as_2d(w), bias ? &b : nullptr, p, y4);
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
  backend(gy.device()).conv_backward_input(as_2d(gy), as_2d(w), p, gx4);
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
  else backend(x.device()).conv_backward_weight(as_2d(x), as_2d(gy), p, gw4);
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
  backend(x.device()).conv_backward_input(as_2d(x), as_2d(w), p, y4);
  return bias ? add_channel_bias(y, *bias) : y;
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

NDArray as_4d(const NDArray& a, const PoolParams& p, bool output) {
  return a.view({p.n, p.c, output ? p.oh : p.h, output ? p.ow : p.w});
}
}  // namespace

NDArray max_pool_forward(const NDArray& x, const PoolArgs& args) {
  check_floating(pool_name(x, "max"), "input", x);
  PoolParams p = make_pool_params(pool_name(x, "max"), x.shape, args);
  NDArray y = pooled(x, p);
  if (y.size() > 0) {
    NDArray y4 = as_4d(y, p, true);
    backend(x.device()).max_pool_forward(as_2d(x), p, y4);
  }
  return y;
}

NDArray max_pool_backward(const NDArray& x, const NDArray& gy, const PoolArgs& args) {
  const char* op = pool_name(x, "max");
  check_pair(op, "input", x, "grad_output", gy);
  check_floating(op, "input", x);
  PoolParams p = make_pool_params(op, x.shape, args);
  check_shape(op, "grad_output", gy.shape, pooled(x, p).shape);
  NDArray gx = NDArray::empty(x.shape, x.dtype, x.device());
  if (gx.size() > 0) {
    NDArray gx4 = as_4d(gx, p, false);
    backend(x.device()).max_pool_backward(as_2d(x), as_2d(gy), p, gx4);
  }
  return gx;
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
  if (gy.ndim() != 3 && gy.ndim() != 4)
    value_error(op, ": grad_output must have rank 3 or 4, got shape ", shape_str(gy.shape));
  Shape xs = {gy.shape[0], gy.shape[1]};
  xs.insert(xs.end(), input_size.begin(), input_size.end());
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
  if (gy.ndim() != 3 && gy.ndim() != 4)
    value_error(op, ": grad_output must have rank 3 or 4, got shape ", shape_str(gy.shape));
  Shape xs = {gy.shape[0], gy.shape[1]};
  xs.insert(xs.end(), input_size.begin(), input_size.end());
  PoolParams p = make_adaptive_pool_params(op, xs, spatial_of(gy.shape));
  NDArray gx = NDArray::empty(xs, gy.dtype, gy.device());
  if (gx.size() > 0) {
    NDArray gx4 = as_4d(gx, p, false);
    backend(gy.device()).adaptive_avg_pool_backward(as_2d(gy), p, gx4);
  }
  return gx;
}

}  // namespace convlab
