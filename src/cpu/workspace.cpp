#include "workspace.h"

#include <cstdlib>
#include <new>

namespace convlab::cpu {

namespace {

struct ScratchBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  ~ScratchBuffer() { std::free(ptr); }
};

void* scratch_bytes(ScratchSlot slot, size_t bytes) {
  thread_local ScratchBuffer buffers[slot_count];
  ScratchBuffer& b = buffers[slot];
  if (bytes > b.bytes) {
    std::free(b.ptr);
    b.bytes = (bytes + 63) / 64 * 64;
    b.ptr = std::aligned_alloc(64, b.bytes);
    if (!b.ptr) {
      b.bytes = 0;
      throw std::bad_alloc();
    }
  }
  return b.ptr;
}

}  // namespace

template <class T>
T* scratch(ScratchSlot slot, size_t count) {
  return static_cast<T*>(scratch_bytes(slot, count * sizeof(T)));
}

template float* scratch<float>(ScratchSlot, size_t);
template double* scratch<double>(ScratchSlot, size_t);

}  // namespace convlab::cpu
