// pybind11: the NDArray class and the kernel entry points of src/common/ops.h. Nothing else lives here:
// argument checks are in src/common, math in the backends. Kernels run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <omp.h>

#include <cstring>

#include "common/dlpack.h"
#include "common/ops.h"
#include "cpu/peak.h"
#ifdef CONVLAB_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace py = pybind11;
using namespace convlab;

namespace {

using nogil = py::call_guard<py::gil_scoped_release>;

std::string type_name(const py::handle& obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

// The NDArray dtype of a NumPy dtype; NumPy's other kinds (int8, uint16, float16, complex...) have none.
DType from_numpy_dtype(const py::dtype& dt) {
  if (dt.kind() == 'b') return DType::b8;
  if (dt.kind() == 'i' && dt.itemsize() == 4) return DType::i32;
  if (dt.kind() == 'i' && dt.itemsize() == 8) return DType::i64;
  if (dt.kind() == 'f' && dt.itemsize() == 4) return DType::f32;
  if (dt.kind() == 'f' && dt.itemsize() == 8) return DType::f64;
  type_error("from_numpy: array dtype must be float32, float64, int32, int64 or bool, got ",
             std::string(py::str(dt)), "; convert with arr.astype(np.float32) or arr.astype(np.int64)");
}

NDArray from_numpy(const py::object& obj, const std::string& device) {
  Device dev = parse_device(device);
  if (!py::isinstance<py::array>(obj) && !py::isinstance(obj, py::module_::import("numpy").attr("generic")))
    type_error("from_numpy: expected a numpy array, got ", type_name(obj));
  py::array arr = py::array::ensure(obj);
  NDArray out;
  dispatch_dtype(from_numpy_dtype(arr.dtype()), [&](auto t) {
    using T = decltype(t);
    auto c = py::array_t<T, py::array::c_style>::ensure(arr);
    out = NDArray::empty(Shape(c.shape(), c.shape() + c.ndim()), dtype_of<T>(), dev);
    if (out.size() > 0) backend(dev).from_host(out.storage->ptr, c.data(), out.size() * sizeof(T));
  });
  return out;
}

py::array to_numpy(const NDArray& a) {
  NDArray host = a.to(Device::cpu).compact();
  py::array out;
  dispatch_dtype(a.dtype, [&](auto t) {
    using T = decltype(t);
    py::array_t<T> typed(a.shape);
    if (a.size() > 0) std::memcpy(typed.mutable_data(), host.data<T>(), a.size() * sizeof(T));
    out = typed;
  });
  return out;
}

// Unclaimed capsules free their tensor; a consumer renames the capsule "used_..." and calls the deleter itself.
template <class Managed>
void free_unclaimed(PyObject* capsule) {
  const char* name = std::is_same_v<Managed, DLManagedTensor> ? "dltensor" : "dltensor_versioned";
  if (!PyCapsule_IsValid(capsule, name)) return;
  auto* m = static_cast<Managed*>(PyCapsule_GetPointer(capsule, name));
  m->deleter(m);
}

template <class Managed>
py::object dlpack_capsule(Managed* m, const char* name) {
  PyObject* capsule = PyCapsule_New(m, name, free_unclaimed<Managed>);
  if (!capsule) {
    m->deleter(m);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(capsule);
}

// NDArray.__dlpack__ with the array API's keywords: a view of `a`, or a copy where dl_device (another
// device) or copy=True asks for one. convlab's CUDA kernels are queued on the legacy default stream, which
// orders work against a consumer on that stream (stream None or 1) by itself; for any other stream the
// device is synchronised before the consumer may read.
py::object to_dlpack_capsule(const NDArray& a, const py::object& stream, const py::object& max_version,
                             const py::object& dl_device, const py::object& copy) {
  NDArray src = a;
  bool copied = false;
  if (!dl_device.is_none()) {
    auto [type, id] = dl_device.cast<std::pair<int32_t, int32_t>>();
    Device target = from_dlpack_device({type, id}, "__dlpack__");
    if (target != a.device()) {
      if (!copy.is_none() && !copy.cast<bool>())
        throw BufferError(cat("__dlpack__: the array is on '", device_name(a.device()), "' and dl_device asks for '",
                              device_name(target), "': that needs a copy, which copy=False forbids"));
      src = a.to(target);
      copied = true;
    }
  }
  if (!copied && !copy.is_none() && copy.cast<bool>()) {
    src = a.copy();
    copied = true;
  }
  // A flipped view leaves as a copy, which copy=None allows: PyTorch aborts the process on negative strides.
  bool flipped = false;
  for (int d = 0; d < src.ndim(); ++d) flipped |= src.strides[d] < 0 && src.shape[d] > 1;
  if (flipped) {
    if (!copy.is_none())
      throw BufferError("__dlpack__: a view with negative strides (a flip) can only leave as a copy, which "
                        "copy=False forbids");
    src = a.copy();
    copied = true;
  }
  if (src.device() == Device::cuda && !stream.is_none()) {
    const int64_t s = stream.cast<int64_t>();
    if (s == 0) value_error("__dlpack__: stream 0 is ambiguous for CUDA; pass 1 (legacy default) or -1 (none)");
#ifdef CONVLAB_WITH_CUDA
    if (s != 1 && s != -1) cuda_synchronize();
#endif
  }
  if (!max_version.is_none() && max_version.cast<py::tuple>()[0].cast<int64_t>() >= 1)
    return dlpack_capsule(to_dlpack_versioned(src, copied ? kDLFlagIsCopied : 0), "dltensor_versioned");
  return dlpack_capsule(to_dlpack(src), "dltensor");
}

// Takes over a DLPack capsule: renames it so that its producer's destructor leaves the memory alone, and
// calls the deleter once the last NDArray viewing the memory is gone (or at once if it cannot be shared).
// With copy, the result is a copy and the capsule's memory is only read (read-only memory is fine then).
NDArray from_dlpack_capsule(const py::object& obj, bool copy) {
  PyObject* capsule = obj.ptr();
  if (PyCapsule_IsValid(capsule, "dltensor_versioned")) {
    auto* m = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(capsule, "dltensor_versioned"));
    if (m->version.major > kDLPackVersion.major)
      throw BufferError(cat("from_dlpack: the producer speaks DLPack ", m->version.major, ".", m->version.minor,
                            ", convlab ", kDLPackVersion.major, ".x"));
    if ((m->flags & kDLFlagReadOnly) && !copy)
      throw BufferError("from_dlpack: the producer shares this memory read-only and convlab arrays are writable; "
                        "pass copy=True (or make it writable on the producer's side)");
    PyCapsule_SetName(capsule, "used_dltensor_versioned");
    std::shared_ptr<void> owner(m, [](void* p) {
      auto* m = static_cast<DLManagedTensorVersioned*>(p);
      if (m->deleter) m->deleter(m);
    });
    NDArray a = from_dlpack(m->dl_tensor, std::move(owner));
    return copy ? a.copy() : a;
  }
  if (PyCapsule_IsValid(capsule, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
    PyCapsule_SetName(capsule, "used_dltensor");
    std::shared_ptr<void> owner(m, [](void* p) {
      auto* m = static_cast<DLManagedTensor*>(p);
      if (m->deleter) m->deleter(m);
    });
    NDArray a = from_dlpack(m->dl_tensor, std::move(owner));
    return copy ? a.copy() : a;
  }
  if (PyCapsule_CheckExact(capsule)) {
    const char* name = PyCapsule_GetName(capsule);
    value_error("from_dlpack: the capsule is named '", name ? name : "", "', not 'dltensor' (a DLPack capsule can be "
                "imported only once)");
  }
  type_error("from_dlpack: expected a DLPack capsule, got ", type_name(obj));
}

Shape to_shape(const py::object& obj) {
  if (py::isinstance<py::int_>(obj)) return {obj.cast<int64_t>()};
  return obj.cast<Shape>();
}

// One -1 in a target shape stands for whatever size makes the element counts agree; other sizes are >= 0.
// The one check of a reshape / view target: Tensor.reshape and Tensor.view pass the user's shape through.
Shape resolve_shape(const NDArray& a, Shape s) {
  int64_t known = 1, unknown = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (unknown >= 0) value_error("reshape: only one dimension can be -1, got ", shape_str(s));
      unknown = static_cast<int64_t>(i);
    } else if (s[i] < 0) {
      value_error("reshape: sizes must be >= 0 (or one -1), got shape ", shape_str(s));
    } else {
      known *= s[i];
    }
  }
  if (unknown >= 0) {
    if (known == 0 || a.size() % known != 0)
      value_error("reshape: cannot reshape an array of shape ", shape_str(a.shape), " into shape ", shape_str(s));
    s[unknown] = a.size() / known;
  }
  return s;
}

// None -> all axes; an int -> that axis; a sequence -> those axes.
std::vector<int64_t> to_axes(const py::object& obj) {
  if (obj.is_none()) return {};
  if (py::isinstance<py::int_>(obj)) return {obj.cast<int64_t>()};
  std::vector<int64_t> axes = obj.cast<std::vector<int64_t>>();
  if (axes.empty()) value_error("axes: an empty tuple of axes reduces nothing; pass None for all axes");
  return axes;
}

// Python basic indexing: ints, slices and one Ellipsis, resolved against the array's shape.
std::vector<AxisIndex> to_index(const NDArray& a, const py::object& key) {
  py::tuple items = py::isinstance<py::tuple>(key) ? key.cast<py::tuple>() : py::make_tuple(key);
  int explicit_axes = 0;
  for (auto item : items)
    if (!item.is(py::ellipsis())) ++explicit_axes;
  std::vector<AxisIndex> idx;
  for (auto item : items) {
    int axis = static_cast<int>(idx.size());
    if (item.is(py::ellipsis())) {
      for (int k = 0; k < a.ndim() - explicit_axes; ++k)
        idx.push_back({false, 0, a.shape[idx.size()], 1});
      continue;
    }
    if (axis >= a.ndim())
      value_error("index: too many indices for an array of rank ", a.ndim());
    int64_t len = a.shape[axis];
    if (py::isinstance<py::slice>(item)) {
      Py_ssize_t start, stop, step, slicelength;
      if (!item.cast<py::slice>().compute(static_cast<size_t>(len), &start, &stop, &step, &slicelength))
        throw py::error_already_set();
      idx.push_back({false, start, stop, step});
    } else if (py::isinstance<py::int_>(item)) {
      int64_t i = item.cast<int64_t>();
      if (i < -len || i >= len)
        value_error("index: index ", i, " is out of bounds for axis ", axis, " with size ", len);
      idx.push_back({true, i < 0 ? i + len : i, 0, 1});
    } else {
      type_error("index: only integers, slices and ... are supported, got ",
                 type_name(item));
    }
  }
  return idx;
}

// The dtype a Python number promotes as (PyTorch's rules): bool, int64 or float64; none for other objects.
std::optional<DType> scalar_kind(const py::object& obj) {
  if (py::isinstance<py::bool_>(obj)) return DType::b8;  // before int: bool is a subclass of int
  if (py::isinstance<py::int_>(obj)) return DType::i64;
  if (py::isinstance<py::float_>(obj)) return DType::f64;
  return std::nullopt;
}

BinaryOp parse_binary_op(const std::string& name) {
  for (int i = 0; i <= static_cast<int>(BinaryOp::bitwise_xor); ++i)
    if (name == binary_name(static_cast<BinaryOp>(i))) return static_cast<BinaryOp>(i);
  value_error("result_type: op must name a binary op ('add', 'div', ...), got '", name, "'");
}

// An operand that may be an NDArray or a Python number.
NDArray binop(BinaryOp op, const NDArray& a, const py::object& other, bool reflected) {
  if (py::isinstance<NDArray>(other)) {
    const NDArray& b = other.cast<const NDArray&>();
    py::gil_scoped_release nogil_;
    return reflected ? binary(op, b, a) : binary(op, a, b);
  }
  if (std::optional<DType> kind = scalar_kind(other)) {
    double s = other.cast<double>();
    py::gil_scoped_release nogil_;
    return binary_scalar(op, a, s, reflected, *kind);
  }
  type_error(binary_name(op), ": operand must be an NDArray or a number, got ",
             type_name(other));
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "convlab's compiled core: the NDArray class and its CPU/CUDA kernels";
  py::register_exception<convlab::TypeError>(m, "TypeError", PyExc_TypeError);
  py::register_exception<convlab::BufferError>(m, "BufferError", PyExc_BufferError);

  py::class_<NDArray> nd(m, "NDArray");
  nd.def_static("from_numpy", &from_numpy, py::arg("array"), py::arg("device") = "cpu")
      .def_static(
          "empty",
          [](const py::object& shape, const std::string& dtype, const std::string& device) {
            return NDArray::empty(to_shape(shape), parse_dtype(dtype), parse_device(device));
          },
          py::arg("shape"), py::arg("dtype") = "float32", py::arg("device") = "cpu")
      .def_static(
          "full",
          [](const py::object& shape, double value, const std::string& dtype, const std::string& device) {
            NDArray a = NDArray::empty(to_shape(shape), parse_dtype(dtype), parse_device(device));
            fill(a, value);
            return a;
          },
          py::arg("shape"), py::arg("value"), py::arg("dtype") = "float32", py::arg("device") = "cpu")
      .def("numpy", &to_numpy)
      .def_static("from_dlpack", &from_dlpack_capsule, py::arg("capsule"), py::arg("copy") = false,
                  "an NDArray viewing the memory of a DLPack capsule (a copy of it with copy=True); "
                  "convlab.from_dlpack takes any object with __dlpack__")
      .def("__dlpack__", &to_dlpack_capsule, py::kw_only(), py::arg("stream") = py::none(),
           py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(), py::arg("copy") = py::none())
      .def("__dlpack_device__", [](const NDArray& a) {
        DLDevice d = dlpack_device(a.device());
        return py::make_tuple(d.device_type, d.device_id);
      })
      .def_property_readonly("shape", [](const NDArray& a) { return py::tuple(py::cast(a.shape)); })
      .def_property_readonly("strides", [](const NDArray& a) { return py::tuple(py::cast(a.strides)); })
      .def_property_readonly("offset", [](const NDArray& a) { return a.offset; })
      .def_property_readonly("_version", [](const NDArray& a) { return a.storage ? a.storage->version : 0; },
                             "writes into this array's storage so far (shared by all its views)")
      .def_property_readonly("_storage_refs", [](const NDArray& a) { return a.storage.use_count(); },
                             "how many arrays (views, DLPack exports) hold this array's memory, itself included")
      .def_property_readonly("dtype", [](const NDArray& a) { return dtype_name(a.dtype); })
      .def_property_readonly("device", [](const NDArray& a) { return device_name(a.device()); })
      .def_property_readonly("size", &NDArray::size)
      .def_property_readonly("ndim", &NDArray::ndim)
      .def("__len__", [](const NDArray& a) {
        if (a.ndim() == 0) type_error("len() of a 0-d NDArray");
        return a.shape[0];
      })
      .def("__repr__", [](const NDArray& a) {
        return cat("NDArray(shape=", shape_str(a.shape), ", dtype=", dtype_name(a.dtype), ", device='",
                   device_name(a.device()), "')");
      })
      .def("is_contiguous", &NDArray::is_contiguous)
      .def("result_type", [](const NDArray& a, const py::object& other, const std::optional<std::string>& op) {
        if (!py::isinstance<NDArray>(other) && !scalar_kind(other))
          type_error("result_type: other must be an NDArray or a number, got ", type_name(other));
        if (!op) {
          if (py::isinstance<NDArray>(other)) return dtype_name(result_type(a, other.cast<const NDArray&>()));
          return dtype_name(result_type(a, *scalar_kind(other)));
        }
        const BinaryOp bop = parse_binary_op(*op);
        if (py::isinstance<NDArray>(other)) return dtype_name(binary_dtype(bop, a, other.cast<const NDArray&>()));
        return dtype_name(binary_dtype(bop, a, *scalar_kind(other)));
      }, py::arg("other"), py::arg("op") = py::none(),
      "PyTorch's promoted dtype of this array and other (an NDArray or a Python number); with op (a binary op's "
      "name, e.g. 'div') the dtype that op computes in, or the TypeError it raises")
      .def("compact", &NDArray::compact, nogil())
      .def("copy", &NDArray::copy, nogil())
      .def("astype", [](const NDArray& a, const std::string& dt) { return a.astype(parse_dtype(dt)); }, nogil())
      .def("to", [](const NDArray& a, const std::string& dev) { return a.to(parse_device(dev)); }, nogil())
      .def("shares_storage", [](const NDArray& a, const NDArray& b) { return a.storage == b.storage; })
      // views
      .def("view", [](const NDArray& a, const py::object& s) { return a.view(resolve_shape(a, to_shape(s))); })
      .def("reshape", [](const NDArray& a, const py::object& s) { return a.reshape(resolve_shape(a, to_shape(s))); })
      .def("permute", &NDArray::permute, py::arg("axes"))
      .def("transpose",
           [](const NDArray& a, int64_t d0, int64_t d1) {
             std::vector<int> axes(a.ndim());
             for (int i = 0; i < a.ndim(); ++i) axes[i] = i;
             std::swap(axes[normalize_axis(d0, a.ndim(), "transpose")], axes[normalize_axis(d1, a.ndim(), "transpose")]);
             return a.permute(axes);
           })
      .def("broadcast_to", [](const NDArray& a, const py::object& s) { return a.broadcast_to(to_shape(s)); })
      .def("flip", [](const NDArray& a, const py::object& axes) {
        std::vector<int> ax;
        for (int64_t v : to_axes(axes)) ax.push_back(static_cast<int>(v));
        if (axes.is_none()) for (int i = 0; i < a.ndim(); ++i) ax.push_back(i);
        return a.flip(ax);
      }, py::arg("axes") = py::none())
      .def("__getitem__", [](const NDArray& a, const py::object& key) { return a.index(to_index(a, key)); })
      .def("__setitem__",
           [](const NDArray& a, const py::object& key, const py::object& value) {
             NDArray dst = a.index(to_index(a, key));
             if (py::isinstance<NDArray>(value)) assign(dst, value.cast<const NDArray&>());
             else if (py::isinstance<py::float_>(value) || py::isinstance<py::int_>(value)) fill(dst, value.cast<double>());
             else type_error("setitem: value must be an NDArray or a number, got ",
                             type_name(value));
             ++a.storage->version;
           })
      // element-wise
      .def("__add__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::add, a, b, false); })
      .def("__radd__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::add, a, b, true); })
      .def("__sub__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::sub, a, b, false); })
      .def("__rsub__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::sub, a, b, true); })
      .def("__mul__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::mul, a, b, false); })
      .def("__rmul__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::mul, a, b, true); })
      .def("__truediv__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::div, a, b, false); })
      .def("__rtruediv__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::div, a, b, true); })
      .def("__pow__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::pow, a, b, false); })
      .def("__rpow__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::pow, a, b, true); })
      .def("maximum", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::maximum, a, b, false); })
      .def("minimum", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::minimum, a, b, false); })
      .def("__eq__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::eq, a, b, false); })
      .def("__ne__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::ne, a, b, false); })
      .def("__lt__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::lt, a, b, false); })
      .def("__le__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::le, a, b, false); })
      .def("__gt__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::gt, a, b, false); })
      .def("__ge__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::ge, a, b, false); })
      .def("__floordiv__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::floor_divide, a, b, false); })
      .def("__rfloordiv__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::floor_divide, a, b, true); })
      .def("__mod__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::remainder, a, b, false); })
      .def("__rmod__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::remainder, a, b, true); })
      .def("__and__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::bitwise_and, a, b, false); })
      .def("__rand__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::bitwise_and, a, b, true); })
      .def("__or__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::bitwise_or, a, b, false); })
      .def("__ror__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::bitwise_or, a, b, true); })
      .def("__xor__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::bitwise_xor, a, b, false); })
      .def("__rxor__", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::bitwise_xor, a, b, true); })
      .def("logical_and", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::logical_and, a, b, false); })
      .def("logical_or", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::logical_or, a, b, false); })
      .def("logical_xor", [](const NDArray& a, const py::object& b) { return binop(BinaryOp::logical_xor, a, b, false); })
      .def("__neg__", [](const NDArray& a) { return unary(UnaryOp::neg, a); }, nogil())
      .def("__invert__", [](const NDArray& a) { return unary(UnaryOp::bitwise_not, a); }, nogil())
      .def("logical_not", [](const NDArray& a) { return unary(UnaryOp::logical_not, a); }, nogil())
      .def("exp", [](const NDArray& a) { return unary(UnaryOp::exp, a); }, nogil())
      .def("log", [](const NDArray& a) { return unary(UnaryOp::log, a); }, nogil())
      .def("sqrt", [](const NDArray& a) { return unary(UnaryOp::sqrt, a); }, nogil())
      .def("tanh", [](const NDArray& a) { return unary(UnaryOp::tanh, a); }, nogil())
      .def("sigmoid", [](const NDArray& a) { return unary(UnaryOp::sigmoid, a); }, nogil())
      .def("relu", [](const NDArray& a) { return unary(UnaryOp::relu, a); }, nogil())
      .def("abs", [](const NDArray& a) { return unary(UnaryOp::abs, a); }, nogil())
      .def("sign", [](const NDArray& a) { return unary(UnaryOp::sign, a); }, nogil())
      .def("erf", [](const NDArray& a) { return unary(UnaryOp::erf, a); }, nogil())
      .def("floor", [](const NDArray& a) { return unary(UnaryOp::floor, a); }, nogil())
      .def("ceil", [](const NDArray& a) { return unary(UnaryOp::ceil, a); }, nogil())
      .def("round", [](const NDArray& a) { return unary(UnaryOp::round, a); }, nogil())
      // reductions
      .def("sum", [](const NDArray& a, const py::object& axes, bool keepdims) {
        std::vector<int64_t> ax = to_axes(axes);
        py::gil_scoped_release nogil_;
        return reduce(ReduceOp::sum, a, ax, keepdims);
      }, py::arg("axes") = py::none(), py::arg("keepdims") = false)
      .def("max", [](const NDArray& a, const py::object& axes, bool keepdims) {
        std::vector<int64_t> ax = to_axes(axes);
        py::gil_scoped_release nogil_;
        return reduce(ReduceOp::max, a, ax, keepdims);
      }, py::arg("axes") = py::none(), py::arg("keepdims") = false)
      .def("min", [](const NDArray& a, const py::object& axes, bool keepdims) {
        std::vector<int64_t> ax = to_axes(axes);
        py::gil_scoped_release nogil_;
        return reduce(ReduceOp::min, a, ax, keepdims);
      }, py::arg("axes") = py::none(), py::arg("keepdims") = false)
      .def("mean", [](const NDArray& a, const py::object& axes, bool keepdims) {
        std::vector<int64_t> ax = to_axes(axes);
        py::gil_scoped_release nogil_;
        return mean(a, ax, keepdims);
      }, py::arg("axes") = py::none(), py::arg("keepdims") = false)
      .def("argmax", [](const NDArray& a, std::optional<int64_t> axis, bool keepdims) {
        return arg_reduce(ReduceOp::max, a, axis, keepdims);
      }, py::arg("axis") = py::none(), py::arg("keepdims") = false, nogil())
      .def("argmin", [](const NDArray& a, std::optional<int64_t> axis, bool keepdims) {
        return arg_reduce(ReduceOp::min, a, axis, keepdims);
      }, py::arg("axis") = py::none(), py::arg("keepdims") = false, nogil())
      .def("matmul", &matmul, nogil())
      .def("__matmul__", &matmul, nogil())
      .def("pad", &pad, py::arg("pads"), py::arg("mode") = "constant", py::arg("value") = 0.0, nogil())
      // indexing (int64/int32 index arrays)
      .def("gather", &gather, py::arg("axis"), py::arg("index"), nogil())
      .def("index_select", &index_select, py::arg("axis"), py::arg("index"), nogil())
      .def("take", &take, py::arg("axis"), py::arg("index"), nogil())
      .def("put",
           [](const NDArray& a, int64_t axis, const NDArray& index, const NDArray& src, bool accumulate,
              bool unique_indices) {
             {
               py::gil_scoped_release nogil_;
               put(a, axis, index, src, accumulate, unique_indices);
             }
             ++a.storage->version;
           },
           py::arg("axis"), py::arg("index"), py::arg("src"), py::arg("accumulate") = false,
           py::arg("unique_indices") = false)
      .def("scatter_",
           [](const NDArray& a, int64_t axis, const NDArray& index, const NDArray& src, bool accumulate) {
             {
               py::gil_scoped_release nogil_;
               scatter(a, axis, index, src, accumulate);
             }
             ++a.storage->version;
           },
           py::arg("axis"), py::arg("index"), py::arg("src"), py::arg("accumulate") = false)
      .def("nonzero", &nonzero, nogil());
  // Comparison operators make NDArray unhashable, as NumPy arrays are.
  nd.attr("__hash__") = py::none();

  // Convolution and pooling: one list entry per spatial dim; conv padding as (lo, hi) pairs.
  auto conv_args = [](std::vector<int64_t> stride, Pads padding, std::vector<int64_t> dilation, int64_t groups,
                      std::vector<int64_t> output_padding = {}) {
    ConvArgs a;
    a.stride = std::move(stride), a.padding = std::move(padding), a.dilation = std::move(dilation);
    a.groups = groups, a.output_padding = std::move(output_padding);
    return a;
  };
  m.def("conv_forward",
        [=](const NDArray& x, const NDArray& w, std::optional<NDArray> bias, std::vector<int64_t> stride,
            Pads padding, std::vector<int64_t> dilation, int64_t groups) {
          return conv_forward(x, w, bias ? &*bias : nullptr, conv_args(stride, padding, dilation, groups));
        },
        py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), nogil());
  m.def("conv_backward_input",
        [=](const NDArray& gy, const NDArray& w, std::vector<int64_t> input_size, std::vector<int64_t> stride,
            Pads padding, std::vector<int64_t> dilation, int64_t groups) {
          return conv_backward_input(gy, w, input_size, conv_args(stride, padding, dilation, groups));
        },
        py::arg("gy"), py::arg("w"), py::arg("input_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), nogil());
  m.def("conv_backward_weight",
        [=](const NDArray& x, const NDArray& gy, std::vector<int64_t> kernel_size, std::vector<int64_t> stride,
            Pads padding, std::vector<int64_t> dilation, int64_t groups) {
          return conv_backward_weight(x, gy, kernel_size, conv_args(stride, padding, dilation, groups));
        },
        py::arg("x"), py::arg("gy"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), nogil());
  m.def("conv_transpose_forward",
        [=](const NDArray& x, const NDArray& w, std::optional<NDArray> bias, std::vector<int64_t> stride,
            Pads padding, std::vector<int64_t> output_padding, std::vector<int64_t> dilation, int64_t groups) {
          return conv_transpose_forward(x, w, bias ? &*bias : nullptr,
                                        conv_args(stride, padding, dilation, groups, output_padding));
        },
        py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("stride"), py::arg("padding"),
        py::arg("output_padding"), py::arg("dilation"), py::arg("groups"), nogil());
  m.def("unfold",
        [=](const NDArray& x, std::vector<int64_t> kernel_size, std::vector<int64_t> dilation, Pads padding,
            std::vector<int64_t> stride) {
          return unfold(x, kernel_size, conv_args(stride, padding, dilation, 1));
        },
        py::arg("x"), py::arg("kernel_size"), py::arg("dilation"), py::arg("padding"), py::arg("stride"), nogil());
  m.def("fold",
        [=](const NDArray& cols, std::vector<int64_t> output_size, std::vector<int64_t> kernel_size,
            std::vector<int64_t> dilation, Pads padding, std::vector<int64_t> stride) {
          return fold(cols, output_size, kernel_size, conv_args(stride, padding, dilation, 1));
        },
        py::arg("cols"), py::arg("output_size"), py::arg("kernel_size"), py::arg("dilation"), py::arg("padding"),
        py::arg("stride"), nogil());
  // One axis of the geometry (params.cpp's formulas), so Python never writes them again.
  m.def("conv_out_len", &conv_out_len, py::arg("in_size"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("pad_lo"), py::arg("pad_hi"), py::arg("dilation"));
  m.def("conv_transpose_out_len", &conv_transpose_out_len, py::arg("in_size"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"), py::arg("dilation"), py::arg("output_padding"));
  m.def("pool_out_len", &pool_out_len, py::arg("in_size"), py::arg("kernel_size"), py::arg("stride"), py::arg("pad"),
        py::arg("dilation"), py::arg("ceil_mode"));
  m.def("check_conv_layer",
        [=](const std::string& op, int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel_size,
            std::vector<int64_t> stride, Pads padding, std::vector<int64_t> output_padding,
            std::vector<int64_t> dilation, int64_t groups, bool transposed) {
          check_conv_layer(op.c_str(), in_channels, out_channels, kernel_size,
                           conv_args(stride, padding, dilation, groups, output_padding), transposed);
        },
        py::arg("op"), py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("output_padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("transposed"));

  // Tiled convolution; unshared selects the locally connected layer (tile == output size, checked).
  m.def("tiled_conv_forward",
        [=](const NDArray& x, const NDArray& w, std::optional<NDArray> bias, std::vector<int64_t> stride,
            Pads padding, std::vector<int64_t> dilation, bool unshared) {
          return tiled_conv_forward(x, w, bias ? &*bias : nullptr, conv_args(stride, padding, dilation, 1),
                                    unshared);
        },
        py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("unshared"), nogil());
  m.def("tiled_conv_backward_input",
        [=](const NDArray& gy, const NDArray& w, std::vector<int64_t> input_size, std::vector<int64_t> stride,
            Pads padding, std::vector<int64_t> dilation, bool unshared) {
          return tiled_conv_backward_input(gy, w, input_size, conv_args(stride, padding, dilation, 1), unshared);
        },
        py::arg("gy"), py::arg("w"), py::arg("input_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("unshared"), nogil());
  m.def("tiled_conv_backward_weight",
        [=](const NDArray& x, const NDArray& gy, Shape weight_shape, std::vector<int64_t> stride, Pads padding,
            std::vector<int64_t> dilation, bool unshared) {
          return tiled_conv_backward_weight(x, gy, weight_shape, conv_args(stride, padding, dilation, 1), unshared);
        },
        py::arg("x"), py::arg("gy"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("unshared"), nogil());

  auto pool_args = [](std::vector<int64_t> kernel, std::vector<int64_t> stride, std::vector<int64_t> padding,
                      std::vector<int64_t> dilation, bool ceil_mode, bool count_include_pad) {
    PoolArgs a;
    a.kernel = std::move(kernel), a.stride = std::move(stride), a.padding = std::move(padding);
    a.dilation = std::move(dilation), a.ceil_mode = ceil_mode, a.count_include_pad = count_include_pad;
    return a;
  };
  // With return_indices, (y, indices): each window's argmax, what backward_indices routes gy through.
  m.def("max_pool_forward",
        [=](const NDArray& x, std::vector<int64_t> k, std::vector<int64_t> s, std::vector<int64_t> p,
            std::vector<int64_t> d, bool ceil_mode, bool return_indices) -> py::object {
          NDArray y, indices;
          {
            py::gil_scoped_release nogil_;
            y = max_pool_forward(x, pool_args(k, s, p, d, ceil_mode, true), return_indices ? &indices : nullptr);
          }
          if (return_indices) return py::make_tuple(y, indices);
          return py::cast(y);
        },
        py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("ceil_mode"), py::arg("return_indices") = false);
  m.def("max_pool_backward_indices",
        [=](const NDArray& indices, const NDArray& gy, std::vector<int64_t> input_size, std::vector<int64_t> k,
            std::vector<int64_t> s, std::vector<int64_t> p, std::vector<int64_t> d, bool ceil_mode) {
          return max_pool_backward_indices(indices, gy, input_size, pool_args(k, s, p, d, ceil_mode, true));
        },
        py::arg("indices"), py::arg("gy"), py::arg("input_size"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"), nogil());
  m.def("max_pool_backward",
        [=](const NDArray& x, const NDArray& gy, std::vector<int64_t> k, std::vector<int64_t> s,
            std::vector<int64_t> p, std::vector<int64_t> d, bool ceil_mode) {
          return max_pool_backward(x, gy, pool_args(k, s, p, d, ceil_mode, true));
        },
        py::arg("x"), py::arg("gy"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("ceil_mode"), nogil());
  m.def("avg_pool_forward",
        [=](const NDArray& x, std::vector<int64_t> k, std::vector<int64_t> s, std::vector<int64_t> p,
            bool ceil_mode, bool count_include_pad) {
          return avg_pool_forward(x, pool_args(k, s, p, std::vector<int64_t>(k.size(), 1), ceil_mode,
                                               count_include_pad));
        },
        py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"),
        py::arg("count_include_pad"), nogil());
  m.def("avg_pool_backward",
        [=](const NDArray& gy, std::vector<int64_t> input_size, std::vector<int64_t> k, std::vector<int64_t> s,
            std::vector<int64_t> p, bool ceil_mode, bool count_include_pad) {
          return avg_pool_backward(gy, input_size, pool_args(k, s, p, std::vector<int64_t>(k.size(), 1),
                                                             ceil_mode, count_include_pad));
        },
        py::arg("gy"), py::arg("input_size"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode"), py::arg("count_include_pad"), nogil());
  m.def("adaptive_avg_pool_forward", &adaptive_avg_pool_forward, py::arg("x"), py::arg("output_size"), nogil());
  m.def("adaptive_avg_pool_backward", &adaptive_avg_pool_backward, py::arg("gy"), py::arg("input_size"), nogil());
  m.def("batch_norm_forward",
        [](const NDArray& x, std::optional<NDArray> running_mean, std::optional<NDArray> running_var,
           std::optional<NDArray> weight, std::optional<NDArray> bias, bool training, double eps) {
          auto p = [](std::optional<NDArray>& a) { return a ? &*a : nullptr; };
          return batch_norm_forward(x, p(running_mean), p(running_var), p(weight), p(bias), training, eps);
        },
        py::arg("x"), py::arg("running_mean"), py::arg("running_var"), py::arg("weight"), py::arg("bias"),
        py::arg("training"), py::arg("eps"), nogil());
  m.def("batch_norm_backward",
        [](const NDArray& x, const NDArray& gy, const NDArray& mean, const NDArray& var, std::optional<NDArray> weight,
           bool training, double eps) {
          return batch_norm_backward(x, gy, mean, var, weight ? &*weight : nullptr, training, eps);
        },
        py::arg("x"), py::arg("gy"), py::arg("mean"), py::arg("var"), py::arg("weight"), py::arg("training"),
        py::arg("eps"), nogil());

  // convlab._C.reference: the conv and pool ops above with their arguments, run on the definitions in
  // common/reference.h instead of the fast kernels (CPU arrays only). The tests' first oracle.
  py::module_ ref = m.def_submodule("reference", "conv and pool passes computed by definition (the spec)");
  for (const char* name : {"conv_forward", "conv_backward_input", "conv_backward_weight", "conv_transpose_forward",
                           "max_pool_forward", "max_pool_backward", "max_pool_backward_indices",
                           "avg_pool_forward", "avg_pool_backward",
                           "adaptive_avg_pool_forward", "adaptive_avg_pool_backward"}) {
    py::object fast = m.attr(name);
    ref.def(name, [fast](py::args args, py::kwargs kwargs) {
      UseReference scope;  // the fast op's GIL release keeps this thread, so its frontend sees the scope
      return fast(*args, **kwargs);
    }, py::doc(("convlab._C." + std::string(name) + " by definition").c_str()));
  }

  // Element-wise clamp in one pass (ReLU6, hardtanh, Tensor.clamp with number bounds) and its gradient.
  m.def("clamp", &clamp, py::arg("input"), py::arg("lo") = std::nullopt, py::arg("hi") = std::nullopt, nogil());
  m.def("clamp_backward", &clamp_backward, py::arg("grad_output"), py::arg("output"), py::arg("lo"),
        py::arg("hi") = std::nullopt, nogil());
  // Optimizer steps: p and the state arrays updated in place (their versions move, as setitem's do).
  m.def("sgd_step_",
        [](const NDArray& p, const NDArray& g, std::optional<NDArray> buf, double lr, double weight_decay,
           double momentum, double dampening, bool nesterov, bool maximize, bool first_step) {
          {
            py::gil_scoped_release nogil_;
            sgd_step(p, g, buf ? &*buf : nullptr,
                     SgdOptions{lr, weight_decay, momentum, dampening, nesterov, maximize, first_step});
          }
          ++p.storage->version;
          if (buf) ++buf->storage->version;
        },
        py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"), py::kw_only(), py::arg("lr"),
        py::arg("weight_decay") = 0.0, py::arg("momentum") = 0.0, py::arg("dampening") = 0.0,
        py::arg("nesterov") = false, py::arg("maximize") = false, py::arg("first_step") = false);
  m.def("adam_step_",
        [](const NDArray& p, const NDArray& g, const NDArray& m, const NDArray& v, std::optional<NDArray> v_max,
           int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay, bool maximize,
           bool decoupled_weight_decay) {
          {
            py::gil_scoped_release nogil_;
            adam_step(p, g, m, v, v_max ? &*v_max : nullptr,
                      AdamOptions{lr, beta1, beta2, eps, weight_decay, step, maximize, decoupled_weight_decay});
          }
          for (const NDArray* a : {&p, &m, &v}) ++a->storage->version;
          if (v_max) ++v_max->storage->version;
        },
        py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq"),
        py::kw_only(), py::arg("step"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("weight_decay") = 0.0, py::arg("maximize") = false, py::arg("decoupled_weight_decay") = false);
  m.def("where", &where, py::arg("cond"), py::arg("a"), py::arg("b"), nogil());
  // Indexing: the adjoints of gather and index_select build a new array of `shape`.
  m.def("scatter_add", &scatter_add, py::arg("shape"), py::arg("axis"), py::arg("index"), py::arg("src"), nogil());
  m.def("index_add", &index_add, py::arg("shape"), py::arg("axis"), py::arg("index"), py::arg("src"), nogil());
  m.def("ravel_index", &ravel_index, py::arg("indices"), py::arg("sizes"), py::arg("first_axis") = 0, nogil());

  // Runtime.
  m.def("set_num_threads", [](int n) {
    if (n < 1) value_error("set_num_threads: n must be >= 1, got ", n);
    omp_set_num_threads(n);
  });
  m.def("get_num_threads", []() { return omp_get_max_threads(); });
  m.def("cuda_compiled", &cuda_compiled);
  m.def("fma_peak", [](const std::string& dtype, int threads, int64_t iters) {
    cpu::FmaPeak r;
    {
      py::gil_scoped_release nogil;
      r = cpu::fma_peak(dtype, threads, iters);
    }
    return py::dict(py::arg("flops") = r.flops, py::arg("seconds") = r.seconds, py::arg("checksum") = r.checksum,
                    py::arg("isa") = r.isa, py::arg("vector_bits") = r.vector_bits);
  }, py::arg("dtype"), py::arg("threads"), py::arg("iters"));
  m.def("set_deterministic", [](bool on) { runtime_flags().deterministic = on; });
  m.def("get_deterministic", []() { return runtime_flags().deterministic; });
  m.def("set_allow_tf32", [](bool on) { runtime_flags().allow_tf32 = on; });
  m.def("get_allow_tf32", []() { return runtime_flags().allow_tf32; });
  m.def("set_default_float", [](const std::string& dtype) {
    DType d = parse_dtype(dtype);
    if (!is_floating(d)) type_error("set_default_float: dtype must be float32 or float64, got ", dtype);
    runtime_flags().default_float = d;
  });
#ifdef CONVLAB_WITH_CUDA
  m.def("cuda_device_count", &cuda_device_count);
  m.def("cuda_synchronize", &cuda_synchronize, nogil());
  m.def("cuda_empty_cache", &cuda_empty_cache, nogil());
  m.def("cuda_memory_stats", []() {
    CudaMemoryStats s = cuda_memory_stats();
    return py::dict(py::arg("allocated_bytes") = s.allocated_bytes, py::arg("cached_bytes") = s.cached_bytes,
                    py::arg("device_mallocs") = s.device_mallocs);
  });
#else
  m.def("cuda_device_count", []() { return 0; });
  m.def("cuda_synchronize", []() {});
  m.def("cuda_empty_cache", []() {});
  m.def("cuda_memory_stats", []() {
    return py::dict(py::arg("allocated_bytes") = 0, py::arg("cached_bytes") = 0, py::arg("device_mallocs") = 0);
  });
#endif
}
