"""Indexing by values: the NDArray kernels (gather, scatter_add, index_select, index_add, take, put,
ravel_index, where, nonzero) against NumPy references written from the math, and the Tensor layer (advanced
indexing x[mask], x[idx], x[rows, cols] and assignment, torch.where/gather/scatter_add/index_select/
index_add/masked_fill/masked_select/nonzero) against NumPy's indexing rules and PyTorch, gradients included."""
import numpy as np
import pytest

import convlab as cl
from autograd_helpers import compare_with_torch, gradcheck, torch_or_skip

N = cl.NDArray
VALUE_DTYPES = ["float32", "float64", "int32", "int64", "bool"]


def nd(a, device="cpu"):
    return N.from_numpy(np.asarray(a), device)


def t(a, device="cpu", requires_grad=False):
    """A tensor holding exactly a's values and dtype (int64 and bool included)."""
    return cl.Tensor(nd(a, device), requires_grad=requires_grad)


def values(rng, shape, dtype):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        return rng.integers(-50, 50, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# ---- references, from the definitions ----
def ref_gather(a, axis, index):
    out = np.empty(index.shape, a.dtype)
    for pos in np.ndindex(index.shape):
        src = list(pos)
        src[axis] = index[pos]
        out[pos] = a[tuple(src)]
    return out


def ref_scatter_add(shape, axis, index, src):
    out = np.zeros(shape, src.dtype)
    for pos in np.ndindex(index.shape):
        dst = list(pos)
        dst[axis] = index[pos]
        out[tuple(dst)] += src[pos]
    return out


def ref_index_add(shape, axis, index, src):
    out = np.zeros(shape, src.dtype)
    for j, k in enumerate(index):
        out[(slice(None),) * axis + (k,)] += src[(slice(None),) * axis + (j,)]
    return out


# ---- NDArray kernels ----
@pytest.mark.parametrize("dtype", VALUE_DTYPES)
@pytest.mark.parametrize("index_dtype", ["int64", "int32"])
@pytest.mark.parametrize("shape,axis,index_shape", [
    ((5,), 0, (7,)), ((3, 4), 1, (3, 6)), ((3, 4), 0, (2, 3)), ((2, 3, 5), 1, (2, 4, 5)),
    ((2, 3, 5), 2, (1, 2, 3)), ((1, 1, 7), 2, (1, 1, 1)), ((4, 3, 2, 3), 0, (6, 3, 1, 2)),
])
def test_gather_matches_definition(device, rng, dtype, index_dtype, shape, axis, index_shape):
    a = values(rng, shape, dtype)
    index = rng.integers(0, shape[axis], index_shape).astype(index_dtype)
    before = a.copy()
    out = nd(a, device).gather(axis, nd(index, device))
    assert out.dtype == dtype and out.shape == index_shape
    np.testing.assert_array_equal(out.numpy(), ref_gather(a, axis, index))
    np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("shape,axis,index_shape,src_shape", [
    ((5,), 0, (9,), (9,)), ((3, 4), 1, (3, 6), (3, 6)), ((3, 4), 0, (5, 2), (6, 4)),
    ((2, 3, 5), 1, (2, 7, 5), (2, 7, 5)), ((2, 3, 600), 2, (2, 3, 700), (2, 3, 700)),
    ((1, 1), 1, (1, 1), (1, 1)),
])
def test_scatter_add_matches_definition(device, rng, dtype, shape, axis, index_shape, src_shape):
    index = rng.integers(0, shape[axis], index_shape)  # repeats: contributions must add up
    src = values(rng, src_shape, dtype)
    out = cl._C.scatter_add(shape, axis, nd(index, device), nd(src, device))
    region = tuple(slice(0, n) for n in index_shape)
    expected = ref_scatter_add(shape, axis, index, src[region])
    assert out.dtype == dtype and out.shape == shape
    if dtype.startswith("float"):
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)
    else:
        np.testing.assert_array_equal(out.numpy(), expected)


