"""PyTorch's top-level tensor functions (torch.cat, torch.abs, torch.clamp, ...) as convlab.xxx.

Where PyTorch has a Tensor method of the same name the function calls it (_method_function), so each op is
written once (in tensor.py, its gradient in autograd.py); the functions without a method (cat, stack, mm, bmm,
allclose, equal) are written here.
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


# PyTorch's promotion for tensors that all have dimensions, over convlab's dtypes: the later one wins
_PROMOTION_ORDER = ("bool", "int32", "int64", "float32", "float64")


def _sequence(op, tensors):
    """tensors (a non-empty tuple or list of Tensors, as PyTorch takes them) as a list, converted to their
    promoted dtype."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: tensors must be a tuple or list of Tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a Tensor at entry {i}, got {type(t).__name__}")
    dtype = sorted((t.dtype for t in tensors), key=_PROMOTION_ORDER.index)[-1]
    return [t.to(dtype=dtype) for t in tensors]



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


# ---- pow, whose first argument may be a number ----
def pow(input, exponent):
    """input ** exponent; either may be a number (not both)."""
    if not isinstance(input, Tensor):
        _check("pow", exponent=exponent)
        return input ** exponent
    return input.pow(exponent)


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
 sign, min, argmax, argmin, any, all, is_floating_point, add, sub, subtract, mul, multiply, div, divide,
 true_divide) = (_method_function(name) for name in (
    "eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal", "not_equal", "logical_and",
    "logical_or", "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
    "floor_divide", "remainder", "erf", "floor", "ceil", "round", "sign", "min", "argmax", "argmin", "any", "all",
    "is_floating_point", "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide"))

(split, chunk, unbind, narrow, flatten, reshape, squeeze, unsqueeze, permute, transpose, swapaxes, t, clone, abs, neg,
 sqrt, rsqrt, square, exp, log, tanh, sigmoid, relu, clamp, clip, maximum, minimum, sum, mean, max, var, std,
 logsumexp, softmax, log_softmax, sort, argsort, topk, dot, mv, outer, flip, fliplr, flipud, prod) = (
    _method_function(name) for name in (
    "split", "chunk", "unbind", "narrow", "flatten", "reshape", "squeeze", "unsqueeze", "permute", "transpose",
    "swapaxes", "t", "clone", "abs", "neg", "sqrt", "rsqrt", "square", "exp", "log", "tanh", "sigmoid", "relu", "clamp",
    "clip", "maximum", "minimum", "sum", "mean", "max", "var", "std", "logsumexp", "softmax", "log_softmax", "sort",
    "argsort", "topk", "dot", "mv", "outer", "flip", "fliplr", "flipud", "prod"))

norm, cumsum, roll, tril, triu, isnan, isinf, isfinite = (_method_function(name) for name in (
    "norm", "cumsum", "roll", "tril", "triu", "isnan", "isinf", "isfinite"))


# ---- comparisons to a Python bool ----
def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether |input - other| <= atol + rtol * |other| everywhere (broadcasting)."""
    _check("allclose", input=input, other=other)
    return bool(np.allclose(input.numpy(), other.numpy(), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input, other):
    """Whether both have the same shape and the same values."""
    _check("equal", input=input, other=other)
    return input.shape == other.shape and bool(np.array_equal(input.numpy(), other.numpy()))
