"""NDArray dtypes: int32, int64 and bool beside the floats. Conversions, every element-wise op and reduction
for every dtype (strided views and broadcasting included) against NumPy references, and the result dtypes
against torch.result_type (PyTorch's promotion rules)."""
import itertools
import operator

import numpy as np
import pytest

import convlab as cl
from ndarray_helpers import BINARY as BINARY_ALL_DTYPES, LAYOUTS, as_view, check

DTYPES = ["bool", "int32", "int64", "float32", "float64"]
INTS = ["int32", "int64"]


def values(rng, shape, dtype, low=-9, high=10):
    """Small whole numbers (so float results are exact and comparisons tie), or random bools."""
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return rng.integers(low, high, shape).astype(dtype)


def nd(x, device):
    return cl.NDArray.from_numpy(np.asarray(x), device=device)


def torch_dtype(name):
    torch = pytest.importorskip("torch")
    return getattr(torch, name)


# ---- conversions ----
@pytest.mark.parametrize("dtype", DTYPES)
def test_from_numpy_numpy_empty_full(device, dtype):
    x = values(np.random.default_rng(0), (3, 4), dtype)
    a = nd(x, device)
    assert a.dtype == dtype and a.numpy().dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a.numpy(), x)
    np.testing.assert_array_equal(nd(x[::-1, 1::2], device).numpy(), x[::-1, 1::2])  # non-contiguous source
    assert cl.NDArray.empty((2, 0), dtype=dtype, device=device).numpy().shape == (2, 0)
    check(cl.NDArray.full((2, 3), 1, dtype=dtype, device=device), np.ones((2, 3), dtype))
    check(cl.NDArray.full((300, 301), 7, dtype=dtype, device=device), np.full((300, 301), 7).astype(dtype))


@pytest.mark.parametrize("src,dst", list(itertools.product(DTYPES, DTYPES)))
def test_astype_every_pair(device, src, dst):
    """Casts as NumPy's: floats truncate toward zero into integers, anything non-zero is True."""
    rng = np.random.default_rng(1)
    x = values(rng, (4, 5), src) if src in ("bool", *INTS) else (rng.standard_normal((4, 5)) * 5).astype(src)
    x[0, :2] = 0  # zeros become False
    for layout in LAYOUTS:
        a, xv = as_view(rng, x, layout, device)
        check(a.astype(dst), xv.astype(dst))


@pytest.mark.parametrize("dtype", DTYPES)
def test_copy_setitem_and_device_moves(device, dtype):
    rng = np.random.default_rng(2)
    x = values(rng, (4, 6), dtype)
    a = nd(x, device)
    b = a.copy()
    b[1:3, ::2] = nd(values(rng, (2, 3), "float64"), device)  # converted to the destination's dtype
    b[0] = 1
    want = x.copy()
    want[0] = 1
    assert b.dtype == dtype
    np.testing.assert_array_equal(a.numpy(), x)  # the source is untouched
    np.testing.assert_array_equal(b.numpy()[[0, 3]], want[[0, 3]])
    np.testing.assert_array_equal(a.to("cpu").numpy(), x)
    if device == "cuda":
        np.testing.assert_array_equal(a.to("cpu").to("cuda").numpy(), x)


def test_from_numpy_names_other_dtypes(device):
    for bad in (np.int8, np.uint8, np.int16, np.float16):
        with pytest.raises(TypeError, match=np.dtype(bad).name):
            nd(np.zeros(2, bad), device)


# ---- element-wise: NumPy references over every pair of dtypes ----
BINARY = {
    **BINARY_ALL_DTYPES,
    "floor_divide": (operator.floordiv, np.floor_divide),
    "remainder": (operator.mod, np.remainder),
    "logical_and": (lambda a, b: a.logical_and(b), np.logical_and),
    "logical_or": (lambda a, b: a.logical_or(b), np.logical_or),
    "logical_xor": (lambda a, b: a.logical_xor(b), np.logical_xor),
    "bitwise_and": (operator.and_, np.bitwise_and),
    "bitwise_or": (operator.or_, np.bitwise_or),
    "bitwise_xor": (operator.xor, np.bitwise_xor),
}
BOOL_RESULT = {"eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor"}


def promoted(a, b):
    """torch.result_type for two dimensioned arrays, from the rule itself: the later dtype in DTYPES."""
    return max(a, b, key=DTYPES.index)


def refusal(name, dtype, *operand_dtypes):
    """What the TypeError PyTorch raises for op on operands (of operand_dtypes) promoted to dtype names, or
    None."""
    if name == "sub" and "bool" in (dtype, *operand_dtypes):
        return "bool"
    if dtype == "bool" and name in ("pow", "floor_divide", "remainder"):
        return "bool"
    if name.startswith("bitwise") and dtype.startswith("float"):
        return dtype
    return None


