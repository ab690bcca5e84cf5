// The stride-phased, zero-padded input layout the convolution kernels share (see conv.cpp for the math):
//   xq[c][a][b][u][v] = x[c][u*sh + a - pt][v*sw + b - pl],  channel stride chan = sh*sw*plane,
// and the extended output grid p = oy*wq + ox (np = oh*wq columns, ox >= ow garbage) it is read on.
#pragma once
#include <cstdint>
#include <vector>

#include "../common/ndarray.h"
#include "../common/params.h"

namespace convlab::cpu {

struct Phased {
  int64_t sh = 1, sw = 1, hq = 0, wq = 0;
  int64_t plane = 0;  // one phase: hq*wq plus slack, so a run may overhang its end by wq + 64 elements
  int64_t chan = 0;   // one channel: sh*sw planes
  int64_t np = 0;     // extended outputs per channel, oh*wq
  std::vector<int64_t> tap;    // tap kh_i*kw + kw_i starts at this offset inside a channel
  std::vector<char> used;      // phase a*sw + b is read by some tap
  bool identity = false;       // 1x1, stride 1, no padding: x itself is the layout (no slack)
};

Phased phased(const ConvParams& p, bool allow_identity = true);

// Images per chunk so that one chunk's phased input holds at most 2^23 elements (32 MiB of fp32): every
// workspace of a convolution call is bounded by a small multiple of that.
int64_t images_per_chunk(const ConvParams& p, const Phased& q);

// The layout of images [0, nn) of x (nn*c_in*h*w elements): x itself when q.identity, else a scratch
// buffer (slot_input) with unused phases left unwritten.
template <class T>
const T* build_phased(const T* x, int64_t nn, const ConvParams& p, const Phased& q);
// One channel: src (h, w) -> out (chan elements).
template <class T>
void build_phased_channel(const T* src, T* out, const ConvParams& p, const Phased& q);

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
