// One element of an optimizer step, written once for the CPU and CUDA kernels (Backend::sgd_step,
// adam_step): PyTorch's update rules (torch.optim, single-tensor form) with the same operations in the same
// order and roundings, every option converted to the parameter's dtype as the tensor arithmetic converts it.
#pragma once
#include <cmath>

#include "backend.h"
#include "scalar_math.h"  // CONVLAB_HOST_DEVICE

namespace convlab {

// x * y rounded on its own, never fused with the add that takes it into an FMA: a step then rounds as
// PyTorch's sequence of tensor ops does. nvcc fuses unless told (its _rn intrinsics); the CPU kernels'
// file is compiled with -ffp-contract=off (cpu/optim_step.cpp).
template <class T>
CONVLAB_HOST_DEVICE T mul_rounded(T x, T y) {
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(T) == sizeof(float)) return __fmul_rn(x, y);
  else return __dmul_rn(x, y);
#else
  return x * y;
#endif
}

// d = (maximize ? -g : g) + wd*p; with momentum: buf = d on the first step, else momentum*buf +
// (1-dampening)*d; d = d + momentum*buf (nesterov) or buf. Then p = p - lr*d.
template <class T>
struct SgdUpdate {
  T lr, weight_decay, momentum, damping;
  bool decay, damped, nesterov, maximize, first_step;

  explicit SgdUpdate(const SgdOptions& o)
      : lr(T(o.lr)), weight_decay(T(o.weight_decay)), momentum(T(o.momentum)), damping(T(1.0 - o.dampening)),
        decay(o.weight_decay != 0), damped(o.dampening != 0), nesterov(o.nesterov), maximize(o.maximize),
        first_step(o.first_step) {}

  CONVLAB_HOST_DEVICE T direction(T p, T g) const {
    const T d = maximize ? -g : g;
    return decay ? d + mul_rounded(p, weight_decay) : d;
  }
  CONVLAB_HOST_DEVICE void operator()(T& p, T g) const { p = p - mul_rounded(direction(p, g), lr); }
  CONVLAB_HOST_DEVICE void operator()(T& p, T g, T& buf) const {
    const T d = direction(p, g);
    buf = first_step ? d : mul_rounded(buf, momentum) + (damped ? mul_rounded(d, damping) : d);
    p = p - mul_rounded(nesterov ? d + mul_rounded(buf, momentum) : buf, lr);
  }
};

// d = (maximize ? -g : g), plus wd*p unless the decay is decoupled (AdamW: p = p*(1 - lr*wd) first);
// m = m + (d - m)*(1-beta1) (a lerp, as PyTorch's); v = v*beta2 + d*d*(1-beta2); amsgrad: v_max =
// max(v_max, v) (NaN wins) stands for v below; p = p - m / (sqrt(v) / sqrt(1-beta2^t) + eps) * lr/(1-beta1^t).
template <class T>
struct AdamUpdate {
  T weight_decay, shrink, one_minus_beta1, beta2, one_minus_beta2, bias2_sqrt, eps, step_size;
  bool decay, decoupled, maximize;

  explicit AdamUpdate(const AdamOptions& o)
      : weight_decay(T(o.weight_decay)), shrink(T(1.0 - o.lr * o.weight_decay)), one_minus_beta1(T(1.0 - o.beta1)),
        beta2(T(o.beta2)), one_minus_beta2(T(1.0 - o.beta2)),
        bias2_sqrt(T(std::sqrt(1.0 - std::pow(o.beta2, double(o.step))))), eps(T(o.eps)),
        step_size(T(o.lr / (1.0 - std::pow(o.beta1, double(o.step))))), decay(o.weight_decay != 0),
        decoupled(o.decoupled_weight_decay), maximize(o.maximize) {}

  // The decay, m and v; then move() takes the step.
  CONVLAB_HOST_DEVICE void moments(T& p, T g, T& m, T& v) const {
    T d = maximize ? -g : g;
    if (decay && decoupled) p = mul_rounded(p, shrink);
    else if (decay) d = d + mul_rounded(p, weight_decay);
    m = m + mul_rounded(d - m, one_minus_beta1);
    v = mul_rounded(v, beta2) + mul_rounded(mul_rounded(d, d), one_minus_beta2);
  }
  CONVLAB_HOST_DEVICE void move(T& p, T m, T v) const {
    using std::sqrt;  // unqualified below: nvcc's device overloads are found too
    p = p - mul_rounded(m / (sqrt(v) / bias2_sqrt + eps), step_size);
  }
  CONVLAB_HOST_DEVICE void operator()(T& p, T g, T& m, T& v) const {
    moments(p, g, m, v);
    move(p, m, v);
  }
  CONVLAB_HOST_DEVICE void operator()(T& p, T g, T& m, T& v, T& v_max) const {
    moments(p, g, m, v);
    v_max = (v_max > v || v_max != v_max) ? v_max : v;
    move(p, m, v_max);
  }
};

}  // namespace convlab
