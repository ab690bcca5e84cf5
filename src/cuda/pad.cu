// Padding: out[o_0, ..., o_{d-1}] = a[src_0(o_0), ..., src_{d-1}(o_{d-1})], or `value` where some src_d
// falls outside (constant mode). One thread per output element; the per-axis index map is the same fold
// as the CPU kernel's (the frontend guarantees reflect pads < n and circular pads <= n).
#include "common.cuh"

namespace convlab::cuda {
namespace {

constexpr int kMaxRank = 8;

struct PadGeometry {
  int rank = 0;
  int64_t in_shape[kMaxRank] = {}, out_shape[kMaxRank] = {}, lo[kMaxRank] = {};
};

// Input index along one axis for output index o, or -1 for the constant fill.
__device__ int64_t source_index(int64_t o, int64_t n, int64_t lo, PadMode mode) {
  int64_t i = o - lo;
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::constant: return -1;
    case PadMode::reflect: return i < 0 ? -i : 2 * (n - 1) - i;  // the edge element is not repeated
    case PadMode::replicate: return i < 0 ? 0 : n - 1;
    case PadMode::circular: return (i % n + n) % n;
  }
  return -1;
}

template <class T>
__global__ void pad_kernel(const T* a, PadGeometry g, PadMode mode, T value, T* out, int64_t total) {
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    int64_t rest = i, src = 0, in_stride = 1;
    bool inside = true;
    for (int d = g.rank - 1; d >= 0; --d) {
      int64_t s = source_index(rest % g.out_shape[d], g.in_shape[d], g.lo[d], mode);
      rest /= g.out_shape[d];
      inside = inside && s >= 0;
      src += s * in_stride;
      in_stride *= g.in_shape[d];
    }
    out[i] = inside ? a[src] : value;
  }
}

}  // namespace

void pad(const NDArray& a, const std::vector<std::pair<int64_t, int64_t>>& pads, PadMode mode, double value,
         NDArray& out) {
  const int64_t total = out.size();
  if (total == 0) return;
  if (a.ndim() > kMaxRank) runtime_error("pad: arrays of rank above ", kMaxRank, " are not supported on cuda");
  PadGeometry g;
  g.rank = a.ndim();
  for (int d = 0; d < g.rank; ++d) {
    g.in_shape[d] = a.shape[d];
    g.out_shape[d] = out.shape[d];
    g.lo[d] = d < static_cast<int>(pads.size()) ? pads[d].first : 0;
  }
  dispatch_dtype<DTypes::floating>(a.dtype, [&](auto t) {
    using T = decltype(t);
    pad_kernel<<<blocks_for(total), kThreads>>>(a.data<T>(), g, mode, T(value), out.data<T>(), total);
  });
  check_launch("pad");
}

}  // namespace convlab::cuda
