"""The Python dtype layer: convlab.float32 ... convlab.bool, what tensor() and arange() infer, conversions,
PyTorch's promotion through Tensor operators, bool comparisons, int64 indices, and gradients of the ops
that came with the integer dtypes. PyTorch is the oracle throughout."""
import itertools
import pickle

import numpy as np
import pytest

import convlab as cl
import convlab.nn.functional as F
from autograd_helpers import compare_with_torch, gradcheck

torch = pytest.importorskip("torch")

NAMES = ["bool", "int32", "int64", "float32", "float64"]


def torch_name(t):
    return str(t.dtype).removeprefix("torch.")


def test_dtype_objects():
    assert [cl.float32, cl.float64, cl.int32, cl.int64, cl.bool] == NAMES[3:] + NAMES[1:3] + NAMES[:1]
    assert (cl.float, cl.double, cl.long, cl.int) == (cl.float32, cl.float64, cl.int64, cl.int32)
    assert repr(cl.float32) == str(cl.float32) == "convlab.float32"
    assert cl.int64 == np.int64 and cl.float64 == np.dtype("float64") and cl.bool == np.bool_
    assert cl.float32 != "float64" and cl.float32 != np.float64 and cl.float32 != None  # noqa: E711
    assert cl.float32.is_floating_point and not cl.int64.is_floating_point and not cl.bool.is_signed
    assert [d.itemsize for d in (cl.bool, cl.int32, cl.int64, cl.float32, cl.float64)] == [1, 4, 8, 4, 8]
    assert {cl.float32: 1}["float32"] == 1  # hashes as its name
    assert pickle.loads(pickle.dumps(cl.int64)) is cl.int64
    assert isinstance(cl.zeros(2).dtype, cl.dtype)
    with pytest.raises(TypeError, match="dtype"):
        cl.zeros(2, dtype="int16")
    with pytest.raises(TypeError, match="dtype"):
        cl.zeros(2, dtype=np.uint8)


def test_default_dtype():
    assert cl.get_default_dtype() is cl.float32
    try:
        cl.set_default_dtype(cl.float64)
        assert cl.tensor([1.5]).dtype == cl.float64 and cl.zeros(2).dtype == cl.float64
        assert cl.tensor([1]).dtype == cl.int64
        ints, t_ints = cl.tensor([1, 2]), torch.tensor([1, 2])
        torch.set_default_dtype(torch.float64)
        for got, want in [(ints + 1.5, t_ints + 1.5), (ints / ints, t_ints / t_ints), (ints.exp(), t_ints.exp())]:
            assert got.dtype == cl.float64 == torch_name(want)
    finally:
        torch.set_default_dtype(torch.float32)
        cl.set_default_dtype(cl.float32)
    with pytest.raises(TypeError, match="floating"):
        cl.set_default_dtype(cl.int64)


@pytest.mark.parametrize("data", [[1, 2], [True, False], [1.0, 2], 3, 2.5, True, [[1, 2], [3, 4]],
                                  np.array([1, 2], np.int32), np.array([1, 2]), np.array([True]),
                                  np.array([1.0]), np.array([1.0], np.float32), np.int64(4), np.float64(0.5)])
def test_tensor_infers_dtype_as_torch(device, data):
    ours, theirs = cl.tensor(data, device=device), torch.tensor(data)
    assert ours.dtype == torch_name(theirs)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("args", [(5,), (2, 7), (1, 10, 3), (0.0, 1.0, 0.25), (5.0,), (0, 2, 0.5), (-3, 3)])
def test_arange_dtype_as_torch(device, args):
    ours, theirs = cl.arange(*args, device=device), torch.arange(*args)
    assert ours.dtype == torch_name(theirs)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy())
    assert cl.arange(4, dtype=cl.float64).dtype == cl.float64


def test_conversions_and_item(device):
    x = np.array([-2.7, -0.5, 0.0, 0.4, 3.9], np.float32)
    ours, theirs = cl.tensor(x, device=device), torch.from_numpy(x)
    for method in ("float", "double", "long", "int", "bool"):
        got, want = getattr(ours, method)(), getattr(theirs, method)()
        assert got.dtype == torch_name(want) and got.device == device
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert ours.type(cl.int64).dtype == cl.int64 and ours.to(cl.bool).dtype == cl.bool
    assert ours.to("int32").dtype == cl.int32 and ours.to(np.float64).dtype == cl.float64
    assert ours.type() == "convlab.float32"
    assert ours.is_floating_point() and not ours.long().is_floating_point()
    assert type(ours.long()[1].item()) is int and type(ours.bool()[0].item()) is bool
    assert type(ours[0].item()) is float
    assert cl.is_floating_point(ours)


