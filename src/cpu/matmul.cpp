// Batched matmul out[b] = a[b] @ b[b] on the GEMM of gemm.h: the (batch, row block, column block) tasks run
// in parallel, each writing its own part of out.
#include <algorithm>
#include <vector>

#include "gemm.h"
#include "kernels.h"

namespace convlab::cpu {

namespace {

template <class T>
void matmul_typed(const NDArray& a, const NDArray& b, NDArray& out) {
  const int64_t batch = a.shape[0], m = a.shape[1], k = a.shape[2], n = b.shape[2];
  T* c = out.data<T>();
  if (batch * m * n == 0) return;
  if (k == 0) {
    std::fill(c, c + batch * m * n, T(0));
    return;
  }
  std::vector<int64_t> b_off(k), c_off(m);
  for (int64_t i = 0; i < k; i++) b_off[i] = i * n;
  for (int64_t i = 0; i < m; i++) c_off[i] = i * n;

  const GemmBlocking bl = gemm_blocking<T>(batch, m, n);
  const int64_t tasks = batch * bl.m_blocks * bl.n_blocks;
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1 && batch * m * n * k > (1 << 15))
  for (int64_t t = 0; t < tasks; t++) {
    int64_t i = t / (bl.m_blocks * bl.n_blocks), mi = t / bl.n_blocks % bl.m_blocks, ni = t % bl.n_blocks;
    Rows<const T> rb{b.data<T>() + i * k * n, b_off.data()};
    Rows<T> rc{c + i * m * n, c_off.data()};
    gemm_block(row_major(a.data<T>() + i * m * k, m, k, k), rb, rc, bl.block(mi, ni, m, n), Update::store);
  }
}

}  // namespace

void matmul(const NDArray& a, const NDArray& b, NDArray& out) {
  dispatch_dtype<DTypes::floating>(a.dtype, [&](auto t) { matmul_typed<decltype(t)>(a, b, out); });
}

}  // namespace convlab::cpu
