// NDArray metadata: views are pure stride arithmetic; anything that moves data goes through a backend.
#include "ndarray.h"

#include <algorithm>
#include <limits>

#include "backend.h"

namespace convlab {

namespace {
const char* const kDTypeNames[] = {"bool", "int32", "int64", "float32", "float64"};
const size_t kDTypeSizes[] = {1, 4, 8, 4, 8};
}  // namespace

size_t dtype_size(DType dtype) { return kDTypeSizes[static_cast<int>(dtype)]; }
const char* dtype_name(DType dtype) { return kDTypeNames[static_cast<int>(dtype)]; }

DType parse_dtype(const std::string& name) {
  for (int i = 0; i < 5; ++i)
    if (name == kDTypeNames[i]) return static_cast<DType>(i);
  type_error("dtype must be one of 'float32', 'float64', 'int32', 'int64', 'bool', got '", name, "'");
}

Category category(DType dtype) {
  if (dtype == DType::b8) return Category::boolean;
  return is_floating(dtype) ? Category::floating : Category::integer;
}

DType promote_types(DType a, DType b) { return std::max(a, b); }

const char* device_name(Device device) { return device == Device::cpu ? "cpu" : "cuda"; }

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda" || name == "cuda:0") return Device::cuda;
  value_error("device must be 'cpu' or 'cuda', got '", name, "'");
}

std::string shape_str(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t step = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = step;
    step *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

int64_t shape_size(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) value_error("shape: sizes must be >= 0, got ", shape_str(shape));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      value_error("shape: ", shape_str(shape), " has more elements than fit in 64 bits");
    n *= d;
  }
  return n;
}

void check_rank(const Shape& shape, const char* what) {
  if (static_cast<int>(shape.size()) > kMaxRank)
    value_error(what, ": arrays may have at most ", kMaxRank, " dimensions, got shape ", shape_str(shape));
}

int normalize_axis(int64_t axis, int ndim, const char* what) {
  int64_t a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= std::max(ndim, 0))
    value_error(what, ": axis ", axis, " is out of range for an array of rank ", ndim);
  return static_cast<int>(a);
}

Storage::Storage(size_t bytes, Device device) : bytes(bytes), device(device) { ptr = backend(device).alloc(bytes); }

Storage::Storage(void* ptr, size_t bytes, Device device, std::shared_ptr<void> owner)
    : ptr(ptr), bytes(bytes), device(device), owner(std::move(owner)) {}

Storage::~Storage() {
  if (!owner) backend(device).release(ptr);
}

NDArray NDArray::empty(const Shape& shape, DType dtype, Device device) {
  check_rank(shape, "shape");
  int64_t n = shape_size(shape);
  // Refuse sizes no machine could hold instead of letting the allocator abort or overflow size_t.
  if (n > (int64_t(1) << 46) / static_cast<int64_t>(dtype_size(dtype)))
    value_error("shape: ", shape_str(shape), " needs ", n, " elements, more than convlab can allocate");
  NDArray a;
  const size_t bytes = static_cast<size_t>(n) * dtype_size(dtype);
  try {
    a.storage = std::make_shared<Storage>(bytes, device);
  } catch (const std::bad_alloc&) {
    out_of_memory("shape: ", shape_str(shape), " needs ", bytes, " bytes of ", device_name(device),
                  " memory, which could not be allocated");
  }
  a.shape = shape;
  a.strides = contiguous_strides(shape);
  a.dtype = dtype;
  return a;
}

bool NDArray::is_contiguous() const {
  int64_t step = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape[i] == 1) continue;
    if (shape[i] == 0) return true;
    if (strides[i] != step) return false;
    step *= shape[i];
  }
  return true;
}

// The view needs, for each run of old axes merged into new ones, the old axes to be laid out as one
// contiguous block; then the new axes get strides carved out of that block.
NDArray NDArray::view(const Shape& new_shape) const {
  check_rank(new_shape, "reshape");
  if (shape_size(new_shape) != size())
    value_error("reshape: cannot view an array of shape ", shape_str(shape), " (", size(),
                " elements) as shape ", shape_str(new_shape), " (", shape_size(new_shape), " elements)");
  NDArray out = *this;
  out.shape = new_shape;
  if (size() == 0 || is_contiguous()) {
    out.strides = contiguous_strides(new_shape);
    return out;
  }
  // Drop size-1 axes from the old layout, then match groups of axes with equal element counts.
  Shape os, ost;
  for (int i = 0; i < ndim(); ++i)
    if (shape[i] != 1) os.push_back(shape[i]), ost.push_back(strides[i]);
  Shape ns(new_shape.size(), 0);
  size_t oi = 0, ni = 0;
  while (ni < new_shape.size()) {
    if (new_shape[ni] == 1) {
      ns[ni++] = 0;
      continue;
    }
    // Grow one group on both sides until the element counts agree.
    size_t o_begin = oi, n_begin = ni;
    int64_t on = os[oi++], nn = new_shape[ni++];
    while (on != nn) {
      if (on < nn) on *= os[oi++];
      else nn *= new_shape[ni++];
    }
    for (size_t k = o_begin; k + 1 < oi; ++k)
      if (ost[k] != ost[k + 1] * os[k + 1])
        value_error("view: shape ", shape_str(new_shape), " is incompatible with the strides of this ",
                    shape_str(shape), " view; use reshape() to copy");
    int64_t step = ost[oi - 1];
    for (size_t k = ni; k-- > n_begin;) {
      ns[k] = step;
      step *= new_shape[k];
    }
    while (ni < new_shape.size() && new_shape[ni] == 1) ns[ni++] = 0;
  }
  out.strides = ns;
  return out;
}

