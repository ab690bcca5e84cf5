// Host memory: 64-byte aligned so that AVX-512 loads of a contiguous row start on a cache line.
// Released blocks of at least kCacheMin bytes are kept and handed out again for the same rounded size: a
// training step allocates the same sizes every iteration, and blocks given back to glibc are trimmed off the
// top of its heap and faulted in again, page by page, by the next step (~12 ms of kernel time in a 270 ms
// MobileNetV2 step). The cache holds at most 1/16 of the machine's memory; past that, blocks are freed.
#include <pthread.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "kernels.h"

namespace convlab::cpu {
namespace {

constexpr size_t kCacheMin = size_t(1) << 16;  // smaller blocks come from glibc's bins, which it keeps

struct BlockCache {
  std::mutex mutex;
  std::unordered_map<void*, size_t> sizes;                // blocks handed out that may come back here
  std::unordered_map<size_t, std::vector<void*>> free;    // kept blocks by rounded size
  size_t cached = 0;
  const size_t capacity = size_t(sysconf(_SC_PHYS_PAGES)) * size_t(sysconf(_SC_PAGESIZE)) / 16;

  void* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = free.find(bytes);
    if (it == free.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached -= bytes;
    sizes.emplace(p, bytes);
    return p;
  }

  void track(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex);
    sizes.emplace(p, bytes);
  }

  // Keeps p if it is a tracked block and fits under the capacity; returns whether it did.
  bool keep(void* p) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = sizes.find(p);
    if (it == sizes.end()) return false;
    const size_t bytes = it->second;
    sizes.erase(it);
    if (cached + bytes > capacity) return false;
    free[bytes].push_back(p);
    cached += bytes;
    return true;
  }

  // Frees every kept block (before reporting that memory ran out).
  void drain() {
    std::lock_guard<std::mutex> lock(mutex);
    for (auto& [bytes, blocks] : free)
      for (void* p : blocks) std::free(p);
    free.clear();
    cached = 0;
  }
};

BlockCache& block_cache() {
  static BlockCache* cache = [] {
    // A child made by fork() while another thread held the lock would wait for it forever.
    pthread_atfork([] { block_cache().mutex.lock(); }, [] { block_cache().mutex.unlock(); },
                   [] { block_cache().mutex.unlock(); });
    return new BlockCache;  // never destroyed: arrays may be released during exit
  }();
  return *cache;
}

}  // namespace

void* alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  if (rounded < kCacheMin) {
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    return p;
  }
  BlockCache& cache = block_cache();
  if (void* p = cache.take(rounded)) return p;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) {
    cache.drain();
    p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
  }
  cache.track(p, rounded);
  return p;
}

void release(void* ptr) {
  if (!block_cache().keep(ptr)) std::free(ptr);
}

void to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

void from_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

}  // namespace convlab::cpu