def test_scatter_add_adds_repeats_in_index_order_bit_for_bit(device):
    """Each output element sums its contributions serially in index order: the float32 result equals that
    sequential sum exactly (no atomics, no tree), run after run and for any thread count."""
    rng = np.random.default_rng(1)
    index = rng.integers(0, 3, (5000, 64))
    src = (rng.standard_normal((5000, 64)) * 10.0 ** rng.integers(-4, 4, (5000, 64))).astype(np.float32)
    expected = np.zeros((3, 64), np.float32)
    for j in range(5000):
        for i in range(64):
            expected[index[j, i], i] += src[j, i]
    threads = cl.get_num_threads()
    try:
        for n in (1, 2, 3):
            cl.set_num_threads(n)
            out = cl._C.scatter_add((3, 64), 0, nd(index, device), nd(src, device))
            np.testing.assert_array_equal(out.numpy(), expected)
    finally:
        cl.set_num_threads(threads)


@pytest.mark.parametrize("dtype", VALUE_DTYPES)
@pytest.mark.parametrize("shape,axis,n", [((6,), 0, 9), ((3, 5), 1, 4), ((4, 3, 2), 0, 1), ((2, 3, 4), 2, 7),
                                          ((1, 300, 130), 1, 5)])
def test_index_select_and_take_match_numpy(device, rng, dtype, shape, axis, n):
    a = values(rng, shape, dtype)
    index = rng.integers(0, shape[axis], n)
    np.testing.assert_array_equal(nd(a, device).index_select(axis, nd(index, device)).numpy(),
                                  np.take(a, index, axis))
    wrapped = rng.integers(-shape[axis], shape[axis], (2, n))  # take: any shape, negatives from the end
    np.testing.assert_array_equal(nd(a, device).take(axis, nd(wrapped, device)).numpy(), np.take(a, wrapped, axis))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("shape,axis,n", [((6,), 0, 9), ((3, 5), 1, 4), ((4, 3, 2), 0, 1), ((2, 3, 300), 1, 7)])
def test_index_add_matches_definition(device, rng, dtype, shape, axis, n):
    index = rng.integers(0, shape[axis], n)
    src_shape = shape[:axis] + (n,) + shape[axis + 1:]
    src = values(rng, src_shape, dtype)
    out = cl._C.index_add(shape, axis, nd(index, device), nd(src, device))
    np.testing.assert_allclose(out.numpy(), ref_index_add(shape, axis, index, src), rtol=1e-6)


def test_put_writes_in_place_through_strided_views(device, rng):
    base = rng.standard_normal((5, 4))
    a = nd(base, device)
    view = a.transpose(0, 1)  # (4, 5), not contiguous: written through a copy
    version = a._version
    view.put(1, nd(np.array([-1, 0, 2]), device), nd(np.array([1.0, 2.0, 3.0]), device))
    expected = base.copy().T
    expected[:, [-1, 0, 2]] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(a.numpy().T, expected)
    assert a._version > version
    view.put(0, nd(np.array([1, 1, 3]), device), nd(np.array(10.0), device), accumulate=True)
    np.add.at(expected, ([1, 1, 3],), 10.0)
    np.testing.assert_array_equal(a.numpy().T, expected)


@pytest.mark.parametrize("accumulate", [False, True])
def test_put_with_unique_indices(device, rng, accumulate):
    base = rng.standard_normal((3, 7, 4))
    index = rng.permutation(7)[:5] - 3  # distinct positions, some counted from the end
    src = rng.standard_normal((3, 5, 4))
    expected = base.copy()
    if accumulate:
        expected[:, index] += src
    else:
        expected[:, index] = src
    for unique in (False, True):
        a = nd(base, device)
        a.put(1, nd(index, device), nd(src, device), accumulate=accumulate, unique_indices=unique)
        np.testing.assert_array_equal(a.numpy(), expected)


