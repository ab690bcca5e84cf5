// Host-side CUDA runtime helpers that bindings.cpp exposes; plain C++, defined in backend.cu and memory.cu.
#pragma once
#include <cstddef>
#include <cstdint>

namespace convlab {

int cuda_device_count();  // 0 when there is no driver or no GPU (never throws)
void cuda_synchronize();  // waits for every queued kernel; RuntimeError if one of them failed
void cuda_empty_cache();  // returns the caching allocator's free blocks to the driver

// The caching allocator's counters: bytes handed out and not yet released, bytes held in its free lists,
// and how many times it had to call cudaMalloc (a step that reuses memory leaves this unchanged).
struct CudaMemoryStats {
  size_t allocated_bytes = 0;
  size_t cached_bytes = 0;
  int64_t device_mallocs = 0;
};
CudaMemoryStats cuda_memory_stats();

}  // namespace convlab
