"""Function (one differentiable op) and the tensor-math Functions: element-wise, reductions, views, matmul.

forward and backward see only NDArrays (and Python numbers), so a device that has the NDArray kernels has
gradients for free. backward returns one gradient per positional input of forward (None where there is
nothing to differentiate); the engine (tensor.run_backward) sums broadcast gradients back to each input's
shape, so element-wise rules are written as if no broadcasting happened.
"""
import math

import numpy as np

from . import _C
from . import tensor as tensor_module  # the module (convlab.tensor the name is the function)

NDArray = _C.NDArray


def check_same_device(*tensors):
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        first, second = sorted(devices)
        raise RuntimeError(f"expected all tensors on the same device, but found tensors on {first} and {second}")


def sum_to_shape(g, shape):
    """Sums g over the axes that broadcasting added or stretched, so it has `shape` again."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    return g.sum(axes, True).reshape(shape) if axes else g.reshape(shape)


def arange_along(n, axis, ndim, dtype, device):
    """0..n-1 laid along `axis` of an ndim-array of ones elsewhere: compared with argmax output it gives
    the one-hot mask of the chosen positions."""
    shape = [1] * ndim
    shape[axis] = n
    return NDArray.from_numpy(np.arange(n, dtype=dtype).reshape(shape), device)


class Function:
    """forward(*ndarrays, **params) -> NDArray; backward(grad) -> one NDArray or None per positional input."""

    @classmethod
    def apply(cls, *args, **params):
        tensors = [a for a in args if isinstance(a, tensor_module.Tensor)]
        check_same_device(*tensors)
        fn = cls()
        fn.needs_input_grad = tuple(isinstance(a, tensor_module.Tensor) and a.requires_grad for a in args)
        out = fn.forward(*(a._data if isinstance(a, tensor_module.Tensor) else a for a in args), **params)
        requires_grad = tensor_module.is_grad_enabled() and any(fn.needs_input_grad)
        result = tensor_module.Tensor(out, requires_grad=requires_grad)
        if requires_grad:
            fn.inputs = tuple(a if isinstance(a, tensor_module.Tensor) else None for a in args)
            # What backward will read, with its storage's write count now (PyTorch's saved-tensor check).
            fn.saved_versions = [(name, a, a._version) for name, a in vars(fn).items() if isinstance(a, NDArray)]
            result._ctx = fn
        return result

    def check_saved(self):
        """Refuses to differentiate from saved data that was written in place after the forward pass (an
        optimizer step, x[...] = v, += under no_grad): the gradient would be silently wrong."""
        for name, a, version in self.saved_versions:
            if a._version != version:
                raise RuntimeError(
                    f"a value needed for gradient computation was modified by an in-place operation: "
                    f"{type(self).__name__} saved '{name}' at version {version}, it is now at version "
                    f"{a._version}; run the forward pass again after the in-place update")

    def forward(self, *args, **params):
        raise NotImplementedError

    def backward(self, g):
        raise NotImplementedError


# ---- binary (either operand may be a Python number) ----
class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g if self.needs_input_grad[1] else None


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        need_a, need_b = self.needs_input_grad
        return g * self.b if need_a else None, g * self.a if need_b else None


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        need_a, need_b = self.needs_input_grad
        ga = g / self.b if need_a else None
        gb = -(g * self.a) / (self.b * self.b) if need_b else None
        return ga, gb


class Pow(Function):
    """d(a^b)/da = b a^(b-1), 0 where b == 0; d(a^b)/db = a^b ln a, 0 where a == 0 and b >= 0 (PyTorch's
    rules: a^b is flat there, and 0 * ln 0 would give NaN)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        need_a, need_b = self.needs_input_grad
        a, b = self.a, self.b
        ga = gb = None
        if need_a:  # where b == 0 the exponent b-1 becomes 0, so 0 * a^0 = 0 even at a = 0
            ga = g * (b * a ** (b - 1.0 + (b == 0.0)))
        if need_b:  # where a == 0 and b >= 0, ln 1 = 0 stands in for ln 0
            safe_a = (b >= 0.0) * float(a == 0.0) + a if isinstance(a, float) else a + (a == 0.0) * (b >= 0.0)
            gb = g * self.out * safe_a.log()
        return ga, gb


