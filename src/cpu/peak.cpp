// The machine's fused-multiply-add peak, the ceiling every GFLOP/s of the benchmark is read against:
// each thread runs acc[j] = acc[j] * m + a on `chains` independent vector registers, no memory touched, so
// the loop is bound only by how many FMAs the core retires per cycle (2 x 256-bit on Zen 4, 2 x 512-bit on
// server Intel). 12 chains cover 4-cycle latency x 2 pipes with room, and fit in 16 ymm registers.
#include <omp.h>

#include "cpu/peak.h"

#include "common/errors.h"

namespace convlab::cpu {

namespace {

// The widest vector this build emits (-march=native picks it): one register per chain.
#if defined(__AVX512F__)
constexpr int vector_bytes = 64;
constexpr const char* isa = "AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int vector_bytes = 32;
constexpr const char* isa = "AVX2+FMA";
#else
constexpr int vector_bytes = 16;
constexpr const char* isa = "SSE2 (no FMA: multiply and add separately)";
#endif
constexpr int chains = 12;

// m and a arrive through volatiles: known at compile time, the compiler would fold or merge chains.
template <class T>
double fma_loop(int64_t iters) {
  typedef T V __attribute__((vector_size(vector_bytes)));
  volatile T m_in = T(0.999999), a_in = T(1e-6);
  T m = m_in, a = a_in;
  V acc[chains];
  for (int j = 0; j < chains; j++) acc[j] = V{} + a * T(j + 1);
  for (int64_t i = 0; i < iters; i++) {
#pragma GCC unroll 12
    for (int j = 0; j < chains; j++) acc[j] = acc[j] * m + a;
  }
  V sum = V{};
  for (int j = 0; j < chains; j++) sum += acc[j];
  double s = 0;
  for (int i = 0; i < int(sizeof(V) / sizeof(T)); i++) s += sum[i];
  return s;  // returned so the loop is not dead code
}

template <class T>
FmaPeak run(int threads, int64_t iters) {
  double sink = 0;
  double start = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
  sink += fma_loop<T>(iters);
  double seconds = omp_get_wtime() - start;
  double flops = 2.0 * threads * iters * chains * (vector_bytes / sizeof(T));
  return {flops, seconds, sink, isa, vector_bytes * 8};
}

}  // namespace

FmaPeak fma_peak(const std::string& dtype, int threads, int64_t iters) {
  if (threads < 1) value_error("fma_peak: threads must be >= 1, got ", threads);
  if (iters < 1) value_error("fma_peak: iters must be >= 1, got ", iters);
  if (dtype == "float32") return run<float>(threads, iters);
  if (dtype == "float64") return run<double>(threads, iters);
  value_error("fma_peak: dtype must be float32 or float64, got ", dtype);
}

}  // namespace convlab::cpu