def test_put_keeps_the_last_of_repeated_positions(device):
    a = nd(np.zeros(4), device)
    a.put(0, nd(np.array([2, 0, 2, 2]), device), nd(np.array([1.0, 2.0, 3.0, 4.0]), device))
    np.testing.assert_array_equal(a.numpy(), [2.0, 0.0, 4.0, 0.0])


def test_put_from_an_overlapping_view_reads_the_old_values(device):
    a = nd(np.arange(6.0), device)
    a.put(0, nd(np.array([1, 2, 3, 4, 5]), device), a[0:5])  # x[1:] = x[:-1] by index
    np.testing.assert_array_equal(a.numpy(), [0, 0, 1, 2, 3, 4])


@pytest.mark.parametrize("dtype", VALUE_DTYPES)
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((4,), (3, 1), ()), ((1, 5), (2, 1, 1), (5,)),
                                    ((), (), ()), ((0, 2), (2,), (1,))])
def test_where_matches_numpy(device, rng, dtype, shapes):
    cond = rng.random(shapes[0]) < 0.5
    a, b = values(rng, shapes[1], dtype), values(rng, shapes[2], dtype)
    out = cl._C.where(nd(cond, device), nd(a, device), nd(b, device))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), np.where(cond, a, b))


def test_where_on_strided_views(device, rng):
    a = rng.standard_normal((4, 6))
    cond = rng.random((3, 4)) < 0.5
    out = cl._C.where(nd(cond, device).transpose(0, 1), nd(a, device)[:, ::-2], nd(a, device)[1, ::2])
    np.testing.assert_array_equal(out.numpy(), np.where(cond.T, a[:, ::-2], a[1, ::2]))


@pytest.mark.parametrize("dtype", VALUE_DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4), (1, 1), (0, 3), (), (40000,), (3, 200, 100)])
def test_nonzero_matches_numpy(device, rng, dtype, shape):
    a = values(rng, shape, dtype)
    if dtype.startswith("float") and a.size:
        a[a < 0.3] = 0.0
        a.reshape(-1)[0] = np.nan  # NaN is not zero
    out = nd(a, device).nonzero()
    assert out.dtype == "int64"
    np.testing.assert_array_equal(out.numpy(), np.argwhere(a))


def test_ravel_index_is_numpys_ravel_multi_index(device, rng):
    rows = rng.integers(-3, 3, (4, 1))
    cols = rng.integers(-5, 5, (6,))
    out = cl._C.ravel_index([nd(rows, device), nd(cols, device)], [3, 5], 0)
    np.testing.assert_array_equal(out.numpy(), np.ravel_multi_index((rows % 3, cols % 5), (3, 5)))


# ---- errors ----
def test_index_out_of_range_raises_index_error_naming_value_axis_and_size(device):
    a = nd(np.zeros((3, 4)), device)
    with pytest.raises(IndexError, match="gather: index 4 is out of bounds for axis 1 with size 4"):
        a.gather(1, nd(np.array([[0, 4]]), device))
    with pytest.raises(IndexError, match="index -1 is out of bounds for axis 0 with size 3"):
        a.index_select(0, nd(np.array([0, -1]), device))  # PyTorch's ops take no negative entries
    with pytest.raises(IndexError, match="take: index -4 is out of bounds for axis 0 with size 3"):
        a.take(0, nd(np.array([-4]), device))
    with pytest.raises(IndexError, match="scatter_add: index 3 is out of bounds for axis 0 with size 3"):
        cl._C.scatter_add((3, 4), 0, nd(np.array([[3]]), device), nd(np.ones((1, 1)), device))
    with pytest.raises(IndexError, match="index_add: index 9"):
        cl._C.index_add((3, 4), 1, nd(np.array([9]), device), nd(np.ones((3, 1)), device))
    with pytest.raises(IndexError, match="put: index 5 is out of bounds for axis 1"):
        a.put(1, nd(np.array([5]), device), nd(np.ones(()), device))
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 1 with size 3"):
        cl._C.ravel_index([nd(np.array([0]), device), nd(np.array([3]), device)], [2, 3], 0)


