"""Element-wise NDArray ops against NumPy's ufuncs (the math itself): binary ops with broadcasting over
contiguous, permuted, sliced, flipped and broadcast operands, scalar forms on both sides, unary ops, NaN and
edge-value rules, and error messages. Inputs must come out unchanged."""
import operator

import numpy as np
import pytest

import convlab as cl
from ndarray_helpers import BINARY, DTYPES, LAYOUTS, as_view, check, rand

SHAPE_PAIRS = [
    ((3, 4), (4,)),
    ((2, 1, 5), (3, 1)),
    ((1,), (6, 1, 1)),
    ((), (3, 2)),
    ((4, 0, 3), (1, 3)),
    ((5, 7), (5, 7)),
    ((2, 3, 1, 4), (1, 3, 5, 1)),
    ((1, 1), (1,)),
]



def operands(rng, name, shape, dtype):
    """Values suited to the op: positive bases for pow, ties for the comparisons, no zero divisors."""
    x = rand(rng, shape, dtype)
    if name == "pow":
        return np.asarray(np.abs(x) + 0.25, dtype=dtype)
    if name in ("eq", "ne", "lt", "le", "gt", "ge", "maximum", "minimum"):
        return np.asarray(np.round(x), dtype=dtype)  # small integers, so equal pairs occur
    if name == "div":
        return np.asarray(x + np.sign(x) * 0.5, dtype=dtype)
    return x


