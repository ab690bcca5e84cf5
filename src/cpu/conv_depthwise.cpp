// Depthwise convolution (groups == c_in, output channel co reads input channel co / mult), direct kernels on
// the phased layout of conv_layout.h, vectorised along the extended output grid p (or phase position r):
//   forward         y[co][p]        = sum_t w[co][t] * xq[co/mult][tap_t + p]
//   backward-input  gxq[ci][ph][r]  = sum_{j < mult} sum_{t in phase ph} w[ci*mult+j][t] * gy[ci*mult+j][r - shift_t]
// (the gather form of the adjoint: each gx element is written once, no scatter). One task per (image,
// channel); a step holds `block` vectors so that many independent FMA chains are in flight.
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

template <class T>
void forward_typed(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  const Phased q = phased(p, /*allow_identity=*/false);  // steps read past np: keep the slack
  const int64_t taps = p.kh * p.kw, mult = p.c_out / p.c_in, step = block * lanes<T>;
  const int64_t np_round = (q.np + step - 1) / step * step;  // <= np + 63: inside the plane's slack
  const int64_t chunk = images_per_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    const T* xq = build_phased<T>(x.data<T>() + n0 * p.c_in * p.h * p.w, nn, p, q);
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t ic = 0; ic < nn * p.c_out; ic++) {
      const int64_t i = ic / p.c_out, co = ic % p.c_out;
      T* buf = scratch<T>(slot_thread, np_round);
      const T* xc = xq + (i * p.c_in + co / mult) * q.chan;
      std::vector<const T*> src(taps);
      for (int64_t t = 0; t < taps; t++) src[t] = xc + q.tap[t];
      for (int64_t r = 0; r < np_round; r += step) weighted_sum_step(src.data(), w.data<T>() + co * taps, taps, r, buf);
      finish_output<T>(buf, y.data<T>() + ((n0 + i) * p.c_out + co) * p.oh * p.ow,
                       bias ? bias->data<T>() + co : nullptr, 1, 1, p.oh, p.ow, q.wq);
    }
  }
}

template <class T>
void backward_input_typed(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  const Phased q = phased(p, /*allow_identity=*/false);
  const int64_t taps = p.kh * p.kw, mult = p.c_out / p.c_in, step = block * lanes<T>;
  const int64_t phases = q.sh * q.sw, area = q.hq * q.wq, area_round = (area + step - 1) / step * step;
  // Tap t lands in phase tap_t / plane at shift tap_t % plane; gy rows get `front` leading zeros so that
  // r - shift never goes below the row, and enough trailing zeros for r up to area_round.
  int64_t front = 0;
  for (int64_t t = 0; t < taps; t++) front = std::max(front, q.tap[t] % q.plane);
  const int64_t row = (front + area_round + 15) / 16 * 16;
  const int64_t chunk = images_per_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    T* gyp = scratch<T>(slot_output, nn * p.c_out * row);
    const T* gy0 = gy.data<T>() + n0 * p.c_out * p.oh * p.ow;
#pragma omp parallel for schedule(static)
    for (int64_t ic = 0; ic < nn * p.c_out; ic++) {
      T* dst = gyp + ic * row;
      std::fill(dst, dst + row, T(0));
      for (int64_t oy = 0; oy < p.oh; oy++)
        std::copy(gy0 + (ic * p.oh + oy) * p.ow, gy0 + (ic * p.oh + oy + 1) * p.ow, dst + front + oy * q.wq);
    }
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t ic = 0; ic < nn * p.c_in; ic++) {
      const int64_t i = ic / p.c_in, ci = ic % p.c_in;
      T* planes = scratch<T>(slot_thread, q.chan);
      for (int64_t ph = 0; ph < phases; ph++) {
        std::vector<const T*> src;
        std::vector<T> weight;
        for (int64_t j = 0; j < mult; j++) {
          const int64_t co = ci * mult + j;
          for (int64_t t = 0; t < taps; t++) {
            if (q.tap[t] / q.plane != ph) continue;
            src.push_back(gyp + (i * p.c_out + co) * row + front - q.tap[t] % q.plane);
            weight.push_back(w.data<T>()[co * taps + t]);
          }
        }
        T* out = planes + ph * q.plane;
        if (src.empty()) std::fill(out, out + area, T(0));
        else
          for (int64_t r = 0; r < area_round; r += step)
            weighted_sum_step(src.data(), weight.data(), int64_t(src.size()), r, out);
      }
      unphase_channel(planes, gx.data<T>() + ((n0 + i) * p.c_in + ci) * p.h * p.w, p, q);
    }
  }
}

}  // namespace

bool is_depthwise(const ConvParams& p) { return p.groups > 1 && p.groups == p.c_in; }

void depthwise_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  if (x.dtype == DType::f32) forward_typed<float>(x, w, bias, p, y);
  else forward_typed<double>(x, w, bias, p, y);
}

void depthwise_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  if (gy.dtype == DType::f32) backward_input_typed<float>(gy, w, p, gx);
  else backward_input_typed<double>(gy, w, p, gx);
}

}  // namespace convlab::cpu
