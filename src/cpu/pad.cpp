// PLACEHOLDER: replaced by the real kernels of this family.
#include "kernels.h"

namespace convlab::cpu {
void pad(const NDArray& a, const std::vector<std::pair<int64_t, int64_t>>& pads, PadMode mode, double value,
         NDArray& out) { runtime_error("cpu pad: not implemented yet"); }
}  // namespace convlab::cpu