def expected(np_op, xa, xb, dtype):
    """NumPy's result in dtype; comparisons stay bool, as convlab's do."""
    with np.errstate(all="ignore"):
        out = np.asarray(np_op(xa, xb))
    return out if out.dtype == bool else out.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_broadcasting_layouts(device, name, dtype):
    op, np_op = BINARY[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    for shape_a, shape_b in SHAPE_PAIRS:
        for layout_a, layout_b in [("contiguous", "contiguous")] + [tuple(rng.choice(LAYOUTS, 2)) for _ in range(3)]:
            a, xa = as_view(rng, operands(rng, name, shape_a, dtype), layout_a, device)
            b, xb = as_view(rng, operands(rng, name, shape_b, dtype), layout_b, device)
            before_a, before_b = a.numpy(), b.numpy()
            out = op(a, b)
            check(out, expected(np_op, xa, xb, dtype))
            assert out.is_contiguous()
            np.testing.assert_array_equal(a.numpy(), before_a)
            np.testing.assert_array_equal(b.numpy(), before_b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_large_strided(device, name, dtype):
    # Large enough for the threaded path, with runs that do not line up with thread boundaries.
    op, np_op = BINARY[name]
    rng = np.random.default_rng(1)
    a, xa = as_view(rng, operands(rng, name, (131, 3, 97), dtype), "permuted", device)
    b, xb = as_view(rng, operands(rng, name, (131, 1, 97), dtype), "sliced", device)
    check(op(a, b), expected(np_op, xa, xb, dtype))
    c, xc = as_view(rng, operands(rng, name, (40001,), dtype), "contiguous", device)
    check(op(c, c), expected(np_op, xc, xc, dtype))


SCALAR_OPS = [
    ("add", operator.add), ("sub", operator.sub), ("mul", operator.mul), ("div", operator.truediv),
    ("pow", operator.pow), ("lt", operator.lt), ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge),
    ("eq", operator.eq), ("ne", operator.ne),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,op", SCALAR_OPS)
def test_binary_scalar_both_sides(device, name, op, dtype):
    rng = np.random.default_rng(2)
    for layout in LAYOUTS:
        a, xa = as_view(rng, operands(rng, name, (3, 5, 4), dtype), layout, device)
        before = a.numpy()
        for s in [2, -1.5, 0.75, 3]:
            if name == "pow" and s == -1.5:
                continue
            want_right = expected(op, xa, np.asarray(s, dtype), dtype)
            want_left = expected(op, np.asarray(s if name != "pow" else abs(s), dtype), xa, dtype)
            check(op(a, s), want_right)
            check(op(s if name != "pow" else abs(s), a), want_left)
        np.testing.assert_array_equal(a.numpy(), before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maximum_minimum_scalar(device, dtype):
    x = rand(np.random.default_rng(3), (4, 6), dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    check(a.maximum(0.1), np.maximum(x, np.asarray(0.1, dtype)))
    check(a.minimum(-0.2), np.minimum(x, np.asarray(-0.2, dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_special_values(device, dtype):
    nan, inf = np.nan, np.inf
    xa = np.array([nan, 1.0, nan, -inf, 0.0, -0.0, 2.0, -8.0, 0.0, inf], dtype=dtype)
    xb = np.array([1.0, nan, nan, 3.0, 0.0, 0.0, -inf, 1 / 3, -1.0, 0.0], dtype=dtype)
    a, b = cl.NDArray.from_numpy(xa, device=device), cl.NDArray.from_numpy(xb, device=device)
    for name, (op, np_op) in BINARY.items():
        check(op(a, b), expected(np_op, xa, xb, dtype))
    # pow follows std::pow: negative bases with integer exponents are finite, others NaN
    xp = np.array([-2.0, -2.0, -2.0, 0.0, 0.0, 1.0, nan, 4.0], dtype=dtype)
    xq = np.array([3.0, 2.0, 0.5, -1.0, 0.0, nan, 0.0, -0.5], dtype=dtype)
    p, q = cl.NDArray.from_numpy(xp, device=device), cl.NDArray.from_numpy(xq, device=device)
    check(p ** q, expected(np.power, xp, xq, dtype))


UNARY = {
    "neg": (lambda a: -a, np.negative),
    "exp": (lambda a: a.exp(), np.exp),
    "log": (lambda a: a.log(), np.log),
    "sqrt": (lambda a: a.sqrt(), np.sqrt),
    "tanh": (lambda a: a.tanh(), np.tanh),
    "sigmoid": (lambda a: a.sigmoid(), lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64)))),
    "relu": (lambda a: a.relu(), lambda x: np.where(x > 0, x, np.zeros_like(x))),
    "abs": (lambda a: a.abs(), np.abs),
    "sign": (lambda a: a.sign(), np.sign),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_layouts(device, name, dtype):
    op, np_op = UNARY[name]
    rng = np.random.default_rng(4)
    for shape in [(), (0,), (1,), (7,), (3, 5), (2, 3, 4, 5), (3, 0, 2)]:
        for layout in LAYOUTS:
            x = rand(rng, shape, dtype) * np.asarray(3, dtype)
            if name in ("log", "sqrt"):
                x = np.abs(x) + np.asarray(0.01, dtype)
            a, xv = as_view(rng, x, layout, device)
            before = a.numpy()
            out = op(a)
            with np.errstate(all="ignore"):
                check(out, np.asarray(np_op(xv)).astype(dtype))
            assert out.is_contiguous()
            np.testing.assert_array_equal(a.numpy(), before)
    big, xb = as_view(rng, np.abs(rand(rng, (257, 130), dtype)) + np.asarray(0.5, dtype), "permuted", device)
    with np.errstate(all="ignore"):
        check(op(big), np.asarray(np_op(xb)).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_special_values(device, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1e-30, -1000.0, 1000.0, 88.0, -88.0], dtype=dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    with np.errstate(all="ignore"):
        for name in ("neg", "exp", "log", "sqrt", "tanh", "abs", "sign"):
            op, np_op = UNARY[name]
            check(op(a), np.asarray(np_op(x)).astype(dtype))
    check(a.sign(), np.array([np.nan, 1, -1, 0, 0, -1, 1, -1, 1, 1, -1], dtype=dtype))
    check(a.relu(), np.array([np.nan, np.inf, 0, 0, 0, 0, 1e-30, 0, 1000, 88, 0], dtype=dtype))
    # sigmoid saturates cleanly instead of overflowing to NaN for large |x|
    s = a.sigmoid().numpy()
    assert np.isnan(s[0]) and s[1] == 1 and s[2] == 0 and s[3] == 0.5
    assert s[7] == 0 and s[8] == 1
    with np.errstate(all="ignore"):
        want = 1 / (1 + np.exp(-np.array([88.0, -88.0])))
    np.testing.assert_allclose(s[9:], want, rtol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_tanh_sigmoid_full_range(device, dtype):
    # exp, tanh and sigmoid are hand-written: within a few ulps of a long-double reference everywhere,
    # including near overflow, in the subnormal range and around 0 (where tanh must not cancel).
    lo, hi = (-110.0, 95.0) if dtype == "float32" else (-750.0, 712.0)
    x = np.concatenate([np.linspace(lo, hi, 20001), np.linspace(-1e-3, 1e-3, 2001), [1e-30, -1e-30]]).astype(dtype)
    a = cl.NDArray.from_numpy(x, device=device)
    xl = x.astype(np.longdouble)
    with np.errstate(all="ignore"):
        refs = {"exp": np.exp(xl), "tanh": np.tanh(xl), "sigmoid": 1 / (1 + np.exp(-xl))}
    for name, ref in refs.items():
        got = UNARY[name][0](a).numpy()
        with np.errstate(over="ignore"):
            want = ref.astype(dtype)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=name)
        fin = np.isfinite(want)
        ulp = np.spacing(np.abs(want[fin])).astype(np.longdouble)
        err = np.abs(got[fin].astype(np.longdouble) - ref[fin]) / ulp
        assert err.max() <= 4, (name, float(err.max()), x[fin][np.argmax(err)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_against_torch(device, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rand(rng, (6, 7), dtype) * np.asarray(20, dtype)
    y = rand(rng, (7,), dtype)
    a, b = cl.NDArray.from_numpy(x, device=device), cl.NDArray.from_numpy(y, device=device)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    check(a.sigmoid(), torch.sigmoid(tx).numpy())
    check(a.tanh(), torch.tanh(tx).numpy())
    check(a.relu(), torch.relu(tx).numpy())
    check(a.sign(), torch.sign(tx).numpy())
    check(a.maximum(b), torch.maximum(tx, ty).numpy())
    check(a / b, (tx / ty).numpy())
    check(b.abs() ** 1.7, (ty.abs() ** 1.7).numpy())


def test_binary_errors(device):
    a = cl.NDArray.from_numpy(np.zeros((3, 4), np.float32), device=device)
    b = cl.NDArray.from_numpy(np.zeros((2, 4), np.float32), device=device)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2, 4\)"):
        a + b
    with pytest.raises(ValueError, match="broadcast"):
        a.maximum(cl.NDArray.from_numpy(np.zeros((5,), np.float32), device=device))
    with pytest.raises(TypeError, match="float32"):
        a & a
    with pytest.raises(TypeError):
        a + "one"
    with pytest.raises(TypeError):
        a < None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bounds", [(0.0, 6.0), (0.0, None), (None, 1.0), (-1.0, 1.0), (0.5, 0.5), (2.0, -2.0),
                                    (-np.inf, np.inf)])
def test_clamp_matches_definition(device, dtype, bounds):
    """_C.clamp = min(max(a, lo), hi) in one pass: NaN stays NaN, lo > hi gives hi, -0.0 keeps its sign
    (as torch.clamp), a missing bound is no limit; any input layout, the input unchanged."""
    lo, hi = bounds
    torch = pytest.importorskip("torch") if device == "cpu" else None
    rng = np.random.default_rng(11)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 6.0, 1.0, -1.0, 0.5, -2.0, 2.0], dtype)
    for shape in [(3, 4), (2, 3, 5, 7), (40001,), (1,), (0, 3), ()]:
        for layout in ["contiguous", "permuted", "sliced", "flipped", "broadcast"]:
            xv = np.round(rand(rng, shape, dtype) * 8) / 2  # many values exactly at the bounds
            if xv.size:
                xv.flat[: len(specials)] = specials[: xv.size]
            a, xa = as_view(rng, xv, layout, device)
            before = a.numpy()
            out = cl._C.clamp(a, lo, hi)
            want = xa if lo is None else np.maximum(xa, lo)
            want = want if hi is None else np.minimum(want, hi)
            check(out, want.astype(dtype))
            assert out.is_contiguous()
            np.testing.assert_array_equal(a.numpy(), before)
            if torch is not None:
                t = torch.clamp(torch.from_numpy(np.array(xa)), lo, hi).numpy()
                np.testing.assert_array_equal(out.numpy(), t)
                np.testing.assert_array_equal(np.signbit(out.numpy()), np.signbit(t))


def test_clamp_errors(device):
    f32 = cl.NDArray.from_numpy(np.zeros((3, 4), np.float32), device=device)
    with pytest.raises(TypeError, match="input must be float32 or float64, got int64"):
        cl._C.clamp(f32.astype("int64"), 0.0, 1.0)
    with pytest.raises(ValueError, match="at least one of lo and hi"):
        cl._C.clamp(f32)
    with pytest.raises(ValueError, match="lo and hi must be numbers"):
        cl._C.clamp(f32, float("nan"), 1.0)


def clamp_backward_reference(g, y, lo, hi):
    """The gradient of clamp from its output by the definition: g where lo < y < hi (no hi: no upper limit)."""
    with np.errstate(invalid="ignore"):
        inside = (y > lo) & (True if hi is None else y < hi)
    return np.where(inside, g, 0).astype(g.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bounds", [(0.0, None), (0.0, 6.0), (-1.0, 1.0), (0.5, 0.5), (-np.inf, np.inf)])
def test_clamp_backward_matches_definition(device, dtype, bounds):
    lo, hi = bounds
    rng = np.random.default_rng(7)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 6.0, 1.0, -1.0, 0.5], dtype)
    for shape in [(3, 4), (2, 3, 5, 7), (40001,), (1,), (0, 3), ()]:
        for layout_g, layout_y in [("contiguous", "contiguous"), ("permuted", "sliced"), ("flipped", "broadcast")]:
            yv = np.round(rand(rng, shape, dtype) * 4) / 2  # many values exactly at the bounds
            if yv.size:
                yv.flat[: len(specials)] = specials[: yv.size]
            g, xg = as_view(rng, rand(rng, shape, dtype), layout_g, device)
            y, xy = as_view(rng, yv, layout_y, device)
            before_g, before_y = g.numpy(), y.numpy()
            out = cl._C.clamp_backward(g, y, lo, hi)
            check(out, clamp_backward_reference(xg, xy, lo, hi))
            assert out.is_contiguous()
            np.testing.assert_array_equal(g.numpy(), before_g)
            np.testing.assert_array_equal(y.numpy(), before_y)


def test_clamp_backward_errors(device):
    f32 = cl.NDArray.from_numpy(np.zeros((3, 4), np.float32), device=device)
    with pytest.raises(TypeError, match="grad_output must be float32 or float64, got int64"):
        cl._C.clamp_backward(f32.astype("int64"), f32.astype("int64"), 0.0)
    with pytest.raises(TypeError, match="output is float64"):
        cl._C.clamp_backward(f32, f32.astype("float64"), 0.0)
    with pytest.raises(ValueError, match=r"output.*\(3, 4\)"):
        cl._C.clamp_backward(f32, cl.NDArray.from_numpy(np.zeros((4,), np.float32), device=device), 0.0)
    with pytest.raises(ValueError, match="lo and hi must be numbers"):
        cl._C.clamp_backward(f32, f32, 0.0, float("nan"))
