// PLACEHOLDER: replaced by the real kernels of this family.
#include "kernels.h"

namespace convlab::cpu {
void max_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) { runtime_error("cpu max_pool_forward: not implemented yet"); }
void max_pool_backward(const NDArray& x, const NDArray& gy, const PoolParams& p, NDArray& gx) { runtime_error("cpu max_pool_backward: not implemented yet"); }
void avg_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) { runtime_error("cpu avg_pool_forward: not implemented yet"); }
void avg_pool_backward(const NDArray& gy, const PoolParams& p, NDArray& gx) { runtime_error("cpu avg_pool_backward: not implemented yet"); }
void adaptive_avg_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) { runtime_error("cpu adaptive_avg_pool_forward: not implemented yet"); }
void adaptive_avg_pool_backward(const NDArray& gy, const PoolParams& p, NDArray& gx) { runtime_error("cpu adaptive_avg_pool_backward: not implemented yet"); }
}  // namespace convlab::cpu
