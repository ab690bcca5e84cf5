// CPU emulation of the CUDA subset convlab's kernels use (see emulator.cmake and docs/cuda_emulator.md).
// One OS thread per CUDA thread, so __syncthreads is a real barrier and a missing one is a data race that
// ThreadSanitizer sees; the blocks of a grid run one after another on the same pool of threads, so a
// __shared__ variable (a static here) belongs to one block at a time; one launch at a time, as on one
// stream. Shuffles exchange through a per-warp buffer. Device memory is host memory (AddressSanitizer sees
// every global access), poisoned when allocated (NaN in every float and double, 0xfff5a5a5 in int32 words)
// so an output element no thread writes shows up. A grid is cut to max_blocks blocks, so every
// grid-stride loop takes more than one turn.
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
using std::exp; using std::log; using std::sqrt; using std::tanh; using std::pow; using std::fabs;
inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }  // CUDA's device math; not in <cmath>
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
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
inline cudaError_t cudaMalloc(void** p, size_t n) {
  if (n > (size_t{1} << 36)) return cudaErrorMemoryAllocation;
  *p = std::malloc(n);
  const uint32_t poison = 0xfff5a5a5u;  // a NaN as float, and as the upper half of a double
  for (size_t i = 0; i < n; i += 4) std::memcpy(static_cast<char*>(*p) + i, &poison, std::min<size_t>(4, n - i));
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n) { std::memset(p, v, n); return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* c) { *c = 1; return cudaSuccess; }

namespace emu {
inline unsigned max_blocks = 5;
inline thread_local std::barrier<>* block_bar;
inline thread_local std::barrier<>* warp_bar;
inline thread_local double* warp_slots;  // 64 per warp: 32 lanes' values of up to 16 bytes

// Worker t runs CUDA thread t of every block. Workers live as long as the process (creating 256 threads
// per block cost more than the kernels), so the pool is never destroyed.
struct Pool {
  std::mutex m;
  std::condition_variable start, done;
  std::vector<std::thread> workers;
  std::function<void(unsigned)> job;
  unsigned active = 0, running = 0;
  uint64_t generation = 0;

  void run(unsigned threads, std::function<void(unsigned)> f) {
    std::unique_lock<std::mutex> lock(m);
    while (workers.size() < threads) workers.emplace_back(&Pool::work, this, unsigned(workers.size()));
    job = std::move(f), active = running = threads, ++generation;
    start.notify_all();
    done.wait(lock, [&] { return running == 0; });
  }
  void work(unsigned t) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(m);
    for (;;) {
      start.wait(lock, [&] { return generation != seen; });
      seen = generation;
      if (t >= active) continue;
      lock.unlock();
      job(t);
      lock.lock();
      if (--running == 0) done.notify_one();
    }
  }
};
inline Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}
inline std::mutex launch_mutex;
}  // namespace emu

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
    std::lock_guard<std::mutex> one_launch(launch_mutex);
    gridDim = dim3(std::min(l.grid.x, max_blocks)); blockDim = l.block;
    const unsigned nt = blockDim.x, warps = (nt + 31) / 32;
    for (unsigned b = 0; b < gridDim.x; ++b) {
      std::barrier<> bar(nt);
      std::vector<std::unique_ptr<std::barrier<>>> wb;
      for (unsigned w = 0; w < warps; ++w) wb.emplace_back(new std::barrier<>(std::min(32u, nt - 32 * w)));
      std::vector<double> slots(warps * 32 * 2);
      pool().run(nt, [&](unsigned t) {
        threadIdx = dim3(t); blockIdx = dim3(b);
        block_bar = &bar; warp_bar = wb[t / 32].get(); warp_slots = slots.data() + (t / 32) * 64;
        f(a...);
        bar.arrive_and_drop(); warp_bar->arrive_and_drop();  // a thread that returned waits for no one
      });
    }
  }
};
template <class F> Bound<F> operator|(Launch l, F f) { return {l, f}; }
}  // namespace emu
#define EMU_LAUNCH(G, B, ...) (emu::Launch{dim3(G), dim3(B)} | [](auto&&... a) { __VA_ARGS__(a...); })
