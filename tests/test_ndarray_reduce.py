"""Reductions (sum, max, mean over any set of axes, keepdims) and argmax against references written as
explicit loops over the kept positions, on strided inputs of both dtypes."""
import itertools
import math

import numpy as np
import pytest

import convlab as cl
from ndarray_helpers import DTYPES, LAYOUTS, as_view, check, rand


def reduce_ref(x, axes, keepdims, row_fn):
    """Applies row_fn to the flat list of values at each kept position, in float64."""
    axes = tuple(range(x.ndim)) if axes is None else (axes,) if isinstance(axes, int) else axes
    axes = tuple(a % x.ndim for a in axes)
    kept = [d for d in range(x.ndim) if d not in axes]
    out = np.empty(tuple(x.shape[d] for d in kept))
    for pos in itertools.product(*(range(x.shape[d]) for d in kept)):
        idx = [slice(None)] * x.ndim
        for d, p in zip(kept, pos):
            idx[d] = p
        out[pos] = row_fn(x[tuple(idx)].astype(np.float64).ravel())
    if keepdims:
        out = out.reshape(tuple(1 if d in axes else n for d, n in enumerate(x.shape)))
    return out.astype(x.dtype)


def exact_sum(v):
    return math.fsum(v.tolist())  # correctly rounded, so the reference adds no error of its own


def nan_max(v):
    return np.nan if np.isnan(v).any() else max(v.tolist())


AXES = [None, 0, -1, 1, (0, 2), (2, 0), (1, 2), (0, 1, 2), (-3, -2)]
REDUCE = {
    "sum": (lambda a, axes, k: a.sum(axes, k), exact_sum),
    "max": (lambda a, axes, k: a.max(axes, k), nan_max),
    "mean": (lambda a, axes, k: a.mean(axes, k), lambda v: exact_sum(v) / len(v) if len(v) else np.nan),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(REDUCE))
def test_reduce_axes_layouts(device, name, dtype):
    op, row_fn = REDUCE[name]
    rng = np.random.default_rng(0)
    for layout in LAYOUTS:
        x = rand(rng, (3, 5, 4), dtype)
        a, xv = as_view(rng, x, layout, device)
        before = a.numpy()
        for axes in AXES:
            for keepdims in (False, True):
                check(op(a, axes, keepdims), reduce_ref(xv, axes, keepdims, row_fn))
        np.testing.assert_array_equal(a.numpy(), before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (7,), (1, 1), (2, 1, 3), (4, 9, 1, 2)])
