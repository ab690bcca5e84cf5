"""Autograd: grad mode, Function (one differentiable op), the backward engine, and the tensor-math
Functions (element-wise, reductions, views, matmul).

forward and backward see only NDArrays (and Python numbers), so a device that has the NDArray kernels has
gradients for free. backward returns one gradient per positional input of forward (None where there is
nothing to differentiate); the engine (run_backward) sums broadcast gradients back to each input's shape,
so element-wise rules are written as if no broadcasting happened.

tensor.py imports this module, never the reverse: the Tensor class that Function.apply and the engine wrap
their results in is handed over by tensor.py once it is defined (`Tensor` below).
"""
import functools
import math
import sys

import numpy as np

from . import _C

FLOATING = ("float32", "float64")  # the dtypes with gradients and the float-only kernels

NDArray = _C.NDArray
Tensor = None  # convlab.tensor.Tensor, set by tensor.py

_grad_enabled = True


def is_grad_enabled():
    return _grad_enabled


class _GradMode:
    """Context manager, and decorator as @cls() or @cls, that sets grad mode to `enabled` inside and restores
    the previous mode on the way out."""

    enabled = False

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        return self if fn is None else self(fn)

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            global _grad_enabled
            prev, _grad_enabled = _grad_enabled, self.enabled  # a local prev, so recursive calls nest
            try:
                return fn(*args, **kwargs)
            finally:
                _grad_enabled = prev

        return wrapped


class no_grad(_GradMode):
    """New results record no graph inside."""

    enabled = False


class enable_grad(_GradMode):
    """Grad mode back on inside, e.g. within a no_grad() block."""

    enabled = True


class inference_mode(_GradMode):
    """As no_grad() (convlab has no separate inference tensors); inference_mode(False) leaves grad mode as
    it is."""

    def __new__(cls, mode=True):
        if callable(mode):  # used bare, as @inference_mode
            return super().__new__(cls, mode)
        self = super().__new__(cls)
        self.enabled = not mode and is_grad_enabled()
        return self


class set_grad_enabled(_GradMode):
    """set_grad_enabled(mode) switches grad mode at once; used as a context manager it restores the previous
    mode on exit."""

    def __new__(cls, mode):
        global _grad_enabled
        self = super().__new__(cls)
        self.enabled, self._prev, _grad_enabled = bool(mode), _grad_enabled, bool(mode)
        return self

    def __enter__(self):
        pass


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
        tensors = [a for a in args if isinstance(a, Tensor)]
        check_same_device(*tensors)
        fn = cls()
        fn.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        out = fn.forward(*(a._data if isinstance(a, Tensor) else a for a in args), **params)
        # Integer and bool results (casts, rounding to int) are constants to autograd, as in PyTorch.
        floating = out.dtype in FLOATING
        requires_grad = is_grad_enabled() and any(fn.needs_input_grad) and floating
        result = Tensor(out, requires_grad=requires_grad)
        if requires_grad:
            fn.inputs = tuple(a if isinstance(a, Tensor) else None for a in args)
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


