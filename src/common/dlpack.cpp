// DLPack export and import. Both ways only metadata moves: an exported tensor points into the NDArray's
// storage and holds a reference to it; an imported one becomes a Storage whose owner runs the producer's
// deleter. Element (i_0, ..., i_k) sits at data + byte_offset + itemsize * sum(i_d * strides_d) on both sides.
#include "dlpack.h"

#include <algorithm>
#include <vector>

#include "backend.h"

namespace convlab {

namespace {

template <class... Args>
[[noreturn]] void buffer_error(const Args&... args) {
  throw BufferError(cat(args...));
}

DLDataType dlpack_dtype(DType dtype) {
  switch (dtype) {
    case DType::b8: return {kDLBool, 8, 1};
    case DType::i32: return {kDLInt, 32, 1};
    case DType::i64: return {kDLInt, 64, 1};
    case DType::f32: return {kDLFloat, 32, 1};
    case DType::f64: return {kDLFloat, 64, 1};
  }
  runtime_error("internal error: no DLPack type for dtype ", dtype_name(dtype));
}

DType from_dlpack_dtype(DLDataType t) {
  if (t.lanes == 1) {
    if (t.code == kDLBool && t.bits == 8) return DType::b8;
    if (t.code == kDLInt && t.bits == 32) return DType::i32;
    if (t.code == kDLInt && t.bits == 64) return DType::i64;
    if (t.code == kDLFloat && t.bits == 32) return DType::f32;
    if (t.code == kDLFloat && t.bits == 64) return DType::f64;
  }
  const char* names[] = {"int", "uint", "float", "opaque handle", "bfloat", "complex", "bool"};
  std::string name = t.code < 7 ? names[t.code] : cat("type code ", int(t.code));
  type_error("from_dlpack: dtype must be float32, float64, int32, int64 or bool, got ", name, int(t.bits),
             t.lanes == 1 ? "" : cat(" x", t.lanes, " lanes"), "; convert it on the producer's side first");
}

// What the managed tensor's manager_ctx points at: the exported view, and the shape/strides DLTensor
// points into.
struct Exported {
  NDArray array;
  std::vector<int64_t> shape, strides;
};

DLTensor describe(Exported& e) {
  const NDArray& a = e.array;
  DLTensor t{};
  t.data = a.size() == 0 ? nullptr : static_cast<char*>(a.storage->ptr) + a.offset * dtype_size(a.dtype);
  t.device = dlpack_device(a.device());
  t.ndim = a.ndim();
  t.dtype = dlpack_dtype(a.dtype);
  t.shape = e.shape.data();
  t.strides = e.strides.data();
  t.byte_offset = 0;
  return t;
}

template <class Managed>
void delete_managed(Managed* m) {
  delete static_cast<Exported*>(m->manager_ctx);
  delete m;
}

}  // namespace

DLDevice dlpack_device(Device device) { return {device == Device::cpu ? kDLCPU : kDLCUDA, 0}; }

Device from_dlpack_device(DLDevice device, const char* what) {
  if (device.device_type == kDLCPU) return Device::cpu;
  if (device.device_type == kDLCUDA) {
    if (!cuda_compiled())
      buffer_error(what, ": the data is on a CUDA device and this convlab was built without the CUDA backend");
    if (device.device_id != 0)
      buffer_error(what, ": convlab uses CUDA device 0, the data is on CUDA device ", device.device_id);
    return Device::cuda;
  }
  buffer_error(what, ": DLPack device type ", device.device_type,
               " cannot be shared with convlab, which has only the CPU (1) and CUDA (2)");
}

DLManagedTensor* to_dlpack(const NDArray& a) {
  auto* e = new Exported{a, a.shape, a.strides};
  auto* m = new DLManagedTensor{describe(*e), e, delete_managed<DLManagedTensor>};
  return m;
}

DLManagedTensorVersioned* to_dlpack_versioned(const NDArray& a, uint64_t flags) {
  auto* e = new Exported{a, a.shape, a.strides};
  auto* m = new DLManagedTensorVersioned{kDLPackVersion, e, delete_managed<DLManagedTensorVersioned>, flags,
                                         describe(*e)};
  return m;
}

NDArray from_dlpack(const DLTensor& t, std::shared_ptr<void> owner) {
  NDArray a;
  a.dtype = from_dlpack_dtype(t.dtype);
  const Device device = from_dlpack_device(t.device, "from_dlpack");
  if (t.ndim < 0 || t.ndim > kMaxRank)
    value_error("from_dlpack: arrays may have at most ", kMaxRank, " dimensions, got ", t.ndim);
  const int64_t itemsize = static_cast<int64_t>(dtype_size(a.dtype));
  if (t.byte_offset % itemsize != 0)
    buffer_error("from_dlpack: byte_offset ", t.byte_offset, " is not a multiple of the element size ", itemsize);
  a.shape.assign(t.shape, t.shape + t.ndim);
  a.strides = t.strides ? Shape(t.strides, t.strides + t.ndim) : contiguous_strides(a.shape);
  // The storage spans the elements the view reaches: from the lowest address (negative strides reach below
  // the first element) to the highest.
  int64_t lo = 0, hi = 0;
  if (shape_size(a.shape) > 0) {
    for (int d = 0; d < t.ndim; ++d) {
      const int64_t reach = (a.shape[d] - 1) * a.strides[d];
      (reach < 0 ? lo : hi) += reach;
    }
  }
  a.offset = -lo;
  char* first = static_cast<char*>(t.data) + t.byte_offset;
  void* base = shape_size(a.shape) > 0 ? first + lo * itemsize : nullptr;
  const size_t bytes = shape_size(a.shape) > 0 ? static_cast<size_t>((hi - lo + 1) * itemsize) : 0;
  a.storage = std::make_shared<Storage>(base, bytes, device, std::move(owner));
  return a;
}

}  // namespace convlab
