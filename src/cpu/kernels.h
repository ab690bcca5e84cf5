// The CPU backend's kernels, one family per file (see backend.h for each one's contract).
#pragma once
#include "../common/backend.h"

namespace convlab::cpu {

// Below this many elements a thread team costs more than it saves: simple ops run single-threaded.
constexpr int64_t kParallelMin = 32768;

// memory.cpp
void* alloc(size_t bytes);
void release(void* ptr);
void to_host(void* dst, const void* src, size_t bytes);
void from_host(void* dst, const void* src, size_t bytes);

// elementwise.cpp
void binary(BinaryOp op, const NDArray& a, const NDArray& b, NDArray& out);
void binary_scalar(BinaryOp op, const NDArray& a, double s, bool scalar_first, NDArray& out);
void unary(UnaryOp op, const NDArray& a, NDArray& out);
void copy(const NDArray& src, const NDArray& dst);
void fill(const NDArray& dst, double value);

// reduce.cpp
void reduce_rows(ReduceOp op, const NDArray& a, NDArray& out);
void argmax_rows(const NDArray& a, NDArray& out);

// matmul.cpp
void matmul(const NDArray& a, const NDArray& b, NDArray& out);

// pad.cpp
void pad(const NDArray& a, const std::vector<std::pair<int64_t, int64_t>>& pads, PadMode mode, double value,
         NDArray& out);

// conv.cpp
void conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y);
void conv_backward_input(const NDArray& gy, const NDArray& w, const ConvParams& p, NDArray& gx);
void conv_backward_weight(const NDArray& x, const NDArray& gy, const ConvParams& p, NDArray& gw);

// pool.cpp
void max_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y);
void max_pool_backward(const NDArray& x, const NDArray& gy, const PoolParams& p, NDArray& gx);
void avg_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y);
void avg_pool_backward(const NDArray& gy, const PoolParams& p, NDArray& gx);
void adaptive_avg_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y);
void adaptive_avg_pool_backward(const NDArray& gy, const PoolParams& p, NDArray& gx);

}  // namespace convlab::cpu