def run_backward(root, grad):
    """Reverse-mode sweep from `root` with seed gradient `grad` (an NDArray of root's shape)."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:  # iterative post-order DFS: every tensor lands after all of its inputs
        t, inputs_done = stack.pop()
        if inputs_done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            stack.extend((p, False) for p in t._ctx.inputs if p is not None and id(p) not in seen)
    grads = {id(root): grad}
    for t in reversed(order):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        if t._ctx is None:  # grads can be updated in place, so a leaf keeps g itself only when nothing else can see it
            t.grad = Tensor((g if _sole_owner(g) else g.copy()) if t.grad is None else t.grad._data + g)
            for hook in list(t._post_accumulate_grad_hooks.values()):
                hook(t)
            continue
        t._ctx.check_saved()
        for inp, g_in in zip(t._ctx.inputs, t._ctx.backward(g)):
            if inp is None or g_in is None or not inp.requires_grad:
                continue
            g_in = sum_to_shape(g_in, inp.shape)
            grads[id(inp)] = grads[id(inp)] + g_in if id(inp) in grads else g_in
        g = g_in = None  # no reference left behind to the gradients just handed on (see _sole_owner)


def _sole_owner(g):
    """True when g is the only array over its memory and the engine's variable the only reference to g (a
    gradient a kernel has just made, not one a Function handed to several inputs, a view, or the caller's
    seed): a leaf can then keep g as its .grad without the copy (a pass over every parameter per step)."""
    return g._storage_refs == 1 and sys.getrefcount(g) <= 3  # the engine's g, this argument, getrefcount's


# ---- binary (either operand may be a Python number; binary_op names the NDArray op, whose dtype rules
# Tensor operators apply before the Function runs) ----
class Add(Function):
    binary_op = "add"

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    binary_op = "sub"

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g if self.needs_input_grad[1] else None


class Mul(Function):
    binary_op = "mul"

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        need_a, need_b = self.needs_input_grad
        return g * self.b if need_a else None, g * self.a if need_b else None


class Div(Function):
    binary_op = "div"

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

    binary_op = "pow"

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
            if isinstance(a, float):
                safe_a = (b >= 0.0).astype(b.dtype) * float(a == 0.0) + a
            else:
                safe_a = a + (a == 0.0) * (b >= 0.0)
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
    """The gradient passes where the output is above 0 (one fused kernel reading g and the output, which the
    next layer keeps anyway)."""

    def forward(self, a):
        self.out = a.relu()
        return self.out

    def backward(self, g):
        return (_C.clamp_backward(g, self.out, 0.0),)


class LeakyRelu(Function):
    """y = a for a > 0, slope * a otherwise; the gradient at 0 is slope, as in PyTorch."""

    def forward(self, a, negative_slope):
        self.factor = (a > 0.0).astype(a.dtype) * (1.0 - negative_slope) + negative_slope
        return a * self.factor

    def backward(self, g):
        return (g * self.factor,)


def clamped(a, lo, hi):
    """min(max(a, lo), hi); lo and hi arrays, numbers or None. Number bounds on a floating array take one
    pass (_C.clamp) instead of two."""
    if a.dtype in FLOATING and not isinstance(lo, NDArray) and not isinstance(hi, NDArray):
        return _C.clamp(a, lo, hi)
    out = a if lo is None else a.maximum(lo)
    return out if hi is None else out.minimum(hi)


# The piecewise activations below are Functions rather than compositions of relu/min/max so that their
# gradients at the joins (x = lo, hi, -3, 3, 0) are PyTorch's.
class Hardtanh(Function):
    """y = min(max(a, lo), hi); the gradient is 1 strictly inside (lo, hi), 0 elsewhere (relu6: 0 to 6)."""

    def forward(self, a, lo, hi):
        self.out, self.bounds = clamped(a, lo, hi), (lo, hi)
        return self.out

    def backward(self, g):  # strictly inside (lo, hi) in the output is strictly inside in the input
        return _C.clamp_backward(g, self.out, *self.bounds), None, None


class Hardsigmoid(Function):
    """y = relu6(a + 3) / 6; the gradient is 1/6 strictly inside (-3, 3), 0 elsewhere. PyTorch's kernel
    multiplies by the float32 constant 1.0f / 6.0f in every dtype, so this does too."""

    ONE_SIXTH = float(np.float32(1.0) / np.float32(6.0))

    def forward(self, a):
        self.inside = ((a > -3.0) * (a < 3.0)).astype(a.dtype)
        return clamped(a + 3.0, 0.0, 6.0) / 6.0

    def backward(self, g):
        return (g * self.inside * self.ONE_SIXTH,)


class Hardswish(Function):
    """y = a * relu6(a + 3) / 6; the gradient is 0 up to -3, a/3 + 1/2 strictly inside (-3, 3), 1 from 3."""

    def forward(self, a):
        self.a = a
        return a * clamped(a + 3.0, 0.0, 6.0) / 6.0

    def backward(self, g):
        a = self.a
        ramp, above = ((a > -3.0) * (a < 3.0)).astype(a.dtype), (a >= 3.0).astype(a.dtype)
        return (g * (ramp * (a / 3.0 + 0.5) + above),)


class Elu(Function):
    """y = a for a > 0, alpha * (exp(a) - 1) otherwise (exp of min(a, 0), which cannot overflow)."""

    def forward(self, a, alpha):
        self.positive = (a > 0.0).astype(a.dtype)
        self.scaled_exp = a.minimum(0.0).exp() * alpha
        return a.relu() + (self.scaled_exp - alpha) * (1.0 - self.positive)

    def backward(self, g):
        return g * (self.positive + self.scaled_exp * (1.0 - self.positive)), None


class Gelu(Function):
    """y = a Phi(a), Phi(a) = (1 + erf(a / sqrt(2))) / 2 the normal CDF; dy/da = Phi(a) + a phi(a)."""

    def forward(self, a):
        self.a = a
        self.cdf = ((a * math.sqrt(0.5)).erf() + 1.0) * 0.5
        return a * self.cdf

    def backward(self, g):
        a = self.a
        density = (a * a * -0.5).exp() * (1.0 / math.sqrt(2.0 * math.pi))
        return (g * (self.cdf + a * density),)


class Prelu(Function):
    """y = a for a > 0, w * a otherwise (w broadcast over a); dy/da = 1 or w (w at a = 0, as in PyTorch),
    dy/dw = a where a <= 0 (the engine sums it to w's shape)."""

    def forward(self, a, w):
        self.a, self.w = a, w
        self.positive = (a > 0.0).astype(a.dtype)
        return a * (self.positive + (1.0 - self.positive) * w)

    def backward(self, g):
        need_a, need_w = self.needs_input_grad
        negative = 1.0 - self.positive
        ga = g * (self.positive + negative * self.w) if need_a else None
        gw = g * self.a * negative if need_w else None
        return ga, gw


class LogSigmoid(Function):
    """y = log(sigmoid(a)) = -(relu(-a) + log(1 + exp(-|a|))), which neither overflows nor rounds to log 0;
    dy/da = sigmoid(-a), exact at a = 0 where relu's kink would otherwise give the one-sided value."""

    def forward(self, a):
        self.a = a
        return -((-a).relu() + ((-a.abs()).exp() + 1.0).log())

    def backward(self, g):
        return (g * (-self.a).sigmoid(),)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return a.abs()

    def backward(self, g):
        return (g * self.a.sign(),)


class Erf(Function):
    """d erf(a)/da = 2 / sqrt(pi) * exp(-a^2)."""

    def forward(self, a):
        self.a = a
        return a.erf()

    def backward(self, g):
        return (g * (self.a * self.a * -1.0).exp() * (2.0 / math.sqrt(math.pi)),)


class Step(Function):
    """floor, ceil, round or sign (op: the NDArray method): flat wherever it is differentiable, so the
    gradient is 0, as in PyTorch (zeros, not g * 0, which is NaN where g is infinite)."""

    def forward(self, a, op):
        return getattr(a, op)()

    def backward(self, g):
        return (NDArray.full(g.shape, 0.0, g.dtype, g.device),)


class Remainder(Function):
    """a - floor(a / b) * b, signed like b: d/da = 1, d/db = -floor(a / b) (PyTorch's rule)."""

    binary_op = "remainder"

    def forward(self, a, b):
        self.a, self.b = a, b
        return a % b

    def backward(self, g):
        return g, -(g * (self.a // self.b)) if self.needs_input_grad[1] else None


class FloorDivide(Function):
    binary_op = "floor_divide"

    def forward(self, a, b):
        return a // b

    def backward(self, g):
        raise RuntimeError("the derivative for floor_divide is not implemented (as in PyTorch)")


class Clamp(Function):
    """min(max(a, lo), hi); lo and hi are arrays, numbers or None. PyTorch's gradient rule: a gets g where
    lo <= a <= hi (ends included); lo gets it where a < lo < hi, hi where a > hi or hi < lo (then every
    element is hi)."""

    def forward(self, a, lo, hi):
        self.a, self.lo, self.hi = a, lo, hi
        return clamped(a, lo, hi)

    def backward(self, g):
        a, lo, hi = self.a, self.lo, self.hi
        need_a, need_lo, need_hi = self.needs_input_grad
        g_a = g_lo = g_hi = None
        if need_a:
            g_a = g * (1.0 if lo is None else a >= lo) * (1.0 if hi is None else a <= hi)
        if need_lo:
            g_lo = g * (a < lo) * (1.0 if hi is None else lo < hi)
        if need_hi:
            above = a > hi
            g_hi = g * (above if lo is None else above.logical_or(hi < lo))
        return g_a, g_lo, g_hi


class Extremum(Function):
    """maximum(a, b) (largest=True) or minimum(a, b); PyTorch's gradient rule: the larger (smaller) side gets
    g, and where a == b each side gets g / 2."""

    def forward(self, a, b, largest):
        self.a, self.b, self.largest = a, b, largest
        return a.maximum(b) if largest else a.minimum(b)

    def backward(self, g):
        a, b = self.a, self.b
        need_a, need_b = self.needs_input_grad
        shared = g - g * (a == b) * 0.5
        a_loses, b_loses = (a < b, b < a) if self.largest else (a > b, b > a)
        return shared * a_loses.logical_not() if need_a else None, shared * b_loses.logical_not() if need_b else None


# ---- reductions (axes: a sorted tuple; the empty tuple only for 0-d input) ----
def _kept_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    def forward(self, a, axes, keepdims):
        self.shape, self.axes = a.shape, axes
        return a.sum(axes or None, keepdims)

    def backward(self, g):
        return (g.reshape(_kept_shape(self.shape, self.axes)).broadcast_to(self.shape),)


class VectorNorm(Function):
    """(sum |a|^ord)^(1/ord) over axes, ord a positive number. The gradient is PyTorch's,
    sign(a) |a|^(ord-1) / norm^(ord-1), taken as 0 where a == 0 (|0|^(ord-1) is infinite for ord < 1) and where
    the norm is 0, where composing it from pow would give 0 * inf = NaN."""

    def forward(self, a, ord, axes, keepdims):
        self.a, self.ord = a, ord
        powered = a * a if ord == 2 else a.abs() ** ord
        total = powered.sum(axes or None, True)
        self.out = total.sqrt() if ord == 2 else total ** (1.0 / ord)
        return self.out if keepdims else self.out.reshape(tuple(n for i, n in enumerate(a.shape) if i not in axes))

    def backward(self, g):
        a, p = self.a, self.ord
        scaled = a if p == 2 else a.sign() * (a.abs() + (a == 0.0)) ** (p - 1.0)
        norm = self.out + (self.out == 0.0)  # where it is 0 so is every a it covers, and scaled is 0 already
        return (g.reshape(self.out.shape) * scaled / (norm if p == 2 else norm ** (p - 1.0)),)


class Mean(Function):
    def forward(self, a, axes, keepdims):
        self.shape, self.axes = a.shape, axes
        return a.mean(axes or None, keepdims)

    def backward(self, g):
        count = math.prod(self.shape[i] for i in self.axes)
        return (g.reshape(_kept_shape(self.shape, self.axes)).broadcast_to(self.shape) / float(count),)


class Extreme(Function):
    """The largest element (the smallest with largest=False); ties share the gradient evenly (PyTorch's rule
    for a full max / min)."""

    def forward(self, a, largest):
        self.a = a
        self.out = a.max() if largest else a.min()
        return self.out

    def backward(self, g):
        mask = self.a == self.out
        return (mask * (g / mask.sum()),)


class ExtremeDim(Function):
    """Max (min with largest=False) along one axis; the gradient goes to the first extreme, the index that
    argmax (argmin) reports."""

    def forward(self, a, axis, keepdims, largest):
        self.a, self.axis, self.largest = a, axis, largest
        return a.max(axis, keepdims) if largest else a.min(axis, keepdims)

    def backward(self, g):
        a, axis = self.a, self.axis
        positions = arange_along(a.shape[axis], axis, a.ndim, "int64", a.device)
        mask = positions == (a.argmax(axis, True) if self.largest else a.argmin(axis, True))
        return (mask * g.reshape(_kept_shape(a.shape, (axis,))),)


def _product(a, axis):
    """The product along axis, kept as length 1: halves multiplied pairwise, log2(n) element-wise kernels."""
    if a.shape[axis] == 0:
        return NDArray.full(_kept_shape(a.shape, (axis,)), 1.0, a.dtype, a.device)
    lead = (slice(None),) * axis
    while a.shape[axis] > 1:
        n, half = a.shape[axis], a.shape[axis] // 2
        pairs = a[lead + (slice(0, half),)] * a[lead + (slice(half, 2 * half),)]
        if n % 2:  # the odd one out joins the first pair
            pairs[lead + (slice(0, 1),)] = pairs[lead + (slice(0, 1),)] * a[lead + (slice(n - 1, n),)]
        a = pairs
    return a


class Prod(Function):
    """Product along one axis. PyTorch's gradient: g * (product of the others), that is g * out / a on a line
    without zeros, g * (product of the nonzero elements) at the only zero of a line, and 0 elsewhere."""

    def forward(self, a, axis, keepdims):
        self.a, self.axis = a, axis
        out = _product(a, axis)
        return out if keepdims else out.reshape(tuple(s for i, s in enumerate(a.shape) if i != axis))

    def backward(self, g):
        a, axis = self.a, self.axis
        zero = a == 0.0
        zeros = zero.sum(axis, True)
        others = _product(a + zero, axis)  # the product of the nonzero elements
        g = g.reshape(_kept_shape(a.shape, (axis,)))
        return (g * others * ((zeros == 0) / (a + zero) + (zeros == 1) * zero),)


class Var(Function):
    """Variance over axes, sum((a - mean)^2) / (N - correction) (N - correction <= 0 gives inf or NaN, as in
    PyTorch), or with root=True the standard deviation. d var/da = 2 (a - mean) / (N - correction); d std/da
    = that / (2 std), taken as 0 where std == 0 (PyTorch's rule for a constant input)."""

    def forward(self, a, axes, correction, keepdims, root):
        count = math.prod(a.shape[i] for i in axes)
        self.scale = 1.0 / (count - correction) if count > correction else math.inf
        self.centred = a - a.mean(axes or None, True)
        self.kept, self.root = _kept_shape(a.shape, axes), root
        var = (self.centred * self.centred).sum(axes or None, keepdims) * self.scale
        self.out = var.sqrt() if root else var
        return self.out

    def backward(self, g):
        g = g.reshape(self.kept)
        if self.root:
            out = self.out.reshape(self.kept)
            g = g * (out != 0.0) / (out * 2.0 + (out == 0.0))
        return (g * self.centred * (2.0 * self.scale),)


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


class Cat(Function):
    """Joins arrays along axis: each is written into its slice of one new array, and the gradient of each is
    that slice of g."""

    def forward(self, *arrays, axis):
        first = arrays[0]
        shape = list(first.shape)
        shape[axis] = sum(a.shape[axis] for a in arrays)
        out = NDArray.empty(tuple(shape), first.dtype, first.device)
        self.slices, start = [], 0
        for a in arrays:
            self.slices.append((slice(None),) * axis + (slice(start, start + a.shape[axis]),))
            out[self.slices[-1]] = a
            start += a.shape[axis]
        return out

    def backward(self, g):
        return tuple(g[index] for index in self.slices)


class SetIndex(Function):
    """a with a[index] = v (a basic index, v broadcast), as a new array: the gradient goes to a outside the
    indexed region and to v from inside it."""

    def forward(self, a, v, index):
        self.index = index
        out = a.copy()
        out[index] = v
        return out

    def backward(self, g):
        ga = g.copy()
        ga[self.index] = 0.0
        return ga, g[self.index]


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


# ---- indexing by values (index arrays are int64/int32 NDArrays passed as keywords: never differentiated) ----
class Where(Function):
    """cond ? a : b; the gradient goes to a where cond holds and to b elsewhere."""

    def forward(self, a, b, cond):
        self.cond = cond
        return _C.where(cond, a, b)

    def backward(self, g):
        zero = NDArray.full((), 0.0, g.dtype, g.device)
        need_a, need_b = self.needs_input_grad
        return (_C.where(self.cond, g, zero) if need_a else None,
                _C.where(self.cond, zero, g) if need_b else None)


class Gather(Function):
    """torch.gather along axis; the gradient adds g back at the gathered positions (scatter_add)."""

    def forward(self, a, axis, index):
        self.shape, self.axis, self.index = a.shape, axis, index
        return a.gather(axis, index)

    def backward(self, g):
        return (_C.scatter_add(self.shape, self.axis, self.index, g),)


def _gathered_src(g, axis, index, src_shape):
    """src's gradient in scatter and scatter_add: g at the positions src was written to, 0 where src reaches
    beyond index."""
    gsrc = g.gather(axis, index)
    if gsrc.shape == tuple(src_shape):
        return gsrc
    full = NDArray.full(src_shape, 0.0, g.dtype, g.device)
    full[tuple(slice(0, n) for n in gsrc.shape)] = gsrc
    return full


class ScatterAdd(Function):
    """a plus src added at index's positions along axis. Gradients: g for a; g gathered back for src."""

    def forward(self, a, src, axis, index):
        self.axis, self.index, self.src_shape = axis, index, src.shape
        return a + _C.scatter_add(a.shape, axis, index, src)

    def backward(self, g):
        need_src = self.needs_input_grad[1]
        return g, _gathered_src(g, self.axis, self.index, self.src_shape) if need_src else None


class Scatter(Function):
    """a with src written at index's positions along axis (a repeated position keeps the last entry).
    Gradients: g for a except at the written positions; g gathered back for src (PyTorch's rule)."""

    def forward(self, a, src, axis, index):
        self.axis, self.index, self.src_shape = axis, index, src.shape
        out = a.copy()
        out.scatter_(axis, index, src)
        return out

    def backward(self, g):
        need_a, need_src = self.needs_input_grad
        ga = None
        if need_a:
            ga = g.copy()
            ga.scatter_(self.axis, self.index, NDArray.full(self.index.shape, 0.0, g.dtype, g.device))
        return ga, _gathered_src(g, self.axis, self.index, self.src_shape) if need_src else None


class IndexSelect(Function):
    """torch.index_select (1-D index); the gradient adds g back at the selected positions (index_add)."""

    def forward(self, a, axis, index):
        self.shape, self.axis, self.index = a.shape, axis, index
        return a.index_select(axis, index)

    def backward(self, g):
        return (_C.index_add(self.shape, self.axis, self.index, g),)


class IndexAdd(Function):
    """a plus alpha * src added at the 1-D index's positions along axis; src's gradient is alpha * g at those
    positions."""

    def forward(self, a, src, axis, index, alpha):
        self.axis, self.index, self.alpha = axis, index, alpha
        return a + _C.index_add(a.shape, axis, index, src if alpha == 1 else src * alpha)

    def backward(self, g):
        if not self.needs_input_grad[1]:
            return g, None
        gsrc = g.index_select(self.axis, self.index)
        return g, gsrc if self.alpha == 1 else gsrc * self.alpha


class Take(Function):
    """x[idx] along one axis, the axis replaced by idx's shape (NumPy's take: negative entries count from the
    end); the gradient adds g back at the taken positions, repeated ones summing in order (unique: idx
    repeats none, as a mask's positions)."""

    def forward(self, a, axis, index, unique=False):
        self.shape, self.axis, self.index, self.unique = a.shape, axis, index, unique
        return a.take(axis, index)

    def backward(self, g):
        ga = NDArray.full(self.shape, 0.0, g.dtype, g.device)
        ga.put(self.axis, self.index, g, accumulate=True, unique_indices=self.unique)
        return (ga,)
