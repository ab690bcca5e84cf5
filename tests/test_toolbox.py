"""The tensor toolbox PyTorch code reaches for (issue 9, part 3): joining and splitting, shape helpers, matrix
products, clamp / maximum / var / logsumexp, creators with every size form, Size, device, printing, in-place
helpers, grad modes and save/load. PyTorch is the oracle (values and gradients), NumPy references state the
math, and float64 central differences check every gradient."""
import io

import numpy as np
import pytest

import convlab as cl
from autograd_helpers import assert_close, compare_with_torch, gradcheck

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(2026)


def arrays(*shapes):
    return [RNG.standard_normal(s) for s in shapes]


# ---- cat / stack ----
CAT_CASES = [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 5)], 1), ([(2, 3, 4), (2, 3, 1)], -1), ([(1, 3)], 0),
             ([(1, 2, 2), (3, 2, 2)], -3), ([(5,), (2,)], 0), ([(2, 0, 3), (2, 4, 3)], 1)]


@pytest.mark.parametrize("shapes, dim", CAT_CASES)
def test_cat_matches_torch_and_numpy(device, shapes, dim):
    xs = arrays(*shapes)
    before = [x.copy() for x in xs]
    out = compare_with_torch(lambda *ts: cl.cat(ts, dim=dim), lambda *ts: torch.cat(ts, dim=dim), xs, device,
                             "float64")
    np.testing.assert_array_equal(out.numpy(), np.concatenate(xs, axis=dim))
    for x, b in zip(xs, before):
        np.testing.assert_array_equal(x, b)
    compare_with_torch(lambda *ts: cl.concat(list(ts), dim), lambda *ts: torch.concat(list(ts), dim), xs, device,
                       "float32")


def test_cat_gradcheck_and_empty_start():
    gradcheck(lambda a, b: cl.cat((a, b * b), 1), arrays((2, 3), (2, 2)))
    x = cl.tensor([1.0, 2.0])
    grown = cl.cat([cl.tensor([]), x])  # PyTorch skips a 1-D empty tensor (code that grows a result from [])
    assert grown.numpy().tolist() == [1.0, 2.0]
    assert cl.cat([cl.zeros(2, 3), cl.zeros(0)]).shape == (2, 3)


