"""Shared helpers for the NDArray tests: random arrays laid out as contiguous, permuted, sliced (negative
steps included), flipped or broadcast views, each paired with the NumPy array holding the same values."""
import operator

import numpy as np

import convlab as cl

DTYPES = ["float32", "float64"]
LAYOUTS = ["contiguous", "permuted", "sliced", "flipped", "broadcast"]
TOL = {"float32": dict(rtol=2e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14),
       "int32": dict(rtol=0, atol=0), "int64": dict(rtol=0, atol=0), "bool": dict(rtol=0, atol=0)}

# name -> (NDArray op, NumPy reference): the binary ops of every dtype.
BINARY = {
    "add": (operator.add, np.add),
    "sub": (operator.sub, np.subtract),
    "mul": (operator.mul, np.multiply),
    "div": (operator.truediv, np.divide),
    "pow": (operator.pow, np.power),
    "maximum": (lambda a, b: a.maximum(b), np.maximum),
    "minimum": (lambda a, b: a.minimum(b), np.minimum),
    "eq": (operator.eq, np.equal),
    "ne": (operator.ne, np.not_equal),
    "lt": (operator.lt, np.less),
    "le": (operator.le, np.less_equal),
    "gt": (operator.gt, np.greater),
    "ge": (operator.ge, np.greater_equal),
}


def rand(rng, shape, dtype):
    return np.asarray(rng.standard_normal(shape), dtype=dtype)


def as_view(rng, x, layout, device):
    """An NDArray view whose values equal the NumPy array x, built over storage laid out by `layout`;
    returns (view, values) where values is x (or, for "broadcast", x with some axes repeated)."""
    x = np.asarray(x)  # NumPy arithmetic on 0-d arrays gives scalars
    if layout == "contiguous" or x.ndim == 0:
        return cl.NDArray.from_numpy(x, device=device), x
    if layout == "permuted":
        perm = rng.permutation(x.ndim)
        base = np.ascontiguousarray(x.transpose(np.argsort(perm)))
        return cl.NDArray.from_numpy(base, device=device).permute(tuple(int(p) for p in perm)), x
    if layout == "sliced":
        # x sits at every second (or third) element of a bigger array, walked backwards on some axes.
        steps = [int(rng.choice([2, 3, -2])) if n > 0 else 2 for n in x.shape]
        big = rand(rng, tuple(abs(s) * n + 1 for s, n in zip(steps, x.shape)), x.dtype)
        idx = tuple(slice(0, abs(s) * n, s) if s > 0 else slice(abs(s) * n - 1, None, s) for s, n in zip(steps, x.shape))
        big[idx] = x
        return cl.NDArray.from_numpy(big, device=device)[idx], x
    if layout == "flipped":
        axes = tuple(range(0, x.ndim, 2))
        return cl.NDArray.from_numpy(np.ascontiguousarray(np.flip(x, axes)), device=device).flip(axes), x
    if layout == "broadcast":
        small = x[tuple(slice(0, 1) if d % 2 == 0 else slice(None) for d in range(x.ndim))].copy()
        return cl.NDArray.from_numpy(small, device=device).broadcast_to(x.shape), np.broadcast_to(small, x.shape)
    raise ValueError(layout)


def check(got, want, dtype=None):
    """got: an NDArray; want: a NumPy array. Same shape, dtype and values (NaN where NaN)."""
    dtype = dtype or str(want.dtype)
    assert got.dtype == dtype
    assert tuple(got.shape) == tuple(np.shape(want))
    np.testing.assert_allclose(got.numpy(), want, equal_nan=True, **TOL[dtype])