def test_reduce_odd_shapes(device, shape, dtype):
    rng = np.random.default_rng(1)
    x = rand(rng, shape, dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    for name, (op, row_fn) in REDUCE.items():
        check(op(a, None, False), reduce_ref(x, None, False, row_fn))
        check(op(a, None, True), reduce_ref(x, None, True, row_fn))
        if x.ndim:
            check(op(a, x.ndim - 1, False), reduce_ref(x, (x.ndim - 1,), False, row_fn))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduce_zero_size(device, dtype):
    a = cl.NDArray.from_numpy(np.zeros((3, 0, 2), dtype), device=device)
    check(a.sum(1), np.zeros((3, 2), dtype))
    check(a.sum(), np.zeros((), dtype))
    check(a.sum((0, 2), True), np.zeros((1, 0, 1), dtype))
    check(a.max(0), np.zeros((0, 2), dtype))  # nothing reduced over an empty axis: an empty result
    with pytest.raises(ValueError, match="max"):
        a.max(1)
    with pytest.raises(ValueError, match="max"):
        a.max()


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduce_large(device, dtype):
    # Few long rows (each row split across threads) and many short ones (rows split across threads).
    rng = np.random.default_rng(2)
    for shape, axis in [((2, 50001), 1), ((50001, 3), 1), ((3, 40000), 0)]:
        x = rand(rng, shape, dtype)
        x[shape[0] * 2 // 3, shape[1] * 2 // 3] = 9.0  # a unique maximum in the second thread's chunk
        a = cl.NDArray.from_numpy(x, device=device)
        check(a.sum(axis), x.astype(np.float64).sum(axis).astype(dtype))
        check(a.max(axis), x.max(axis))
        check(a.argmax(axis), x.argmax(axis))


def test_float32_sum_accuracy(device):
    # A naive float32 running sum of 2**20 values drifts by ~1e-4 relative; pairwise summation does not.
    rng = np.random.default_rng(3)
    x = (rng.random(1 << 20) + 0.5).astype(np.float32)
    exact = np.sum(x.astype(np.float64))
    got = float(cl.NDArray.from_numpy(x, device=device).sum().numpy())
    assert abs(got - exact) / exact < 1e-6
    ones = cl.NDArray.full((3, 1 << 20), 1.0, dtype="float32", device=device)
    np.testing.assert_array_equal(ones.sum(1).numpy(), np.full(3, 1 << 20, np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_nan_and_inf(device, dtype):
    x = np.array([[1.0, np.nan, 3.0], [-np.inf, -np.inf, -np.inf], [2.0, 5.0, np.nan], [np.inf, 0.0, 1.0]], dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    check(a.max(1), np.array([np.nan, -np.inf, np.nan, np.inf], dtype))
    check(a.max(0), np.array([np.inf, np.nan, np.nan], dtype))
    check(a.sum(1), np.array([np.nan, -np.inf, np.nan, np.inf], dtype))
    check(a.argmax(1), np.array([1, 0, 2, 0]))
    check(a.argmax(0), np.array([3, 0, 2]))
    big = np.zeros(70000, dtype)
    big[[50000, 60000]] = np.nan  # a NaN only in the second half still wins
    check(cl.NDArray.from_numpy(big, device=device).max(), np.array(np.nan, dtype))
    check(cl.NDArray.from_numpy(big, device=device).argmax(), np.array(50000))


def argmax_ref(x, axis, keepdims):
    """First index of the maximum along axis (NaN counts as maximal), by an explicit scan."""
    def scan(v):
        best = 0
        for i, e in enumerate(v.tolist()):
            if np.isnan(v[best]):
                break
            if e > v[best] or np.isnan(e):
                best = i
        return best
    if axis is None:
        out = np.array(scan(x.ravel()))
        return out.reshape((1,) * x.ndim) if keepdims else out
    return reduce_ref(x.astype(np.float64), (axis,), keepdims, scan)


@pytest.mark.parametrize("dtype", DTYPES)
def test_argmax(device, dtype):
    rng = np.random.default_rng(4)
    for layout in LAYOUTS:
        x = np.asarray(np.round(rand(rng, (4, 5, 3), dtype)), dtype)  # integers: ties are common
        a, xv = as_view(rng, x, layout, device)
        before = a.numpy()
        for axis in [None, 0, 1, 2, -1]:
            for keepdims in (False, True):
                check(a.argmax(axis, keepdims), argmax_ref(xv, axis, keepdims).astype(np.int64))
        np.testing.assert_array_equal(a.numpy(), before)
    check(cl.NDArray.from_numpy(np.array(3.0, dtype), device=device).argmax(), np.array(0))


def test_argmax_errors(device):
    with pytest.raises(ValueError, match="empty"):
        cl.NDArray.from_numpy(np.zeros((2, 0)), device=device).argmax()
    with pytest.raises(ValueError, match="empty"):
        cl.NDArray.from_numpy(np.zeros((2, 0)), device=device).argmax(1)
    with pytest.raises(ValueError, match="axis"):
        cl.NDArray.from_numpy(np.zeros((2, 3)), device=device).argmax(2)


def test_reduce_against_torch(device):
    torch = pytest.importorskip("torch")
    x = rand(np.random.default_rng(5), (3, 4, 5, 6), "float64")
    a, t = cl.NDArray.from_numpy(x, device=device), torch.from_numpy(x)
    check(a.sum((1, 3), True), t.sum((1, 3), keepdim=True).numpy())
    check(a.mean((0, 2)), t.mean((0, 2)).numpy())
    check(a.max(2), t.amax(2).numpy())
    check(a.argmax(1), t.argmax(1).numpy())


def test_reduce_errors(device):
    a = cl.NDArray.from_numpy(np.zeros((2, 3, 4), np.float32), device=device)
    with pytest.raises(ValueError, match="3"):
        a.sum(3)
    with pytest.raises(ValueError, match="-4"):
        a.max(-4)
    with pytest.raises(ValueError, match="repeated"):
        a.sum((1, -2))
    with pytest.raises(ValueError, match="axes"):
        a.mean(())