def test_cat_errors():
    with pytest.raises(ValueError, match=r"match except in dimension 1.*\(2, 3\).*\(3, 3\)"):
        cl.cat([cl.zeros(2, 3), cl.zeros(3, 3)], 1)
    with pytest.raises(TypeError, match="tuple or list"):
        cl.cat(cl.zeros(2, 3))
    with pytest.raises(TypeError, match="entry 1"):
        cl.cat([cl.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError, match="non-empty"):
        cl.cat([])
    with pytest.raises(ValueError, match="zero-dimensional"):
        cl.cat([cl.tensor(1.0), cl.tensor(2.0)])
    with pytest.raises(ValueError, match="out of range"):
        cl.cat([cl.zeros(2, 3)], 2)


def test_cat_and_stack_promote_dtypes_like_torch(device):
    parts = {"bool": [True, False], "int32": [1, -2], "int64": [3, 4], "float32": [0.5, 1.5], "float64": [2.25, 3.0]}
    for a in parts:
        for b in parts:
            ours = cl.cat([cl.tensor(parts[a], dtype=a, device=device), cl.tensor(parts[b], dtype=b, device=device)])
            theirs = torch.cat([torch.tensor(parts[a], dtype=getattr(torch, a)),
                                torch.tensor(parts[b], dtype=getattr(torch, b))])
            assert ours.dtype == str(theirs.dtype).split(".")[-1] and ours.tolist() == theirs.tolist()
    w = cl.ones(2, dtype="float32", device=device, requires_grad=True)
    out = cl.stack([w, cl.tensor([1, 2], device=device)])
    assert out.dtype == "float32" and out.requires_grad
    out.sum().backward()
    assert w.grad.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack_matches_torch(device, dim):
    xs = arrays((2, 3), (2, 3), (2, 3))
    out = compare_with_torch(lambda *ts: cl.stack(ts, dim), lambda *ts: torch.stack(ts, dim), xs, device, "float64")
    np.testing.assert_array_equal(out.numpy(), np.stack(xs, axis=dim))
    gradcheck(lambda a, b: cl.stack([a, b * a], dim), arrays((2, 3), (2, 3)))


def test_stack_errors():
    with pytest.raises(ValueError, match=r"equal size.*\(2, 3\) at entry 0 and \(3, 2\) at entry 1"):
        cl.stack([cl.zeros(2, 3), cl.zeros(3, 2)])
    with pytest.raises(ValueError, match="out of range"):
        cl.stack([cl.zeros(2, 3)], 3)


# ---- split / chunk / unbind / narrow / select ----
def pieces_match(ours, theirs):
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert_close(o, t, "float64")


def weighted_cat(pieces, dim, lib):
    """The pieces joined again with piece i scaled by i + 1, so each piece's gradient is told apart."""
    return lib.cat([p * float(i + 1) for i, p in enumerate(pieces)], dim)


@pytest.mark.parametrize("size, dim", [(2, 0), (3, 1), (1, -1), (10, 0), ([1, 4], 0), ([0, 2, 1], -1),
                                       ([3], 1)])
def test_split_matches_torch(device, size, dim):
    x = RNG.standard_normal((5, 3))
    pieces_match(cl.tensor(x).split(size, dim), torch.tensor(x).split(size, dim))
    pieces_match(cl.split(cl.tensor(x), size, dim), torch.split(torch.tensor(x), size, dim))
    compare_with_torch(lambda t: weighted_cat(cl.split(t, size, dim), dim, cl),
                       lambda t: weighted_cat(torch.split(t, size, dim), dim, torch), [x], device, "float64")


@pytest.mark.parametrize("chunks, dim, shape", [(2, 0, (5, 3)), (3, 1, (5, 3)), (4, 0, (5, 3)), (6, 0, (5, 3)),
                                                (1, 1, (5, 3)), (3, 0, (0, 2)), (2, -1, (1, 4))])
def test_chunk_matches_torch(device, chunks, dim, shape):
    x = RNG.standard_normal(shape)
    pieces_match(cl.chunk(cl.tensor(x), chunks, dim), torch.chunk(torch.tensor(x), chunks, dim))
    pieces_match(cl.tensor(x).chunk(chunks, dim), torch.tensor(x).chunk(chunks, dim))
    if x.size:
        compare_with_torch(lambda t: weighted_cat(t.chunk(chunks, dim), dim, cl),
                           lambda t: weighted_cat(t.chunk(chunks, dim), dim, torch), [x], device, "float64")


def test_unbind_narrow_select_match_torch(device):
    x = RNG.standard_normal((3, 4, 2))
    for dim in (0, 1, -1):
        compare_with_torch(lambda t: cl.stack([p * float(i + 1) for i, p in enumerate(cl.unbind(t, dim))]),
                           lambda t: torch.stack([p * float(i + 1) for i, p in enumerate(torch.unbind(t, dim))]),
                           [x], device, "float64")
    for dim, start, length in ((0, 1, 2), (1, -3, 3), (-1, 0, 0), (1, 4, 0)):
        compare_with_torch(lambda t: cl.narrow(t, dim, start, length) * 1.0,
                           lambda t: torch.narrow(t, dim, start, length) * 1.0, [x], device, "float64")
    compare_with_torch(lambda t: t.select(1, -1), lambda t: t.select(1, -1), [x], device, "float64")
    gradcheck(lambda t: cl.stack(t.split([1, 3], 1)[::-1][0].unbind(1)), [x])


def test_split_errors():
    x = cl.zeros(5, 3)
    with pytest.raises(ValueError, match=r"sum to the size of dimension 0, 5"):
        x.split([2, 2])
    with pytest.raises(ValueError, match="positive"):
        x.split(0)
    with pytest.raises(ValueError, match="chunks must be a positive int"):
        x.chunk(0)
    with pytest.raises(ValueError, match=r"exceeds dimension 1 of size 3"):
        x.narrow(1, 2, 2)
    with pytest.raises(IndexError, match="out of range"):
        x.narrow(0, 6, 0)


# ---- shapes ----
def test_shape_functions_match_torch(device):
    x = RNG.standard_normal((2, 1, 3, 1))
    cases = [
        (lambda lib, t: lib.flatten(t), None), (lambda lib, t: lib.flatten(t, 1, 2), None),
        (lambda lib, t: lib.squeeze(t), None), (lambda lib, t: lib.squeeze(t, 1), None),
        (lambda lib, t: t.squeeze((1, 3)), None), (lambda lib, t: lib.squeeze(t, (0, -1)), None),
        (lambda lib, t: lib.unsqueeze(t, -1), None), (lambda lib, t: lib.reshape(t, (3, 2)), None),
        (lambda lib, t: lib.permute(t, (3, 2, 1, 0)), None), (lambda lib, t: lib.transpose(t, 0, 2), None),
        (lambda lib, t: lib.swapaxes(t, -1, 0), None), (lambda lib, t: t.expand_as(lib.zeros(4, 2, 5, 3, 2)), None),
        (lambda lib, t: t.repeat(2, 1, 1, 3), None), (lambda lib, t: t.repeat(3, 1, 2, 1, 2), None),
        (lambda lib, t: t.tile((2,)), None), (lambda lib, t: t.tile(2, 1, 1, 1, 1), None),
        (lambda lib, t: t.view_as(lib.zeros(3, 2)), None), (lambda lib, t: t.reshape_as(lib.zeros(6)), None),
        (lambda lib, t: lib.clone(t), None), (lambda lib, t: t.mT, None), (lambda lib, t: t.reshape(3, 2).T, None),
        (lambda lib, t: t.transpose(0, 2).contiguous(), None),
        (lambda lib, t: t.reshape(2, 3).t(), None), (lambda lib, t: lib.t(t.reshape(6)), None),
    ]
    for fn, _ in cases:
        compare_with_torch(lambda t: fn(cl, t) * 1.0, lambda t: fn(torch, t) * 1.0, [x], device, "float64")
    gradcheck(lambda t: t.repeat(2, 3) * t.tile(2, 3).square(), [RNG.standard_normal((1, 3))])


@pytest.mark.parametrize("dims", [(0,), (1, 2), (-1,), (0, 1, 2), (2, 0)])
def test_flip_matches_torch(device, dims):
    x = RNG.standard_normal((2, 3, 4))
    compare_with_torch(lambda t: cl.flip(t, dims), lambda t: torch.flip(t, dims), [x], device, "float64")
    compare_with_torch(lambda t: t.flip(*dims), lambda t: t.flip(*dims), [x], device, "float32")
    ours = cl.tensor(x, device=device)
    flipped = ours.flip(dims)
    flipped[...] = 0.0  # a copy, as in PyTorch: the input keeps its values
    np.testing.assert_array_equal(ours.numpy(), x)


def test_fliplr_flipud_match_torch(device):
    x = RNG.standard_normal((3, 4))
    for name in ("fliplr", "flipud"):
        compare_with_torch(getattr(cl, name), getattr(torch, name), [x], device, "float64")


def test_contiguous_copies_only_when_needed():
    x = cl.randn(3, 4)
    assert x.contiguous() is x
    y = x.t().contiguous()
    assert y is not x and y._data.is_contiguous() and y.numpy().tolist() == x.numpy().T.tolist()


def test_t_refuses_more_than_two_dims():
    with pytest.raises(ValueError, match="<= 2 dimensions, got 3"):
        cl.zeros(2, 3, 4).t()
    with pytest.raises(ValueError, match=">= 2 dimensions"):
        cl.zeros(3).mT
    with pytest.raises(ValueError, match="repeat counts"):
        cl.zeros(2, 3).repeat(2)


# ---- matrix products ----
@pytest.mark.parametrize("shapes", [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                    ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 1), (1, 1))])
def test_matmul_matches_torch(device, shapes):
    out = compare_with_torch(cl.matmul, torch.matmul, arrays(*shapes), device, "float64")
    assert out.shape == torch.matmul(*(torch.zeros(s) for s in shapes)).shape


def test_mm_bmm_match_torch(device):
    compare_with_torch(cl.mm, torch.mm, arrays((3, 4), (4, 2)), device, "float64")
    compare_with_torch(cl.bmm, torch.bmm, arrays((2, 3, 4), (2, 4, 5)), device, "float64")
    compare_with_torch(cl.bmm, torch.bmm, arrays((1, 1, 4), (1, 4, 1)), device, "float32")
    gradcheck(cl.bmm, arrays((2, 2, 3), (2, 3, 2)))


def test_dot_mv_outer_match_torch(device):
    for name, shapes in [("dot", ((4,), (4,))), ("mv", ((3, 4), (4,))), ("outer", ((3,), (5,))),
                         ("outer", ((1,), (1,)))]:
        compare_with_torch(getattr(cl, name), getattr(torch, name), arrays(*shapes), device, "float64")
        compare_with_torch(lambda a, b: getattr(a, name)(b), lambda a, b: getattr(a, name)(b), arrays(*shapes),
                           device, "float32")
        gradcheck(getattr(cl, name), arrays(*shapes))
    for name, shapes in [("dot", ((4,), (3,))), ("dot", ((2, 2), (2, 2))), ("mv", ((3, 4), (3,))),
                         ("outer", ((3, 1), (2,)))]:
        with pytest.raises(ValueError, match=f"{name}: expects"):
            getattr(cl, name)(*(cl.zeros(s) for s in shapes))


