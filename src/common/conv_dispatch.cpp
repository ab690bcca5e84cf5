#include "conv_dispatch.h"

namespace convlab {

bool is_depthwise(const ConvParams& p) { return p.c_in_per_group() == 1 && (p.groups > 1 || p.c_out == 1); }

void run_conv_forward(const Backend& b, const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p,
                      NDArray& y) {
  (is_depthwise(p) ? b.conv_depthwise_forward : b.conv_forward)(x, w, bias, p, y);
}

void run_conv_backward_input(const Backend& b, const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx) {
  (is_depthwise(p) ? b.conv_depthwise_backward_input : b.conv_backward_input)(gy, w, p, gx);
  b.conv_redo_nan_grad_input(gy, w, p, gx);
}

void run_conv_backward_weight(const Backend& b, const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw) {
  (is_depthwise(p) ? b.conv_depthwise_backward_weight : b.conv_backward_weight)(x, gy, p, gw);
}

}  // namespace convlab