NDArray NDArray::permute(const std::vector<int>& axes) const {
  if (static_cast<int>(axes.size()) != ndim())
    value_error("permute: axes has ", axes.size(), " entries but the array has rank ", ndim());
  std::vector<bool> seen(ndim(), false);
  NDArray out = *this;
  for (int i = 0; i < ndim(); ++i) {
    int a = normalize_axis(axes[i], ndim(), "permute");
    if (seen[a]) value_error("permute: axis ", a, " appears twice in axes");
    seen[a] = true;
    out.shape[i] = shape[a];
    out.strides[i] = strides[a];
  }
  return out;
}

NDArray NDArray::broadcast_to(const Shape& target) const {
  if (target.size() < shape.size())
    value_error("broadcast_to: cannot broadcast shape ", shape_str(shape), " to the lower-rank shape ",
                shape_str(target));
  check_rank(target, "broadcast_to");
  NDArray out = *this;
  out.shape = target;
  out.strides.assign(target.size(), 0);
  size_t lead = target.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == target[lead + i]) out.strides[lead + i] = strides[i];
    else if (shape[i] != 1)
      value_error("broadcast_to: cannot broadcast shape ", shape_str(shape), " to ", shape_str(target),
                  " (axis ", i, ": ", shape[i], " vs ", target[lead + i], ")");
  }
  shape_size(target);
  return out;
}

NDArray NDArray::index(const std::vector<AxisIndex>& idx) const {
  if (static_cast<int>(idx.size()) > ndim())
    value_error("index: too many indices (", idx.size(), ") for an array of rank ", ndim());
  NDArray out = *this;
  out.shape.clear();
  out.strides.clear();
  for (int i = 0; i < ndim(); ++i) {
    if (i >= static_cast<int>(idx.size())) {
      out.shape.push_back(shape[i]);
      out.strides.push_back(strides[i]);
      continue;
    }
    const AxisIndex& ix = idx[i];
    if (ix.is_int) {
      if (ix.start < 0 || ix.start >= shape[i])
        value_error("index: index ", ix.start, " is out of bounds for axis ", i, " with size ", shape[i]);
      out.offset += ix.start * strides[i];
      continue;
    }
    if (ix.step == 0) value_error("index: slice step of axis ", i, " must not be 0");
    int64_t len = ix.step > 0 ? (ix.stop - ix.start + ix.step - 1) / ix.step
                              : (ix.start - ix.stop - ix.step - 1) / (-ix.step);
    len = std::max<int64_t>(len, 0);
    if (len > 0) out.offset += ix.start * strides[i];
    out.shape.push_back(len);
    out.strides.push_back(strides[i] * ix.step);
  }
  return out;
}

NDArray NDArray::flip(const std::vector<int>& axes) const {
  NDArray out = *this;
  for (int ax : axes) {
    int a = normalize_axis(ax, ndim(), "flip");
    if (shape[a] > 0) out.offset += (shape[a] - 1) * strides[a];
    out.strides[a] = -strides[a];
  }
  return out;
}

NDArray NDArray::copy() const {
  NDArray out = empty(shape, dtype, device());
  if (size() > 0) backend(device()).copy(*this, out);
  return out;
}

NDArray NDArray::compact() const { return is_contiguous() ? *this : copy(); }

NDArray NDArray::reshape(const Shape& new_shape) const {
  if (shape_size(new_shape) != size())
    value_error("reshape: cannot reshape an array of shape ", shape_str(shape), " (", size(),
                " elements) into shape ", shape_str(new_shape), " (", shape_size(new_shape), " elements)");
  try {
    return view(new_shape);
  } catch (const std::invalid_argument&) {
    return copy().view(new_shape);
  }
}

NDArray NDArray::astype(DType to_dtype) const {
  if (to_dtype == dtype) return copy();
  NDArray out = empty(shape, to_dtype, device());
  if (size() > 0) backend(device()).copy(*this, out);
  return out;
}

NDArray NDArray::to(Device target) const {
  if (target == device()) return *this;
  NDArray src = compact();
  NDArray out = empty(shape, dtype, target);
  size_t bytes = static_cast<size_t>(size()) * dtype_size(dtype);
  if (bytes == 0) return out;
  const char* src_ptr = static_cast<const char*>(src.storage->ptr) + src.offset * dtype_size(dtype);
  void* dst_ptr = out.storage->ptr;
  if (target == Device::cpu) backend(src.device()).to_host(dst_ptr, src_ptr, bytes);
  else backend(target).from_host(dst_ptr, src_ptr, bytes);
  return out;
}

}  // namespace convlab
