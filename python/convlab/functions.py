"""PyTorch's top-level tensor functions (torch.cat, torch.abs, torch.clamp, ...) as convlab.xxx.

Where PyTorch has a Tensor method of the same name the function calls it, so each op is written once (in
tensor.py, its gradient in autograd.py); the functions without a method (cat, stack, mm, bmm) live here.
This module is apart from tensor.py because its names (abs, all, any, max, min, round, sum, pow) shadow
Python's built-ins: code here must not call those built-ins.
"""
import numpy as np

from . import autograd
from .tensor import Tensor, _axis, matmul


def _check(op, **tensors):
    for name, t in tensors.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")


def _sequence(op, tensors):
    """tensors as a non-empty list of Tensors (a tuple or list, as PyTorch takes them)."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: tensors must be a tuple or list of Tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a Tensor at entry {i}, got {type(t).__name__}")
    dtypes = sorted({str(t.dtype) for t in tensors})
    if len(dtypes) > 1:
        raise TypeError(f"{op}: the tensors must have one dtype, got {' and '.join(dtypes)}; convert with .to(dtype)")
    return list(tensors)


# ---- joining and splitting ----
def cat(tensors, dim=0):
    """The tensors joined along dim; all other sizes must agree. A 1-D empty tensor is skipped (PyTorch's
    rule, which lets code start from torch.tensor([]) and grow it)."""
    tensors = _sequence("cat", tensors)
    parts = [(i, t) for i, t in enumerate(tensors) if t.shape != (0,)] or [(0, tensors[0])]
    first = parts[0][1]
    if first.ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    axis = _axis(dim, first.ndim)
    others = first.shape[:axis] + first.shape[axis + 1:]
    for i, t in parts:
        if t.ndim != first.ndim or t.shape[:axis] + t.shape[axis + 1:] != others:
            raise ValueError(f"cat: sizes of tensors must match except in dimension {dim}: entry {parts[0][0]} has "
                             f"shape {tuple(first.shape)}, entry {i} has shape {tuple(t.shape)}")
    return autograd.Cat.apply(*(t for _, t in parts), axis=axis)


concat = concatenate = cat


def stack(tensors, dim=0):
    """The tensors (all of one shape) joined along a new axis dim."""
    tensors = _sequence("stack", tensors)
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: expects each tensor to be of equal size, but got {tuple(tensors[0].shape)} "
                             f"at entry 0 and {tuple(t.shape)} at entry {i}")
    axis = _axis(dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(axis) for t in tensors], axis)


def split(tensor, split_size_or_sections, dim=0):
    _check("split", tensor=tensor)
    return tensor.split(split_size_or_sections, dim)


def chunk(input, chunks, dim=0):
    _check("chunk", input=input)
    return input.chunk(chunks, dim)


def unbind(input, dim=0):
    _check("unbind", input=input)
    return input.unbind(dim)


# ---- shapes ----
def flatten(input, start_dim=0, end_dim=-1):
    _check("flatten", input=input)
    return input.flatten(start_dim, end_dim)


def reshape(input, shape):
    _check("reshape", input=input)
    return input.reshape(shape)


def squeeze(input, dim=None):
    _check("squeeze", input=input)
    return input.squeeze(dim)


def unsqueeze(input, dim):
    _check("unsqueeze", input=input)
    return input.unsqueeze(dim)


def permute(input, dims):
    _check("permute", input=input)
    return input.permute(dims)


def transpose(input, dim0, dim1):
    _check("transpose", input=input)
    return input.transpose(dim0, dim1)


swapaxes = transpose


def t(input):
    _check("t", input=input)
    return input.t()


def narrow(input, dim, start, length):
    _check("narrow", input=input)
    return input.narrow(dim, start, length)


def clone(input):
    _check("clone", input=input)
    return input.clone()


# ---- matrix products ----
def mm(input, mat2):
    """The product of two matrices (no broadcasting, as in PyTorch)."""
    _check("mm", input=input, mat2=mat2)
    if input.ndim != 2 or mat2.ndim != 2:
        raise ValueError(f"mm: both arguments must be 2-D, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    if input.shape[1] != mat2.shape[0]:
        raise ValueError(f"mm: input and mat2 shapes cannot be multiplied ({input.shape[0]}x{input.shape[1]} and "
                         f"{mat2.shape[0]}x{mat2.shape[1]})")
    return matmul(input, mat2)


def bmm(input, mat2):
    """Batched matrix product of (b, n, m) and (b, m, p) tensors (no broadcasting, as in PyTorch)."""
    _check("bmm", input=input, mat2=mat2)
    if input.ndim != 3 or mat2.ndim != 3:
        raise ValueError(f"bmm: both arguments must be 3-D, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    if input.shape[0] != mat2.shape[0] or input.shape[2] != mat2.shape[1]:
        raise ValueError(f"bmm: shapes {tuple(input.shape)} and {tuple(mat2.shape)} cannot be multiplied (need "
                         f"(b, n, m) and (b, m, p))")
    return matmul(input, mat2)


# ---- element-wise ----
def abs(input):
    _check("abs", input=input)
    return input.abs()


def neg(input):
    _check("neg", input=input)
    return input.neg()


def sqrt(input):
    _check("sqrt", input=input)
    return input.sqrt()


def rsqrt(input):
    _check("rsqrt", input=input)
    return input.rsqrt()


def square(input):
    _check("square", input=input)
    return input.square()


def exp(input):
    _check("exp", input=input)
    return input.exp()


def log(input):
    _check("log", input=input)
    return input.log()


def tanh(input):
    _check("tanh", input=input)
    return input.tanh()


def sigmoid(input):
    _check("sigmoid", input=input)
    return input.sigmoid()


def relu(input):
    _check("relu", input=input)
    return input.relu()


def pow(input, exponent):
    """input ** exponent; either may be a number (not both)."""
    if not isinstance(input, Tensor):
        _check("pow", exponent=exponent)
        return input ** exponent
    return input.pow(exponent)


def clamp(input, min=None, max=None):
    _check("clamp", input=input)
    return input.clamp(min, max)


clip = clamp


def maximum(input, other):
    _check("maximum", input=input, other=other)
    return input.maximum(other)


def minimum(input, other):
    _check("minimum", input=input, other=other)
    return input.minimum(other)


# ---- one Tensor method each (the method documents it) ----
def _method_function(name):
    """torch.name(input, *args, **kwargs): input.name(*args, **kwargs) for a Tensor input."""
    def function(input, *args, **kwargs):
        _check(name, input=input)
        return getattr(input, name)(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    return function


(eq, ne, lt, le, gt, ge, greater, greater_equal, less, less_equal, not_equal, logical_and, logical_or, logical_xor,
 logical_not, bitwise_and, bitwise_or, bitwise_xor, bitwise_not, floor_divide, remainder, erf, floor, ceil, round,
 sign, min, argmax, argmin, any, all, is_floating_point) = (_method_function(name) for name in (
    "eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal", "not_equal", "logical_and",
    "logical_or", "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
    "floor_divide", "remainder", "erf", "floor", "ceil", "round", "sign", "min", "argmax", "argmin", "any", "all",
    "is_floating_point"))


# ---- comparisons to a Python bool ----
def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether |input - other| <= atol + rtol * |other| everywhere (broadcasting)."""
    _check("allclose", input=input, other=other)
    return bool(np.allclose(input.numpy(), other.numpy(), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input, other):
    """Whether both have the same shape and the same values."""
    _check("equal", input=input, other=other)
    return input.shape == other.shape and bool(np.array_equal(input.numpy(), other.numpy()))


# ---- reductions ----
def sum(input, dim=None, keepdim=False):
    _check("sum", input=input)
    return input.sum(dim, keepdim)


def mean(input, dim=None, keepdim=False):
    _check("mean", input=input)
    return input.mean(dim, keepdim)


def max(input, dim=None, keepdim=False):
    """max(x): the largest element; max(x, dim): (values, indices); max(x, other_tensor): maximum."""
    _check("max", input=input)
    return input.max(dim, keepdim)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    _check("var", input=input)
    return input.var(dim, unbiased, keepdim, correction=correction)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    _check("std", input=input)
    return input.std(dim, unbiased, keepdim, correction=correction)


def logsumexp(input, dim, keepdim=False):
    _check("logsumexp", input=input)
    return input.logsumexp(dim, keepdim)


def softmax(input, dim, dtype=None):
    _check("softmax", input=input)
    return input.softmax(dim, dtype=dtype)


def log_softmax(input, dim, dtype=None):
    _check("log_softmax", input=input)
    return input.log_softmax(dim, dtype=dtype)