def test_mm_bmm_shape_errors():
    with pytest.raises(ValueError, match=r"mm: both arguments must be 2-D"):
        cl.mm(cl.zeros(2, 3, 4), cl.zeros(4, 2))
    with pytest.raises(ValueError, match=r"cannot be multiplied \(3x4 and 3x2\)"):
        cl.mm(cl.zeros(3, 4), cl.zeros(3, 2))
    with pytest.raises(ValueError, match="3-D"):
        cl.bmm(cl.zeros(3, 4), cl.zeros(4, 2))
    with pytest.raises(ValueError, match="cannot be multiplied"):
        cl.bmm(cl.zeros(2, 3, 4), cl.zeros(3, 4, 2))
    with pytest.raises(TypeError, match="mat2 must be a Tensor"):
        cl.mm(cl.zeros(2, 2), np.zeros((2, 2)))


# ---- element-wise ----
@pytest.mark.parametrize("name", ["abs", "sqrt", "exp", "log", "tanh", "sigmoid", "relu", "neg", "square", "rsqrt"])
def test_unary_functions_match_torch(device, name):
    x = RNG.standard_normal((3, 4))
    if name in ("sqrt", "log", "rsqrt"):
        x = np.abs(x) + 0.5
    compare_with_torch(getattr(cl, name), getattr(torch, name), [x], device, "float64")
    compare_with_torch(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], device, "float32")
    gradcheck(getattr(cl, name), [x + (0.1 if name in ("abs", "relu") else 0.0)])
    with pytest.raises(TypeError, match=f"{name}: input must be a Tensor"):
        getattr(cl, name)(2.0)


def test_pow_forms_match_torch(device):
    x = np.abs(RNG.standard_normal((2, 3))) + 0.5
    compare_with_torch(lambda t: cl.pow(t, 3), lambda t: torch.pow(t, 3), [x], device, "float64")
    compare_with_torch(lambda t: cl.pow(2.0, t), lambda t: torch.pow(2.0, t), [x], device, "float64")
    compare_with_torch(cl.pow, torch.pow, [x, RNG.standard_normal((3,))], device, "float64")


CLAMP_X = np.array([[-2.0, -1.0, -0.5, 0.0], [0.5, 1.0, 1.5, 3.0]])


@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (None, 0.5), (-0.5, None), (0, 0), (1.0, -1.0)])
def test_clamp_numbers_match_torch(device, lo, hi):
    """Ends included: x exactly on a bound keeps its gradient (PyTorch's rule)."""
    out = compare_with_torch(lambda t: cl.clamp(t, lo, hi), lambda t: torch.clamp(t, lo, hi), [CLAMP_X], device,
                             "float64")
    expected = CLAMP_X if lo is None else np.maximum(CLAMP_X, lo)
    np.testing.assert_array_equal(out.numpy(), expected if hi is None else np.minimum(expected, hi))
    compare_with_torch(lambda t: t.clip(min=lo, max=hi), lambda t: t.clip(min=lo, max=hi), [CLAMP_X], device,
                       "float32")


def test_clamp_tensor_bounds_match_torch(device):
    lo = np.array([-1.0, -1.0, 0.0, 0.5])  # ties with x, and a column where lo > hi
    hi = np.array([[1.0, -1.5, 0.0, 2.0]])
    compare_with_torch(lambda t, a, b: cl.clamp(t, a, b), lambda t, a, b: torch.clamp(t, a, b),
                       [CLAMP_X, lo, hi], device, "float64")
    compare_with_torch(lambda t, a: t.clamp(min=a), lambda t, a: t.clamp(min=a), [CLAMP_X, lo], device, "float64")
    compare_with_torch(lambda t, b: t.clamp(max=b), lambda t, b: t.clamp(max=b), [CLAMP_X, hi], device, "float64")
    x = RNG.standard_normal((3, 4))
    gradcheck(lambda t, a, b: t.clamp(a, b), [x, x - 0.3 + RNG.uniform(-0.1, 0.1, (3, 4)), x + 0.6])
    with pytest.raises(ValueError, match="at least one of min and max"):
        cl.zeros(2).clamp()


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_match_torch(device, name):
    a = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]])
    b = np.array([1.0, 3.0, -3.0])  # a tie in column 0 of row 0: half the gradient to each side
    compare_with_torch(getattr(cl, name), getattr(torch, name), [a, b], device, "float64")
    compare_with_torch(lambda x, y: getattr(x, name)(y), lambda x, y: getattr(x, name)(y), [a, b], device, "float32")
    gradcheck(getattr(cl, name), arrays((2, 3), (3,)))
    reference = np.maximum(a, b) if name == "maximum" else np.minimum(a, b)
    np.testing.assert_array_equal(getattr(cl, name)(cl.tensor(a), cl.tensor(b)).numpy(), reference)


# ---- reductions ----
def test_module_level_reductions_match_torch(device):
    x = RNG.standard_normal((3, 4, 2))
    compare_with_torch(lambda t: cl.sum(t, dim=(0, 2)), lambda t: torch.sum(t, dim=(0, 2)), [x], device, "float64")
    compare_with_torch(lambda t: cl.mean(t, 1, True), lambda t: torch.mean(t, 1, True), [x], device, "float64")
    compare_with_torch(cl.max, torch.max, [x], device, "float64")
    compare_with_torch(lambda t: cl.max(t, 1)[0], lambda t: torch.max(t, 1)[0], [x], device, "float64")
    compare_with_torch(lambda t, u: cl.max(t, u), lambda t, u: torch.max(t, u), arrays((3, 4), (4,)), device,
                       "float64")


PROD_CASES = [np.array([[1.5, -2.0, 0.5], [3.0, 0.25, -1.0]]),  # no zeros
              np.array([[1.5, 0.0, 0.5], [0.0, 0.25, 0.0]]),  # one zero in a row, two in the other
              np.array([[2.0], [0.0]]), RNG.standard_normal((3, 7)), RNG.standard_normal((2, 0))]


