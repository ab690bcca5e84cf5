"""Element types: convlab.float32, float64, int64, int32 and bool, with PyTorch's aliases (float, double,
long, int), as torch.float32 and friends.

A dtype is a str holding the NDArray's name for it ("float32", ...): it compares equal to that name and
passes straight to the NDArray, so dtype="float32" keywords and `t.dtype == "float32"` keep working, while
it prints as PyTorch's does (convlab.float32) and compares equal to the NumPy dtype of the same name.
"""
import numpy as np

from . import _C

NAMES = ("float32", "float64", "int32", "int64", "bool")


class dtype(str):
    __slots__ = ()

    @property
    def is_floating_point(self):
        return self in ("float32", "float64")

    @property
    def is_signed(self):
        return self != "bool"

    @property
    def itemsize(self):
        return np.dtype(self.name).itemsize

    @property
    def name(self):
        return str.__str__(self)

    def __repr__(self):
        return f"convlab.{self.name}"

    __str__ = __repr__

    def __eq__(self, other):
        if isinstance(other, str) or other is None:
            return isinstance(other, str) and str.__eq__(self, other)
        try:  # np.float32, np.dtype("int64"), Python's float / int / bool
            return self.name == np.dtype(other).name
        except (TypeError, ValueError):
            return NotImplemented

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = str.__hash__

    def __reduce__(self):  # pickles (convlab.save) as the module's object, not a plain copy
        return (as_dtype, (self.name,))


float32, float64, int32, int64, bool = (dtype(name) for name in NAMES)
# PyTorch's aliases; `float`, `int` and `bool` shadow the builtins only as convlab.float etc.
float, double, long, int = float32, float64, int64, int32
_BY_NAME = {d.name: d for d in (float32, float64, int32, int64, bool)}
_default = float32


def as_dtype(value):
    """The convlab dtype for a convlab dtype, one of the five names, a NumPy dtype or type, or Python's
    float / int / bool (float64 / int64 / bool, as in PyTorch); None gives the default float dtype.
    TypeError for anything else."""
    if value is None:
        return _default
    if isinstance(value, dtype):
        return value
    try:
        name = np.dtype(value).name
    except (TypeError, ValueError):
        name = None
    if name not in _BY_NAME:
        raise TypeError(f"dtype must be one of convlab.float32, float64, int64, int32, bool (or their names), "
                        f"got {value!r}")
    return _BY_NAME[name]


def get_default_dtype():
    """The dtype of float tensors made without one (convlab.tensor([1.0]), zeros, randn, ...)."""
    return _default


def set_default_dtype(d):
    """Also the dtype integers promote to beside a Python float, in true division and in exp/log/..., as in
    PyTorch."""
    global _default
    d = as_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype: only floating-point dtypes can be the default, got {d!r}")
    _C.set_default_float(d.name)
    _default = d
