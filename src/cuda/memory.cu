// Device memory through a caching allocator: sizes are rounded to buckets, a released block goes onto its
// bucket's free list and the next request of that bucket reuses it, so a training step stops calling
// cudaMalloc (which synchronises the device) after its first iteration. One stream orders all kernels,
// so a block released while queued kernels still use it is only reused by kernels queued after them.
// CONVLAB_CUDA_NO_CACHING=1 turns the cache off: each array is its own cudaMalloc of its exact size, freed
// on release, so memory checkers (compute-sanitizer, the emulator under ASan) see every array's bounds and
// every allocation fresh (the emulator poisons it).
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.cuh"
#include "runtime.h"

namespace convlab {
namespace {

// Below 1 MiB: multiples of 512 bytes; above: 8 buckets per power of two (at most 12.5% waste).
size_t bucket_size(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{1} << 20;
  if (bytes < kLarge) return std::max<size_t>((bytes + kSmall - 1) / kSmall * kSmall, kSmall);
  size_t octave = size_t{1} << (63 - __builtin_clzll(bytes));
  size_t step = octave / 8;
  return (bytes + step - 1) / step * step;
}

struct Cache {
  std::mutex mutex;
  std::unordered_map<void*, size_t> live;                  // pointer -> bucket size
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // bucket size -> idle blocks
  CudaMemoryStats stats;

  // Caller holds the mutex. cudaFree waits for the device anyway; syncing first makes that explicit.
  void free_idle() {
    cuda::check(cudaDeviceSynchronize(), "empty_cache");
    for (auto& [size, blocks] : free_lists)
      for (void* p : blocks) cuda::check(cudaFree(p), "empty_cache");
    free_lists.clear();
    stats.cached_bytes = 0;
  }
};

bool caching() {
  static const bool on = [] {
    const char* off = std::getenv("CONVLAB_CUDA_NO_CACHING");
    return !off || !*off || std::strcmp(off, "0") == 0;
  }();
  return on;
}

// Never destroyed: arrays freed during interpreter shutdown still find it, and the driver reclaims memory.
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

}  // namespace

void cuda_empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.free_idle();
}

CudaMemoryStats cuda_memory_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.stats;
}

namespace cuda {

void* alloc(size_t bytes) {
  size_t size = caching() ? bucket_size(bytes) : std::max<size_t>(bytes, 1);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  void* p = nullptr;
  auto idle = c.free_lists.find(size);
  if (idle != c.free_lists.end() && !idle->second.empty()) {
    p = idle->second.back();
    idle->second.pop_back();
    c.stats.cached_bytes -= size;
  } else {
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation && c.stats.cached_bytes > 0) {
      cudaGetLastError();  // clear it, or the next launch check would report this failure as its own
      c.free_idle();
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      runtime_error("cuda alloc: cannot allocate ", bytes, " bytes (", c.stats.allocated_bytes,
                    " bytes in use): ", cudaGetErrorString(err));
    }
    c.stats.device_mallocs += 1;
  }
  c.live[p] = size;
  c.stats.allocated_bytes += size;
  return p;
}

void release(void* ptr) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.live.find(ptr);
  if (it == c.live.end()) return;  // not ours (null): nothing to do, and a destructor must not throw
  c.stats.allocated_bytes -= it->second;
  if (caching()) {
    c.free_lists[it->second].push_back(ptr);
    c.stats.cached_bytes += it->second;
  } else {
    cudaFree(ptr);  // no check: a destructor must not throw
  }
  c.live.erase(it);
}

// cudaMemcpy on the legacy stream waits for queued kernels, so the host sees their results.
void to_host(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "copy to host");
}

void from_host(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "copy from host");
}

}  // namespace cuda
}  // namespace convlab