@pytest.mark.parametrize("index", range(len(PROD_CASES)))
def test_prod_matches_torch(device, index):
    x = PROD_CASES[index]
    for args in [(), (1,), (0, True), (-1, False)]:
        out = compare_with_torch(lambda t: cl.prod(t, *args), lambda t: torch.prod(t, *args), [x], device, "float64")
        axis = args[0] if args else None
        reference = np.prod(x, axis=axis, keepdims=bool(args[1:]) and args[1])
        assert_close(out, reference, "float64")
    if x.size:
        gradcheck(lambda t: t.prod(1), [x])
    for dtype in ("int64", "int32", "bool"):
        values = (x * 3).astype(dtype)
        ours, theirs = cl.tensor(values).prod(1), torch.tensor(values).prod(1)
        assert ours.dtype == str(theirs.dtype).split(".")[-1] and ours.tolist() == theirs.tolist()


VAR_CASES = [({}, (3, 4)), ({"dim": 1}, (3, 4)), ({"dim": (0, 2), "keepdim": True}, (3, 4, 2)),
             ({"unbiased": False}, (3, 4)), ({"dim": 0, "correction": 0}, (3, 4)),
             ({"dim": -1, "correction": 2}, (2, 5)),
             ({"dim": 0}, (1, 4))]


@pytest.mark.parametrize("kwargs, shape", VAR_CASES)
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_match_torch(device, kwargs, shape, name):
    x = RNG.standard_normal(shape)
    if shape[0] == 1:  # one sample with Bessel's correction: 0 / 0 = NaN in both
        out = getattr(cl.tensor(x), name)(**kwargs)
        assert np.isnan(out.numpy()).all() and np.isnan(getattr(torch.tensor(x), name)(**kwargs).numpy()).all()
        return
    out = compare_with_torch(lambda t: getattr(cl, name)(t, **kwargs), lambda t: getattr(torch, name)(t, **kwargs),
                             [x], device, "float64")
    dim = kwargs.get("dim")
    ddof = kwargs.get("correction", 0 if kwargs.get("unbiased") is False else 1)
    reference = np.var(x, axis=dim, ddof=ddof, keepdims=kwargs.get("keepdim", False))
    assert_close(out, np.sqrt(reference) if name == "std" else reference, "float64")
    gradcheck(lambda t: getattr(t, name)(**kwargs), [x])


def test_var_std_legacy_forms_and_constant_input():
    x = RNG.standard_normal((3, 4))
    assert_close(cl.tensor(x).var(False), torch.tensor(x).var(False), "float64")
    assert_close(cl.tensor(x).std(1, False, True), torch.tensor(x).std(1, False, True), "float64")
    const = cl.ones(2, 3, dtype="float64", requires_grad=True)
    const.std(1).sum().backward()  # sqrt's slope is infinite at 0: PyTorch takes the gradient as 0 there
    assert const.grad.numpy().tolist() == [[0.0] * 3] * 2
    with pytest.raises(TypeError, match="unbiased= or correction="):
        cl.zeros(3).var(unbiased=True, correction=1)


@pytest.mark.parametrize("dim, keepdim", [(1, False), (0, True), ((0, 1), False), (-1, True)])
def test_logsumexp_matches_torch(device, dim, keepdim):
    x = RNG.standard_normal((3, 4)) * 30.0
    compare_with_torch(lambda t: cl.logsumexp(t, dim, keepdim), lambda t: torch.logsumexp(t, dim, keepdim), [x],
                       device, "float64")
    compare_with_torch(lambda t: t.logsumexp(dim, keepdim), lambda t: t.logsumexp(dim, keepdim), [x * 30.0], device,
                       "float32")
    gradcheck(lambda t: t.logsumexp(dim, keepdim), [x / 30.0])


def test_logsumexp_infinite_rows():
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [0.0, -np.inf]])
    np.testing.assert_array_equal(cl.tensor(x).logsumexp(1).numpy(), torch.tensor(x).logsumexp(1).numpy())


def test_softmax_methods_match_torch(device):
    x = RNG.standard_normal((3, 5))
    for dim in (0, 1, -1):
        compare_with_torch(lambda t: t.softmax(dim), lambda t: t.softmax(dim), [x], device, "float64")
        compare_with_torch(lambda t: cl.log_softmax(t, dim), lambda t: torch.log_softmax(t, dim), [x], device,
                           "float64")
        compare_with_torch(lambda t: cl.softmax(t, dim), lambda t: torch.softmax(t, dim), [x], device, "float32")


# ---- creation ----
CREATORS = ["zeros", "ones", "rand", "randn", "empty"]


@pytest.mark.parametrize("name", CREATORS)
def test_creators_take_every_size_form(device, name):
    make = getattr(cl, name)
    for args, kwargs in [((2, 3), {}), (((2, 3),), {}), (([2, 3],), {}), ((cl.zeros(2, 3).shape,), {}),
                         ((), {"size": (2, 3)}), ((), {"size": [2, 3]}), ((), {"size": torch.Size([2, 3])})]:
        t = make(*args, **kwargs, device=device)
        assert t.shape == (2, 3) and isinstance(t.shape, cl.Size) and t.device == device
    t = make(size=(4,), dtype="float64", device=device, requires_grad=True)
    assert (t.shape, t.dtype, t.requires_grad) == ((4,), "float64", True) and t.is_leaf
    assert make(device=device).shape == make(size=()).shape == ()
    with pytest.raises(TypeError, match="not both"):
        make(2, size=(2,))
    with pytest.raises(TypeError, match="size"):
        make(size=(2.5,))


def test_creator_values(device):
    assert cl.zeros(size=(2, 2)).numpy().tolist() == [[0, 0], [0, 0]]
    assert cl.ones(3, device=device).numpy().tolist() == [1, 1, 1]
    assert cl.full((2,), 7.5, dtype="float64").numpy().tolist() == [7.5, 7.5]
    assert cl.full(size=[1, 2], fill_value=-1.0).shape == (1, 2)
    r = cl.rand(10000, dtype="float64").numpy()
    assert 0 <= r.min() and r.max() < 1 and abs(r.mean() - 0.5) < 0.02
    cl.manual_seed(3)
    a = cl.randn(size=(5,))
    cl.manual_seed(3)
    assert a.numpy().tolist() == cl.randn(5).numpy().tolist()


@pytest.mark.parametrize("name, extra", [("zeros_like", ()), ("ones_like", ()), ("empty_like", ()),
                                         ("full_like", (2.5,)), ("rand_like", ()), ("randn_like", ())])
def test_like_creators(device, name, extra):
    x = cl.zeros(2, 3, dtype="float64", device=device, requires_grad=True)
    y = getattr(cl, name)(x, *extra)
    assert (y.shape, y.dtype, y.device, y.requires_grad) == ((2, 3), "float64", device, False)
    z = getattr(cl, name)(x, *extra, dtype="float32", requires_grad=True)
    assert (z.dtype, z.requires_grad) == ("float32", True)
    if name in ("zeros_like", "ones_like", "full_like"):
        expected = getattr(torch, name)(torch.zeros(2, 3), *extra)
        assert_close(y, expected, "float64")
    with pytest.raises(TypeError, match="input must be a Tensor"):
        getattr(cl, name)(np.zeros(3), *extra)