def test_integer_tensors_cannot_require_grad(device):
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        cl.tensor([1, 2], device=device, requires_grad=True)
    t = cl.zeros(3, dtype=cl.int64, device=device)
    with pytest.raises(RuntimeError, match="floating point"):
        t.requires_grad_()
    x = cl.randn(4, device=device, requires_grad=True)
    assert not x.long().requires_grad and not (x > 0).requires_grad and not x.argmax().requires_grad
    assert (x.long().float() * 2).requires_grad is False  # a cast to integers cuts the graph, as in PyTorch


OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
    "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b, "pow": lambda a, b: a ** b,
    "lt": lambda a, b: a < b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
}


def sample(dtype, shape, rng):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return rng.integers(1, 5, shape).astype(dtype)  # positive: no division by zero, no negative powers


def outcome(fn, *args):
    """fn(*args), or the kind of error it raised: convlab's TypeError and RuntimeError stand for PyTorch's
    RuntimeError and NotImplementedError alike."""
    try:
        return fn(*args)
    except (TypeError, RuntimeError, NotImplementedError) as e:
        return RuntimeError if isinstance(e, (RuntimeError, NotImplementedError)) else TypeError


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("da,db", [(a, b) for a in NAMES for b in NAMES])
def test_operators_promote_as_torch(device, name, da, db):
    """Tensor op Tensor (dimensioned and 0-d) and Tensor op Python number: the same dtype and values as
    PyTorch, or an error where PyTorch raises one."""
    rng = np.random.default_rng(0)
    op = OPS[name]
    for shape_b in [(3,), ()]:
        xa, xb = sample(da, (2, 3), rng), sample(db, shape_b, rng)
        want = outcome(op, torch.from_numpy(xa), torch.tensor(xb))
        got = outcome(op, cl.tensor(xa, device=device), cl.tensor(xb, device=device))
        if isinstance(want, type):
            assert isinstance(got, type), f"PyTorch raises {want.__name__}, convlab gave a result"
            continue
        assert not isinstance(got, type), f"convlab raised {got.__name__}"
        assert got.dtype == torch_name(want), shape_b
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    for s in (2, 2.5, True):
        want = outcome(op, torch.from_numpy(xa), s)
        got = outcome(op, cl.tensor(xa, device=device), s)
        if name == "pow" and da == "bool" and s is True:
            assert got is TypeError  # PyTorch's one bool power (a bool tensor ** True); docs/differences.md
            continue
        if isinstance(want, type):
            assert isinstance(got, type), f"PyTorch raises {want.__name__}, convlab gave a result"
            continue
        assert not isinstance(got, type) and got.dtype == torch_name(want), s
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_comparisons_and_logic(device):
    x = np.array([[1.5, -2.0, 0.0], [3.0, 0.0, -1.0]])
    a, t = cl.tensor(x, device=device), torch.from_numpy(x)
    b, u = cl.tensor(x[::-1].copy(), device=device), torch.from_numpy(x[::-1].copy())
    for name in ("eq", "ne", "lt", "le", "gt", "ge", "greater", "less_equal", "not_equal"):
        got, want = getattr(a, name)(0.0), getattr(t, name)(0.0)
        assert got.dtype == cl.bool
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        np.testing.assert_array_equal(getattr(cl, name)(a, b).numpy(), getattr(torch, name)(t, u).numpy())
    for name in ("logical_and", "logical_or", "logical_xor"):
        np.testing.assert_array_equal(getattr(a, name)(b).numpy(), getattr(t, name)(u).numpy())
    np.testing.assert_array_equal(a.logical_not().numpy(), t.logical_not().numpy())
    np.testing.assert_array_equal((~(a > 0)).numpy(), (~(t > 0)).numpy())
    np.testing.assert_array_equal((~a.long()).numpy(), (~t.long()).numpy())
    for dim, keepdim in [(None, False), (0, False), (1, True)]:
        for name in ("any", "all"):
            got = getattr(a, name)() if dim is None else getattr(a, name)(dim, keepdim)
            want = getattr(t, name)() if dim is None else getattr(t, name)(dim, keepdim)
            assert got.dtype == cl.bool
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    empty, t_empty = cl.zeros(2, 0, device=device), torch.zeros(2, 0)
    for name, dim in itertools.product(("any", "all"), (None, 1)):
        got = getattr(empty, name)() if dim is None else getattr(empty, name)(dim)
        want = getattr(t_empty, name)() if dim is None else getattr(t_empty, name)(dim)
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_reductions_dtypes_and_indices(device):
    x = np.array([[3, 1, 3], [0, 5, 5]], np.int32)
    a, t = cl.tensor(x, device=device), torch.from_numpy(x)
    for got, want in [(a.sum(), t.sum()), (a.sum(1), t.sum(1)), ((a > 1).sum(), (t > 1).sum()),
                      (a.max(), t.max()), (a.min(), t.min()), (a.argmax(), t.argmax()), (a.argmin(1), t.argmin(1)),
                      (a.argmax(axis=1), t.argmax(axis=1)), (cl.argmin(a, 0), torch.argmin(t, 0))]:
        assert got.dtype == torch_name(want)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    for method in ("max", "min"):
        got, want = getattr(a, method)(1), getattr(t, method)(1)
        assert got.indices.dtype == cl.int64 and got.values.dtype == cl.int32
        np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
        np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    with pytest.raises(TypeError, match="mean"):
        a.mean()
    assert a.float().mean().item() == pytest.approx(17 / 6)


