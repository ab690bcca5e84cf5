// Convolution and pooling geometry, validated once here so kernels can trust it. Kernels see only 2-D
// problems: a 1-D op is the 2-D op with H = KH = OH = 1, stride/dilation 1 and no padding along H.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "ndarray.h"

namespace convlab {

// Output length of a sliding window along one axis:
//   floor((in + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1
int64_t conv_out_len(int64_t in, int64_t k, int64_t stride, int64_t pad_lo, int64_t pad_hi, int64_t dilation);
// Output length of a transposed convolution along one axis (the input length of the conv it is the adjoint of):
//   (in - 1)*stride - pad_lo - pad_hi + dilation*(k-1) + output_padding + 1
int64_t conv_transpose_out_len(int64_t in, int64_t k, int64_t stride, int64_t pad_lo, int64_t pad_hi, int64_t dilation,
                               int64_t output_padding);

struct ConvParams {
  int64_t n = 0, c_in = 0, c_out = 0, groups = 1;
  int64_t h = 0, w = 0;    // input spatial size
  int64_t kh = 0, kw = 0;  // kernel
  int64_t oh = 0, ow = 0;  // output spatial size
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0;  // only the leading pads matter to a kernel: the trailing ones set oh/ow
  int64_t dil_h = 1, dil_w = 1;

  int64_t c_in_per_group() const { return c_in / groups; }
  int64_t c_out_per_group() const { return c_out / groups; }
};

// The user-facing arguments of a conv / conv_transpose call, one entry per spatial dim (1 or 2 of them).
struct ConvArgs {
  std::vector<int64_t> stride, dilation, output_padding;
  std::vector<std::pair<int64_t, int64_t>> padding;  // (lo, hi) per spatial dim
  int64_t groups = 1;
};

// Validates x (N, C_in, *spatial) against w (C_out, C_in/groups, *k) and builds the 2-D params.
// `op` names the calling op in error messages.
ConvParams make_conv_params(const char* op, const Shape& x, const Shape& w, const ConvArgs& args);

// The checks of make_conv_params / make_conv_transpose_params that need no input: what an nn.Conv / ConvTranspose
// module validates when it is built, as PyTorch's constructors do.
void check_conv_layer(const char* op, int64_t in_channels, int64_t out_channels, const std::vector<int64_t>& kernel,
                      const ConvArgs& args, bool transposed);

// For conv_transpose: x (N, C_in, *spatial) with w (C_in, C_out/groups, *k). Returns the params of the
// *forward* conv whose backward-input is this transposed conv (so its "input" is the transposed output).
ConvParams make_conv_transpose_params(const char* op, const Shape& x, const Shape& w, const ConvArgs& args);

// Tiled convolution: a tile_h x tile_w grid of weight sets cycles over the output, position (oh, ow) using
// set (oh % tile_h, ow % tile_w). Tile (1, 1) is a convolution, tile (oh, ow) a locally connected layer.
struct TiledParams : ConvParams {
  int64_t tile_h = 1, tile_w = 1;
};

// x (N, C_in, *spatial) against w (*tile, C_out, C_in, *kernel), groups 1. `unshared` (a locally connected
// layer) also requires the tile to be the output size.
TiledParams make_tiled_params(const char* op, const Shape& x, const Shape& w, const ConvArgs& args, bool unshared);

struct PoolParams {
  int64_t n = 0, c = 0;
  int64_t h = 0, w = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // symmetric, as in PyTorch
  int64_t dil_h = 1, dil_w = 1;
  bool ceil_mode = false;
  bool count_include_pad = true;
};

struct PoolArgs {
  std::vector<int64_t> kernel, stride, padding, dilation;  // one entry per spatial dim
  bool ceil_mode = false;
  bool count_include_pad = true;
};

// Pooled length with PyTorch's rule: ceil_mode rounds up, but a window may not start inside the right pad.
int64_t pool_out_len(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode);

PoolParams make_pool_params(const char* op, const Shape& x, const PoolArgs& args);
// Adaptive pooling: window i along an axis covers [floor(i*in/out), ceil((i+1)*in/out)).
PoolParams make_adaptive_pool_params(const char* op, const Shape& x, const std::vector<int64_t>& output_size);

}  // namespace convlab