def test_normal_forms(device):
    cl.manual_seed(0)
    big = cl.normal(2.0, 3.0, size=(200000,), dtype="float64", device=device).numpy()
    assert abs(big.mean() - 2.0) < 0.03 and abs(big.std() - 3.0) < 0.03
    mean = cl.tensor([[0.0], [100.0]], dtype="float64", device=device)
    std = cl.tensor([0.0, 1.0, 2.0], dtype="float64", device=device)
    both = cl.normal(mean, std)
    assert both.shape == torch.normal(torch.zeros(2, 1), torch.ones(3)).shape == (2, 3)
    assert both.dtype == "float64" and both.device == device
    assert both.numpy()[:, 0].tolist() == [0.0, 100.0]  # std 0: exactly the mean
    assert cl.normal(mean, 1.0).shape == (2, 1) and cl.normal(5.0, std).shape == (3,)
    assert cl.normal(0.0, 1.0, (2, 2)).dtype == "float32"
    with pytest.raises(TypeError, match="size="):
        cl.normal(0.0, 1.0)
    with pytest.raises(ValueError, match="std must be >= 0"):
        cl.normal(0.0, -1.0, size=(2,))


def test_eye_linspace_match_torch(device):
    for args in [(3,), (2, 4), (4, 2), (0,), (1,)]:
        assert_close(cl.eye(*args, dtype="float64", device=device), torch.eye(*args, dtype=torch.float64), "float64")
    for args in [(0, 1, 5), (-2.5, 3, 7), (1, 1, 1), (0, 10, 0), (3, -3, 4)]:
        assert_close(cl.linspace(*args, dtype="float64", device=device),
                     torch.linspace(*args, dtype=torch.float64), "float64")
        assert_close(cl.linspace(*args), torch.linspace(*args), "float32")
    assert cl.eye(2, requires_grad=True).requires_grad
    with pytest.raises(ValueError, match="steps must be an int >= 0"):
        cl.linspace(0, 1, -1)


def test_full_takes_its_dtype_from_the_fill_value():
    for value in (3, True, 2.5, np.int64(4), False):
        ours, theirs = cl.full((2,), value), torch.full((2,), value)
        assert ours.dtype == str(theirs.dtype).split(".")[-1] and ours.tolist() == theirs.tolist()
    assert cl.full((2,), 3, dtype="float64").dtype == "float64"


def test_randint_and_randperm(device):
    cl.manual_seed(5)
    r = cl.randint(3, 7, (10000,), device=device)
    assert r.dtype == "int64" and r.device == device and set(r.tolist()) == {3, 4, 5, 6}
    assert cl.randint(5, (2, 3)).shape == (2, 3) and cl.randint(0, 2, size=[4]).shape == (4,)
    assert cl.randint(10, size=(3,), dtype="int32").dtype == "int32"
    assert cl.randint(10, (2,), dtype="float64").dtype == "float64"
    p = cl.randperm(50, device=device)
    assert p.dtype == "int64" and sorted(p.tolist()) == list(range(50))
    with pytest.raises(TypeError, match="give high and size"):
        cl.randint(5)
    with pytest.raises(ValueError, match="low must be below high"):
        cl.randint(5, 5, (2,))


@pytest.mark.parametrize("dim, descending", [(-1, False), (0, True), (1, True)])
def test_sort_argsort_match_torch(device, dim, descending):
    x = np.round(RNG.standard_normal((4, 5)), 1)  # ties: equal elements keep their order, as stable=True does
    ours = cl.tensor(x, device=device).sort(dim, descending)
    theirs = torch.tensor(x).sort(dim=dim, descending=descending, stable=True)
    assert ours.indices.dtype == "int64" and ours.indices.tolist() == theirs.indices.tolist()
    assert_close(ours.values, theirs.values, "float64")
    theirs = torch.argsort(torch.tensor(x), dim=dim, descending=descending, stable=True)
    assert cl.argsort(cl.tensor(x), dim, descending).tolist() == theirs.tolist()
    compare_with_torch(lambda t: cl.sort(t, dim, descending)[0], lambda t: torch.sort(t, dim, descending)[0],
                       [RNG.standard_normal((4, 5))], device, "float64")


@pytest.mark.parametrize("k, dim, largest", [(2, 1, True), (1, 0, False), (5, -1, True), (0, 1, True)])
def test_topk_matches_torch(device, k, dim, largest):
    x = RNG.standard_normal((3, 5))
    ours, theirs = cl.tensor(x, device=device).topk(k, dim, largest), torch.tensor(x).topk(k, dim, largest)
    assert ours.indices.tolist() == theirs.indices.tolist() and ours.values.shape == theirs.values.shape
    if k:
        compare_with_torch(lambda t: cl.topk(t, k, dim, largest).values,
                           lambda t: torch.topk(t, k, dim, largest).values, [x], device, "float64")
    with pytest.raises(ValueError, match="topk: k must be an int in"):
        cl.tensor(x).topk(6)


def test_index_protocol():
    classes = ["plane", "car", "bird"]
    label = cl.tensor([0, 2, 1])[1]
    assert classes[label] == "bird" and list(range(cl.tensor(3))) == [0, 1, 2]
    for bad in (cl.tensor(1.0), cl.tensor([1, 2])):
        with pytest.raises(TypeError, match="only integer tensors of a single element"):
            classes[bad]


def test_int_and_bool_tensors_print_like_torch():
    for values, dtype in [([1, 2, -30], "int64"), ([1, 2], "int32"), ([True, False], "bool"),
                          ([[1, 0], [5, 7]], "int64"), (list(range(2000)), "int64"), ([], "int64"), ([], "bool"),
                          (7, "int64")]:
        ours = repr(cl.tensor(values, dtype=dtype))
        theirs = repr(torch.tensor(values, dtype=getattr(torch, dtype))).replace("torch.", "convlab.")
        assert ours == theirs


def test_from_numpy_as_tensor_is_tensor_numel():
    arr = np.arange(6.0).reshape(2, 3)
    t = cl.from_numpy(arr)
    assert t.dtype == "float64" and t.device == "cpu" and t.numpy().tolist() == arr.tolist()
    with pytest.raises(TypeError, match="numpy.ndarray"):
        cl.from_numpy([1.0, 2.0])
    assert cl.as_tensor(t) is t
    assert cl.as_tensor(t, dtype="float32").dtype == "float32"
    assert cl.as_tensor([1.0, 2.0]).numpy().tolist() == [1.0, 2.0]
    assert cl.is_tensor(t) and not cl.is_tensor(arr)
    assert cl.numel(t) == t.numel() == t.nelement() == 6