def reference(name, np_op, xa, xb, dtype):
    """NumPy's result with both operands in dtype, in the dtype convlab gives (true division of integers:
    float32; bool for comparisons and logical ops)."""
    xa, xb = np.asarray(xa).astype(dtype), np.asarray(xb).astype(dtype)
    if name == "div" and not dtype.startswith("float"):
        return np_op(xa.astype(np.float32), xb.astype(np.float32))
    with np.errstate(all="ignore"):
        out = np.asarray(np_op(xa, xb))
    return out if name in BOOL_RESULT else out.astype(dtype)


def operand_pair(rng, name, shape_a, shape_b, da, db):
    xa, xb = values(rng, shape_a, da), values(rng, shape_b, db)
    if name == "pow":  # no negative integer exponents (NumPy refuses them; tested on their own below)
        xa, xb = values(rng, shape_a, da, -3, 4), values(rng, shape_b, db, 0, 4)
    if name in ("div", "floor_divide", "remainder") and db != "bool":
        xb = np.where(xb == 0, 3, xb).astype(db)  # integer division by 0 raises (tested below)
    if name in ("div", "floor_divide", "remainder") and db == "bool":
        xb = np.ones(shape_b, bool)
    return xa, xb


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("da,db", list(itertools.product(DTYPES, DTYPES)))
def test_binary_every_dtype_pair(device, name, da, db):
    op, np_op = BINARY[name]
    rng = np.random.default_rng(3)
    dtype = promoted(da, db)
    xa, xb = operand_pair(rng, name, (3, 1, 5), (4, 5), da, db)
    a, b = nd(xa, device), nd(xb, device)
    if refusal(name, dtype, da, db):
        with pytest.raises(TypeError, match=f"{name}.*{refusal(name, dtype, da, db)}"):
            op(a, b)
        return
    want = reference(name, np_op, xa, xb, dtype)
    out = op(a, b)
    check(out, want)
    np.testing.assert_array_equal(a.numpy(), xa)  # inputs unchanged
    np.testing.assert_array_equal(b.numpy(), xb)


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("dtype", ["bool", "int32", "int64"])
def test_binary_strided_views_and_threads(device, name, dtype):
    """Every layout (permuted, negative steps, broadcast, ...) and an array large enough to be split across
    threads."""
    op, np_op = BINARY[name]
    rng = np.random.default_rng(4)
    if refusal(name, dtype, dtype):
        return
    for layout in LAYOUTS:
        xa, xb = operand_pair(rng, name, (3, 4, 5), (3, 4, 5), dtype, dtype)
        (a, xav), (b, xbv) = as_view(rng, xa, layout, device), as_view(rng, xb, layout, device)
        check(op(a, b), reference(name, np_op, xav, xbv, dtype))
    xa, xb = operand_pair(rng, name, (70001,), (70001,), dtype, dtype)
    a, b = nd(xa, device)[::-1], nd(xb, device)
    check(op(a, b), reference(name, np_op, xa[::-1], xb, dtype))


SCALARS = [True, 3, -2, 2.5]


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "floor_divide", "remainder", "lt", "eq",
                                  "bitwise_and", "logical_or"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_with_python_numbers(device, name, dtype):
    """A Python number joins in its category's default dtype only when that category is higher (int64 for
    ints, float32 for floats), as torch.result_type(tensor, number) says; either side."""
    torch = pytest.importorskip("torch")
    op, np_op = BINARY[name]
    x = values(np.random.default_rng(5), (2, 3), dtype, 1, 10)
    a = nd(x, device)
    for s in SCALARS:
        if name not in ("bitwise_and", "logical_or", "eq", "lt") and isinstance(s, bool):
            continue
        dtype_ = str(torch.result_type(torch.from_numpy(x), s)).removeprefix("torch.")
        if refusal(name, dtype_, dtype) or (name.startswith("bitwise") and isinstance(s, float)):
            with pytest.raises(TypeError):
                op(a, s)
            continue
        assert a.result_type(s) == dtype_
        check(op(a, s), reference(name, np_op, x, s, dtype_))
        if name in ("add", "mul", "sub", "eq"):
            reflected = op(s, a)
            check(reflected, reference(name, np_op, s, x, dtype_))