def test_bad_index_dtype_shape_and_device_raise(device):
    a = nd(np.zeros((3, 4)), device)
    with pytest.raises(TypeError, match="gather: index must be an int64 \\(or int32\\) array, got float64"):
        a.gather(1, nd(np.zeros((3, 1)), device))
    with pytest.raises(TypeError, match="take: index must be .* got bool"):
        a.take(0, nd(np.array([True]), device))
    with pytest.raises(ValueError, match="gather: index must have the input's rank 2"):
        a.gather(1, nd(np.zeros(3, np.int64), device))
    with pytest.raises(ValueError, match="gather: index of shape \\(4, 1\\) is larger than the input"):
        a.gather(1, nd(np.zeros((4, 1), np.int64), device))
    with pytest.raises(ValueError, match="index_select: index must be 1-D"):
        a.index_select(0, nd(np.zeros((1, 1), np.int64), device))
    with pytest.raises(ValueError, match="index_add: source must have shape \\(3, 2\\)"):
        cl._C.index_add((3, 4), 1, nd(np.array([0, 1]), device), nd(np.ones((3, 3)), device))
    with pytest.raises(TypeError, match="where: condition must be a bool array, got float64"):
        cl._C.where(a, a, a)
    with pytest.raises(TypeError, match="where: input is float64 but other is float32"):
        cl._C.where(nd(np.ones(4, bool), device), a, nd(np.ones(4, np.float32), device))
    with pytest.raises(ValueError, match="where: shapes"):
        cl._C.where(nd(np.ones(5, bool), device), a, a)
    with pytest.raises(ValueError, match="gather: axis 2 is out of range"):
        a.gather(2, nd(np.zeros((3, 1), np.int64), device))


# ---- advanced indexing on tensors: NumPy's rules (PyTorch's, where ints are basic) ----
def forms(n0=4, n1=5, n2=6):
    """(name, index builder from a device) for every advanced form, each valid for a (n0, n1, n2) tensor."""
    rng = np.random.default_rng(7)
    idx = rng.integers(-n0, n0, 5)
    cols = rng.integers(0, n2, 5)
    mask0 = rng.random(n0) < 0.5
    mask01 = rng.random((n0, n1)) < 0.5
    return [
        ("list", lambda d: [1, 0, -1, 1]),
        ("int tensor", lambda d: t(idx, d)),
        ("2-d int tensor", lambda d: t(idx.reshape(1, 5), d)),
        ("0-d int tensor", lambda d: t(np.array(2), d)),
        ("numpy ints", lambda d: idx),
        ("range", lambda d: range(1, n0)),
        ("empty list", lambda d: []),
        ("slice then list", lambda d: (slice(None), [4, 0, 0])),
        ("ellipsis then tensor", lambda d: (Ellipsis, t(cols, d))),
        ("None then list", lambda d: (None, [1, 2])),
        ("list then None", lambda d: ([1, 2], None)),
        ("slice, tensor, slice", lambda d: (slice(1, None), t(np.array([[0], [3]]), d), slice(None, None, 2))),
        ("rows, cols adjacent", lambda d: (slice(None), t(np.array([0, 2, 4]), d), t(np.array([5, 1, 0]), d))),
        ("range and tensor", lambda d: (range(n0), t(np.array([1, 0, 4, 2]), d))),
        ("broadcast rows, cols", lambda d: (t(np.array([[0], [3]]), d), t(np.array([1, -1, 2]), d))),
        ("separated by a slice", lambda d: ([0, 1, 3], slice(None), t(np.array([5, 0, 1]), d))),
        ("bool mask", lambda d: t(mask0, d)),
        ("2-d bool mask", lambda d: t(mask01, d)),
        ("3-d bool mask", lambda d: t(np.random.default_rng(3).random((n0, n1, n2)) < 0.3, d)),
        ("slice then mask", lambda d: (slice(None), t(rng.random(n1) < 0.5, d))),
        ("mask and list", lambda d: (t(mask0, d), slice(None), [0] * int(mask0.sum()))),
        ("bool list", lambda d: [True, False, True, True]),
        ("0-d bool tensor", lambda d: t(np.array(True), d)),
        ("0-d False and a slice", lambda d: (slice(1, 3), t(np.array(False), d))),
    ]