def test_new_creators_take_dtype_and_device_from_self(device):
    ours = cl.zeros(2, dtype="float64", device=device)
    theirs = torch.zeros(2, dtype=torch.float64)
    for name, args in [("new_zeros", ((2, 3),)), ("new_ones", (2, 3)), ("new_full", ((3,), 1.5)),
                       ("new_tensor", ([1.0, 2.0],))]:
        made = getattr(ours, name)(*args)
        assert (made.dtype, made.device) == ("float64", device)
        assert_close(made, getattr(theirs, name)(*args), "float64")
    assert ours.new_empty(4).shape == (4,) and ours.new_empty((1, 2), dtype="float32").dtype == "float32"
    assert ours.new_zeros(2, requires_grad=True).requires_grad
    assert cl.zeros(2).type_as(ours).dtype == "float64"


def test_allclose_and_equal_match_torch():
    a = RNG.standard_normal((3, 4))
    for b, kwargs in [(a + 1e-9, {}), (a + 1e-3, {}), (a * (1 + 1e-4), {"rtol": 1e-3}), (a[0], {}),
                      (a + 0.5, {"atol": 0.6})]:
        assert cl.allclose(cl.tensor(a), cl.tensor(b), **kwargs) == torch.allclose(torch.tensor(a),
                                                                                   torch.tensor(b), **kwargs)
    nan = np.array([np.nan, 1.0])
    for equal_nan in (False, True):
        assert cl.allclose(cl.tensor(nan), cl.tensor(nan), equal_nan=equal_nan) == equal_nan
    assert cl.equal(cl.tensor(a), cl.tensor(a.copy())) and not cl.equal(cl.tensor(a), cl.tensor(a + 1e-12))
    assert not cl.equal(cl.tensor(a), cl.tensor(a[None]))
    with pytest.raises(TypeError, match="other must be a Tensor"):
        cl.allclose(cl.tensor(a), a)


# ---- metadata and conversion ----
def test_size_and_metadata_match_torch():
    ours, theirs = cl.zeros(2, 3, 4, dtype="float64"), torch.zeros(2, 3, 4, dtype=torch.float64)
    assert isinstance(ours.shape, cl.Size) and isinstance(ours.size(), tuple)
    assert ours.shape == theirs.shape and ours.size() == tuple(theirs.size())
    assert ours.shape.numel() == theirs.shape.numel() == 24
    assert repr(ours.shape) == repr(theirs.shape).replace("torch", "convlab")
    assert [ours.size(d) for d in (0, 1, 2, -1)] == [theirs.size(d) for d in (0, 1, 2, -1)]
    assert ours.dim() == 3 and ours.element_size() == theirs.element_size() == 8
    assert cl.zeros(2).element_size() == 4
    assert cl.Size([2, 3]) == (2, 3) and cl.Size([]).numel() == 1
    assert isinstance(ours.shape[1:], cl.Size) and ours.size()[1:].numel() == theirs.size()[1:].numel() == 12
    assert ours.shape[-1] == 4 and type(ours.shape[0]) is int
    with pytest.raises(ValueError, match="out of range"):
        ours.size(3)


def test_item_tolist_and_array():
    t = cl.tensor([[1.5, -2.0]], dtype="float64")
    assert t.tolist() == [[1.5, -2.0]] and type(t[0, 0].item()) is float
    assert np.asarray(t).tolist() == [[1.5, -2.0]]
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert np.array(t, copy=True).dtype == np.float64
    shared = np.array(t, copy=False)  # NumPy 2's share-or-fail: a CPU tensor's memory is shared (DLPack)
    shared[0, 0] = 4.0
    assert t[0, 0].item() == 4.0
    with pytest.raises(ValueError, match="copy=False"):  # another dtype needs a copy
        np.array(t, dtype=np.float32, copy=False)


def test_device_objects(device):
    d = cl.device(device)
    assert d == device and d.type == device and d.index is None and f"{d}" == device and str(d) == device
    assert repr(cl.device("cuda", 0)) == repr(torch.device("cuda", 0)) and cl.device("cuda:1").index == 1
    assert cl.device("cuda:1").type == "cuda"
    x = cl.zeros(2, device=d)
    assert x.device == d and x.device.type == device and isinstance(x.device, cl.device)
    assert x.to(cl.device("cpu")).device == "cpu"
    assert cl.zeros(2, device=cl.device(device)).device == device
    for bad in ("gpu", "cuda:x", "cpu:"):
        with pytest.raises(ValueError, match="device"):
            cl.device(bad)


# ---- printing ----
PRINT_CASES = [np.array(3.5), np.array(-2.0), np.array([1.0, 2.0]), np.array([[1.5, 2.0], [3.0, -4.25]]),
               np.array([1e-5, 1.0]), np.array([1e10, 1.0]), np.array([0.0, 0.0]),
               np.array([np.inf, -np.inf, np.nan, 1]),
               np.arange(2000.0).reshape(40, 50) / 7, RNG.standard_normal((3, 4, 5)), RNG.standard_normal(30),
               np.arange(30.0) * 1000, -np.arange(3000.0).reshape(10, 300), np.zeros((0, 3)), np.zeros(0)]


@pytest.mark.parametrize("index", range(len(PRINT_CASES)))
def test_repr_matches_torch(index):
    x = PRINT_CASES[index]
    for dtype in ("float32", "float64"):
        for requires_grad in (False, True):
            ours = repr(cl.tensor(x.astype(dtype), requires_grad=requires_grad))
            theirs = repr(torch.tensor(x.astype(dtype), requires_grad=requires_grad))
            if dtype == "float32":  # the dtype suffix names the package, and "convlab" is longer than "torch"
                assert ours == theirs
            else:
                assert ours.replace("\n", " ").split() == theirs.replace("torch", "convlab").replace("\n", " ").split()
    assert str(cl.tensor(x)) == repr(cl.tensor(x))


def test_repr_suffixes(device):
    x = cl.tensor([1.0, 2.0], device=device, requires_grad=True)
    tail = "" if device == "cpu" else f", device='{device}'"
    assert repr(x) == f"tensor([1., 2.]{tail}, requires_grad=True)"
    assert repr(x * 2) == f"tensor([2., 4.]{tail}, grad_fn=<MulBackward0>)"
    assert repr(x.detach()) == f"tensor([1., 2.]{tail})"
    assert f"{cl.tensor(0.123456):.3f}" == "0.123"


