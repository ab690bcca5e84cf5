"""NDArray creation, conversion and views against NumPy: views share storage (a write through the view is
seen by the base), copies do not, and bad arguments raise errors that name them."""
import numpy as np
import pytest

import convlab as cl
from ndarray_helpers import DTYPES, LAYOUTS, as_view, check, rand

SHAPES = [(), (0,), (1,), (7,), (3, 0, 2), (1, 5), (4, 3, 5), (2, 3, 1, 6)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_from_numpy_round_trip(device, dtype, shape):
    x = rand(np.random.default_rng(0), shape, dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    assert a.shape == shape and a.ndim == len(shape) and a.size == x.size
    assert a.dtype == dtype and a.device == device
    assert a.offset == 0
    if x.size > 0:  # strides of an empty array carry no information
        assert a.strides == tuple(s // x.itemsize for s in x.strides)
    assert a.is_contiguous()
    y = a.numpy()
    assert y.dtype == x.dtype and y.shape == shape
    np.testing.assert_array_equal(y, x)
    y[...] = 5  # numpy() is a copy: writing to it leaves the array alone
    np.testing.assert_array_equal(a.numpy(), x)


def test_from_numpy_copies_and_accepts_non_contiguous(device):
    x = rand(np.random.default_rng(1), (5, 6), "float64")
    a = cl.NDArray.from_numpy(x[::-2, 1::2], device=device)
    np.testing.assert_array_equal(a.numpy(), x[::-2, 1::2])
    before = a.numpy()
    x[...] = 0
    np.testing.assert_array_equal(a.numpy(), before)


@pytest.mark.parametrize("bad", [np.int8, np.uint8, np.uint64, np.float16, np.complex64])
def test_from_numpy_rejects_other_dtypes(device, bad):
    with pytest.raises(TypeError, match="dtype"):
        cl.NDArray.from_numpy(np.zeros((2, 2), dtype=bad), device=device)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_full(device, dtype):
    e = cl.NDArray.empty((3, 0, 2), dtype=dtype, device=device)
    assert e.shape == (3, 0, 2) and e.size == 0 and e.numpy().shape == (3, 0, 2)
    f = cl.NDArray.full((2, 3, 5), -1.25, dtype=dtype, device=device)
    check(f, np.full((2, 3, 5), -1.25, dtype=dtype))
    check(cl.NDArray.full((), 7.0, dtype=dtype, device=device), np.array(7.0, dtype=dtype))
    big = cl.NDArray.full((300, 301), 0.5, dtype=dtype, device=device)  # large enough for the threaded path
    check(big, np.full((300, 301), 0.5, dtype=dtype))


def test_creation_errors(device):
    with pytest.raises(ValueError, match="-2"):
        cl.NDArray.empty((3, -2), dtype="float32", device=device)
    with pytest.raises(ValueError, match="-1"):
        cl.NDArray.full((-1,), 0.0, dtype="float64", device=device)
    with pytest.raises(TypeError, match="int16"):
        cl.NDArray.empty((2,), dtype="int16", device=device)
    with pytest.raises(ValueError, match="tpu"):
        cl.NDArray.empty((2,), dtype="float32", device="tpu")


@pytest.mark.parametrize("src,dst", [("float32", "float64"), ("float64", "float32"), ("float32", "float32")])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_astype_copy_compact(device, src, dst, layout):
    rng = np.random.default_rng(2)
    x = rand(rng, (3, 4, 5), src)
    a, xv = as_view(rng, x, layout, device)
    b = a.astype(dst)
    check(b, xv.astype(dst))
    assert b.is_contiguous()
    c = a.copy()
    check(c, xv)
    assert c.is_contiguous()
    k = a.compact()
    check(k, xv)
    assert k.is_contiguous()
    c[0, 0, 0] = 99.0  # a copy does not share storage
    check(a, xv)


def test_astype_rejects_unknown_dtype(device):
    a = cl.NDArray.from_numpy(np.zeros((2, 3), np.float32), device=device)
    with pytest.raises(TypeError, match="uint8"):
        a.astype("uint8")


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_strided_copy_fill_setitem(device, dtype):
    # Big enough to be split across threads; six axes, negative and zero strides, runs cut mid-row.
    rng = np.random.default_rng(12)
    x = rand(rng, (3, 4, 5, 6, 7, 11), dtype)
    a = cl.NDArray.from_numpy(x.copy(), device=device)
    v = a[::-1, 1:, :, ::2, ::-3, 1:10].permute((5, 3, 0, 4, 2, 1))
    xv = x[::-1, 1:, :, ::2, ::-3, 1:10].transpose(5, 3, 0, 4, 2, 1)
    check(v.compact(), xv)
    check(v.astype("float64" if dtype == "float32" else "float32"), xv.astype("float64" if dtype == "float32" else "float32"))
    a[1:, :, ::2, 1::2] = 3.25
    x[1:, :, ::2, 1::2] = 3.25
    check(a, x)
    row = rand(rng, (5, 1, 7, 1), dtype)
    a[::2, ::-1] = cl.NDArray.from_numpy(row, device=device)
    x[::2, ::-1] = row
    check(a, x)


def test_compact_of_contiguous_shares_storage(device):
    a = cl.NDArray.from_numpy(np.zeros((2, 3)), device=device)
    k = a.compact()
    k[1, 2] = 4.0
    assert a.numpy()[1, 2] == 4.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_reshape_and_view(device, dtype):
    rng = np.random.default_rng(3)
    x = rand(rng, (4, 6, 5), dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    for shape in [(24, 5), (4, 30), (120,), (2, 2, 3, 2, 5), (-1, 10), (5, 4, -1), (1, 120, 1)]:
        for method in ("view", "reshape"):
            v = getattr(a, method)(shape)
            check(v, x.reshape(shape))
            assert v.is_contiguous()
    v = a.view((24, 5))
    v[23, 4] = 123.0  # a view writes through to the base
    assert a.numpy()[3, 5, 4] == 123.0
    r = a.reshape((-1,))
    r[0] = -7.0
    assert a.numpy()[0, 0, 0] == -7.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_reshape_copies_when_strides_do_not_allow_a_view(device, dtype):
    x = rand(np.random.default_rng(4), (4, 6), dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    t = a.transpose(0, 1)
    with pytest.raises(ValueError):
        t.view((24,))
    r = t.reshape((24,))
    check(r, x.T.reshape(24))
    r[0] = 50.0  # it was a copy
    assert a.numpy()[0, 0] == x[0, 0]
    # a view of a permuted array is fine along axes that stay mergeable
    p = cl.NDArray.from_numpy(rand(np.random.default_rng(5), (2, 3, 4), dtype), device=device).permute((2, 0, 1))
    check(p.view((4, 6)), p.numpy().reshape(4, 6))


def test_reshape_errors(device):
    a = cl.NDArray.from_numpy(np.zeros((4, 6), np.float32), device=device)
    with pytest.raises(ValueError, match=r"\(5, 5\)"):
        a.reshape((5, 5))
    with pytest.raises(ValueError, match=r"\(7, -1\)"):
        a.view((7, -1))
    with pytest.raises(ValueError):
        a.reshape((-1, -1))
    with pytest.raises(ValueError):
        a.reshape((-2, -12))


@pytest.mark.parametrize("dtype", DTYPES)
def test_permute_transpose(device, dtype):
    rng = np.random.default_rng(6)
    x = rand(rng, (2, 3, 4, 5), dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    for _ in range(5):
        perm = tuple(int(p) for p in rng.permutation(4))
        p = a.permute(perm)
        check(p, x.transpose(perm))
        assert p.strides == tuple(a.strides[i] for i in perm)
    check(a.transpose(1, 3), np.swapaxes(x, 1, 3))
    check(a.transpose(-1, 0), np.swapaxes(x, -1, 0))
    p = a.permute((3, 1, 0, 2))
    p[4, 2, 1, 3] = 11.0
    assert a.numpy()[1, 2, 3, 4] == 11.0
    assert not p.is_contiguous()


def test_permute_errors(device):
    a = cl.NDArray.from_numpy(np.zeros((2, 3, 4)), device=device)
    for bad in [(0, 1), (0, 1, 1), (0, 1, 3)]:
        with pytest.raises(ValueError, match="ax"):
            a.permute(bad)
    with pytest.raises(ValueError):
        a.transpose(0, 5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_broadcast_to(device, dtype):
    rng = np.random.default_rng(7)
    x = rand(rng, (3, 1, 5), dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    for shape in [(3, 1, 5), (3, 4, 5), (2, 3, 4, 5), (1, 3, 0, 5)]:
        b = a.broadcast_to(shape)
        check(b, np.broadcast_to(x, shape))
    b = a.broadcast_to((2, 3, 4, 5))
    assert b.strides[0] == 0 and b.strides[2] == 0
    s = cl.NDArray.from_numpy(np.array(2.5, dtype=dtype), device=device).broadcast_to((2, 3))
    check(s, np.full((2, 3), 2.5, dtype=dtype))
    with pytest.raises(ValueError, match=r"\(4, 2, 5\)"):
        a.broadcast_to((4, 2, 5))
    with pytest.raises(ValueError):
        a.broadcast_to((5,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_indexing(device, dtype):
    rng = np.random.default_rng(8)
    x = rand(rng, (5, 6, 7), dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    keys = [
        0, -1, 4, slice(None), slice(1, 4), slice(None, None, -1), slice(5, 0, -2), slice(-2, None),
        (1, 2), (slice(None), 3), (Ellipsis, 2), (Ellipsis, slice(1, 6, 2)), (1, Ellipsis),
        (slice(4, 1, -1), slice(None, None, 3), -3), (slice(10, 20),), (slice(3, 3),), (2, 5, 6),
        (slice(None, None, -3), Ellipsis, slice(6, None, -4)),
    ]
    for key in keys:
        check(a[key], x[key])
    # indexing a view of a view
    v = a[1:, ::-1][::2, 1:5, ::-3]
    check(v, x[1:, ::-1][::2, 1:5, ::-3])
    v[0, 0, 0] = 42.0
    assert a.numpy()[1, 4, 6] == 42.0


def test_indexing_errors(device):
    a = cl.NDArray.from_numpy(np.zeros((3, 4)), device=device)
    with pytest.raises(ValueError, match="out of bounds"):
        a[3]
    with pytest.raises(ValueError, match="out of bounds"):
        a[:, -5]
    with pytest.raises(ValueError, match="too many"):
        a[0, 0, 0]
    with pytest.raises(ValueError):
        a[::0]
    with pytest.raises(TypeError):
        a["x"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_flip(device, dtype):
    rng = np.random.default_rng(9)
    x = rand(rng, (3, 4, 5), dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    for axes in [(0,), (2,), (0, 2), (1, -1), (0, 1, 2)]:
        f = a.flip(axes)
        check(f, np.flip(x, axes))
    f = a.flip((1,))
    f[0, 0, 0] = 8.0
    assert a.numpy()[0, 3, 0] == 8.0
    check(a[1:, ::2].flip((0, 1)), np.flip(x[1:, ::2], (0, 1)))
    with pytest.raises(ValueError):
        a.flip((3,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_setitem(device, dtype):
    rng = np.random.default_rng(10)
    x = rand(rng, (4, 5, 6), dtype)
    a = cl.NDArray.from_numpy(x.copy(), device=device)
    cases = [
        ((1,), rand(rng, (5, 6), dtype)),
        ((slice(None), 2), rand(rng, (4, 6), dtype)),
        ((slice(None, None, -1), slice(1, 4), slice(None, None, 2)), rand(rng, (3, 1), dtype)),  # broadcast value
        ((Ellipsis, 0), rand(rng, (1,), dtype)),
        ((2, 3, 4), np.array(9.5, dtype=dtype)),
    ]
    for key, val in cases:
        a[key] = cl.NDArray.from_numpy(val, device=device)
        x[key] = val
        check(a, x)
    a[0, :, ::3] = 1.5
    x[0, :, ::3] = 1.5
    check(a, x)
    a[...] = -2
    x[...] = -2
    check(a, x)
    # the value may be a non-contiguous view itself
    v = rand(rng, (6, 5), dtype)
    a[3] = cl.NDArray.from_numpy(v, device=device).transpose(0, 1)
    x[3] = v.T
    check(a, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_setitem_overlapping_views(device, dtype):
    x = np.arange(10, dtype=dtype)
    a = cl.NDArray.from_numpy(x.copy(), device=device)
    a[1:] = a[:-1]
    x[1:] = x[:-1].copy()
    check(a, x)
    a[::-1] = a
    x[::-1] = x.copy()
    check(a, x)


def test_setitem_errors(device):
    a = cl.NDArray.from_numpy(np.zeros((3, 4)), device=device)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        a[0] = cl.NDArray.from_numpy(np.zeros(2), device=device)
    with pytest.raises(TypeError):
        a[0] = "x"


def test_to_device_round_trip(device):
    x = rand(np.random.default_rng(11), (3, 4), "float32")
    a = cl.NDArray.from_numpy(x, device="cpu").transpose(0, 1)
    b = a.to(device)
    assert b.device == device
    check(b, x.T)
    check(b.to("cpu"), x.T)