def numpy_index(index):
    items = index if isinstance(index, tuple) else (index,)
    converted = tuple(np.asarray(item.numpy()) if isinstance(item, cl.Tensor) else
                      np.asarray(item, dtype=np.int64) if isinstance(item, list) and len(item) == 0 else item
                      for item in items)
    return converted if isinstance(index, tuple) else converted[0]


@pytest.mark.parametrize("name,build", forms(), ids=[name for name, _ in forms()])
def test_getitem_matches_numpy(device, name, build):
    a = np.random.default_rng(0).standard_normal((4, 5, 6))
    index = build(device)
    out = t(a, device)[index]
    expected = a[numpy_index(index)]
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("name,build", forms(), ids=[name for name, _ in forms()])
def test_getitem_values_and_gradients_match_torch(device, name, build):
    torch = torch_or_skip()
    index = build(device)
    torch_index = tuple(torch.from_numpy(np.asarray(i.numpy())) if isinstance(i, cl.Tensor) else i
                        for i in (index if isinstance(index, tuple) else (index,)))
    torch_index = torch_index if isinstance(index, tuple) else torch_index[0]
    a = np.random.default_rng(0).standard_normal((4, 5, 6))
    compare_with_torch(lambda x: x[index], lambda x: x[torch_index], [a], device, "float64")


def test_ints_with_index_arrays_follow_pytorch_not_numpy(device):
    """x[0, :, [0, 1]]: PyTorch applies the int first (result (5, 2)); NumPy would move the array axis to the
    front ((2, 5))."""
    torch = torch_or_skip()
    a = np.random.default_rng(0).standard_normal((4, 5, 6))
    compare_with_torch(lambda x: x[0, :, [0, 1]], lambda x: x[0, :, [0, 1]], [a], device, "float32")
    compare_with_torch(lambda x: x[[2, 0], 1, t(np.array([3, 5]), device)],
                       lambda x: x[[2, 0], 1, torch.tensor([3, 5])], [a], device, "float32")


def test_textbook_forms(device):
    """What d2l-style code writes: the picked probabilities y_hat[range(len(y)), y] (cross-entropy by hand)
    and masks from comparisons."""
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    y_hat, y = rng.random((8, 10)), rng.integers(0, 10, 8)
    compare_with_torch(lambda p: -p[range(len(y)), t(y, device)].log(),
                       lambda p: -p[range(len(y)), torch.from_numpy(y)].log(), [y_hat], device, "float64")
    x = rng.standard_normal((3, 7))
    compare_with_torch(lambda v: v[v > 0], lambda v: v[v > 0], [x], device, "float64")


def test_getitem_gradients_gradcheck(device):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4, 2))
    rows, cols = t(np.array([0, 2, 2, -1]), device), t(np.array([[3], [1]]), device)
    gradcheck(lambda x: x[rows, cols] * 2.0, [a], device)  # repeated positions collect both gradients
    mask = t(rng.random(4) < 0.5, device)
    gradcheck(lambda x: x[:, mask], [a], device)
    gradcheck(lambda x: x[[1, 1, 0], :, [0, 1, 1]], [a], device)


def test_repeated_positions_sum_their_gradients(device):
    x = t(np.arange(4.0), device, requires_grad=True)
    x[[1, 1, 3, 1]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 3.0, 0.0, 1.0])


