// Convolution grad-input element by element, straight from the definition: the slow exact path both
// backends use where their fast kernels cannot be trusted (weights holding inf/NaN). Plain C++ that nvcc
// also compiles for the device, so the CPU loop and the CUDA kernel share one formula.
#pragma once
#include <cstdint>

#include "params.h"

#ifdef __CUDACC__
#define CONVLAB_HOST_DEVICE __host__ __device__
#else
#define CONVLAB_HOST_DEVICE
#endif

namespace convlab {

// gx[n, c, ih, iw] of group g = c / cig: the sum over (co, kh, kw) whose output position
// oh*sh = ih+pt-kh*dh, ow*sw = iw+pl-kw*dw lies in gy, with no stand-in zeros for the others.
template <class T>
CONVLAB_HOST_DEVICE T grad_input_by_definition(const T* gy, const T* w, const ConvParams& p, int64_t n,
                                               int64_t c, int64_t ih, int64_t iw) {
  const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups, g = c / cig, ci = c % cig;
  T sum = T(0);
  for (int64_t co = g * cog; co < (g + 1) * cog; ++co)
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      int64_t th = ih + p.pad_top - kh * p.dil_h;
      if (th < 0 || th % p.stride_h || th / p.stride_h >= p.oh) continue;
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        int64_t tw = iw + p.pad_left - kw * p.dil_w;
        if (tw < 0 || tw % p.stride_w || tw / p.stride_w >= p.ow) continue;
        sum += w[((co * cig + ci) * p.kh + kh) * p.kw + kw] *
               gy[((n * p.c_out + co) * p.oh + th / p.stride_h) * p.ow + tw / p.stride_w];
      }
    }
  return sum;
}

}  // namespace convlab