@pytest.mark.parametrize("da,db", list(itertools.product(DTYPES, DTYPES)))
def test_result_type_matches_torch(device, da, db):
    """Arrays promote in the lattice bool < int32 < int64 < float32 < float64; a 0-d array beside an array
    with dimensions counts only when its category (bool, integer, float) is higher."""
    torch = pytest.importorskip("torch")
    for shape_a, shape_b in [((2,), (2,)), ((2,), ()), ((), (2,)), ((), ())]:
        a, b = nd(np.zeros(shape_a, da), device), nd(np.zeros(shape_b, db), device)
        want = torch.result_type(torch.zeros(shape_a, dtype=torch_dtype(da)),
                                 torch.zeros(shape_b, dtype=torch_dtype(db)))
        assert a.result_type(b) == str(want).removeprefix("torch."), (shape_a, shape_b)
        assert (a + b).dtype == a.result_type(b) or refusal("add", a.result_type(b))


def test_integer_special_cases(device):
    """PyTorch's integer rules: floor division and remainder round toward minus infinity, the lowest value
    divided by -1 wraps, negative exponents give 1/x truncated, dividing by 0 is an error."""
    torch = pytest.importorskip("torch")
    lo = np.iinfo(np.int64).min
    x = np.array([7, -7, 7, -7, lo, lo, 5], np.int64)
    y = np.array([2, 2, -2, -2, -1, 1, 7], np.int64)
    a, b = nd(x, device), nd(y, device)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    np.testing.assert_array_equal((a // b).numpy(), (tx // ty).numpy())
    np.testing.assert_array_equal((a % b).numpy(), (tx % ty).numpy())
    base, exponent = np.array([2, -1, -1, 1, 0, 3], np.int32), np.array([-1, -1, -2, -5, 0, 4], np.int32)
    np.testing.assert_array_equal((nd(base, device) ** nd(exponent, device)).numpy(),
                                  (torch.from_numpy(base) ** torch.from_numpy(exponent)).numpy())
    big = np.array([2**31 - 1, -2**31, 2**30, -7], np.int32)  # integer arithmetic wraps around, as in PyTorch
    for op, other in [(operator.add, big), (operator.sub, big[::-1].copy()), (operator.mul, big),
                      (operator.pow, np.array([2, 3, 2, 11], np.int32))]:
        got = op(nd(big, device), nd(other, device))
        want = op(torch.from_numpy(big), torch.from_numpy(other))
        assert got.dtype == "int32"
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        a // 0
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        a % nd(np.array([1, 0, 1, 1, 1, 1, 1]), device)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        5 // a.maximum(0)  # the array is the divisor here
    with pytest.raises(RuntimeError, match="negative"):
        a ** -1


def test_float_floor_divide_and_remainder_match_torch(device):
    torch = pytest.importorskip("torch")
    x = np.array([7.5, -7.5, 7.5, -7.5, 0.0, -0.0, 1.0, np.inf, 5.0, 0.3], np.float64)
    y = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 3.0, 0.0, 2.0, np.inf, 0.1], np.float64)
    a, b = nd(x, device), nd(y, device)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    np.testing.assert_array_equal((a // b).numpy(), (tx // ty).numpy())
    np.testing.assert_array_equal(np.signbit((a // b).numpy()), np.signbit((tx // ty).numpy()))
    np.testing.assert_array_equal((a % b).numpy(), (tx % ty).numpy())


# ---- unary ----
UNARY = {
    "neg": (operator.neg, np.negative),
    "abs": (lambda a: a.abs(), np.abs),
    "sign": (lambda a: a.sign(), np.sign),
    "relu": (lambda a: a.relu(), lambda x: np.maximum(x, 0).astype(x.dtype)),
    "floor": (lambda a: a.floor(), np.floor),
    "ceil": (lambda a: a.ceil(), np.ceil),
    "round": (lambda a: a.round(), np.round),
    "logical_not": (lambda a: a.logical_not(), np.logical_not),
    "bitwise_not": (operator.invert, np.invert),
}


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_every_dtype(device, name, dtype):
    op, np_op = UNARY[name]
    rng = np.random.default_rng(6)
    x = values(rng, (4, 5), dtype)
    if dtype.startswith("float"):
        x = x + rng.choice([0.0, 0.25, 0.5, -0.5, 1.5], (4, 5)).astype(dtype)  # halves: round to even
    bad = (dtype == "bool" and name in ("neg", "abs", "relu", "floor", "ceil", "round")
           or dtype.startswith("float") and name == "bitwise_not")
    if bad:
        with pytest.raises(TypeError, match=name):
            op(nd(x, device))
        return
    want = np_op(x) if not (dtype == "bool" and name == "sign") else x
    for layout in LAYOUTS:
        a, xv = as_view(rng, x, layout, device)
        check(op(a), np_op(xv) if not (dtype == "bool" and name == "sign") else xv)
    check(op(nd(x, device)), want)
    assert op(nd(x, device)).dtype == ("bool" if name == "logical_not" else dtype)


def test_integer_edge_values(device):
    lo = np.iinfo(np.int32).min
    a = nd(np.array([lo, -5, 0, 5, np.iinfo(np.int32).max], np.int32), device)
    np.testing.assert_array_equal((-a).numpy(), -np.array([lo, -5, 0, 5, np.iinfo(np.int32).max], np.int32))
    np.testing.assert_array_equal(a.abs().numpy(), np.abs(np.array([lo, -5, 0, 5, 2**31 - 1], np.int32)))


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "sigmoid", "erf"])
@pytest.mark.parametrize("dtype", ["bool", "int32", "int64"])
def test_transcendental_of_integers_is_float32(device, name, dtype):
    torch = pytest.importorskip("torch")
    x = values(np.random.default_rng(7), (3, 4), dtype, 1, 6)
    out = getattr(nd(x, device), name)()
    want = getattr(torch, name)(torch.from_numpy(x))
    assert out.dtype == "float32" == str(want.dtype).removeprefix("torch.")
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=2e-6)


def test_float_round_is_half_to_even(device):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, -2.6, np.nan, np.inf], np.float32)
    np.testing.assert_array_equal(nd(x, device).round().numpy(), np.round(x))
    np.testing.assert_array_equal(nd(x, device).floor().numpy(), np.floor(x))
    np.testing.assert_array_equal(nd(x, device).ceil().numpy(), np.ceil(x))


