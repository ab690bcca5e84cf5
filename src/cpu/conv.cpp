// PLACEHOLDER: replaced by the real kernels of this family.
#include "kernels.h"

namespace convlab::cpu {
void conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) { runtime_error("cpu conv_forward: not implemented yet"); }
void conv_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) { runtime_error("cpu conv_backward_input: not implemented yet"); }
void conv_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) { runtime_error("cpu conv_backward_weight: not implemented yet"); }
}  // namespace convlab::cpu
