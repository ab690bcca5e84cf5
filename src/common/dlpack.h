// DLPack, the zero-copy array exchange ABI of NumPy, PyTorch, JAX and CuPy. The structs below are the
// layout of dlpack.h v1.x (github.com/dmlc/dlpack, Apache-2.0), declared here for the parts convlab uses.
// Python passes them inside a PyCapsule named "dltensor" (or "dltensor_versioned"); the consumer renames
// it "used_dltensor" and from then on owns the one call of `deleter`.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>

#include "ndarray.h"

namespace convlab {

struct DLDevice {
  int32_t device_type;  // kDLCPU, kDLCUDA, ...
  int32_t device_id;
};
enum : int32_t { kDLCPU = 1, kDLCUDA = 2 };

struct DLDataType {
  uint8_t code;  // kDLInt, kDLUInt, kDLFloat, kDLBool, ...
  uint8_t bits;
  uint16_t lanes;  // 1 for everything but vector types
};
enum : uint8_t { kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBool = 6 };

struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; null means compact row-major
  uint64_t byte_offset;
};

struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

struct DLPackVersion {
  uint32_t major, minor;
};
constexpr DLPackVersion kDLPackVersion = {1, 0};
constexpr uint64_t kDLFlagReadOnly = 1, kDLFlagIsCopied = 2;

struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
};

// What DLPack cannot share (a device or layout convlab lacks); Python's BufferError, as the protocol asks.
struct BufferError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

DLDevice dlpack_device(Device device);
// A device DLPack names, as convlab's; BufferError for the ones convlab cannot address (`what` says who asks).
Device from_dlpack_device(DLDevice device, const char* what);

// Export: a managed tensor viewing a's memory, which its deleter keeps alive until it is called.
DLManagedTensor* to_dlpack(const NDArray& a);
DLManagedTensorVersioned* to_dlpack_versioned(const NDArray& a, uint64_t flags);

// Import: an NDArray viewing t's memory (no copy); `owner` is destroyed, and with it whatever frees the
// memory, when the last NDArray viewing that memory is gone, or at once when t cannot be shared.
NDArray from_dlpack(const DLTensor& t, std::shared_ptr<void> owner);

}  // namespace convlab