# ---- reductions ----
@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_max_min(device, dtype):
    rng = np.random.default_rng(8)
    x = values(rng, (3, 4, 5), dtype)
    sum_dtype = dtype if dtype.startswith("float") else "int64"  # integers and bools sum to int64
    for layout in LAYOUTS:
        a, xv = as_view(rng, x, layout, device)
        for axes in [None, 1, (0, 2)]:
            check(a.sum(axes), xv.sum(axes).astype(sum_dtype))
            check(a.max(axes), xv.max(axes))
            check(a.min(axes, True), xv.min(axes, keepdims=True))
    big = values(rng, (2, 70001), dtype)  # rows split across threads
    a = nd(big, device)
    check(a.sum(1), big.sum(1).astype(sum_dtype))
    check(a.max(), big.max())
    check(a.min(1), big.min(1))
    with pytest.raises(ValueError, match="min"):
        nd(np.zeros((2, 0), dtype), device).min(1)


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
def test_argmax_argmin(device, dtype):
    """int64 index of the first extreme along an axis or over all elements."""
    rng = np.random.default_rng(9)
    x = values(rng, (4, 6, 3), dtype, -3, 4)  # many ties
    for layout in LAYOUTS:
        a, xv = as_view(rng, x, layout, device)
        for axis in [None, 0, 1, -1]:
            check(a.argmax(axis), np.asarray(xv.argmax(axis)))
            check(a.argmin(axis), np.asarray(xv.argmin(axis)))
    check(nd(x, device).argmin(1, True), x.argmin(1, keepdims=True))
    big = values(rng, (70001,), dtype, -3, 4)
    big[50000] = -5
    check(nd(big, device).argmin(), np.array(50000))


def test_min_argmin_nan(device):
    """NaN is the minimum as it is the maximum (it propagates), and argmin points at the first NaN."""
    x = np.array([[1.0, np.nan, -3.0, np.nan], [2.0, 0.0, -1.0, 5.0]], np.float32)
    a = nd(x, device)
    check(a.min(1), np.array([np.nan, -1.0], np.float32))
    check(a.argmin(1), np.array([1, 2]))
    check(a.argmax(1), np.array([1, 3]))


def test_reduction_refusals(device):
    with pytest.raises(TypeError, match="mean.*int64"):
        nd(np.arange(4), device).mean()
    with pytest.raises(TypeError, match="argmax.*bool"):
        nd(np.ones(3, bool), device).argmax()
    with pytest.raises(TypeError, match="argmin.*bool"):
        nd(np.ones(3, bool), device).argmin()


# ---- float-only kernels refuse other dtypes by name ----
def test_float_only_kernels_name_the_op(device):
    ints = nd(np.ones((1, 1, 4, 4), np.int64), device)
    floats = nd(np.ones((1, 1, 4, 4), np.float32), device)
    with pytest.raises(TypeError, match="matmul.*int64"):
        ints.reshape((4, 4)) @ ints.reshape((4, 4))
    with pytest.raises(TypeError, match="conv2d.*int64"):
        cl._C.conv_forward(ints, ints, None, [1, 1], [(0, 0), (0, 0)], [1, 1], 1)
    with pytest.raises(TypeError, match="max_pool2d.*int64"):
        cl._C.max_pool_forward(ints, [2, 2], [2, 2], [0, 0], [1, 1], False)
    with pytest.raises(TypeError, match="pad.*bool"):
        nd(np.ones((2, 2), bool), device).pad([(1, 1)])
    assert floats.pad([(1, 1)]).dtype == "float32"