def test_getitem_errors(device):
    x = t(np.zeros((3, 4)), device)
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 0 with size 3"):
        x[[0, 3]]
    with pytest.raises(IndexError, match="index -5 is out of bounds for axis 1 with size 4"):
        x[:, t(np.array([-5]), device)]
    with pytest.raises(IndexError, match="index 1: tensors used as indices must be int64, int32 or bool, got float64"):
        x[:, t(np.array([1.0]), device)]
    with pytest.raises(TypeError):  # the same error is a TypeError too
        x[t(np.array([1.0]), device)]
    with pytest.raises(IndexError, match="must hold ints or bools, got float64"):
        x[[0.5]]
    with pytest.raises(IndexError, match="the shape of the mask \\(4,\\) does not match"):
        x[t(np.ones(4, bool), device)]
    with pytest.raises(ValueError, match="cannot be broadcast"):
        x[[0, 1], [0, 1, 2]]
    with pytest.raises(TypeError, match="tensor indices must be"):
        x["a"]


# ---- assignment ----
@pytest.mark.parametrize("name,build", forms(), ids=[name for name, _ in forms()])
def test_setitem_matches_numpy(device, name, build):
    base = np.random.default_rng(0).standard_normal((4, 5, 6))
    index = build(device)
    expected = base.copy()
    shape = expected[numpy_index(index)].shape
    # One value per position of the trailing axes, broadcast over the leading one, so that a position an
    # index repeats gets the same value each time (NumPy leaves which write wins unspecified).
    value = np.arange(np.prod(shape[1:]), dtype=np.float64).reshape(shape[1:]) if shape else 7.0
    expected[numpy_index(index)] = value
    x = t(base, device)
    x[index] = value
    np.testing.assert_array_equal(x.numpy(), expected)


def test_setitem_forms_on_a_transposed_view_write_through(device):
    base = np.random.default_rng(0).standard_normal((6, 5))
    x = t(base.copy(), device)
    v = x.transpose(0, 1)  # shares x's storage
    v[t(np.array([True, False, True, False, True]), device)] = 0.0
    v[[1, 3], [0, 5]] = t(np.array([8.0, 9.0]), device)
    expected = base.copy().T
    expected[[True, False, True, False, True]] = 0.0
    expected[[1, 3], [0, 5]] = [8.0, 9.0]
    np.testing.assert_array_equal(x.numpy(), expected.T)


def test_setitem_with_a_mask_from_a_comparison(device):
    base = np.random.default_rng(0).standard_normal((3, 4))
    x = t(base.copy(), device)
    x[x < 0] = 0.0
    np.testing.assert_array_equal(x.numpy(), np.maximum(base, 0.0))


def test_setitem_errors_leave_the_tensor_unchanged(device):
    x = t(np.zeros((3, 4)), device)
    with pytest.raises(ValueError, match="broadcast"):
        x[[0, 1]] = t(np.ones(3), device)
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 0 with size 3"):
        x[[0, 3]] = 1.0
    with pytest.raises(IndexError, match="the shape of the mask"):
        x[t(np.ones(4, bool), device)] = 1.0
    np.testing.assert_array_equal(x.numpy(), np.zeros((3, 4)))