class Matmul(Function):
    """Batched a @ b (both at least 2-D): ga = g @ b^T, gb = a^T @ g over the last two axes."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        need_a, need_b = self.needs_input_grad
        a, b = self.a, self.b
        ga = g @ b.transpose(b.ndim - 2, b.ndim - 1) if need_a else None
        gb = a.transpose(a.ndim - 2, a.ndim - 1) @ g if need_b else None
        return ga, gb


# ---- unary ----
class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Exp(Function):
    def forward(self, a):
        self.out = a.exp()
        return self.out

    def backward(self, g):
        return (g * self.out,)


class Log(Function):
    def forward(self, a):
        self.a = a
        return a.log()

    def backward(self, g):
        return (g / self.a,)


class Sqrt(Function):
    def forward(self, a):
        self.out = a.sqrt()
        return self.out

    def backward(self, g):
        return (g / (self.out * 2.0),)


class Tanh(Function):
    def forward(self, a):
        self.out = a.tanh()
        return self.out

    def backward(self, g):
        return (g * (1.0 - self.out * self.out),)


class Sigmoid(Function):
    def forward(self, a):
        self.out = a.sigmoid()
        return self.out

    def backward(self, g):
        return (g * (1.0 - self.out) * self.out,)


class Relu(Function):
    def forward(self, a):
        self.a = a
        return a.relu()

    def backward(self, g):
        return (g * (self.a > 0.0),)


class LeakyRelu(Function):
    """y = a for a > 0, slope * a otherwise; the gradient at 0 is slope, as in PyTorch."""

    def forward(self, a, negative_slope):
        self.factor = (a > 0.0) * (1.0 - negative_slope) + negative_slope
        return a * self.factor

    def backward(self, g):
        return (g * self.factor,)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return a.abs()

    def backward(self, g):
        return (g * self.a.sign(),)


# ---- reductions (axes: a sorted tuple; the empty tuple only for 0-d input) ----
def _kept_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    def forward(self, a, axes, keepdims):
        self.shape, self.axes = a.shape, axes
        return a.sum(axes or None, keepdims)

    def backward(self, g):
        return (g.reshape(_kept_shape(self.shape, self.axes)).broadcast_to(self.shape),)


class Mean(Function):
    def forward(self, a, axes, keepdims):
        self.shape, self.axes = a.shape, axes
        return a.mean(axes or None, keepdims)

    def backward(self, g):
        count = math.prod(self.shape[i] for i in self.axes)
        return (g.reshape(_kept_shape(self.shape, self.axes)).broadcast_to(self.shape) / float(count),)


class Max(Function):
    """The largest element; ties share the gradient evenly (PyTorch's rule for a full max)."""

    def forward(self, a):
        self.a = a
        self.out = a.max()
        return self.out

    def backward(self, g):
        mask = self.a == self.out
        return (mask * (g / mask.sum()),)


class MaxDim(Function):
    """Max along one axis; the gradient goes to the first maximum, the index that argmax reports."""

    def forward(self, a, axis, keepdims):
        self.a, self.axis = a, axis
        return a.max(axis, keepdims)

    def backward(self, g):
        a, axis = self.a, self.axis
        positions = arange_along(a.shape[axis], axis, a.ndim, a.dtype, a.device)
        mask = positions == a.argmax(axis, True)
        return (mask * g.reshape(_kept_shape(a.shape, (axis,))),)


# ---- views and copies ----
class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.shape),)


class View(Function):
    """Like Reshape, but never copies: the NDArray raises when the strides do not allow a view."""

    def forward(self, a, shape):
        self.shape = a.shape
        return a.view(shape)

    def backward(self, g):
        return (g.reshape(self.shape),)


class Permute(Function):
    def forward(self, a, axes):
        self.inverse = tuple(int(i) for i in np.argsort(axes))
        return a.permute(axes)

    def backward(self, g):
        return (g.permute(self.inverse),)


class BroadcastTo(Function):
    def forward(self, a, shape):
        return a.broadcast_to(shape)

    def backward(self, g):
        return (g,)  # the engine sums it back to the input's shape


class Index(Function):
    """Basic indexing (ints, slices, ...); the gradient scatters into zeros through the same index."""

    def forward(self, a, index):
        self.shape, self.dtype, self.device, self.index = a.shape, a.dtype, a.device, index
        return a[index]

    def backward(self, g):
        ga = NDArray.full(self.shape, 0.0, self.dtype, self.device)
        ga[self.index] = g
        return (ga,)


class Copy(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return (g,)


class To(Function):
    """Device move and/or dtype cast; the gradient goes back the same way."""

    def forward(self, a, device, dtype):
        self.device, self.dtype = a.device, a.dtype
        out = a.to(device) if device != a.device else a
        return out.astype(dtype) if dtype != a.dtype else out

    def backward(self, g):
        g = g.astype(self.dtype) if g.dtype != self.dtype else g
        return (g.to(self.device) if g.device != self.device else g,)
