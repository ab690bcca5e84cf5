"""Tensor: an NDArray plus the autograd graph that made it.

A Tensor produced by a Function remembers that Function (`_ctx`); `backward()` hands the graph to the engine
in autograd.py. All math lives in autograd.py as NDArray calls. Imports run one way: tensor -> autograd.
"""
import functools
import math
import numbers
from collections import namedtuple

import numpy as np

from . import _C
from . import autograd
from . import dtypes
from . import indexing
from .autograd import is_grad_enabled, run_backward
from .dtypes import as_dtype as canonical_dtype

NDArray = _C.NDArray

_rng = np.random.default_rng()

MaxResult = namedtuple("MaxResult", ["values", "indices"])
MinResult = namedtuple("MinResult", ["values", "indices"])
SortResult = namedtuple("SortResult", ["values", "indices"])


class Size(tuple):
    """A tensor's shape, as torch.Size: a tuple of ints that also knows its element count."""

    def numel(self):
        return math.prod(self)

    def __getitem__(self, item):
        part = super().__getitem__(item)
        return Size(part) if isinstance(item, slice) else part  # x.size()[1:].numel()

    def __repr__(self):
        return f"convlab.Size({list(self)})"


class Device(str):
    """convlab.device: a device name ('cpu', 'cuda', 'cuda:0') with .type and .index, as torch.device. It is a
    str, so it goes wherever a device string goes and compares equal to one."""

    def __new__(cls, type, index=None):
        name = str(type) if index is None else f"{type}:{index}"
        base, colon, number = name.partition(":")
        if base not in ("cpu", "cuda") or (colon and not number.isdigit()):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {name!r}")
        return super().__new__(cls, name)

    @property
    def type(self):
        return self.partition(":")[0]

    @property
    def index(self):
        number = self.partition(":")[2]
        return int(number) if number else None

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"


_device_named = functools.cache(Device)  # Tensor.device runs in every op's device check: one object per name


class IndexOutOfRangeError(IndexError, ValueError):
    """An index past the end of an axis: an IndexError as PyTorch (and Python's sequence protocol) raise,
    and a ValueError as convlab's error contract asks for a bad argument."""


def manual_seed(seed):
    """Seeds the generator behind randn/rand/dropout/initialisation, as torch.manual_seed does."""
    global _rng
    _rng = np.random.default_rng(seed)


def generator():
    return _rng


def parse_to_args(args, device, dtype):
    """The (device, dtype) a to(...) call asks for, from positional strings, a Tensor to match, and keywords;
    None for each one it leaves unchanged."""
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif isinstance(arg, str) and arg.split(":")[0] in ("cpu", "cuda"):
            device = arg
        else:
            dtype = arg
    return (None if device is None else canonical_device(device),
            None if dtype is None else canonical_dtype(dtype))


def canonical_device(device):
    """'cpu'/'cuda' (a 'cuda:0' style index is accepted and dropped); None means convlab.default_device()."""
    from . import cuda, default_device  # the package's own; it imports this module first

    if device is None:
        return default_device()
    base = str(device).split(":")[0]
    if base not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if base == "cuda" and not cuda.is_available():
        raise RuntimeError("device 'cuda' requested but convlab.cuda.is_available() is False")
    return base


def _ndarray_from(data, dtype, device):
    """An NDArray holding `data` (NDArray, Tensor, NumPy array, nested lists or a number)."""
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, NDArray):
        dtype = canonical_dtype(dtype or data.dtype)
        device = canonical_device(device or data.device)
        return data.to(device).astype(dtype) if (data.device, data.dtype) != (device, dtype) else data.copy()
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"tensor: data must be numbers, got an array of {arr.dtype}")
    if dtype is None:  # as torch.tensor: NumPy arrays keep a dtype convlab has; bools, ints, default floats
        from_numpy = isinstance(data, (np.ndarray, np.generic)) and arr.dtype.name in dtypes.NAMES
        dtype = arr.dtype.name if from_numpy else {"b": "bool", "i": "int64", "u": "int64"}.get(arr.dtype.kind)
    return NDArray.from_numpy(arr.astype(canonical_dtype(dtype)), canonical_device(device))


