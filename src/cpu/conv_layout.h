// The stride-phased, zero-padded input layout the convolution kernels share (see conv.cpp for the math):
//   xq[c][a][b][u][i*wq + v] = x[i][c][u*sh + a - pt][v*sw + b - pl],  channel stride chan = sh*sw*plane,
// with `images` images side by side in each phase row (row = images*wq), and the extended output grid
// p = oy*row + i*wq + ox (np = oh*row columns, ox >= ow garbage) it is read on.
#pragma once
#include <cstdint>
#include <vector>

#include "../common/ndarray.h"
#include "../common/params.h"

namespace convlab::cpu {

struct Phased {
  int64_t sh = 1, sw = 1, hq = 0, wq = 0;
  int64_t images = 1, row = 0;  // images side by side in one phase row of length row = images*wq
  int64_t plane = 0;  // one phase: hq*row plus slack, so a run may overhang its end by row + 64 elements
  int64_t chan = 0;   // one channel: sh*sw planes
  int64_t np = 0;     // extended outputs per channel, oh*row
  std::vector<int64_t> tap;    // tap kh_i*kw + kw_i starts at this offset inside a channel
  std::vector<char> used;      // phase a*sw + b is read by some tap
  bool identity = false;       // 1x1, stride 1, no padding: x itself is the layout (no slack)
};

// images > 1 puts that many images side by side (never the identity layout): a small image alone would
// leave most of each GEMM tile's width as padding.
Phased phased(const ConvParams& p, bool allow_identity = true, int64_t images = 1);

// Images per chunk so that one chunk's phased input holds at most 2^23 elements (32 MiB of fp32): every
// workspace of a convolution call is bounded by a small multiple of that.
int64_t images_per_chunk(const ConvParams& p, const Phased& q);

// The layout of images [0, nn) of x (nn*c_in*h*w elements, nn a multiple of q.images; layout unit
// i / q.images at i / q.images * c_in*chan): x itself when q.identity, else a scratch buffer (slot_input)
// with unused phases left unwritten.
template <class T>
const T* build_phased(const T* x, int64_t nn, const ConvParams& p, const Phased& q);
// One channel of q.images images, image i's (h, w) plane at src + i*src_step -> out (chan elements).
template <class T>
void build_phased_channel(const T* src, T* out, const ConvParams& p, const Phased& q, int64_t src_step = 0);

// The functions below take a layout of one image per row (q.images == 1).
// gy (nn, c_out, oh, ow) on the extended grid with row length ld >= np: zeros in garbage columns and in the
// tail. gy itself when that is already its layout, else a scratch buffer (slot_output).
template <class T>
const T* extend_grad_output(const T* gy, int64_t nn, const ConvParams& p, const Phased& q, int64_t ld);

// gx (nn, c_in, h, w) from the phased layout; positions no phase row covers get 0. unphase_channel does
// one (h, w) plane from one channel of the layout.
template <class T>
void unphase(const T* gxq, T* gx, int64_t nn, const ConvParams& p, const Phased& q);
template <class T>
void unphase_channel(const T* gxq, T* gx, const ConvParams& p, const Phased& q);

// y (nn, c_out, oh, ow) = yq on the extended grid (row length wq) without garbage columns, plus bias.
// yq may be y itself (wq == ow): then only the bias is added.
template <class T>
void finish_output(const T* yq, T* y, const T* bias, int64_t nn, int64_t c_out, int64_t oh, int64_t ow, int64_t wq);

// Depthwise convolutions (one input channel per group: groups == c_in, c_out = multiplier * c_in), direct
// kernels in conv_depthwise.cpp; backward-weight stays with the general dot-product kernel.
bool is_depthwise(const ConvParams& p);
void depthwise_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y);
void depthwise_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx);

}  // namespace convlab::cpu