def test_setitem_refuses_autograd(device):
    x = t(np.zeros(3), device, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        x[[0]] = 1.0
    with cl.no_grad():
        x[[0, 2]] = 1.0
    np.testing.assert_array_equal(x.numpy(), [1.0, 0.0, 1.0])


# ---- the ops as torch.* functions and Tensor methods ----
def test_where_values_and_gradients(device):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    cond = rng.random((3, 1, 5)) < 0.5
    a, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((4, 1))
    compare_with_torch(lambda x, y: cl.where(t(cond, device), x, y),
                       lambda x, y: torch.where(torch.from_numpy(cond), x, y), [a, b], device, "float64")
    compare_with_torch(lambda x: cl.where(t(cond, device), x, 0.5),
                       lambda x: torch.where(torch.from_numpy(cond), x, 0.5), [a], device, "float32")
    compare_with_torch(lambda x: x.where(t(cond, device), -1.0),
                       lambda x: x.where(torch.from_numpy(cond), -1.0), [a], device, "float32")
    gradcheck(lambda x, y: cl.where(t(cond, device), x, y), [a, b], device)


def test_where_with_numbers_promotes_as_pytorch(device):
    torch = torch_or_skip()
    cond = np.array([True, False, True])
    ints, int32s = np.array([1, 2, 3]), np.array([1, 2, 3], np.int32)
    for a, b in ((1, 0), (1.0, 0), (True, 2), (ints, 0.5), (int32s, 7), (2, int32s), (ints, int32s)):
        ours = cl.where(t(cond, device), *(t(v, device) if isinstance(v, np.ndarray) else v for v in (a, b)))
        theirs = torch.where(torch.from_numpy(cond), *(torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                                                        for v in (a, b)))
        assert ours.numpy().dtype == theirs.numpy().dtype, (a, b)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_where_of_a_condition_alone_is_nonzero_as_tuple(device):
    m = np.random.default_rng(0).random((3, 4)) < 0.5
    out = cl.where(t(m, device))
    assert isinstance(out, tuple) and len(out) == 2
    for ours, theirs in zip(out, np.nonzero(m)):
        assert ours.dtype == "int64"
        np.testing.assert_array_equal(ours.numpy(), theirs)
    np.testing.assert_array_equal(cl.nonzero(t(m, device)).numpy(), np.argwhere(m))
    np.testing.assert_array_equal(t(m, device).nonzero().numpy(), np.argwhere(m))


def test_gather_and_scatter_add_values_and_gradients(device):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 6))
    index = rng.integers(0, 6, (3, 5))
    compare_with_torch(lambda x: cl.gather(x, 1, t(index, device)),
                       lambda x: torch.gather(x, 1, torch.from_numpy(index)), [a], device, "float64")
    compare_with_torch(lambda x: x.gather(-1, t(index, device)),
                       lambda x: x.gather(-1, torch.from_numpy(index)), [a], device, "float32")
    src = rng.standard_normal((3, 5))
    compare_with_torch(lambda x, s: x.scatter_add(1, t(index, device), s),
                       lambda x, s: x.scatter_add(1, torch.from_numpy(index), s), [a, src], device, "float64")
    compare_with_torch(lambda x, s: cl.scatter_add(x, 0, t(index % 4, device), s),
                       lambda x, s: torch.scatter_add(x, 0, torch.from_numpy(index % 4), s), [a, src], device,
                       "float32")
    gradcheck(lambda x: x.gather(1, t(index, device)), [a], device)
    gradcheck(lambda x, s: x.scatter_add(1, t(index, device), s), [a, src], device)


def test_scatter_values_and_gradients(device):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    a, src = rng.standard_normal((5, 4)), rng.standard_normal((3, 4))
    index = np.stack([rng.permutation(5)[:3] for _ in range(4)], axis=1)  # no position repeats in a column
    compare_with_torch(lambda x, s: x.scatter(0, t(index, device), s),
                       lambda x, s: x.scatter(0, torch.from_numpy(index), s), [a, src], device, "float64")
    compare_with_torch(lambda x: cl.scatter(x, 0, t(index, device), value=2.5),
                       lambda x: torch.scatter(x, 0, torch.from_numpy(index), value=2.5), [a], device, "float32")
    gradcheck(lambda x, s: x.scatter(0, t(index, device), s), [a, src], device)
    gradcheck(lambda x, s: x.scatter(1, t(index[:2, :2] % 4, device), s), [a, src], device)  # src beyond index


