// CPU emulation of the CUDA subset convlab's kernels use (see build.sh): one OS thread per CUDA thread,
// blocks run one after another, __syncthreads is a block barrier, shuffles go through a per-warp exchange
// buffer, __shared__ variables are statics, device memory is host memory (poisoned when allocated so a
// kernel that skips an output element shows up), and a grid is cut to max_blocks blocks.
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>
using std::exp; using std::log; using std::sqrt; using std::tanh; using std::pow; using std::fabs;
#define __global__
#define __device__
#define __host__
#define __shared__ static
struct dim3 { unsigned x = 1, y = 1, z = 1; dim3(unsigned a = 1) : x(a) {} };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorLaunch = 3 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost };
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline long emu_mallocs = 0;
inline cudaError_t cudaMalloc(void** p, size_t n) {
  if (n > (size_t{1} << 36)) return cudaErrorMemoryAllocation;
  *p = std::malloc(n); ++emu_mallocs;
  std::memset(*p, 0x7f, n);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n) { std::memset(p, v, n); return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* c) { *c = 1; return cudaSuccess; }

namespace emu {
inline thread_local std::barrier<>* block_bar;
inline thread_local std::barrier<>* warp_bar;
inline thread_local double* warp_slots;  // 32 per warp
inline unsigned max_blocks = 5;
}
inline void __syncthreads() { emu::block_bar->arrive_and_wait(); }
template <class T>
T __shfl_down_sync(unsigned, T v, int offset) {
  int lane = threadIdx.x % 32;
  T* slots = reinterpret_cast<T*>(emu::warp_slots);
  slots[lane] = v;
  emu::warp_bar->arrive_and_wait();
  T r = lane + offset < 32 ? slots[lane + offset] : v;
  emu::warp_bar->arrive_and_wait();
  return r;
}
namespace emu {
struct Launch { dim3 grid, block; };
template <class F> struct Bound {
  Launch l; F f;
  template <class... A> void operator()(A&&... a) {
    gridDim = dim3(std::min(l.grid.x, max_blocks)); blockDim = l.block;
    unsigned nt = blockDim.x;
    for (unsigned b = 0; b < gridDim.x; ++b) {
      std::barrier<> bar(nt);
      std::vector<std::unique_ptr<std::barrier<>>> wb;
      for (unsigned w = 0; w < (nt + 31) / 32; ++w) wb.emplace_back(new std::barrier<>(std::min(32u, nt - 32 * w)));
      std::vector<double> slots(((nt + 31) / 32) * 32 * 2);
      std::vector<std::thread> ts;
      for (unsigned t = 0; t < nt; ++t)
        ts.emplace_back([&, t] {
          threadIdx = dim3(t); blockIdx = dim3(b);
          block_bar = &bar; warp_bar = wb[t / 32].get(); warp_slots = slots.data() + (t / 32) * 64;
          f(a...);
          bar.arrive_and_drop(); warp_bar->arrive_and_drop();
        });
      for (auto& th : ts) th.join();
    }
  }
};
template <class F> Bound<F> operator|(Launch l, F f) { return {l, f}; }
}
#define EMU_LAUNCH(G, B, ...) (emu::Launch{dim3(G), dim3(B)} | [](auto&&... a) { __VA_ARGS__(a...); })
