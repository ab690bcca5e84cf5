// The CPU backend's kernels, one family per file: memory.cpp, elementwise.cpp, reduce.cpp, matmul.cpp,
// pad.cpp, conv.cpp (+ conv_layout, conv_depthwise, gemm), pool.cpp, index.cpp.
#pragma once
#include "../common/backend.h"

namespace convlab::cpu {

// Below this many elements a thread team costs more than it saves: simple ops run single-threaded.
constexpr int64_t kParallelMin = 32768;

#include "../common/backend_kernels.inc"

}  // namespace convlab::cpu
