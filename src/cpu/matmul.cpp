// PLACEHOLDER: replaced by the real kernels of this family.
#include "kernels.h"

namespace convlab::cpu {
void matmul(const NDArray& a, const NDArray& b, NDArray& out) { runtime_error("cpu matmul: not implemented yet"); }
}  // namespace convlab::cpu
