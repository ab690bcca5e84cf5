// NDArray: a strided view over a device buffer. Shapes, strides and offsets are counted in elements, so a
// view (reshape, permute, broadcast, slice, flip) is only new metadata over the same Storage.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dtype.h"
#include "errors.h"

namespace convlab {

enum class Device { cpu, cuda };

const char* device_name(Device device);
Device parse_device(const std::string& name);  // "cpu" / "cuda", else ValueError

using Shape = std::vector<int64_t>;
// Kernels on every device pass shapes by value in fixed-size arrays; this bounds their rank.
constexpr int kMaxRank = 8;
void check_rank(const Shape& shape, const char* what);
std::string shape_str(const Shape& shape);  // "(2, 3)"
Shape contiguous_strides(const Shape& shape);
int64_t shape_size(const Shape& shape);  // product, checked for overflow

// One allocation on one device, freed by that device's backend when the last view goes away; or memory
// another library lent (DLPack), given back by destroying `owner` instead.
struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device = Device::cpu;
  std::shared_ptr<void> owner;
  // Counts writes into existing arrays (setitem, through any view); autograd compares it with the value at
  // forward time to refuse gradients computed from data that was changed in place since.
  uint64_t version = 0;
  Storage(size_t bytes, Device device);
  Storage(void* ptr, size_t bytes, Device device, std::shared_ptr<void> owner);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

// One axis of basic indexing: an integer (drops the axis) or a slice start:stop:step (already resolved
// against the axis length, as Python's slice.indices does).
struct AxisIndex {
  bool is_int = false;
  int64_t start = 0, stop = 0, step = 1;
};

struct NDArray {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // elements; 0 for broadcast axes, negative for flipped ones
  int64_t offset = 0;
  DType dtype = DType::f32;

  static NDArray empty(const Shape& shape, DType dtype, Device device);

  Device device() const { return storage->device; }
  int ndim() const { return static_cast<int>(shape.size()); }
  int64_t size() const { return shape_size(shape); }
  bool is_contiguous() const;
  template <class T>
  T* data() const { return static_cast<T*>(storage->ptr) + offset; }

  // Views: new metadata, same storage.
  NDArray view(const Shape& new_shape) const;  // ValueError when the strides do not allow it
  NDArray permute(const std::vector<int>& axes) const;
  NDArray broadcast_to(const Shape& target) const;
  NDArray index(const std::vector<AxisIndex>& idx) const;
  NDArray flip(const std::vector<int>& axes) const;

  // Copies when needed.
  NDArray reshape(const Shape& new_shape) const;  // a view when possible, else a compact copy
  NDArray compact() const;                         // itself when already contiguous
  NDArray copy() const;                            // always a new contiguous array
  NDArray astype(DType dtype) const;
  NDArray to(Device device) const;
};

// Normalises a possibly negative axis for an array of rank ndim; `what` names the argument in errors.
int normalize_axis(int64_t axis, int ndim, const char* what);

}  // namespace convlab
