// Validation and output-shape math for convolution and pooling: the one place where arguments are checked.
#include "params.h"

namespace convlab {
namespace {

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Rank 3 -> 1 spatial dim, rank 4 -> 2; anything else is an error naming the argument.
int spatial_dims(const char* op, const char* arg, const Shape& s) {
  if (s.size() != 3 && s.size() != 4)
    value_error(op, ": ", arg, " must have rank 3 (N, C, L) or 4 (N, C, H, W), got shape ", shape_str(s));
  return static_cast<int>(s.size()) - 2;
}

void check_len(const char* op, const char* arg, size_t got, int dims) {
  if (static_cast<int>(got) != dims)
    value_error(op, ": ", arg, " needs ", dims, " value(s), one per spatial dim, got ", got);
}

// Every size and window argument lies in [lo, 2^31): the bound keeps the output-size formulas below
// (products like dilation * (kernel - 1) or (in - 1) * stride) far from int64 overflow, which would
// otherwise wrap to a plausible-looking size.
void check_range(const char* op, const char* arg, int64_t v, int64_t lo) {
  if (v < lo) value_error(op, ": ", arg, " must be >= ", lo, ", got ", v);
  if (v >= (int64_t{1} << 31)) value_error(op, ": ", arg, " must be < 2^31, got ", v);
}

// Checks the per-spatial-dim argument lists and the groups count shared by conv and conv_transpose.
void check_conv_args(const char* op, const ConvArgs& a, int dims, bool transposed) {
  check_len(op, "stride", a.stride.size(), dims);
  check_len(op, "dilation", a.dilation.size(), dims);
  check_len(op, "padding", a.padding.size(), dims);
  for (int d = 0; d < dims; ++d) {
    check_range(op, "stride", a.stride[d], 1);
    check_range(op, "dilation", a.dilation[d], 1);
    check_range(op, "padding", a.padding[d].first, 0);
    check_range(op, "padding", a.padding[d].second, 0);
  }
  check_range(op, "groups", a.groups, 1);
  if (transposed) {
    check_len(op, "output_padding", a.output_padding.size(), dims);
    for (int d = 0; d < dims; ++d) {
      check_range(op, "output_padding", a.output_padding[d], 0);
      if (a.output_padding[d] >= std::max(a.stride[d], a.dilation[d]))
        value_error(op, ": output_padding must be smaller than stride or dilation, got output_padding=",
                    a.output_padding[d], " with stride=", a.stride[d], " and dilation=", a.dilation[d]);
    }
  }
}

void check_groups(const char* op, const char* what, int64_t channels, int64_t groups) {
  if (channels % groups != 0)
    value_error(op, ": ", what, " (", channels, ") must be divisible by groups (", groups, ")");
}

// Fills the geometry of one spatial dim d (0 or 1 of the kernel's 2-D view) from the user's arguments.
void set_dim(ConvParams& p, int d, int64_t in, int64_t k, int64_t out, const ConvArgs& a, int ad) {
  if (d == 0) {
    p.h = in, p.kh = k, p.oh = out, p.stride_h = a.stride[ad], p.pad_top = a.padding[ad].first;
    p.dil_h = a.dilation[ad];
  } else {
    p.w = in, p.kw = k, p.ow = out, p.stride_w = a.stride[ad], p.pad_left = a.padding[ad].first;
    p.dil_w = a.dilation[ad];
  }
}

}  // namespace

int64_t conv_out_len(int64_t in, int64_t k, int64_t stride, int64_t pad_lo, int64_t pad_hi, int64_t dilation) {
  return floor_div(in + pad_lo + pad_hi - dilation * (k - 1) - 1, stride) + 1;
}

void check_conv_layer(const char* op, int64_t in_channels, int64_t out_channels, const std::vector<int64_t>& kernel,
                      const ConvArgs& a, bool transposed) {
  int dims = static_cast<int>(kernel.size());
  if (dims != 1 && dims != 2) value_error(op, ": kernel_size needs 1 or 2 values, got ", dims);
  for (int64_t k : kernel) check_range(op, "kernel_size", k, 1);
  check_conv_args(op, a, dims, transposed);
  check_range(op, "in_channels", in_channels, 0);  // 0: a lazy module's, until its first input
  check_range(op, "out_channels", out_channels, 1);
  check_groups(op, "in_channels", in_channels, a.groups);
  check_groups(op, "out_channels", out_channels, a.groups);
}

int64_t conv_transpose_out_len(int64_t in, int64_t k, int64_t stride, int64_t pad_lo, int64_t pad_hi, int64_t dilation,
                               int64_t output_padding) {
  return (in - 1) * stride - pad_lo - pad_hi + dilation * (k - 1) + output_padding + 1;
}

ConvParams make_conv_params(const char* op, const Shape& x, const Shape& w, const ConvArgs& a) {
  int dims = spatial_dims(op, "input", x);
  if (w.size() != x.size())
    value_error(op, ": weight must have rank ", x.size(), " (C_out, C_in/groups, *kernel), got shape ",
                shape_str(w));
  check_conv_args(op, a, dims, false);
  ConvParams p;
  p.n = x[0], p.c_in = x[1], p.c_out = w[0], p.groups = a.groups;
  check_range(op, "input channels", p.c_in, 1);
  check_range(op, "weight out_channels", p.c_out, 1);
  check_groups(op, "input channels", p.c_in, p.groups);
  check_groups(op, "weight out_channels", p.c_out, p.groups);
  if (w[1] * p.groups != p.c_in)
    value_error(op, ": input has ", p.c_in, " channels but weight expects ", w[1] * p.groups, " (groups=",
                p.groups, "); weight shape ", shape_str(w));
  p.h = p.kh = p.oh = p.w = p.kw = p.ow = 1;
  for (int d = 0; d < dims; ++d) {
    int64_t in = x[2 + d], k = w[2 + d];
    check_range(op, "kernel size", k, 1);
    check_range(op, "input size", in, 0);
    int64_t padded = in + a.padding[d].first + a.padding[d].second;
    int64_t span = a.dilation[d] * (k - 1) + 1;
    if (span > padded)
      value_error(op, ": kernel size ", k, " (dilation ", a.dilation[d], ", span ", span,
                  ") is larger than the padded input size ", padded, " along spatial dim ", d);
    set_dim(p, dims == 1 ? 1 : d, in, k, conv_out_len(in, k, a.stride[d], a.padding[d].first,
                                                       a.padding[d].second, a.dilation[d]), a, d);
  }
  return p;
}

ConvParams make_conv_transpose_params(const char* op, const Shape& x, const Shape& w, const ConvArgs& a) {
  int dims = spatial_dims(op, "input", x);
  if (w.size() != x.size())
    value_error(op, ": weight must have rank ", x.size(), " (C_in, C_out/groups, *kernel), got shape ",
                shape_str(w));
  check_conv_args(op, a, dims, true);
  ConvParams p;
  p.n = x[0], p.groups = a.groups;
  p.c_out = x[1];  // the forward conv's output is this op's input
  check_range(op, "input channels", x[1], 1);
  check_range(op, "weight out_channels/groups", w[1], 1);
  check_groups(op, "input channels", x[1], p.groups);
  if (w[0] != x[1])
    value_error(op, ": input has ", x[1], " channels but weight expects ", w[0], " (weight shape ",
                shape_str(w), ")");
  p.c_in = w[1] * p.groups;
  p.h = p.kh = p.oh = p.w = p.kw = p.ow = 1;
  for (int d = 0; d < dims; ++d) {
    int64_t in = x[2 + d], k = w[2 + d];
    check_range(op, "kernel size", k, 1);
    check_range(op, "input size", in, 1);
    int64_t out = conv_transpose_out_len(in, k, a.stride[d], a.padding[d].first, a.padding[d].second, a.dilation[d],
                                         a.output_padding[d]);
    if (out < 1)
      value_error(op, ": output size along spatial dim ", d, " would be ", out,
                  " (input ", in, ", kernel ", k, ", stride ", a.stride[d], ", padding ", a.padding[d].first,
                  "+", a.padding[d].second, "); it must be >= 1");
    // oh/ow are this op's input size, which may be smaller than the forward conv would produce from
    // `out` when output_padding >= stride; kernels only ever visit output positions below oh/ow.
    set_dim(p, dims == 1 ? 1 : d, out, k, in, a, d);
  }
  return p;
}

TiledParams make_tiled_params(const char* op, const Shape& x, const Shape& w, const ConvArgs& a, bool unshared) {
  int dims = spatial_dims(op, "input", x);
  const char* layout = dims == 1 ? (unshared ? "(out_l, C_out, C_in, k)" : "(tile_l, C_out, C_in, k)")
                                 : (unshared ? "(out_h, out_w, C_out, C_in, k_h, k_w)"
                                             : "(tile_h, tile_w, C_out, C_in, k_h, k_w)");
  if (static_cast<int>(w.size()) != 2 * dims + 2)
    value_error(op, ": weight must have rank ", 2 * dims + 2, " ", layout, ", got shape ", shape_str(w));
  if (a.groups != 1) value_error(op, ": groups must be 1, got ", a.groups);
  for (int d = 0; d < dims; ++d) check_range(op, "weight tile size", w[d], 1);
  if (w[dims + 1] != x[1])
    value_error(op, ": input has ", x[1], " channels but weight expects ", w[dims + 1], "; weight shape ",
                shape_str(w), " is ", layout);
  Shape conv_w(w.begin() + dims, w.end());  // (C_out, C_in, *kernel): the geometry of one weight set
  TiledParams p;
  static_cast<ConvParams&>(p) = make_conv_params(op, x, conv_w, a);
  p.tile_h = dims == 1 ? 1 : w[0];
  p.tile_w = w[dims - 1];
  if (unshared && (p.tile_h != (dims == 1 ? 1 : p.oh) || p.tile_w != p.ow)) {
    Shape want = dims == 1 ? Shape{p.ow} : Shape{p.oh, p.ow};
    want.insert(want.end(), conv_w.begin(), conv_w.end());
    value_error(op, ": weight must have shape ", layout, " = ", shape_str(want), " for input shape ",
                shape_str(x), ", got ", shape_str(w));
  }
  return p;
}

int64_t pool_out_len(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode) {
  int64_t out = floor_div(in + 2 * pad - dilation * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0), stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

PoolParams make_pool_params(const char* op, const Shape& x, const PoolArgs& a) {
  int dims = spatial_dims(op, "input", x);
  check_len(op, "kernel_size", a.kernel.size(), dims);
  check_len(op, "stride", a.stride.size(), dims);
  check_len(op, "padding", a.padding.size(), dims);
  check_len(op, "dilation", a.dilation.size(), dims);
  PoolParams p;
  p.n = x[0], p.c = x[1];
  p.h = p.oh = 1;  // 1-D pools along W only
  p.ceil_mode = a.ceil_mode, p.count_include_pad = a.count_include_pad;
  for (int d = 0; d < dims; ++d) {
    int64_t in = x[2 + d], k = a.kernel[d], s = a.stride[d], pad = a.padding[d], dil = a.dilation[d];
    check_range(op, "kernel_size", k, 1);
    check_range(op, "stride", s, 1);
    check_range(op, "padding", pad, 0);
    check_range(op, "dilation", dil, 1);
    check_range(op, "input size", in, 0);
    if (2 * pad > k)
      value_error(op, ": padding should be at most half of kernel_size, got padding=", pad,
                  " with kernel_size=", k);
    int64_t out = pool_out_len(in, k, s, pad, dil, a.ceil_mode);
    if (out < 1)
      value_error(op, ": output size along spatial dim ", d, " would be ", out, " (input size ", in,
                  ", kernel_size ", k, ", dilation ", dil, ", padding ", pad, "); the input is too small");
    bool last = dims == 1 || d == 1;
    (last ? p.w : p.h) = in, (last ? p.ow : p.oh) = out, (last ? p.kw : p.kh) = k;
    (last ? p.stride_w : p.stride_h) = s, (last ? p.pad_w : p.pad_h) = pad, (last ? p.dil_w : p.dil_h) = dil;
  }
  return p;
}

PoolParams make_adaptive_pool_params(const char* op, const Shape& x, const std::vector<int64_t>& output_size) {
  int dims = spatial_dims(op, "input", x);
  check_len(op, "output_size", output_size.size(), dims);
  PoolParams p;
  p.n = x[0], p.c = x[1];
  p.h = p.oh = 1;  // 1-D pools along W only
  for (int d = 0; d < dims; ++d) {
    check_range(op, "output_size", output_size[d], 1);
    check_range(op, "input size", x[2 + d], 1);
    bool last = dims == 1 || d == 1;
    (last ? p.w : p.h) = x[2 + d], (last ? p.ow : p.oh) = output_size[d];
  }
  return p;
}

}  // namespace convlab