def test_accuracy_idioms(device):
    """The lines textbook training loops count correct predictions with."""
    y_hat = cl.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], device=device)
    y = cl.tensor([1, 1, 1], device=device)
    assert (y_hat.argmax(1) == y).float().mean().item() == pytest.approx(2 / 3)
    cmp = y_hat.argmax(axis=1).type(y.dtype) == y
    assert float(cmp.type(y.dtype).sum()) == 2.0
    assert (y_hat.argmax(dim=1) == y).sum().item() == 2


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_losses_take_int64_targets(device, loss):
    rng = np.random.default_rng(1)
    logits, target = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    t_target = torch.from_numpy(target)
    prepare = (lambda z: z.log_softmax(1)) if loss == "nll_loss" else (lambda z: z)
    compare_with_torch(lambda z: getattr(F, loss)(prepare(z), cl.tensor(target, device=device)),
                       lambda z: getattr(torch.nn.functional, loss)(prepare(z), t_target), [logits], device, "float64")
    assert cl.tensor(target).dtype == cl.int64


# ---- gradients of the new differentiable ops ----
def test_gradients_against_torch(device):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4)) * 3
    y = rng.standard_normal((3, 4)) + np.where(rng.random((3, 4)) < 0.5, 3.0, -3.0)
    for name in ("erf", "floor", "ceil", "round", "sign"):
        compare_with_torch(lambda a: getattr(a, name)(), lambda a: getattr(a, name)(), [x], device, "float64")
    compare_with_torch(lambda a, b: a % b, lambda a, b: a % b, [x, y], device, "float64")
    compare_with_torch(lambda a: a % 1.5, lambda a: a % 1.5, [x], device, "float64")
    compare_with_torch(lambda a: a.min(), lambda a: a.min(), [np.array([1.0, -2.0, -2.0, 4.0])], device, "float64")
    compare_with_torch(lambda a: a.min(1).values, lambda a: a.min(1).values, [x], device, "float64")
    gradcheck(lambda a: a.erf() * 3.0, [x / 3], device)


def test_floor_divide_has_no_derivative(device):
    x = cl.randn(3, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="floor_divide"):
        (x // 2.0).sum().backward()


def test_mixed_float_dtypes_keep_the_gradient_dtypes(device):
    """float32 x * float64 0-d tensor stays float32; each input's gradient has the input's dtype."""
    x = cl.randn(3, device=device, requires_grad=True)
    s = cl.tensor(2.0, dtype=cl.float64, device=device, requires_grad=True)
    out = x * s
    assert out.dtype == cl.float32
    out.sum().backward()
    assert x.grad.dtype == cl.float32 and s.grad.dtype == cl.float64
    assert (cl.tensor([1, 2], device=device) * x[:2]).dtype == cl.float32
