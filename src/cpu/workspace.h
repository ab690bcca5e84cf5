// Scratch memory of the CPU kernels: grow-only, 64-byte aligned buffers, one per (calling thread, slot), so
// repeated calls reuse their pages instead of faulting fresh ones in.
#pragma once
#include <cstddef>
#include <cstdint>

namespace convlab::cpu {

// Elements (32 MiB of fp32) one workspace of a convolution call may hold: a call cuts its batch into chunks
// of images, and its parts of a reduction, so that each buffer it fills stays within this bound. Every
// workspace of a call is then bounded by a small multiple of it, whatever the batch size.
constexpr int64_t kWorkspaceElements = int64_t(1) << 23;

// slot_thread is the one a worker thread may use inside a parallel region (GEMM's B panel, a plane buffer);
// slot_input holds a phased input, slot_output an extended output or gradient, slot_weight a rearranged
// weight (backward-input's flipped one) or backward-weight's partial sums, slot_columns an im2col matrix.
enum ScratchSlot { slot_thread, slot_input, slot_output, slot_weight, slot_columns, slot_count };

// `count` elements of the calling thread's buffer of `slot`; contents are undefined on return.
template <class T>
T* scratch(ScratchSlot slot, size_t count);

}  // namespace convlab::cpu
