// The forward pass for few output channels per group (conv_forward_channels.cpp): output channels in vector
// lanes, pixels as the register tile's rows, the input broadcast in place. forward_gemm takes it when
// few_out_channels(p).
#pragma once
#include "../common/params.h"
#include "simd.h"

namespace convlab::cpu {

template <class T>
bool few_out_channels(const ConvParams& p);

template <class T>
void forward_channels(const T* x, const T* w, const T* bias, const ConvParams& p, T* y);

}  // namespace convlab::cpu
