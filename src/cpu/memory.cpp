// Host memory: 64-byte aligned so that AVX-512 loads of a contiguous row start on a cache line.
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels.h"

namespace convlab::cpu {

void* alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  return p;
}

void release(void* ptr) { std::free(ptr); }

void to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

void from_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

}  // namespace convlab::cpu

namespace convlab::cpu {
}  // namespace convlab::cpu