# ---- in-place helpers ----
def test_inplace_helpers_match_torch(device):
    x = RNG.standard_normal((2, 3))
    row = RNG.standard_normal(3)
    for op, args in [("add_", (row,)), ("sub_", (row,)), ("mul_", (row,)), ("div_", (row,)), ("add_", (2.5,)),
                     ("clamp_", (-0.5, 0.5)), ("clip_", (None, 0.1)), ("fill_", (3.0,)), ("zero_", ()),
                     ("copy_", (row,))]:
        ours, theirs = cl.tensor(x, device=device), torch.tensor(x)
        view = ours[1]
        to_tensor = lambda lib, a: lib.tensor(a) if isinstance(a, np.ndarray) else a  # noqa: E731
        result = getattr(ours, op)(*(to_tensor(cl, a) for a in args))
        getattr(theirs, op)(*(to_tensor(torch, a) for a in args))
        assert result is ours
        assert_close(ours, theirs, "float64")
        assert_close(view, theirs[1], "float64")  # written into the storage: views see it
    ours, theirs = cl.tensor(x), torch.tensor(x)
    ours.add_(cl.tensor(row), alpha=-2.0)
    theirs.add_(torch.tensor(row), alpha=-2.0)
    assert_close(ours, theirs, "float64")
    ours.sub_(cl.tensor(row), alpha=0.5)
    theirs.sub_(torch.tensor(row), alpha=0.5)
    assert_close(ours, theirs, "float64")


def test_copy_casts_and_broadcasts(device):
    t = cl.zeros(2, 3, device=device)
    t.copy_(cl.tensor([1.0, 2.0, 3.0], dtype="float64", device="cpu"))
    assert t.dtype == "float32" and t.device == device and t.numpy().tolist() == [[1, 2, 3], [1, 2, 3]]
    with pytest.raises(ValueError, match="does not fit"):
        t.copy_(cl.zeros(3, 3))
    with pytest.raises(TypeError, match="src must be a Tensor"):
        t.copy_([1.0, 2.0, 3.0])


def test_random_fills(device):
    cl.manual_seed(1)
    t = cl.empty(100000, dtype="float64", device=device).uniform_(-2.0, 3.0).numpy()
    assert -2.0 <= t.min() and t.max() < 3.0 and abs(t.mean() - 0.5) < 0.03
    n = cl.zeros(100000, dtype="float64", device=device).normal_(1.0, 2.0).numpy()
    assert abs(n.mean() - 1.0) < 0.03 and abs(n.std() - 2.0) < 0.03


def test_inplace_helpers_refuse_a_leaf_that_requires_grad():
    w = cl.ones(3, requires_grad=True)
    for op, args in [("add_", (1.0,)), ("mul_", (2.0,)), ("fill_", (0.0,)), ("copy_", (cl.zeros(3),)),
                     ("uniform_", ()), ("normal_", ()), ("clamp_", (0.0, 1.0)), ("__setitem__", (0, 2.0))]:
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
            getattr(w, op)(*args)
    assert w.numpy().tolist() == [1, 1, 1]
    with cl.no_grad():
        w.mul_(3.0).add_(cl.ones(3), alpha=2.0)
    assert w.numpy().tolist() == [5, 5, 5] and w.requires_grad and w.is_leaf


def test_setitem_under_autograd_matches_torch(device):
    """x[i] = v where v requires grad (d2l's corr2d: Y[i, j] = (X[i:i + h, j:j + w] * K).sum()) records the
    write in the graph, as in PyTorch."""
    def build(x, w):
        lib = cl if isinstance(x, cl.Tensor) else torch
        y = lib.zeros(3, 4, dtype=x.dtype, device=x.device)
        y[0] = x[0] * w
        y[1:, 1:3] = (x * w)[1:, :2]
        y[2, 3] = (x * x).sum()
        y[None, 1, ..., 0] = 7.0
        z = x * 1.0
        z[:, 1] = w[:3] * w[1:]  # into a tensor that is itself a graph node
        return y * 2.0 + z

    compare_with_torch(build, build, arrays((3, 4), (4,)), device, "float64")
    gradcheck(build, arrays((3, 4), (4,)))

    def corr2d(x, k):
        lib = cl if isinstance(x, cl.Tensor) else torch
        h, w = k.shape
        y = lib.zeros((x.shape[0] - h + 1, x.shape[1] - w + 1), dtype=x.dtype, device=x.device)
        for i in range(y.shape[0]):
            for j in range(y.shape[1]):
                y[i, j] = (x[i:i + h, j:j + w] * k).sum()
        return y

    compare_with_torch(corr2d, corr2d, arrays((5, 6), (2, 3)), device, "float64")


def test_inplace_helpers_under_autograd_match_torch(device):
    def chain(x, w):
        y = x * 1.0
        y.add_(w, alpha=2.0).mul_(w).sub_(x).div_(w * w + 1.0)
        y.clamp_(-0.5, None)
        z = x.new_zeros(x.shape)
        z.copy_(w)  # the copy is recorded: the gradient reaches w
        return y + z.square()

    compare_with_torch(chain, chain, arrays((2, 3), (3,)), device, "float64")
    x = cl.randn(3, dtype="float64", requires_grad=True)
    y = x * 2.0
    y.fill_(cl.tensor(3.0, dtype="float64", requires_grad=True).exp())
    assert y.requires_grad and y.numpy().tolist() == [np.exp(3.0)] * 3


def test_inplace_under_autograd_refuses_views(device):
    w = cl.ones(3, device=device, requires_grad=True)
    y = cl.zeros(2, 3, device=device)
    for write in (lambda: y[0].__setitem__(1, w[0]), lambda: y[1].add_(w), lambda: y.t().mul_(w[:2]),
                  lambda: y.view(6).__setitem__(0, w[0])):
        with pytest.raises(RuntimeError, match="view"):
            write()
    assert y.numpy().tolist() == [[0, 0, 0], [0, 0, 0]] and not y.requires_grad
    with cl.no_grad():  # outside autograd a view writes into its base, as always
        y[0].add_(w)
    assert y.numpy().tolist() == [[1, 1, 1], [0, 0, 0]]