def test_scatter_in_place_one_hot_and_scatter_add_(device):
    torch = torch_or_skip()
    y = np.array([2, 0, 3, 3])
    ours = cl.zeros(4, 5, device=device).scatter_(1, t(y[:, None], device), 1)
    theirs = torch.zeros(4, 5).scatter_(1, torch.from_numpy(y[:, None]), 1)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    counts = cl.zeros(5, dtype=cl.int64, device=device)
    assert counts.scatter_add_(0, t(y, device), t(np.ones(4, np.int64), device)) is counts
    np.testing.assert_array_equal(counts.numpy(), np.bincount(y, minlength=5))
    with pytest.raises(TypeError, match="scatter_: src is float64 but self is float32"):
        cl.zeros(4, 5, device=device).scatter_(1, t(y[:, None], device), t(np.ones((4, 1)), device))
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 1 with size 3"):
        cl.zeros(4, 3, device=device).scatter_(1, t(y[:, None], device), 1.0)
    with pytest.raises(TypeError, match="pass exactly one of src and value"):
        cl.zeros(4, 3, device=device).scatter(1, t(y[:, None], device))


def test_scatter_add_with_src_larger_than_index(device):
    rng = np.random.default_rng(0)
    a, src = rng.standard_normal((3, 4)), rng.standard_normal((3, 5))
    index = rng.integers(0, 4, (2, 3))
    gradcheck(lambda x, s: x.scatter_add(1, t(index, device), s), [a, src], device)  # src beyond index: 0


def test_index_select_and_index_add_values_and_gradients(device):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 6, 2))
    index = np.array([5, 0, 0, 3])
    compare_with_torch(lambda x: cl.index_select(x, 1, t(index, device)),
                       lambda x: torch.index_select(x, 1, torch.from_numpy(index)), [a], device, "float64")
    src = rng.standard_normal((4, 4, 2))
    compare_with_torch(lambda x, s: x.index_add(1, t(index, device), s, alpha=0.5),
                       lambda x, s: x.index_add(1, torch.from_numpy(index), s, alpha=0.5), [a, src], device,
                       "float64")
    gradcheck(lambda x: x.index_select(1, t(index, device)), [a], device)
    gradcheck(lambda x, s: x.index_add(1, t(index, device), s), [a, src], device)


def test_masked_fill_and_masked_select(device):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4, 5))
    mask = rng.random((4, 1)) < 0.5
    compare_with_torch(lambda x: x.masked_fill(t(mask, device), -1e9),
                       lambda x: x.masked_fill(torch.from_numpy(mask), -1e9), [a], device, "float64")
    compare_with_torch(lambda x: x.masked_select(t(mask, device)),
                       lambda x: x.masked_select(torch.from_numpy(mask)), [a], device, "float32")
    gradcheck(lambda x: x.masked_fill(t(mask, device), 2.0), [a], device)
    x = t(a.copy(), device)
    assert x.masked_fill_(t(mask, device), 0.0) is x
    np.testing.assert_array_equal(x.numpy(), np.where(mask, 0.0, a))
    with pytest.raises(ValueError, match="masked_fill: mask of shape \\(2, 4, 5\\) does not broadcast"):
        x.masked_fill(t(np.ones((2, 4, 5), bool), device), 0.0)
    with pytest.raises(TypeError, match="masked_fill: mask must be a bool tensor, got float64"):
        x.masked_fill(x, 0.0)


def test_ops_leave_their_inputs_unchanged(device):
    rng = np.random.default_rng(0)
    a, src = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    index, mask = rng.integers(0, 4, (3, 4)), rng.random((3, 4)) < 0.5
    x, s, i, m = t(a, device), t(src, device), t(index, device), t(mask, device)
    x.gather(1, i), x.scatter_add(1, i, s), x.index_select(0, t(np.array([0]), device)), x.masked_fill(m, 0.0)
    x[:, i], x[m], cl.where(m, x, s)
    for ours, theirs in ((x, a), (s, src), (i, index), (m, mask)):
        np.testing.assert_array_equal(ours.numpy(), theirs)


def test_integer_results_never_require_grad(device):
    x = t(np.array([[0.0, 1.0], [2.0, 0.0]]), device, requires_grad=True)
    assert not x.nonzero().requires_grad
    assert x[t(np.array([True, False]), device)].requires_grad
