// The register-only FMA loop behind `python -m convlab.bench --peak` (see peak.cpp).
#pragma once
#include <cstdint>
#include <string>

namespace convlab::cpu {

struct FmaPeak {
  double flops, seconds;
  double checksum;    // the accumulators' sum, kept so the loop cannot be optimised away
  const char* isa;    // the vector instructions this build emits
  int vector_bits;
};

// `threads` OpenMP threads each run `iters` rounds of FMAs on registers; dtype "float32" or "float64".
FmaPeak fma_peak(const std::string& dtype, int threads, int64_t iters);

}  // namespace convlab::cpu