class Tensor:
    __array_priority__ = 1000  # NumPy scalars and arrays on the left defer to Tensor's reflected operators
    __hash__ = object.__hash__  # == is element-wise, identity stays the hash
    _base = None  # the tensor whose storage this one views (set by the view methods); None for a base
    _post_accumulate_grad_hooks = {}  # id -> hook; a leaf gets its own dict when one is registered

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        if not (isinstance(data, NDArray) and dtype is None and device is None):
            data = _ndarray_from(data, dtype, device)
        self._data = data  # an NDArray passed alone is shared, not copied: ops and views build on that
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._ctx = None  # the Function that produced this tensor; None for leaves

    # ---- metadata ----
    @property
    def shape(self):
        return Size(self._data.shape)

    @property
    def dtype(self):
        return canonical_dtype(self._data.dtype)

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):  # every op's result passes here: the dtype is read by name, not as a dtype
        if value and self._data.dtype not in ("float32", "float64"):
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, got {self.dtype}")
        self._requires_grad = bool(value)

    def is_floating_point(self):
        return self.dtype.is_floating_point

    @property
    def device(self):
        return _device_named(self._data.device)

    @property
    def is_cuda(self):
        return self.device == "cuda"

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def data(self):
        return Tensor(self._data)

    @data.setter
    def data(self, value):
        self._data = value._data if isinstance(value, Tensor) else value

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[_axis(dim, self.ndim)]

    def dim(self):
        return self.ndim

    def numel(self):
        return self._data.size

    nelement = numel

    def element_size(self):
        """Bytes per element."""
        return np.dtype(self._data.dtype).itemsize

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return _tensor_repr(self)

    def __format__(self, spec):
        """f"{loss:.4f}" formats a 0-d tensor as its number, as in PyTorch."""
        return format(self.item(), spec) if self.ndim == 0 else object.__format__(self, spec)

    def __deepcopy__(self, memo):
        """A leaf with its own copy of the data (and grad); what copy.deepcopy(model) needs."""
        if not self.is_leaf:
            raise RuntimeError("deepcopy: only leaf tensors (made by the user, not by an op) can be copied")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.pop("_post_accumulate_grad_hooks", None)  # hooks stay with the tensor they were made for
        new._data = self._data.copy()
        new.grad = None if self.grad is None else Tensor(self.grad._data.copy())
        memo[id(self)] = new
        return new

    # ---- conversion ----
    def numpy(self):
        return self._data.numpy()

    def __array__(self, dtype=None, copy=None):
        """np.asarray(t): a CPU tensor's memory shared through DLPack (as PyTorch shares it); a copy where one
        is needed (a CUDA tensor, another dtype) or asked for (copy=True). copy=False (NumPy 2: share or
        fail) raises ValueError where a copy would be needed."""
        needs_copy = self.device != "cpu" or (dtype is not None and np.dtype(dtype) != np.dtype(self._data.dtype))
        if needs_copy and copy is False:
            raise ValueError(f"__array__: a {self.device} {self.dtype} tensor cannot be shared with NumPy as "
                             f"{np.dtype(dtype or self._data.dtype)} without a copy, which copy=False forbids")
        if needs_copy or copy:
            arr = self.numpy()
            return arr if dtype is None else arr.astype(dtype, copy=False)
        return np.from_dlpack(self._data)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """DLPack export (np.from_dlpack, torch.from_dlpack, jax.dlpack, cupy): a view of this tensor's
        memory, kept alive while the consumer holds it; a copy only where dl_device or copy=True asks."""
        if self.requires_grad:
            raise RuntimeError("__dlpack__: cannot export a tensor that requires grad; use tensor.detach()")
        return self._data.__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)

    def __dlpack_device__(self):
        """(DLPack device type, index): (1, 0) for the CPU, (2, 0) for CUDA."""
        return self._data.__dlpack_device__()

    def item(self):
        """The one element as a Python number of the matching kind (float, int or bool)."""
        if self._data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a Python number, got shape {self.shape}")
        return self.numpy().reshape(-1)[0].item()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        """A one-element integer tensor where Python wants an index (classes[label], range(n))."""
        if self.dtype.is_floating_point or self._data.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an index, got a "
                            f"{self.dtype} tensor of shape {tuple(self.shape)}")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def tolist(self):
        return self.numpy().tolist()

    def to(self, *args, device=None, dtype=None, non_blocking=False, copy=False):
        """to(device), to(dtype), to(device, dtype), to(other_tensor) or keywords; differentiable; self when
        nothing changes unless copy=True. non_blocking is accepted for PyTorch code: copies are synchronous."""
        device, dtype = parse_to_args(args, device, dtype)
        device, dtype = device or self.device, dtype or self.dtype
        if (device, dtype) == (self.device, self.dtype):
            return self.clone() if copy else self
        return autograd.To.apply(self, device=device, dtype=dtype)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype="float32")

    def double(self):
        return self.to(dtype="float64")

    def long(self):
        return self.to(dtype="int64")

    def int(self):
        return self.to(dtype="int32")

    def bool(self):
        return self.to(dtype="bool")

    def type(self, dtype=None):
        """type(dtype) converts as to(dtype); type() names the dtype, as a string ('convlab.float32')."""
        return str(self.dtype) if dtype is None else self.to(dtype=dtype)

    def detach(self):
        return Tensor(self._data)

    def clone(self):
        return autograd.Copy.apply(self)

    def type_as(self, other):
        return self.to(dtype=other.dtype)

    # new_zeros(size) & co.: a new tensor with self's dtype and device unless they are given
    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return zeros(*size, requires_grad=requires_grad, **_like(self, dtype, device))

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return ones(*size, requires_grad=requires_grad, **_like(self, dtype, device))

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return empty(*size, requires_grad=requires_grad, **_like(self, dtype, device))

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
        return full(size, fill_value, requires_grad=requires_grad, **_like(self, dtype, device))

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        return tensor(data, requires_grad=requires_grad, **_like(self, dtype, device))

    def register_post_accumulate_grad_hook(self, hook):
        """hook(tensor) runs each time backward has accumulated this leaf's .grad (PyTorch's name): what lets
        DistributedDataParallel average a bucket of gradients while the rest of backward runs. Returns a
        handle whose remove() unregisters it."""
        from .nn.module import RemovableHandle
        if not self.is_leaf:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate .grad; "
                               "this tensor was made by an op")
        if "_post_accumulate_grad_hooks" not in self.__dict__:
            self._post_accumulate_grad_hooks = {}
        return RemovableHandle(self._post_accumulate_grad_hooks, hook)

    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_: only a leaf tensor's requires_grad can be switched off")
        self.requires_grad = bool(requires_grad)
        return self

    # ---- autograd ----
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulates d(self)/d(leaf) into every leaf's .grad. The graph is always kept (retain_graph is
        accepted and needs no action); create_graph (higher-order gradients) and inputs are not supported."""
        if create_graph or inputs is not None:
            raise ValueError("backward: create_graph=True and inputs= are not supported (first-order gradients "
                             "into every leaf only)")
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph "
                               "(no input had requires_grad=True, or it was made under no_grad())")
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(f"backward: gradient can be implicitly created only for a one-element "
                                   f"output; pass gradient= for this tensor of shape {self.shape}")
            grad = NDArray.full(self.shape, 1.0, self.dtype, self.device)
        else:
            grad = _ndarray_from(gradient, self.dtype, self.device)
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward: gradient has shape {tuple(grad.shape)} but the tensor has shape "
                                 f"{self.shape}")
        run_backward(self, grad)

    # ---- operators ----
    def _operand(self, other, op=None):
        """other as a Tensor on self's device (or a Python number), and both converted (differentiably) to the
        dtype PyTorch's promotion gives (NDArray.result_type), or that the NDArray op `op` computes in (true
        division of integers: float32; PyTorch's refusals raise). A number or a 0-d tensor beside a tensor
        with dimensions only raises the category: float32 x * float64 0-d loss stays float32, int64 + 1.5 is
        float32 and int32 + 7 stays int32."""
        if isinstance(other, numbers.Number) and not isinstance(other, complex):
            other = other.item() if isinstance(other, np.generic) else other
            other = other if isinstance(other, (int, float)) else float(other)  # bool is an int
            return _cast(self, self._data.result_type(other, op)), other
        if not isinstance(other, Tensor):
            other = Tensor(other, dtype=self.dtype, device=self.device)
        dtype = self._data.result_type(other._data, op)
        return _cast(self, dtype), _cast(other, dtype)

    def _binary(self, fn, other, reflected=False):
        a, b = self._operand(other, fn.binary_op)
        return fn.apply(b, a) if reflected else fn.apply(a, b)

    def _compare(self, other, op):
        a, b = self._operand(other)
        if isinstance(b, Tensor):
            autograd.check_same_device(a, b)
        return Tensor(op(a._data, b._data if isinstance(b, Tensor) else b))

    def __add__(self, other):
        return self._binary(autograd.Add, other)

    def __radd__(self, other):
        return self._binary(autograd.Add, other, reflected=True)

    def __sub__(self, other):
        return self._binary(autograd.Sub, other)

    def __rsub__(self, other):
        return self._binary(autograd.Sub, other, reflected=True)

    def __mul__(self, other):
        return self._binary(autograd.Mul, other)

    def __rmul__(self, other):
        return self._binary(autograd.Mul, other, reflected=True)

    def __truediv__(self, other):
        return self._binary(autograd.Div, other)

    def __rtruediv__(self, other):
        return self._binary(autograd.Div, other, reflected=True)

    def __pow__(self, other):
        return self._binary(autograd.Pow, other)

    def __rpow__(self, other):
        return self._binary(autograd.Pow, other, reflected=True)

    def __matmul__(self, other):
        a, b = self._operand(other)
        return matmul(a, b)

    def __rmatmul__(self, other):
        a, b = self._operand(other)
        return matmul(b, a)

    def _check_inplace(self, other, op="x[index] = value"):
        """x[i] = v and x.add_(y) cannot take part in autograd: under grad mode they are refused when either
        side requires grad, instead of silently cutting the graph."""
        if is_grad_enabled() and (self.requires_grad or getattr(other, "requires_grad", False)):
            raise RuntimeError(f"{op} on a tensor that requires grad, or with a value that does, is not "
                               f"supported: build the tensor out of place, or write under convlab.no_grad()")

    def _inplace(self, fn, other):
        """x += y and friends. Outside autograd the result is written into x's storage, so views of x and
        state_dict() entries see it, as in PyTorch (this is what makes `p -= lr * p.grad` under no_grad()
        train). Where autograd is involved (`out += identity` in a residual block, `total += loss`) the
        result is a new tensor that Python binds to the name, so the graph stays correct; views of the old
        x do not see it. A leaf that requires grad is refused, as in PyTorch."""
        involved = is_grad_enabled() and (self.requires_grad or getattr(other, "requires_grad", False))
        if involved and self.is_leaf and self.requires_grad:
            raise RuntimeError("a leaf tensor that requires grad cannot be updated in place (+=, -=, *=, /=) "
                               "while grad mode is on; update it under convlab.no_grad()")
        result = self._binary(fn, other)  # records a graph only when autograd is involved
        if result.shape != self.shape:
            raise ValueError(f"in-place operation: the result has shape {result.shape} but the tensor it is "
                             f"written into has shape {self.shape}")
        if involved:
            return result.to(dtype=self.dtype)
        write_(self, result._data)
        return self

    def zero_(self):
        """Fills with zeros in place (the w.grad.zero_() of hand-written PyTorch loops)."""
        self[...] = 0.0
        return self

    def _assign_(self, op, compute, *operands):
        """x takes the value compute(x) in place: the x.add_(y) family and x[i] = v. Outside autograd the
        value is written into x's storage, so views of x and state_dict() entries see it. Where autograd is
        involved (`Y[i, j] = (X * K).sum()`) x takes the result's storage and place in the graph, its old
        self living on as the result's input, as PyTorch rebases a tensor on an in-place op; that is refused
        on a view (its base would not see the change) and, as in PyTorch, on a leaf that requires grad."""
        if not _in_graph(self, *operands):
            value = compute(self)
            _check_fits(op, value, self)
            self[...] = value
            return self
        if self.is_leaf and self.requires_grad:
            raise RuntimeError(f"{op}: a leaf tensor that requires grad cannot be updated in place while grad mode "
                               f"is on; update it under convlab.no_grad()")
        if self._base is not None:
            raise RuntimeError(f"{op}: an in-place update of a view that takes part in autograd is not supported "
                               f"(its base would not see it); index the base instead, e.g. Y[i, j] = v, not "
                               f"Y[i][j] = v")
        old = object.__new__(type(self))
        old.__dict__.update(self.__dict__)
        value = compute(old).to(dtype=self.dtype)
        _check_fits(op, value, self)
        if value.shape != self.shape:
            value = value.expand(self.shape).contiguous()
        self._data, self._ctx, self.requires_grad = value._data, value._ctx, value.requires_grad
        return self

    def fill_(self, value):
        return self._assign_("fill_", lambda x: value.expand(x.shape) if isinstance(value, Tensor) else
                             full_like(x, value), value)

    def copy_(self, src, non_blocking=False):
        """src's values (broadcast, cast to self's dtype, moved to self's device) written into self."""
        if not isinstance(src, Tensor):
            raise TypeError(f"copy_: src must be a Tensor, got {type(src).__name__}")
        return self._assign_("copy_", lambda x: src.to(device=x.device).clone(), src)

    def add_(self, other, *, alpha=1):
        return self._assign_("add_", lambda x: x.add(other, alpha=alpha), other)

    def sub_(self, other, *, alpha=1):
        return self._assign_("sub_", lambda x: x.sub(other, alpha=alpha), other)

    def mul_(self, other):
        return self._assign_("mul_", lambda x: x * other, other)

    def div_(self, other):
        return self._assign_("div_", lambda x: x / other, other)

    def clamp_(self, min=None, max=None):
        return self._assign_("clamp_", lambda x: x.clamp(min, max), min, max)

    clip_ = clamp_

    def relu_(self):
        return self._assign_("relu_", lambda x: x.relu())

    def sigmoid_(self):
        return self._assign_("sigmoid_", lambda x: x.sigmoid())

    def tanh_(self):
        return self._assign_("tanh_", lambda x: x.tanh())

    def uniform_(self, a=0.0, b=1.0):
        """Samples of U(a, b) written in place (nn.init's and hand-written initialisation's tool)."""
        return self._assign_("uniform_", lambda x: tensor(_rng.uniform(a, b, x.shape), x.dtype, x.device))

    def normal_(self, mean=0.0, std=1.0):
        return self._assign_("normal_", lambda x: tensor(_rng.normal(mean, std, x.shape), x.dtype, x.device))

    def __iadd__(self, other):
        return self._inplace(autograd.Add, other)

    def __isub__(self, other):
        return self._inplace(autograd.Sub, other)

    def __imul__(self, other):
        return self._inplace(autograd.Mul, other)

    def __itruediv__(self, other):
        return self._inplace(autograd.Div, other)

    def __neg__(self):
        return autograd.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self.abs()

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne

    def logical_and(self, other):
        return self._compare(other, lambda a, b: a.logical_and(b))

    def logical_or(self, other):
        return self._compare(other, lambda a, b: a.logical_or(b))

    def logical_xor(self, other):
        return self._compare(other, lambda a, b: a.logical_xor(b))

    def logical_not(self):
        return Tensor(self._data.logical_not())

    # Bitwise ops (integers and bools) and floor division are not differentiable; remainder is.
    def __and__(self, other):
        return self._compare(other, lambda a, b: a & b)

    def __or__(self, other):
        return self._compare(other, lambda a, b: a | b)

    def __xor__(self, other):
        return self._compare(other, lambda a, b: a ^ b)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__
    bitwise_and, bitwise_or, bitwise_xor = __and__, __or__, __xor__

    def __invert__(self):
        return Tensor(~self._data)

    bitwise_not = __invert__

    def __floordiv__(self, other):
        return self._binary(autograd.FloorDivide, other)

    def __rfloordiv__(self, other):
        return self._binary(autograd.FloorDivide, other, reflected=True)

    def __mod__(self, other):
        return self._binary(autograd.Remainder, other)

    def __rmod__(self, other):
        return self._binary(autograd.Remainder, other, reflected=True)

    floor_divide, remainder = __floordiv__, __mod__

    # the operators by name, as x.add(y, alpha=2) and torch.add(x, y) write them
    def add(self, other, *, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    def div(self, other, *, rounding_mode=None):
        """self / other, or rounded down with rounding_mode='floor' (floor_divide)."""
        if rounding_mode not in (None, "floor"):
            raise ValueError(f"div: rounding_mode must be None or 'floor' ('trunc' is not supported), got "
                             f"{rounding_mode!r}")
        return self / other if rounding_mode is None else self // other

    subtract, mul, multiply, divide, true_divide = sub, __mul__, __mul__, div, __truediv__

    # ---- element-wise functions ----
    def exp(self):
        return autograd.Exp.apply(self)

    def log(self):
        return autograd.Log.apply(self)

    def sqrt(self):
        return autograd.Sqrt.apply(self)

    def tanh(self):
        return autograd.Tanh.apply(self)

    def sigmoid(self):
        return autograd.Sigmoid.apply(self)

    def relu(self):
        return autograd.Relu.apply(self)

    def abs(self):
        return autograd.Abs.apply(self)

    def erf(self):
        return autograd.Erf.apply(self)

    def floor(self):
        return autograd.Step.apply(self, op="floor")

    def ceil(self):
        return autograd.Step.apply(self, op="ceil")

    def round(self):
        """Half to even, as torch.round (0.5 -> 0, 1.5 -> 2)."""
        return autograd.Step.apply(self, op="round")

    def sign(self):
        return autograd.Step.apply(self, op="sign")

    def pow(self, exponent):
        return self ** exponent

    # Tests for special values (bool, never differentiated); integers and bools hold none of them.
    def isnan(self):
        return self.detach() != self.detach()

    def isinf(self):
        if not self.is_floating_point():
            return zeros(self.shape, dtype="bool", device=self.device)
        return self.detach().abs() == math.inf

    def isfinite(self):
        return (self.isnan() | self.isinf()).logical_not()

    def neg(self):
        return -self

    def square(self):
        return self * self

    def rsqrt(self):
        return 1.0 / self.sqrt()

    def clamp(self, min=None, max=None):
        """Each element limited to [min, max]; min and max are numbers or tensors (broadcast), either may be
        None but not both."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        lo, hi = (b.to(dtype=self.dtype) if isinstance(b, Tensor) else None if b is None else float(b)
                  for b in (min, max))
        return autograd.Clamp.apply(self, lo, hi)

    clip = clamp

    def maximum(self, other):
        """Element-wise max; where both are equal each gets half the gradient, as in PyTorch."""
        a, b = self._operand(other)
        return autograd.Extremum.apply(a, b, largest=True)

    def minimum(self, other):
        a, b = self._operand(other)
        return autograd.Extremum.apply(a, b, largest=False)

    # ---- reductions ----
    def sum(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
        """Sum over dim (all axes when None); dtype casts first; axis= and keepdims= are PyTorch's NumPy-style
        aliases (d2l writes X.sum(axis=1, keepdims=True))."""
        source = self if dtype is None else self.to(dtype=dtype)
        axes = _axes(_dim_alias("sum", dim, axis), self.ndim)
        return autograd.Sum.apply(source, axes=axes, keepdims=keepdim or keepdims)

    def prod(self, dim=None, keepdim=False, *, dtype=None):
        """The product of all elements, or along one dim; bool and int32 multiply in int64, as in PyTorch."""
        if dtype is None and self.dtype in ("bool", "int32"):
            dtype = "int64"
        source = self if dtype is None else self.to(dtype=dtype)
        if dim is None:
            return autograd.Prod.apply(source.reshape(-1), axis=0, keepdims=False)
        return autograd.Prod.apply(source, axis=_axis(dim, self.ndim), keepdims=keepdim)

    def mean(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
        source = self if dtype is None else self.to(dtype=dtype)
        axes = _axes(_dim_alias("mean", dim, axis), self.ndim)
        return autograd.Mean.apply(source, axes=axes, keepdims=keepdim or keepdims)

    def max(self, dim=None, keepdim=False):
        """max() -> the largest element; max(dim) -> (values, indices) along dim; max(other_tensor) ->
        maximum(other), as in PyTorch."""
        if dim is None:
            return autograd.Extreme.apply(self, largest=True)
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        if not isinstance(dim, numbers.Integral):
            raise TypeError(f"max: dim must be an int or None, got {dim!r}")
        values = autograd.ExtremeDim.apply(self, axis=_axis(dim, self.ndim), keepdims=keepdim, largest=True)
        return MaxResult(values, self.argmax(dim, keepdim))

    def min(self, dim=None, keepdim=False):
        """min() -> the smallest element; min(dim) -> (values, indices) along dim; min(other_tensor) ->
        minimum(other), as in PyTorch."""
        if dim is None:
            return autograd.Extreme.apply(self, largest=False)
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        if not isinstance(dim, numbers.Integral):
            raise TypeError(f"min: dim must be an int or None, got {dim!r}")
        values = autograd.ExtremeDim.apply(self, axis=_axis(dim, self.ndim), keepdims=keepdim, largest=False)
        return MinResult(values, self.argmin(dim, keepdim))

    # Counts rather than max/min, so an empty tensor gives PyTorch's False / True instead of an error.
    def any(self, dim=None, keepdim=False):
        """Whether any element (along dim) is non-zero, as a bool tensor."""
        return Tensor((self._data != 0).sum(_axes(dim, self.ndim) or None, keepdim) > 0)

    def all(self, dim=None, keepdim=False):
        return Tensor((self._data == 0).sum(_axes(dim, self.ndim) or None, keepdim) == 0)

    def cumsum(self, dim, *, dtype=None):
        """Running sums along dim; bool and int32 add in int64, as in PyTorch. Built as a scan of log2(n)
        shifted additions (Hillis-Steele), so autograd gives the gradient, the reversed running sum of g."""
        if dtype is None and self.dtype in ("bool", "int32"):
            dtype = "int64"
        out = self.to(dtype=dtype, copy=True)
        if self.ndim == 0:
            return out
        axis = _axis(dim, self.ndim)
        n, shift = self.shape[axis], 1
        while shift < n:
            lead = zeros(out.shape[:axis] + (shift,) + out.shape[axis + 1:], dtype=out.dtype, device=out.device)
            out = out + autograd.Cat.apply(lead, out.narrow(axis, 0, n - shift), axis=axis)
            shift *= 2
        return out

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        """The p-norm over dim (all elements when None), as torch.norm: p a positive number, inf, -inf or
        'fro' or None (the 2-norm of the elements)."""
        if p in ("fro", None):
            p = 2
        return vector_norm(self, p, dim, keepdim, dtype=dtype)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """sum((x - mean)^2) / (N - correction) over dim; correction is 1 (unbiased=True, the default) or 0
        (unbiased=False), or any number given as correction=. var(False) is the old var(unbiased) form."""
        return _moment(self, dim, unbiased, keepdim, correction, root=False)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """sqrt(var(...)); a constant input's std gets gradient 0, as in PyTorch."""
        return _moment(self, dim, unbiased, keepdim, correction, root=True)

    def logsumexp(self, dim, keepdim=False):
        """log(sum(exp(x))) over dim, computed as m + log(sum(exp(x - m))) with m the maximum (a constant to
        autograd: it cancels out of the gradient, softmax), so exp cannot overflow."""
        axes = _axes(dim, self.ndim)
        largest = float(np.finfo(self._data.dtype).max)  # an infinite maximum is clipped so x - m stays defined
        shift = Tensor(autograd.clamped(self._data.max(axes or None, True), -largest, largest))
        out = (self - shift).exp().sum(axes, keepdim=True).log() + shift
        return out if keepdim else out.squeeze(axes)

    def softmax(self, dim, dtype=None):
        from .nn import functional  # nn builds on this module, so it is imported when first needed

        return functional.softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim, dtype=None):
        from .nn import functional

        return functional.log_softmax(self, dim, dtype=dtype)

    def argmax(self, dim=None, keepdim=False, *, axis=None):
        """int64 index of the first maximum (NaN counts as the maximum), over all elements or along dim
        (axis= is PyTorch's NumPy-style alias, which d2l uses)."""
        dim = dim if axis is None else axis
        return Tensor(self._data.argmax(None if dim is None else _axis(dim, self.ndim), keepdim))

    def argmin(self, dim=None, keepdim=False, *, axis=None):
        dim = dim if axis is None else axis
        return Tensor(self._data.argmin(None if dim is None else _axis(dim, self.ndim), keepdim))

    def argsort(self, dim=-1, descending=False, stable=False):
        """int64 indices that sort each line along dim; equal elements keep their order (so stable=True holds
        whatever is asked). The order is found on the host (NumPy's stable sort)."""
        values = self.numpy()
        values = values.astype(np.int64) if values.dtype == np.bool_ else values
        order = np.argsort(-values if descending else values, axis=_axis(dim, self.ndim), kind="stable")
        return tensor(order, dtype="int64", device=self.device)

    def sort(self, dim=-1, descending=False, stable=False):
        """(values, indices) along dim; the values are gathered through the indices, so they are
        differentiable."""
        indices = self.argsort(dim, descending)
        return SortResult(self.gather(dim, indices), indices)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The k largest (largest=False: smallest) elements along dim with their indices, in order."""
        n = self.shape[_axis(dim, self.ndim)]
        if not isinstance(k, numbers.Integral) or not 0 <= k <= n:
            raise ValueError(f"topk: k must be an int in [0, {n}] (the size of dimension {dim}), got {k!r}")
        indices = self.argsort(dim, descending=largest).narrow(dim, 0, k)
        return SortResult(self.gather(dim, indices), indices)

    # ---- views ----
    def reshape(self, *shape):
        return _view_of(self, autograd.Reshape.apply(self, shape=_shape_args(shape)))

    def view(self, *shape):
        return _view_of(self, autograd.View.apply(self, shape=_shape_args(shape)))

    def permute(self, *dims):
        dims = _shape_args(dims)
        if sorted(_axis(d, self.ndim) for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of {self.ndim} axes")
        return _view_of(self, autograd.Permute.apply(self, axes=tuple(_axis(d, self.ndim) for d in dims)))

    def transpose(self, dim0, dim1):
        axes = list(range(self.ndim))
        d0, d1 = _axis(dim0, self.ndim), _axis(dim1, self.ndim)
        axes[d0], axes[d1] = axes[d1], axes[d0]
        return _view_of(self, autograd.Permute.apply(self, axes=tuple(axes)))

    swapaxes = transpose

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = _axis(start_dim, self.ndim), _axis(end_dim, self.ndim)
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shape = self.shape
        return self.reshape(shape[:start] + (-1,) + shape[end + 1:])

    def unsqueeze(self, dim):
        axis = _axis(dim, self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        axes = _axes(dim, self.ndim)
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in axes and s == 1)))

    def expand(self, *shape):
        shape = _shape_args(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        return _view_of(self, autograd.BroadcastTo.apply(self, shape=shape))

    def expand_as(self, other):
        return self.expand(other.shape)

    def repeat(self, *sizes):
        """The tensor tiled sizes[i] times along axis i (leading sizes add new axes). Axis by axis, a new axis
        of length r is broadcast in front and merged with it, so the gradient sums over the copies."""
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"repeat: {len(sizes)} repeat counts given for a tensor with {self.ndim} dimensions; "
                             f"give at least {self.ndim}")
        out = self.reshape((1,) * (len(sizes) - self.ndim) + self.shape)
        for axis, r in enumerate(sizes):
            if r != 1:
                before, n, after = out.shape[:axis], out.shape[axis], out.shape[axis + 1:]
                out = out.unsqueeze(axis).expand(before + (r, n) + after).reshape(before + (r * n,) + after)
        return out

    def tile(self, *dims):
        """repeat with too few counts padded by leading 1s."""
        dims = _shape_args(dims)
        return self.repeat((1,) * (self.ndim - len(dims)) + dims)

    def flip(self, *dims):
        """A copy with the order reversed along dims (as in PyTorch, not a view)."""
        axes = _axes(_shape_args(dims), self.ndim)
        return self[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(self.ndim))].clone()

    def fliplr(self):
        return self.flip(1)

    def roll(self, shifts, dims=None):
        """Elements shifted cyclically by shifts[i] along dims[i]; with dims None, over the flattened tensor
        (then reshaped back)."""
        shifts_ = (shifts,) if isinstance(shifts, numbers.Integral) else tuple(shifts)
        if dims is None:
            if len(shifts_) != 1:
                raise ValueError(f"roll: without dims, shifts must be one int, got {shifts!r}")
            return self.flatten().roll(shifts_[0], 0).reshape(self.shape)
        dims_ = (dims,) if isinstance(dims, numbers.Integral) else tuple(dims)
        if len(shifts_) != len(dims_):
            raise ValueError(f"roll: shifts and dims must have the same length, got {shifts!r} and {dims!r}")
        out = self.clone()
        for shift, dim in zip(shifts_, dims_):
            axis = _axis(dim, self.ndim)
            n = self.shape[axis]
            s = int(shift) % n if n else 0
            if s:
                out = autograd.Cat.apply(out.narrow(axis, n - s, s), out.narrow(axis, 0, n - s), axis=axis)
        return out

    def tril(self, diagonal=0):
        """A copy with the elements above the diagonal-th diagonal of the last two dims zeroed."""
        return _triangle("tril", self, np.tril, diagonal)

    def triu(self, diagonal=0):
        """A copy with the elements below the diagonal-th diagonal of the last two dims zeroed."""
        return _triangle("triu", self, np.triu, diagonal)

    def flipud(self):
        return self.flip(0)

    # ---- vector products (matmul with PyTorch's shape checks) ----
    def dot(self, other):
        """The inner product of two 1-D tensors of one length."""
        if self.ndim != 1 or getattr(other, "ndim", None) != 1 or self.shape != other.shape:
            raise ValueError(f"dot: expects two 1-D tensors of one length, got shapes {tuple(self.shape)} and "
                             f"{tuple(getattr(other, 'shape', ()))}")
        return matmul(self, other)

    def mv(self, vec):
        """A matrix (n, m) times a vector (m,)."""
        if self.ndim != 2 or getattr(vec, "ndim", None) != 1 or self.shape[1] != vec.shape[0]:
            raise ValueError(f"mv: expects a matrix (n, m) and a vector (m,), got shapes {tuple(self.shape)} and "
                             f"{tuple(getattr(vec, 'shape', ()))}")
        return matmul(self, vec)

    def outer(self, vec2):
        """The (n, m) matrix of products of a vector (n,) and a vector (m,)."""
        if self.ndim != 1 or getattr(vec2, "ndim", None) != 1:
            raise ValueError(f"outer: expects two 1-D tensors, got shapes {tuple(self.shape)} and "
                             f"{tuple(getattr(vec2, 'shape', ()))}")
        return self.unsqueeze(1) * vec2.unsqueeze(0)

    def matmul(self, other):
        return matmul(self, other)

    def mm(self, mat2):
        from .functions import mm  # functions.py builds on this module

        return mm(self, mat2)

    def bmm(self, mat2):
        from .functions import bmm

        return bmm(self, mat2)

    def t(self):
        """The transpose of a 2-D tensor; 0-D and 1-D tensors come back as they are."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor with <= 2 dimensions, got {self.ndim}; use transpose(dim0, dim1)")
        return self.transpose(0, 1) if self.ndim == 2 else self

    @property
    def mT(self):
        """The last two dimensions swapped (a batch of transposed matrices)."""
        if self.ndim < 2:
            raise ValueError(f"mT: expects a tensor with >= 2 dimensions, got {self.ndim}")
        return self.transpose(-2, -1)

    def view_as(self, other):
        return self.view(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def select(self, dim, index):
        """The slice at index along dim, with dim removed."""
        return self[(slice(None),) * _axis(dim, self.ndim) + (index,)]

    def narrow(self, dim, start, length):
        """Elements start .. start+length-1 along dim (start may count from the end), as a view."""
        axis = _axis(dim, self.ndim)
        n = self.shape[axis]
        if not -n <= start <= n:
            raise IndexOutOfRangeError(f"narrow: start {start} is out of range for dimension {dim} of size {n}")
        start = start + n if start < 0 else start
        if length < 0 or start + length > n:
            raise ValueError(f"narrow: start ({start}) + length ({length}) exceeds dimension {dim} of size {n}")
        return self[(slice(None),) * axis + (slice(start, start + length),)]

    def split(self, split_size_or_sections, dim=0):
        """Pieces along dim: of split_size each (the last one smaller if need be), or of the listed sizes."""
        n = self.shape[_axis(dim, self.ndim)]
        if isinstance(split_size_or_sections, numbers.Integral):
            size = int(split_size_or_sections)
            if size <= 0 and n > 0:
                raise ValueError(f"split: split_size must be a positive int, got {size}")
            sizes = [size] * (n // size) + ([n % size] if n % size else []) if n else [0]
        else:
            sizes = list(_shape_args(split_size_or_sections))
            if sum(sizes) != n or min(sizes, default=0) < 0:
                raise ValueError(f"split: split sizes {sizes} must be >= 0 and sum to the size of dimension {dim}, "
                                 f"{n}")
        starts = np.cumsum([0] + sizes[:-1]).tolist()
        return tuple(self.narrow(dim, start, size) for start, size in zip(starts, sizes))

    def chunk(self, chunks, dim=0):
        """At most `chunks` pieces of ceil(n / chunks) along dim (fewer when n does not fill them)."""
        if not isinstance(chunks, numbers.Integral) or chunks <= 0:
            raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
        n = self.shape[_axis(dim, self.ndim)]
        return self.split(-(-n // chunks) if n else [0] * chunks, dim)

    def unbind(self, dim=0):
        """Every slice along dim, with dim removed."""
        return tuple(self.select(dim, i) for i in range(self.shape[_axis(dim, self.ndim)]))

    def contiguous(self):
        """self when already laid out row-major, else a row-major copy (differentiable)."""
        return self if self._data.is_contiguous() else autograd.Copy.apply(self)

    # ---- indexing by values (indexing.py) ----
    def gather(self, dim, index):
        return indexing.gather(self, dim, index)

    def scatter_add(self, dim, index, src):
        return indexing.scatter_add(self, dim, index, src)

    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        return indexing.scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
        """In place, outside autograd (the one-hot idiom zeros(n, c).scatter_(1, y[:, None], 1))."""
        self._check_inplace(src)
        write_(self, indexing.scatter(self.detach(), dim, index, src, value=value, reduce=reduce)._data)
        return self

    def scatter_add_(self, dim, index, src):
        self._check_inplace(src)
        write_(self, indexing.scatter_add(self.detach(), dim, index, src)._data)
        return self

    def index_select(self, dim, index):
        return indexing.index_select(self, dim, index)

    def index_add(self, dim, index, source, *, alpha=1):
        return indexing.index_add(self, dim, index, source, alpha=alpha)

    def masked_fill(self, mask, value):
        return indexing.masked_fill(self, mask, value)

    def masked_fill_(self, mask, value):
        """In place, outside autograd, as x[mask] = value with mask broadcast to x's shape."""
        self._check_inplace(value)
        write_(self, indexing.masked_fill(self.detach(), mask, value)._data)
        return self

    def masked_select(self, mask):
        return indexing.masked_select(self, mask)

    def nonzero(self, *, as_tuple=False):
        return indexing.nonzero(self, as_tuple=as_tuple)

    def where(self, condition, other):
        return indexing.where(condition, self, other)

    def __getitem__(self, index):
        """Indexing as in PyTorch: ints, slices (any step sign, unlike PyTorch), ... and None (a new axis of
        length 1), and by values with lists, ranges, arrays and tensors (bool masks, index arrays; indexing.py)."""
        if indexing.is_advanced(index):
            return indexing.getitem(self, index)
        shape, index = _basic_index(index, self.shape)
        source = self if shape == self.shape else self.reshape(shape)
        return _view_of(self, autograd.Index.apply(source, index=index))

    def __setitem__(self, index, value):
        """x[index] = value (a number, a Tensor or an array, broadcast) writes into x's storage; where autograd
        is involved x becomes a new node of the graph instead (basic indices only; see _assign_)."""
        if _in_graph(self, value) and not indexing.is_advanced(index):
            shape, index = _basic_index(index, self.shape)
            self._assign_("x[index] = value", lambda x: _set_index(x, shape, index, value), value)
            return
        self._check_inplace(value)
        _check_writable(self)
        if indexing.is_advanced(index):
            return indexing.setitem(self, index, value)
        shape, index = _basic_index(index, self.shape)
        target = self._data if shape == self.shape else self._data.view(shape)
        if isinstance(value, numbers.Number) and not isinstance(value, complex):
            target[index] = float(value)
        else:
            target[index] = _ndarray_from(value, self.dtype, self.device)


autograd.Tensor = Tensor  # Function.apply and the engine wrap their results in it


# ---- printing, laid out as PyTorch's torch/_tensor_str.py does with its default print options ----
_LINE_WIDTH, _THRESHOLD, _EDGE_ITEMS, _PRECISION = 80, 1000, 3, 4


def _edges(arr):
    """The elements printed when a tensor is summarised: the first and last _EDGE_ITEMS along each long axis."""
    for axis, n in enumerate(arr.shape):
        if n > 2 * _EDGE_ITEMS:
            arr = np.concatenate([arr.take(range(_EDGE_ITEMS), axis), arr.take(range(n - _EDGE_ITEMS, n), axis)], axis)
    return arr


def _element_formatter(arr):
    """One format for every element, padded to one width. Floats get 4 decimals, or `2.` when all are whole,
    or scientific notation when the nonzero finite magnitudes span more than 1000x, pass 1e8, or (not whole)
    fall below 1e-4."""
    if arr.dtype.kind != "f":
        width = max((len(str(v)) for v in arr.reshape(-1).tolist()), default=1)
        return lambda v: str(v).rjust(width)
    finite = arr[np.isfinite(arr) & (arr != 0)].astype(np.float64)
    size = np.abs(finite)
    whole = bool(np.all(finite == np.ceil(finite)))
    sci = finite.size > 0 and (size.max() / size.min() > 1000.0 or size.max() > 1e8
                               or (not whole and size.min() < 1e-4))
    if sci:
        fmt = lambda v: f"{v:.{_PRECISION}e}"
    elif whole:
        fmt = lambda v: f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
    else:
        fmt = lambda v: f"{v:.{_PRECISION}f}"
    width = max((len(fmt(v)) for v in finite.tolist()), default=1)
    return lambda v: fmt(v).rjust(width)


def _nested_str(arr, indent, fmt, summarise):
    if arr.ndim == 0:
        return fmt(arr.item())
    n, cut = arr.shape[0], summarise and arr.shape[0] > 2 * _EDGE_ITEMS
    rows = list(range(_EDGE_ITEMS)) + [None] + list(range(n - _EDGE_ITEMS, n)) if cut else list(range(n))
    if arr.ndim == 1:
        items = [" ..." if i is None else fmt(arr[i].item()) for i in rows]
        per_line = max(1, (_LINE_WIDTH - indent) // (len(fmt(arr[0].item())) + 2))
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    items = ["..." if i is None else _nested_str(arr[i], indent + 1, fmt, summarise) for i in rows]
    return "[" + ("," + "\n" * (arr.ndim - 1) + " " * (indent + 1)).join(items) + "]"


def _tensor_repr(t):
    """tensor(values, suffixes) as PyTorch prints it: device when not the CPU, dtype when not float32 /
    int64 / bool, then grad_fn or requires_grad=True; a suffix that would pass the line width starts a line."""
    arr, prefix = t.numpy(), "tensor("
    suffixes = [] if t.device == "cpu" else [f"device='{t.device}'"]
    if arr.size == 0:
        body = "[]"
        suffixes += [] if arr.ndim == 1 else [f"size={tuple(arr.shape)}"]
    else:
        summarise = arr.size > _THRESHOLD
        body = _nested_str(arr, len(prefix), _element_formatter(_edges(arr) if summarise else arr), summarise)
    if t._data.dtype not in ("float32", "int64", "bool") or (arr.size == 0 and t._data.dtype != "float32"):
        suffixes.append(f"dtype=convlab.{t._data.dtype}")
    if t._ctx is not None:
        suffixes.append(f"grad_fn=<{type(t._ctx).__name__}Backward0>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    text, last_line = prefix + body, len(prefix + body) - (prefix + body).rfind("\n") + 1
    for suffix in suffixes:
        if last_line + len(suffix) + 2 > _LINE_WIDTH:
            text, last_line = text + ",\n" + " " * len(prefix) + suffix, len(prefix) + len(suffix)
        else:
            text, last_line = text + ", " + suffix, last_line + len(suffix) + 2
    return text + ")"


def _dim_alias(op, dim, axis):
    """dim, or axis= in its place (NumPy's name, which PyTorch accepts too)."""
    if axis is None:
        return dim
    if dim is not None:
        raise TypeError(f"{op}: give dim or axis, not both")
    return axis


def _moment(t, dim, unbiased, keepdim, correction, root):
    """var (root=False) or std (root=True) after PyTorch's argument rules."""
    if isinstance(dim, bool):  # var(True): the old positional `unbiased`
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError("var/std: give unbiased= or correction=, not both")
    if correction is None:
        correction = 0 if unbiased is False else 1
    return autograd.Var.apply(t, axes=_axes(dim, t.ndim), correction=correction, keepdims=keepdim, root=root)


def _set_index(t, shape, index, value):
    """t with t[index] = value, differentiably; shape and index as _basic_index gives them."""
    value = value.to(device=t.device, dtype=t.dtype) if isinstance(value, Tensor) else tensor(value, t.dtype, t.device)
    if shape == t.shape:
        return autograd.SetIndex.apply(t, value, index=index)
    return autograd.SetIndex.apply(t.reshape(shape), value, index=index).reshape(t.shape)


def _in_graph(t, *operands):
    """Whether an in-place op on t with these operands takes part in autograd."""
    return is_grad_enabled() and (t.requires_grad or any(getattr(o, "requires_grad", False) for o in operands))


def _check_fits(op, value, t):
    """An in-place result must broadcast to the shape of the tensor it goes into."""
    try:
        fits = np.broadcast_shapes(value.shape, t.shape) == t.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{op}: the result has shape {tuple(value.shape)}, which does not fit the tensor it is "
                         f"written into, of shape {tuple(t.shape)}")


def _view_of(base, view):
    """Marks view as sharing base's storage (PyTorch's Tensor._base): an in-place op under autograd gives a
    tensor new storage (see Tensor._assign_), which base would not see, so on a view it is refused."""
    view._base = base if base._base is None else base._base
    return view


def _check_writable(t):
    data = t._data
    if any(stride == 0 and n > 1 for stride, n in zip(data.strides, data.shape)):
        raise RuntimeError(f"in-place write into an expanded (broadcast) tensor of shape {t.shape}: several of "
                           f"its elements share one memory location; clone() it first")


def _cast(t, dtype):
    """t converted (differentiably) to dtype, a name as NDArray.result_type gives it; t itself when it has that
    dtype already, the usual case, which skips to()'s argument parsing (a third of a small op's Python time)."""
    return t if t._data.dtype == dtype else t.to(dtype=dtype)


def write_(t, array):
    """Writes an NDArray of t's shape into t's storage in place, as PyTorch's in-place ops do (optimizer
    steps, running statistics, +=), so views of t and state_dict() entries see the new values."""
    _check_writable(t)
    data = t._data
    data[...] = array if array.dtype == data.dtype else array.astype(data.dtype)


def _shape_args(args):
    """f(2, 3) and f((2, 3)) both mean the shape (2, 3); every entry must be an int."""
    shape = tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)
    if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape):
        raise TypeError(f"size must be a sequence of ints, got {shape!r}")
    return tuple(int(s) for s in shape)


def _axis(dim, ndim):
    if not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int, got {dim!r}")
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise ValueError(f"dim {dim} is out of range for a tensor with {ndim} dimensions")
    return int(dim) % bound


def _axes(dim, ndim):
    """None -> all axes; an int or a sequence -> a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    axes = tuple(sorted({_axis(d, ndim) for d in dims}))
    if len(axes) != len(dims):
        raise ValueError(f"dim {dim} repeats an axis")
    return axes if ndim else ()


def _basic_index(index, shape):
    """A PyTorch basic index -> (shape with a 1 inserted for every None, the index into that shape made of
    ints, slices and ... only). Ints are range-checked here so a bad one raises IndexError as in PyTorch."""
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        valid = isinstance(item, (numbers.Integral, slice)) or item is Ellipsis or item is None
        if isinstance(item, (bool, np.bool_)) or not valid:
            raise TypeError(f"tensor indices must be ints, slices, None, ..., lists, ranges, arrays or tensors, "
                            f"got {type(item).__name__}")
    if sum(item is Ellipsis for item in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(item is not None and item is not Ellipsis for item in items)
    if used > len(shape):
        raise IndexOutOfRangeError(f"too many indices for a tensor of dimension {len(shape)}: {used} given")
    new_shape, new_index, axis = [], [], 0
    for item in items:
        if item is Ellipsis:
            new_shape += shape[axis:axis + len(shape) - used]
            new_index.append(Ellipsis)
            axis += len(shape) - used
        elif item is None:
            new_shape.append(1)
            new_index.append(slice(None))
        else:
            n = shape[axis]
            if isinstance(item, numbers.Integral):
                if not -n <= item < n:
                    raise IndexOutOfRangeError(f"index {int(item)} is out of range for dimension {axis} with size {n}")
                item = int(item)
            new_shape.append(n)
            new_index.append(item)
            axis += 1
    return tuple(new_shape) + tuple(shape[axis:]), tuple(new_index)


def matmul(a, b):
    """NumPy's matmul rules: 1-D operands become a row (left) or a column (right), then drop again."""
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
        raise TypeError(f"matmul: both operands must be tensors (not Python numbers), got {type(a).__name__} and "
                        f"{type(b).__name__}")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one dimension, got shapes {a.shape} and {b.shape}")
    left, right = a.unsqueeze(0) if a.ndim == 1 else a, b.unsqueeze(-1) if b.ndim == 1 else b
    out = autograd.Matmul.apply(left, right)
    if b.ndim == 1:
        out = out.squeeze(-1)
    if a.ndim == 1:
        out = out.squeeze(-2 if b.ndim > 1 else -1)
    return out


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """torch.linalg.vector_norm: (sum |x|^ord)^(1/ord) over dim (all elements when None); ord a positive
    number, inf (the largest |x|) or -inf (the smallest)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"vector_norm: x must be a Tensor, got {type(x).__name__}")
    x = x if dtype is None else x.to(dtype=dtype)
    if not x.is_floating_point():
        raise TypeError(f"vector_norm: expected a floating point tensor, got dtype {x.dtype}")
    if isinstance(ord, bool) or not isinstance(ord, numbers.Real) or not (ord > 0 or ord == -math.inf):
        raise ValueError(f"vector_norm: ord must be a positive number, inf or -inf, got {ord!r}")
    axes = _axes(dim, x.ndim)
    if not math.isinf(ord):
        return autograd.VectorNorm.apply(x, ord=float(ord), axes=axes, keepdims=keepdim)
    # The extreme |x| plus a sum that is exactly 0 but carries PyTorch's gradient: shared evenly by the
    # elements at the extreme (max(dim) would give it all to the first)
    size = x.abs()
    extreme = Tensor(size._data.max(axes or None, True) if ord > 0 else size._data.min(axes or None, True))
    at = (size.detach() == extreme).to(dtype=x.dtype)
    out = ((size - extreme) * (at / at.sum(axes, keepdim=True))).sum(axes, keepdim=True) + extreme
    return out if keepdim else out.squeeze(axes)


def _triangle(op, x, np_triangle, diagonal):
    """x with the elements off np_triangle's part (np.tril / np.triu) of its last two dims set to zero."""
    if x.ndim < 2:
        raise ValueError(f"{op}: input must have at least 2 dimensions, got {x.ndim}")
    if isinstance(diagonal, bool) or not isinstance(diagonal, numbers.Integral):
        raise TypeError(f"{op}: diagonal must be an int, got {diagonal!r}")
    keep = np_triangle(np.ones(x.shape[-2:], dtype=bool), int(diagonal))
    return x.masked_fill(tensor(~keep, device=x.device), 0)


# ---- creation ----
def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf holding a copy of data. dtype=None keeps the dtype of a NumPy array, NDArray or Tensor and
    makes Python bools bool, ints int64 and floats the default dtype (float32), as torch.tensor does."""
    return Tensor(_ndarray_from(data, dtype, device), requires_grad=requires_grad)


def _new(array, dtype, device, requires_grad):
    return Tensor(NDArray.from_numpy(array.astype(canonical_dtype(dtype)), canonical_device(device)),
                  requires_grad=requires_grad)


def _size(op, args, size):
    """The shape a creator is asked for: f(2, 3), f((2, 3)), f([2, 3]), f(some_tensor.shape) or f(size=...)."""
    if size is not None:
        if args:
            raise TypeError(f"{op}: give the size either positionally or as size=, not both")
        args = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    return _shape_args(args)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """dtype=None follows fill_value, as in PyTorch: bool, int64 for an int, else the default float dtype."""
    size = _shape_args((size,) if isinstance(size, numbers.Integral) else tuple(size))
    if dtype is None and isinstance(fill_value, (bool, np.bool_)):
        dtype = "bool"
    elif dtype is None and isinstance(fill_value, numbers.Integral):
        dtype = "int64"
    return Tensor(NDArray.full(size, float(fill_value), canonical_dtype(dtype), canonical_device(device)),
                  requires_grad=requires_grad)


def zeros(*args, size=None, dtype=None, device=None, requires_grad=False):
    return full(_size("zeros", args, size), 0.0, dtype=dtype, device=device, requires_grad=requires_grad)


def ones(*args, size=None, dtype=None, device=None, requires_grad=False):
    return full(_size("ones", args, size), 1.0, dtype=dtype, device=device, requires_grad=requires_grad)


def empty(*args, size=None, dtype=None, device=None, requires_grad=False):
    """Uninitialised memory, as in PyTorch: whatever the allocator hands out."""
    return Tensor(NDArray.empty(_size("empty", args, size), canonical_dtype(dtype), canonical_device(device)),
                  requires_grad=requires_grad)


def randn(*args, size=None, dtype=None, device=None, requires_grad=False):
    return _new(_rng.standard_normal(_size("randn", args, size)), dtype, device, requires_grad)


def rand(*args, size=None, dtype=None, device=None, requires_grad=False):
    return _new(_rng.random(_size("rand", args, size)), dtype, device, requires_grad)


def randint(low, high=None, size=None, *, dtype=None, device=None, requires_grad=False):
    """Integers drawn uniformly from [low, high): randint(high, size) or randint(low, high, size); int64
    unless dtype says otherwise."""
    if size is None and high is not None and not isinstance(high, numbers.Integral):  # randint(high, size)
        low, high, size = 0, low, high
    if high is None:  # randint(high, size=...)
        low, high = 0, low
    if size is None:
        raise TypeError("randint: give high and size, e.g. randint(10, (2, 3)) or randint(0, 10, size=(2, 3))")
    if not low < high:
        raise ValueError(f"randint: low must be below high, got low={low}, high={high}")
    return _new(_rng.integers(low, high, _size("randint", (), size)), dtype or "int64", device, requires_grad)


def randperm(n, *, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0 .. n-1 (int64 unless dtype says otherwise)."""
    return _new(_rng.permutation(n), dtype or "int64", device, requires_grad)


def normal(mean=0.0, std=1.0, size=None, *, dtype=None, device=None, requires_grad=False):
    """Samples of N(mean, std^2). mean and std may be tensors (the result takes their broadcast shape, dtype
    and device) or numbers with size= given; the samples are drawn, not differentiated (as in PyTorch, no
    gradient reaches mean or std)."""
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    if tensors:
        if size is not None:
            raise TypeError("normal: size= is only for a number mean and std; with a tensor the shape is its own")
        shape = np.broadcast_shapes(*(t.shape for t in tensors))
        dtype, device = dtype or tensors[0].dtype, device or tensors[0].device
    elif size is None:
        raise TypeError("normal: with a number mean and std, give size=, e.g. normal(0, 1, size=(2, 3))")
    else:
        shape = _size("normal", (), size)
    if np.any(np.asarray(std) < 0):
        raise ValueError(f"normal: std must be >= 0, got {std}")
    values = np.asarray(mean) + np.asarray(std) * _rng.standard_normal(shape)
    return _new(values, dtype, device, requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    """The n x m identity (m defaults to n)."""
    return _new(np.eye(n, n if m is None else m), dtype, device, requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """steps evenly spaced values from start to end, both included."""
    if not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"linspace: steps must be an int >= 0, got {steps!r}")
    return _new(np.linspace(float(start), float(end), steps), dtype, device, requires_grad)


def _like(input, dtype, device):
    """The dtype and device a *_like creator gives: input's unless overridden."""
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
    return {"dtype": dtype or input.dtype, "device": device or input.device}


def zeros_like(input, *, dtype=None, device=None, requires_grad=False):
    return zeros(input.shape, requires_grad=requires_grad, **_like(input, dtype, device))


def ones_like(input, *, dtype=None, device=None, requires_grad=False):
    return ones(input.shape, requires_grad=requires_grad, **_like(input, dtype, device))


def empty_like(input, *, dtype=None, device=None, requires_grad=False):
    return empty(input.shape, requires_grad=requires_grad, **_like(input, dtype, device))


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    return full(input.shape, fill_value, requires_grad=requires_grad, **_like(input, dtype, device))


def rand_like(input, *, dtype=None, device=None, requires_grad=False):
    return rand(input.shape, requires_grad=requires_grad, **_like(input, dtype, device))


def randn_like(input, *, dtype=None, device=None, requires_grad=False):
    return randn(input.shape, requires_grad=requires_grad, **_like(input, dtype, device))


def from_numpy(ndarray):
    """A CPU tensor with the array's values and dtype. Unlike PyTorch it holds a copy: convlab owns its
    storage (see docs/differences.md)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(ndarray).__name__}")
    return Tensor(_ndarray_from(ndarray, None, "cpu"))


def as_tensor(data, dtype=None, device=None):
    """data itself when it is already a tensor of that dtype and device, else tensor(data, ...)."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype)
    return tensor(data, dtype=dtype, device=device)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def numel(input):
    return input.numel()


def arange(start=0, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """arange(end), arange(start, end, step) or arange(end=...), as torch.arange: int64 when start, end and
    step are all integers, else the default float dtype (computed in float64 first, as PyTorch does)."""
    if end is None:
        start, end = 0, start
    integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    values = np.arange(start, end, step, dtype=np.int64 if integral else np.float64)
    return _new(values, dtype or ("int64" if integral else None), device, requires_grad)
