"""a @ b with NumPy's matmul rules (batched, broadcast batch dims, 1-D operands) against a reference that
loops over batch positions and output entries, on strided operands of both dtypes."""
import itertools
import math

import numpy as np
import pytest

import convlab as cl
from ndarray_helpers import DTYPES, LAYOUTS, as_view, rand


def matmul_ref(x, y):
    """Promote 1-D operands, broadcast the batch dims, then out[..., i, j] = sum_k x[..., i, k] y[..., k, j]."""
    x2 = x[None, :] if x.ndim == 1 else x
    y2 = y[:, None] if y.ndim == 1 else y
    batch = np.broadcast_shapes(x2.shape[:-2], y2.shape[:-2])
    xb = np.broadcast_to(x2, batch + x2.shape[-2:]).astype(np.float64)
    yb = np.broadcast_to(y2, batch + y2.shape[-2:]).astype(np.float64)
    m, k, n = x2.shape[-2], x2.shape[-1], y2.shape[-1]
    out = np.zeros(batch + (m, n))
    for b in itertools.product(*(range(s) for s in batch)):
        for i in range(m):
            for j in range(n):
                out[b + (i, j)] = math.fsum(xb[b + (i, kk)] * yb[b + (kk, j)] for kk in range(k))
    if x.ndim == 1:
        out = out[..., 0, :]
    if y.ndim == 1:
        out = out[..., 0]
    return out


def check_matmul(got, x, y, want=None):
    """Each entry within a few ulps of the dot product's magnitude sum |x||y| (what any summation order
    guarantees), so cancellation does not turn rounding into a failure."""
    want = matmul_ref(x, y) if want is None else want
    bound = np.matmul(np.abs(x).astype(np.float64), np.abs(y).astype(np.float64))
    eps = np.finfo(x.dtype).eps
    assert got.dtype == str(x.dtype) and tuple(got.shape) == want.shape
    err = np.abs(got.numpy().astype(np.float64) - want)
    assert np.all(err <= 4 * eps * np.sqrt(max(x.shape[-1], 1)) * bound + 1e-30), err.max()


SHAPES = [
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((7,), (7,)),
    ((5,), (5, 3)),
    ((2, 3, 6), (6,)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((3, 4), (2, 2, 4, 3)),
    ((1, 17, 9), (3, 9, 19)),
    ((0, 3, 4), (4, 2)),
    ((3, 0), (0, 5)),
    ((2, 3, 5), (2, 5, 0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_matmul_shapes_layouts(device, shapes, dtype):
    rng = np.random.default_rng(0)
    for layout_a, layout_b in [("contiguous", "contiguous")] + [tuple(rng.choice(LAYOUTS, 2)) for _ in range(2)]:
        a, xa = as_view(rng, rand(rng, shapes[0], dtype), layout_a, device)
        b, xb = as_view(rng, rand(rng, shapes[1], dtype), layout_b, device)
        before_a, before_b = a.numpy(), b.numpy()
        check_matmul(a @ b, xa, xb)
        check_matmul(a.matmul(b), xa, xb, want=np.matmul(xa, xb))
        np.testing.assert_array_equal(a.numpy(), before_a)
        np.testing.assert_array_equal(b.numpy(), before_b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_larger_than_one_tile(device, dtype):
    # Sizes that are not multiples of any register/cache block, with a transposed right operand.
    rng = np.random.default_rng(1)
    x = rand(rng, (2, 70, 131), dtype)
    y = rand(rng, (53, 131), dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    b = cl.NDArray.from_numpy(y, device=device).transpose(0, 1)
    check_matmul(a @ b, x, y.T, want=np.matmul(x.astype(np.float64), y.T.astype(np.float64)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_deeper_than_one_k_slice(device, dtype):
    # K = 2100 spans at least 3 of the CPU GEMM's K slices whatever depth the caches give it (64..1024), so
    # later slices add into C; a transposed left operand, rows and columns off the register tile.
    rng = np.random.default_rng(3)
    x = rand(rng, (2100, 37), dtype)
    y = rand(rng, (2100, 101), dtype)
    a = cl.NDArray.from_numpy(x, device=device).transpose(0, 1)
    b = cl.NDArray.from_numpy(y, device=device)
    check_matmul(a @ b, x.T, y, want=np.matmul(x.T.astype(np.float64), y.astype(np.float64)))


def test_matmul_against_torch(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    for dtype in DTYPES:
        x, y = rand(rng, (3, 1, 9, 33), dtype), rand(rng, (4, 33, 10), dtype)
        got = cl.NDArray.from_numpy(x, device=device) @ cl.NDArray.from_numpy(y, device=device)
        check_matmul(got, x, y, want=torch.matmul(torch.from_numpy(x).double(), torch.from_numpy(y).double()).numpy())


def test_matmul_errors(device):
    f32 = lambda *s: cl.NDArray.from_numpy(np.zeros(s, np.float32), device=device)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        f32(3, 4) @ f32(5, 2)
    with pytest.raises(ValueError, match="matmul"):
        f32(4) @ f32(3)
    with pytest.raises(ValueError, match=r"broadcast"):
        f32(2, 3, 4) @ f32(3, 4, 5)
    with pytest.raises(ValueError, match="rank"):
        cl.NDArray.from_numpy(np.array(1.0, np.float32), device=device) @ f32(3)
    with pytest.raises(TypeError, match="float64"):
        f32(2, 2) @ cl.NDArray.from_numpy(np.zeros((2, 2)), device=device)
