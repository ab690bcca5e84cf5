// The vector type every hand-vectorised CPU kernel computes in, sized by the ISA the build targets (the build
// uses -march=native): one register of AVX-512 (64 bytes), of AVX/AVX2 (32) or of SSE2 (16, baseline x86-64).
// GCC's vector extensions compile the arithmetic to that ISA's instructions; the helpers below are the few
// operations the extensions do not spell directly.
#pragma once
#include <cstring>
#include <utility>

namespace convlab::cpu {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
constexpr int kVecRegisters = 32;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
constexpr int kVecRegisters = 16;
#else
constexpr int kVecBytes = 16;
constexpr int kVecRegisters = 16;
#endif

// GCC notes that passing vectors wider than the baseline ABI's by value has no fixed ABI: harmless here,
// they never cross a library edge.
#pragma GCC diagnostic ignored "-Wpsabi"
template <class T, int Bytes = kVecBytes>
struct VecOf {
  typedef T type __attribute__((vector_size(Bytes)));
};
template <class T, int Bytes = kVecBytes>
using Vec = typename VecOf<T, Bytes>::type;
template <class T>
constexpr int lanes = kVecBytes / sizeof(T);

// Per-lane masks (all ones or zero), the type of a vector comparison; `mask ? a : b` selects lanewise.
template <class T>
using Mask = decltype(Vec<T>{} < Vec<T>{});

// Unaligned load and store.
template <class T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof v);
}

// Sum of the lanes, halving the vector down to 16 bytes first: a serial chain of lanes - 1 scalar adds (the
// in-order sum the compiler may not reorder) cost more than the dot products it finished on small images.
template <class T, int Bytes = kVecBytes>
inline T hsum(Vec<T, Bytes> v) {
  if constexpr (Bytes > 16) {
    Vec<T, Bytes / 2> half[2];
    std::memcpy(half, &v, sizeof v);
    return hsum<T, Bytes / 2>(half[0] + half[1]);
  } else {
    T s = 0;
    for (int i = 0; i < int(Bytes / sizeof(T)); i++) s += v[i];
    return s;
  }
}

// Lanes 0, 2, 4, ... of the two vectors a, b laid end to end: a stride-2 read of 2 * lanes elements in two
// loads and one shuffle (vpermt2ps).
template <class T, int... J>
inline Vec<T> even_lanes(Vec<T> a, Vec<T> b, std::integer_sequence<int, J...>) {
  return __builtin_shufflevector(a, b, (2 * J)...);
}
template <class T>
inline Vec<T> even_lanes(Vec<T> a, Vec<T> b) {
  return even_lanes<T>(a, b, std::make_integer_sequence<int, lanes<T>>{});
}

// One round of transpose_block: rows i and i + d (bit d of i clear) trade lanes so that afterwards bit d of
// the row index and bit d of the lane index are swapped. Constant shuffles (vpermt2ps / vshuff32x4).
template <class T, int d, int... J>
inline void swap_bit(Vec<T>* v, std::integer_sequence<int, J...>) {
  constexpr int L = lanes<T>;
  for (int i = 0; i < L; i++) {
    if (i & d) continue;
    const Vec<T> a = v[i], b = v[i + d];
    v[i] = __builtin_shufflevector(a, b, (J & d ? L + J - d : J)...);
    v[i + d] = __builtin_shufflevector(a, b, (J & d ? L + J : J + d)...);
  }
}

// v[r][c] -> v[c][r] for one lanes x lanes block: log2(lanes) rounds of swap_bit.
template <class T, int d = lanes<T> / 2>
inline void transpose_block(Vec<T>* v) {
  swap_bit<T, d>(v, std::make_integer_sequence<int, lanes<T>>{});
  if constexpr (d > 1) transpose_block<T, d / 2>(v);
}

}  // namespace convlab::cpu
