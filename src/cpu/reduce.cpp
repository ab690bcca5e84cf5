// PLACEHOLDER: replaced by the real kernels of this family.
#include "kernels.h"

namespace convlab::cpu {
void reduce_rows(ReduceOp op, const NDArray& a, NDArray& out) { runtime_error("cpu reduce_rows: not implemented yet"); }
void argmax_rows(const NDArray& a, NDArray& out) { runtime_error("cpu argmax_rows: not implemented yet"); }
}  // namespace convlab::cpu
