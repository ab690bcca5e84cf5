// PLACEHOLDER: replaced by the real kernels of this family.
#include "kernels.h"

namespace convlab::cpu {
void binary(BinaryOp op, const NDArray& a, const NDArray& b, NDArray& out) { runtime_error("cpu binary: not implemented yet"); }
void binary_scalar(BinaryOp op, const NDArray& a, double s, bool scalar_first, NDArray& out) { runtime_error("cpu binary_scalar: not implemented yet"); }
void unary(UnaryOp op, const NDArray& a, NDArray& out) { runtime_error("cpu unary: not implemented yet"); }
void copy(const NDArray& src, const NDArray& dst) { runtime_error("cpu copy: not implemented yet"); }
void fill(const NDArray& dst, double value) { runtime_error("cpu fill: not implemented yet"); }
}  // namespace convlab::cpu
