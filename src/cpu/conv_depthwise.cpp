// Depthwise convolution (groups == c_in, output channel co reads input channel co / mult; the spec is
// common/reference.h's conv passes), direct kernels on the phased layout of conv_layout.h, vectorised along
// the extended output grid p (or phase position r):
//   forward         y[co][p]        = sum_t w[co][t] * xq[co/mult][tap_t + p]
//   backward-input  gxq[ci][ph][r]  = sum_{j < mult} sum_{t in phase ph} w[ci*mult+j][t] * gy[ci*mult+j][r - shift_t]
// (the gather form of the adjoint: each gx element is written once, no scatter). A step holds `block`
// vectors so that several independent FMA chains are in flight.
#include <algorithm>
#include <utility>
#include <vector>

#include "conv_layout.h"
#include "gemm.h"
#include "kernels.h"

namespace convlab::cpu {

namespace {

constexpr int block = 4;

// out[r + v*lanes] for v < block = sum over (weight, source) pairs of weight * src[r + v*lanes].
template <class T>
inline void weighted_sum_step(const T* const* src, const T* weight, int64_t terms, int64_t r, T* out) {
  constexpr int L = lanes<T>;
  Vec<T> acc[block] = {};
  for (int64_t t = 0; t < terms; t++) {
    T wt = weight[t];
    for (int v = 0; v < block; v++) acc[v] += wt * load(src[t] + r + v * L);
  }
  for (int v = 0; v < block; v++) store(out + r + v * L, acc[v]);
}

// One task per (image, input channel): its phased plane is built in the thread's buffer (L1/L2-sized),
// then each of its `mult` output channels is computed on the extended grid and compacted into y.
template <class T>
void forward_typed(const T* x, const T* w, const T* bias, const ConvParams& p, T* y) {
  const Phased q = phased(p, /*allow_identity=*/false);  // steps read past np: keep the slack
  const int64_t taps = p.kh * p.kw, mult = p.c_out / p.c_in, step = block * lanes<T>;
  const int64_t np_round = (q.np + step - 1) / step * step;  // <= np + 63: inside the plane's slack
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t ic = 0; ic < p.n * p.c_in; ic++) {
    T* xc = scratch<T>(slot_thread, q.chan + np_round);
    T* buf = xc + q.chan;
    build_phased_channel(x + ic * p.h * p.w, xc, p, q);
    std::vector<const T*> src(taps);
    for (int64_t t = 0; t < taps; t++) src[t] = xc + q.tap[t];
    for (int64_t co = ic * mult; co < (ic + 1) * mult; co++) {
      const int64_t c = co % p.c_out;
      for (int64_t r = 0; r < np_round; r += step) weighted_sum_step(src.data(), w + c * taps, taps, r, buf);
      finish_output<T>(buf, y + co * p.oh * p.ow, bias ? bias + c : nullptr, 1, 1, p.oh, p.ow, q.wq);
    }
  }
}

// One task per (image, input channel): the `mult` gy planes that read it are laid on the extended grid
// with `front` leading zeros (so r - shift never leaves the row), the phase planes are gathered, and the
// channel is un-phased into gx.
template <class T>
void backward_input_typed(const T* gy, const T* w, const ConvParams& p, T* gx) {
  const Phased q = phased(p, /*allow_identity=*/false);
  const int64_t taps = p.kh * p.kw, mult = p.c_out / p.c_in, step = block * lanes<T>;
  const int64_t phases = q.sh * q.sw, area = q.hq * q.wq, area_round = (area + step - 1) / step * step;
  int64_t front = 0;
  for (int64_t t = 0; t < taps; t++) front = std::max(front, q.tap[t] % q.plane);
  const int64_t row = (front + area_round + 15) / 16 * 16;
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t ic = 0; ic < p.n * p.c_in; ic++) {
    T* planes = scratch<T>(slot_thread, q.chan + mult * row);
    T* gyp = planes + q.chan;
    for (int64_t j = 0; j < mult; j++) {
      T* dst = gyp + j * row;
      const T* src = gy + (ic * mult + j) * p.oh * p.ow;
      std::fill(dst, dst + row, T(0));
      for (int64_t oy = 0; oy < p.oh; oy++) std::copy(src + oy * p.ow, src + (oy + 1) * p.ow, dst + front + oy * q.wq);
    }
    const int64_t ci = ic % p.c_in;
    for (int64_t ph = 0; ph < phases; ph++) {
      std::vector<const T*> src;
      std::vector<T> weight;
      for (int64_t j = 0; j < mult; j++) {
        for (int64_t t = 0; t < taps; t++) {
          if (q.tap[t] / q.plane != ph) continue;
          src.push_back(gyp + j * row + front - q.tap[t] % q.plane);
          weight.push_back(w[(ci * mult + j) * taps + t]);
        }
      }
      T* out = planes + ph * q.plane;
      if (src.empty()) std::fill(out, out + area, T(0));
      else
        for (int64_t r = 0; r < area_round; r += step) weighted_sum_step(src.data(), weight.data(), int64_t(src.size()), r, out);
    }
    unphase_channel(planes, gx + ic * p.h * p.w, p, q);
  }
}

}  // namespace

void depthwise_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    forward_typed<T>(x.data<T>(), w.data<T>(), bias ? bias->data<T>() : nullptr, p, y.data<T>());
  });
}

void depthwise_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) {
    using T = decltype(t);
    backward_input_typed<T>(gy.data<T>(), w.data<T>(), p, gx.data<T>());
  });
}

}  // namespace convlab::cpu
