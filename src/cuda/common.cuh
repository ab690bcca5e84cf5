// What every CUDA kernel file shares: checked CUDA calls, launch geometry, scratch memory.
// All kernels run on the legacy default stream, so work is ordered and the allocator may reuse a block
// as soon as it is released: nothing here synchronises the host.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels.h"

namespace convlab::cuda {

// Throws std::runtime_error ("cuda <op>: <reason>"); the binding turns it into a Python RuntimeError.
inline void check(cudaError_t err, const char* op) {
  if (err != cudaSuccess) runtime_error("cuda ", op, ": ", cudaGetErrorString(err));
}

// After a launch: a bad configuration shows up here; a fault inside the kernel at the next synchronising
// call (a copy to host, cuda_synchronize).
inline void check_launch(const char* op) { check(cudaGetLastError(), op); }

constexpr int kThreads = 256;
constexpr int kWarp = 32;  // lanes per warp, for the kernels that reduce with shuffles

// Blocks for a grid-stride loop over `work` items: one item per thread up to a cap that fills any GPU many
// times over and stays far below the 2^31-1 grid limit; kernels loop for the rest.
inline unsigned blocks_for(int64_t work, int64_t per_block = kThreads) {
  int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 20));
}

__device__ inline int64_t thread_index() { return int64_t{blockIdx.x} * blockDim.x + threadIdx.x; }
__device__ inline int64_t thread_count() { return int64_t{gridDim.x} * blockDim.x; }

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A scratch array from the caching allocator, released when the host function that queued its users
// returns (the stream keeps those kernels ahead of any later reuse of the block).
template <class T>
struct Workspace {
  T* ptr;
  explicit Workspace(int64_t count) : ptr(static_cast<T*>(alloc(count * sizeof(T)))) {}
  ~Workspace() { release(ptr); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

}  // namespace convlab::cuda