def test_named_arithmetic_matches_torch(device):
    a, b = arrays((2, 3), (3,))
    for name, kwargs in [("add", {}), ("add", {"alpha": -2.0}), ("sub", {"alpha": 0.5}), ("subtract", {}),
                         ("mul", {}), ("multiply", {}), ("div", {}), ("divide", {}), ("true_divide", {})]:
        compare_with_torch(lambda x, y: getattr(cl, name)(x, y, **kwargs),
                           lambda x, y: getattr(torch, name)(x, y, **kwargs), [a, b], device, "float64")
        compare_with_torch(lambda x, y: getattr(x, name)(y, **kwargs), lambda x, y: getattr(x, name)(y, **kwargs),
                           [a, b], device, "float64")
    assert cl.tensor([1.0, 2.0]).add(1).numpy().tolist() == [2.0, 3.0]
    floor = torch.div(torch.tensor(a), torch.tensor(b), rounding_mode="floor")
    assert_close(cl.div(cl.tensor(a), cl.tensor(b), rounding_mode="floor"), floor, "float64")
    with pytest.raises(ValueError, match="rounding_mode"):
        cl.ones(2).div(2.0, rounding_mode="trunc")


def test_reduction_aliases_match_torch(device):
    x = RNG.standard_normal((3, 4))
    for name in ("sum", "mean"):
        for kwargs in [{"axis": 1}, {"axis": 0, "keepdims": True}, {"dim": 1, "keepdims": True},
                       {"dtype": "float32"}]:
            torch_kwargs = {k: getattr(torch, v) if k == "dtype" else v for k, v in kwargs.items()}
            out = compare_with_torch(lambda t: getattr(t, name)(**kwargs), lambda t: getattr(t, name)(**torch_kwargs),
                                     [x], device, "float64") if "dtype" not in kwargs else None
            ours = getattr(cl.tensor(x), name)(**kwargs)
            assert_close(ours, getattr(torch.tensor(x), name)(**torch_kwargs), str(ours.dtype).split(".")[-1])
            assert out is None or out.shape == ours.shape
        with pytest.raises(TypeError, match="dim or axis"):
            getattr(cl.tensor(x), name)(0, axis=1)
    assert_close(cl.sum(cl.tensor(x), axis=0), torch.sum(torch.tensor(x), axis=0), "float64")


# ---- grad modes ----
def test_grad_modes():
    x = cl.ones(2, requires_grad=True)
    with cl.no_grad():
        assert not (x * 2).requires_grad
        with cl.enable_grad():
            assert (x * 2).requires_grad
        assert not cl.is_grad_enabled()
    with cl.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert cl.is_grad_enabled()
    cl.set_grad_enabled(False)  # as a plain call it switches at once, as in PyTorch
    try:
        assert not cl.is_grad_enabled() and not (x * 2).requires_grad
    finally:
        cl.set_grad_enabled(True)
    with cl.inference_mode():
        assert not (x * 2).requires_grad
    with cl.inference_mode(False):
        assert (x * 2).requires_grad

    @cl.enable_grad()
    def doubled(t):
        return t * 2

    @cl.inference_mode()
    def tripled(t):
        return t * 3

    with cl.no_grad():
        assert doubled(x).requires_grad
    assert not tripled(x).requires_grad and cl.is_grad_enabled()


def test_cudnn_flags_are_accepted():
    """Training scripts set these; convlab has no cuDNN, so they are kept and change nothing."""
    cl.backends.cudnn.benchmark = True
    cl.backends.cudnn.deterministic = True
    try:
        assert cl.backends.cudnn.benchmark and cl.backends.cudnn.enabled and not cl.backends.deterministic
    finally:
        cl.backends.cudnn.benchmark = cl.backends.cudnn.deterministic = False


def test_no_grad_decorator_nests_in_recursion():
    @cl.no_grad()
    def depth(n):
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(5) == 5 and cl.is_grad_enabled()


# ---- save / load ----
def small_model():
    return cl.nn.Sequential(cl.nn.Conv2d(2, 3, 3), cl.nn.BatchNorm2d(3), cl.nn.Flatten(), cl.nn.Linear(12, 2))


def test_state_dict_round_trips_through_a_path(tmp_path, device):
    model = small_model().to(device)
    model(cl.randn(2, 2, 4, 4, device=device)).sum().backward()  # running stats move, grads exist
    path = tmp_path / "model.pt"
    cl.save(model.state_dict(), path)
    loaded = cl.load(path)
    assert list(loaded) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert type(loaded[key]) is cl.Tensor and loaded[key].device == device
        np.testing.assert_array_equal(loaded[key].numpy(), value.numpy())
    fresh = small_model().to(device)
    fresh.load_state_dict(cl.load(str(path), map_location="cpu" if device == "cpu" else device))
    x = cl.randn(1, 2, 4, 4, device=device)
    assert_close(fresh.eval()(x), model.eval()(x), "float32")


def test_checkpoint_dicts_and_file_objects():
    w = cl.nn.Parameter(cl.randn(3, dtype="float64"))
    checkpoint = {"epoch": 3, "losses": [0.5, 0.25], "w": w, "name": "run", "pair": (1, cl.zeros(2))}
    buffer = io.BytesIO()
    cl.save(checkpoint, buffer)
    buffer.seek(0)
    loaded = cl.load(buffer, map_location=cl.device("cpu"))
    assert loaded["epoch"] == 3 and loaded["losses"] == [0.5, 0.25] and loaded["name"] == "run"
    assert type(loaded["w"]) is cl.nn.Parameter and loaded["w"].requires_grad and loaded["w"].dtype == "float64"
    assert loaded["w"].numpy().tolist() == w.numpy().tolist() and loaded["pair"][1].shape == (2,)
    buffer.seek(0)
    assert cl.load(buffer, map_location={"cpu": "cpu"})["w"].device == "cpu"


def test_dtypes_and_int_tensors_load_with_weights_only():
    buffer = io.BytesIO()
    cl.save({"dtype": cl.float64, "labels": cl.tensor([3, 1, 2]), "mask": cl.tensor([True, False])}, buffer)
    buffer.seek(0)
    loaded = cl.load(buffer)
    assert loaded["dtype"] is cl.float64 and loaded["labels"].dtype == "int64"
    assert loaded["labels"].tolist() == [3, 1, 2]
    assert loaded["mask"].tolist() == [True, False]


def test_whole_models_need_weights_only_false():
    model = small_model()
    buffer = io.BytesIO()
    cl.save(model, buffer)
    buffer.seek(0)
    with pytest.raises(Exception, match="weights_only"):
        cl.load(buffer)
    buffer.seek(0)
    loaded = cl.load(buffer, weights_only=False)
    assert type(loaded) is cl.nn.Sequential and type(loaded[0].weight) is cl.nn.Parameter
    np.testing.assert_array_equal(loaded[0].weight.numpy(), model[0].weight.numpy())
    with pytest.raises(TypeError, match="map_location"):
        cl.load(io.BytesIO(), map_location=lambda storage, loc: storage)
