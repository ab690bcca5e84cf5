"""pad in its four modes, against references that compute every output element's source index from the
mode's definition, and against np.pad / torch.nn.functional.pad."""
import itertools

import numpy as np
import pytest

import convlab as cl
from ndarray_helpers import DTYPES, LAYOUTS, as_view, check, rand

MODES = ["constant", "reflect", "replicate", "circular"]


def source(o, n, lo, mode):
    """Input index read by output index o along an axis of length n padded by lo in front (None: fill)."""
    i = o - lo
    if 0 <= i < n:
        return i
    if mode == "constant":
        return None
    if mode == "reflect":  # mirror about the edge element, which is not repeated
        return -i if i < 0 else 2 * (n - 1) - i
    if mode == "replicate":
        return 0 if i < 0 else n - 1
    return i % n  # circular


def pad_ref(x, pads, mode, value):
    """pads: (lo, hi) pairs for the trailing axes, in axis order."""
    full = [(0, 0)] * (x.ndim - len(pads)) + list(pads)
    out_shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, full))
    out = np.empty(out_shape, x.dtype)
    for o in itertools.product(*(range(s) for s in out_shape)):
        src = [source(od, n, lo, mode) for od, n, (lo, _) in zip(o, x.shape, full)]
        out[o] = value if None in src else x[tuple(src)]
    return out


CASES = [
    ((5,), [(2, 3)]),
    ((4, 6), [(1, 2), (3, 0)]),
    ((4, 6), [(0, 2)]),  # fewer pairs than axes: the trailing axes
    ((2, 3, 5), [(1, 1), (2, 1), (0, 4)]),
    ((1, 2, 4, 5), [(2, 3), (1, 4)]),
    ((3, 1), [(0, 0), (0, 0)]),
    ((7,), [(6, 6)]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_pad_modes_layouts(device, mode, dtype):
    rng = np.random.default_rng(0)
    for shape, pads in CASES:
        full = [(0, 0)] * (len(shape) - len(pads)) + pads
        if mode == "reflect" and any(max(lo, hi) >= n and (lo or hi) for n, (lo, hi) in zip(shape, full)):
            continue  # reflect needs pads smaller than the axis
        if mode == "circular" and any(max(lo, hi) > n for n, (lo, hi) in zip(shape, full)):
            continue
        for layout in ["contiguous"] + list(rng.choice(LAYOUTS[1:], 2)):
            a, x = as_view(rng, rand(rng, shape, dtype), layout, device)
            before = a.numpy()
            out = a.pad(pads, mode, 1.5)
            check(out, pad_ref(x, pads, mode, 1.5))
            np_mode = {"replicate": "edge", "circular": "wrap"}.get(mode, mode)
            kwargs = {"constant_values": 1.5} if mode == "constant" else {}
            check(out, np.pad(x, [(0, 0)] * (x.ndim - len(pads)) + pads, mode=np_mode, **kwargs))
            np.testing.assert_array_equal(a.numpy(), before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_edge_cases(device, dtype):
    rng = np.random.default_rng(1)
    x = rand(rng, (3, 0, 2), dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    check(a.pad([(1, 1), (2, 0), (0, 1)], "constant", -3.0), pad_ref(x, [(1, 1), (2, 0), (0, 1)], "constant", -3.0))
    check(a.pad([(0, 1)], "circular"), pad_ref(x, [(0, 1)], "circular", 0.0))
    s = cl.NDArray.from_numpy(np.array(4.0, dtype), device=device)
    check(s.pad([], "reflect"), np.array(4.0, dtype))
    # circular may wrap a whole axis; reflect may use every element but the edge
    x = rand(rng, (3, 4), dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    check(a.pad([(3, 3), (4, 4)], "circular"), pad_ref(x, [(3, 3), (4, 4)], "circular", 0))
    check(a.pad([(2, 2), (3, 3)], "reflect"), pad_ref(x, [(2, 2), (3, 3)], "reflect", 0))
    check(a.pad([(5, 0), (0, 6)], "replicate"), pad_ref(x, [(5, 0), (0, 6)], "replicate", 0))


@pytest.mark.parametrize("mode", MODES)
def test_pad_large_threaded(device, mode):
    rng = np.random.default_rng(2)
    x = rand(rng, (3, 5, 61, 70), "float32")
    a, xv = as_view(rng, x, "permuted", device)
    pads = [(2, 1), (3, 4)]
    np_mode = {"replicate": "edge", "circular": "wrap"}.get(mode, mode)
    check(a.pad(pads, mode), np.pad(xv, [(0, 0), (0, 0)] + pads, mode=np_mode))


@pytest.mark.parametrize("mode", MODES)
def test_pad_against_torch(device, mode):
    torch = pytest.importorskip("torch")
    x = rand(np.random.default_rng(3), (2, 3, 6, 7), "float64")
    a = cl.NDArray.from_numpy(x, device=device)
    # torch lists pads from the last axis backwards: (left, right, top, bottom)
    want = torch.nn.functional.pad(torch.from_numpy(x), (3, 1, 2, 4), mode=mode, **({"value": 0.5} if mode == "constant" else {}))
    check(a.pad([(2, 4), (3, 1)], mode, 0.5), want.numpy())


def test_pad_errors(device):
    a = cl.NDArray.from_numpy(np.zeros((3, 4), np.float32), device=device)
    with pytest.raises(ValueError, match="mode.*'mirror'"):
        a.pad([(1, 1)], "mirror")
    with pytest.raises(ValueError, match="reflect"):
        a.pad([(0, 4)], "reflect")
    with pytest.raises(ValueError, match="circular"):
        a.pad([(5, 0)], "circular")
    with pytest.raises(ValueError, match="-1"):
        a.pad([(-1, 0)], "constant")
    with pytest.raises(ValueError, match="rank"):
        a.pad([(1, 1)] * 3, "constant")
    with pytest.raises(ValueError, match="replicate"):
        cl.NDArray.from_numpy(np.zeros((2, 0), np.float32), device=device).pad([(1, 0)], "replicate")
