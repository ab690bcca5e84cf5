"""Tensor and the autograd engine: creation, operators, views, reductions, backward, and their errors."""
import numpy as np
import pytest

import convlab as cl
from autograd_helpers import assert_close, compare_with_torch, gradcheck, torch_or_skip

DTYPES = ["float64", "float32"]


# ---- creation ----
def test_creation_functions(device):
    assert cl.zeros(2, 3, device=device).numpy().tolist() == [[0.0] * 3] * 2
    assert cl.ones((2, 3), dtype="float64", device=device).dtype == "float64"
    assert cl.full((2,), 7.5, device=device).numpy().tolist() == [7.5, 7.5]
    np.testing.assert_array_equal(cl.arange(5, device=device).numpy(), np.arange(5, dtype=np.int64))
    assert cl.arange(5).dtype == "int64" and cl.arange(0.0, 1.0, 0.25).dtype == "float32"  # as torch.arange
    np.testing.assert_array_equal(cl.arange(1, 2, 0.25, dtype="float64").numpy(), np.arange(1, 2, 0.25))
    t = cl.tensor([[1.0, 2], [3, 4]], device=device, requires_grad=True)
    assert t.shape == (2, 2) and t.dtype == "float32" and t.device == device and t.requires_grad
    assert t.is_leaf and t.grad is None
    assert cl.tensor(np.ones(3)).dtype == "float64"  # a NumPy array keeps its dtype, as in torch.tensor
    assert cl.tensor(np.ones(3, np.int32)).dtype == "int32"
    assert cl.tensor([[1, 2]]).dtype == "int64" and cl.tensor([True]).dtype == "bool"
    assert cl.tensor([[1.5, 2.0]]).dtype == "float32"  # Python floats: float32, torch's default dtype
    assert cl.tensor(2.5).shape == () and cl.tensor(2.5).item() == 2.5
    assert cl.tensor(np.ones(2), dtype=np.float32).dtype == "float32"


def test_tensor_copies_its_source():
    src = np.ones(3)
    t = cl.tensor(src)
    src[0] = 5
    assert t.numpy()[0] == 1.0


def test_random_creation_follows_manual_seed():
    cl.manual_seed(123)
    a, b = cl.randn(4, 5), cl.rand(3)
    cl.manual_seed(123)
    np.testing.assert_array_equal(a.numpy(), cl.randn(4, 5).numpy())
    np.testing.assert_array_equal(b.numpy(), cl.rand(3).numpy())
    assert 0.0 <= b.numpy().min() and b.numpy().max() < 1.0
    big = cl.randn(20000, dtype="float64").numpy()
    assert abs(big.mean()) < 0.05 and abs(big.std() - 1) < 0.05


def test_bad_dtype_and_device():
    with pytest.raises(TypeError, match="dtype"):
        cl.zeros(2, dtype="int16")
    with pytest.raises(ValueError, match="device"):
        cl.zeros(2, device="tpu")
    with pytest.raises(TypeError):
        cl.tensor(["a", "b"])


# ---- element-wise operators ----
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 1, 5), (3, 1)), ((4,), ()), ((1,), (2, 3))])
def test_binary_matches_torch_with_broadcasting(device, op, dtype, shapes):
    rng = np.random.default_rng(1)
    a = rng.uniform(0.5, 2.0, shapes[0])  # positive: pow's base and div's denominator stay well away from 0
    b = rng.uniform(0.5, 2.0, shapes[1]) * (1 if op == "pow" else rng.choice([-1, 1], shapes[1]))
    compare_with_torch(BINARY[op], BINARY[op], [a, b], device, dtype)


@pytest.mark.parametrize("op", sorted(BINARY))
def test_python_scalars_on_both_sides(device, op):
    rng = np.random.default_rng(2)
    a = rng.uniform(0.5, 2.0, (3, 2))
    compare_with_torch(lambda x: BINARY[op](x, 1.5), lambda x: BINARY[op](x, 1.5), [a], device, "float64")
    compare_with_torch(lambda x: BINARY[op](2.5, x), lambda x: BINARY[op](2.5, x), [a], device, "float64")
    compare_with_torch(lambda x: BINARY[op](x, 2), lambda x: BINARY[op](x, 2), [a], device, "float64")


def test_numpy_operand_and_mixed_dtypes_promote(device):
    a = cl.tensor(np.arange(3.0), dtype="float32", device=device)
    assert (a + np.ones(3)).dtype == "float32"  # a NumPy array joins at the tensor's dtype
    b = cl.tensor(np.ones(3), dtype="float64", device=device)
    assert (a * b).dtype == "float64" and (b - a).dtype == "float64"  # as PyTorch promotes float/double


def test_comparisons(device):
    a = cl.tensor([1.0, 2.0, 3.0], device=device)
    b = cl.tensor([3.0, 2.0, 1.0], device=device)
    assert (a < b).numpy().tolist() == [1, 0, 0]
    assert (a <= 2).numpy().tolist() == [1, 1, 0]
    assert (a == b).numpy().tolist() == [0, 1, 0]
    assert (a != b).numpy().tolist() == [1, 0, 1]
    assert (a > 1.5).numpy().tolist() == [0, 1, 1]
    assert (a >= b).numpy().tolist() == [0, 1, 1]
    assert not (a > 1.5).requires_grad


UNARY = ["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "neg"]


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_matches_torch(device, name, dtype):
    rng = np.random.default_rng(3)
    a = rng.uniform(0.2, 2.0, (4, 5)) if name in ("log", "sqrt") else rng.standard_normal((4, 5)) * 2
    fn = (lambda x: -x) if name == "neg" else (lambda x: getattr(x, name)())
    compare_with_torch(fn, fn, [a], device, dtype)


@pytest.mark.parametrize("name", UNARY + ["pow"])
def test_unary_gradcheck(device, name):
    rng = np.random.default_rng(4)
    a = rng.uniform(0.3, 2.0, (2, 3)) * (1 if name in ("log", "sqrt", "pow") else rng.choice([-1, 1], (2, 3)))
    fns = {"neg": lambda x: -x, "pow": lambda x: x ** 2.5}
    gradcheck(fns.get(name, lambda x: getattr(x, name)()), [a], device)


def test_binary_gradcheck_with_broadcasting(device):
    rng = np.random.default_rng(5)
    a, b = rng.uniform(0.5, 2, (2, 1, 3)), rng.uniform(0.5, 2, (4, 1))
    gradcheck(lambda x, y: x * y + x / y - y ** x, [a, b], device)


# ---- matmul ----
@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                    ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (3, 4, 2))])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_matches_torch(device, shapes, dtype):
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    compare_with_torch(lambda x, y: x @ y, lambda x, y: x @ y, [a, b], device, dtype)


def test_matmul_gradcheck(device):
    rng = np.random.default_rng(7)
    gradcheck(lambda x, y: x @ y, [rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2))], device)


# ---- reductions ----
@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, False), (1, True), (-1, False), (-1, True),
                                          ((0, 2), False), ((0, 2), True)])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sum_mean_match_torch(device, dim, keepdim, op):
    a = np.random.default_rng(8).standard_normal((3, 4, 5))

    def fn(x):
        return getattr(x, op)() if dim is None else getattr(x, op)(dim, keepdim=keepdim)

    compare_with_torch(fn, fn, [a], device, "float64")


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_along_dim_matches_torch(device, dim, keepdim):
    torch = torch_or_skip()
    a = np.random.default_rng(9).standard_normal((3, 4, 5))
    compare_with_torch(lambda x: x.max(dim, keepdim).values, lambda x: x.max(dim, keepdim).values, [a], device,
                       "float64")
    ours = cl.tensor(a, device=device).max(dim, keepdim)
    np.testing.assert_array_equal(ours.indices.numpy(), torch.tensor(a).max(dim, keepdim).indices.numpy())


def test_max_ties(device):
    torch = torch_or_skip()
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    # Full max: ties share the gradient; max(dim): it goes to the first maximum. Both as in PyTorch.
    compare_with_torch(lambda x: x.max(), lambda x: x.max(), [a], device, "float64")
    compare_with_torch(lambda x: x.max(1).values, lambda x: x.max(1).values, [a], device, "float64")
    assert cl.tensor(a).argmax().item() == torch.tensor(a).argmax().item()


def test_reduction_gradcheck(device):
    a = np.random.default_rng(10).standard_normal((2, 3, 4))
    gradcheck(lambda x: x.sum((0, 2)) * x.mean(1, keepdim=True).sum() + x.max(2).values.sum() + x.max(), [a],
              device)


# ---- views ----
VIEWS = {
    "reshape": lambda x: x.reshape(4, -1),
    "view": lambda x: x.view(2, 12),
    "permute": lambda x: x.permute(2, 0, 1),
    "transpose": lambda x: x.transpose(0, 2),
    "flatten": lambda x: x.flatten(1),
    "unsqueeze": lambda x: x.unsqueeze(1),
    "squeeze": lambda x: x[:, :1].squeeze(1),
    "index_int": lambda x: x[1],
    "index_slices": lambda x: x[:, 1:3, ::2],
    "index_negative": lambda x: x[-1, ..., 1:],
    "T": lambda x: x[0].T,
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_views_match_torch(device, name):
    a = np.random.default_rng(11).standard_normal((2, 3, 4))
    compare_with_torch(VIEWS[name], VIEWS[name], [a], device, "float64")


def test_views_gradcheck(device):
    a = np.random.default_rng(12).standard_normal((2, 3, 4))
    gradcheck(lambda x: x.permute(1, 2, 0).reshape(3, 8)[1:, ::3] * x[0, :2, 1:3].flatten().unsqueeze(0).sum(), [a],
              device)


def test_bad_views():
    t = cl.zeros(2, 3)
    with pytest.raises(ValueError, match=r"reshape: cannot reshape an array of shape \(2, 3\).* into shape \(4, 2\)"):
        t.reshape(4, 2)
    with pytest.raises(ValueError, match="permutation"):
        t.permute(0, 0)
    with pytest.raises(ValueError, match="out of range"):
        t.sum(2)
    with pytest.raises(TypeError, match="indices"):
        t[cl.zeros(1)]


# ---- the engine ----
def test_gradient_accumulates_over_uses_and_calls(device):
    x = cl.tensor([1.0, 2.0], dtype="float64", device=device, requires_grad=True)
    (x * x + x).sum().backward()  # d/dx = 2x + 1
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 5.0])
    (x * 3.0).sum().backward()  # accumulates, as in PyTorch
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 8.0])


def test_leaf_gradients_never_share_memory(device):
    """A leaf keeps the gradient array it is handed only when nothing else holds it: where one array reaches
    two leaves (a + b), a view of a gradient (reshape), the caller's seed, or a conv's fresh weight gradient,
    writing one .grad in place must leave every other gradient and the seed alone."""
    a, b = (cl.tensor([1.0, 2.0], dtype="float64", device=device, requires_grad=True) for _ in range(2))
    ((a + b) * 2.0).sum().backward()  # one fresh array (the product's gradient) handed to a and b
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 2.0])
    c = cl.tensor([[1.0, 2.0]], dtype="float64", device=device, requires_grad=True)
    ((a + c.reshape(2)) * 2.0).sum().backward()
    c.grad.zero_()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])  # zeroed above, then one more backward
    d, e = (cl.tensor([[1.0, 2.0]], dtype="float64", device=device, requires_grad=True) for _ in range(2))
    (d.reshape(2) + e.reshape(2) + c.reshape(2)).sum().backward()  # views of the seed's broadcast
    d.grad.zero_()
    np.testing.assert_array_equal(e.grad.numpy(), [[1.0, 1.0]])
    seed = cl.tensor([1.0, 0.5], dtype="float64", device=device)
    leaf = cl.tensor([3.0, 4.0], dtype="float64", device=device, requires_grad=True)
    leaf.backward(seed)
    leaf.grad.zero_()
    np.testing.assert_array_equal(seed.numpy(), [1.0, 0.5])
    x = cl.tensor(np.ones((1, 1, 3, 3)), dtype="float64", device=device, requires_grad=True)
    w = cl.tensor(np.ones((1, 1, 2, 2)), dtype="float64", device=device, requires_grad=True)
    cl.nn.functional.conv2d(x, w).sum().backward()
    w.grad.zero_()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    np.testing.assert_array_equal(w.grad.numpy(), 0)


def test_diamond_graph(device):
    a = np.random.default_rng(13).uniform(0.5, 1.5, (3,))
    f = lambda x: (lambda y: y.exp() * y.log() + y)(x * 2.0)  # noqa: E731  one node used along two paths
    compare_with_torch(f, f, [a], device, "float64")


def test_deep_graph_does_not_recurse(device):
    x = cl.tensor(1.0, dtype="float64", device=device, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 5000, rtol=1e-9)


def test_backward_with_explicit_gradient(device):
    x = cl.tensor([1.0, 2.0, 3.0], dtype="float64", device=device, requires_grad=True)
    (x * x).backward(cl.tensor([1.0, 0.5, 0.0], dtype="float64", device=device))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 0.0])


def test_backward_errors(device):
    x = cl.tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        cl.tensor([1.0], device=device).sum().backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(cl.ones(3, device=device))


def test_no_grad_detach_requires_grad(device):
    x = cl.tensor([1.0, 2.0], device=device, requires_grad=True)
    with cl.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    assert cl.is_grad_enabled()
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    z = cl.tensor([1.0], device=device)
    assert z.requires_grad_() is z and z.requires_grad
    (x * 2).sum().backward()
    assert x.grad is not None and d.grad is None

    @cl.no_grad()
    def doubled(t):
        return t * 2

    assert not doubled(x).requires_grad


def test_to_dtype_is_differentiable(device):
    x = cl.tensor([1.0, 2.0], dtype="float32", device=device, requires_grad=True)
    y = x.to("float64")
    assert y.dtype == "float64" and x.to("float32") is x and x.to(device) is x
    (y * y).sum().backward()
    assert x.grad.dtype == "float32"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_iteration_yields_rows(device):
    t = cl.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], device=device)
    assert [row.numpy().tolist() for row in t] == [[1, 2], [3, 4], [5, 6]]


def test_item_numpy_and_repr(device):
    t = cl.tensor([[2.5]], device=device)
    assert t.item() == 2.5 and float(t) == 2.5 and bool(t)
    assert isinstance(t.numpy(), np.ndarray)
    assert "tensor(" in repr(t)
    with pytest.raises(ValueError, match="one-element"):
        cl.zeros(2).item()


def test_expand_and_clone(device):
    compare_with_torch(lambda x: x.expand(2, 3, -1) * 1.0, lambda x: x.expand(2, 3, -1) * 1.0,
                       [np.random.default_rng(14).standard_normal((3, 1))], device, "float64")
    x = cl.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x.clone()
    assert y.numpy().tolist() == [1, 2] and not y.is_leaf
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_device_check_names_both_devices():
    # The rule itself, without needing a GPU: anything with a .device attribute will do.
    from types import SimpleNamespace

    from convlab.autograd import check_same_device

    check_same_device(SimpleNamespace(device="cpu"), SimpleNamespace(device="cpu"))
    with pytest.raises(RuntimeError, match="cpu and cuda"):
        check_same_device(SimpleNamespace(device="cuda"), SimpleNamespace(device="cpu"))


def test_mixing_devices_raises():
    if not cl.cuda.is_available():
        pytest.skip("needs a GPU to have two devices")
    a, b = cl.ones(2, device="cpu"), cl.ones(2, device="cuda")
    with pytest.raises(RuntimeError, match="cpu.*cuda|cuda.*cpu"):
        a + b
    with pytest.raises(RuntimeError, match="cpu.*cuda|cuda.*cpu"):
        cl.nn.functional.conv2d(cl.ones(1, 1, 3, 3, device="cuda"), cl.ones(1, 1, 2, 2, device="cpu"))


def test_to_device_round_trip():
    if not cl.cuda.is_available():
        pytest.skip("needs a GPU")
    x = cl.tensor([1.0, 2.0], device="cpu", requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda"
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    assert_close(y.cpu(), x.detach().numpy(), "float32")


# ---- saved values written in place after the forward pass -------------------------------------------

def _after_inplace_update(lib, device, op, update):
    """Builds loss = op(w, x) with w a leaf, updates w in place without grad, then runs backward.
    Returns the gradient of w, or the RuntimeError raised."""
    rng = np.random.default_rng(0)
    kw = {"device": device} if lib is cl else {}
    w = lib.tensor(rng.standard_normal((2, 3, 3, 3)), dtype=lib.float64 if lib is not cl else "float64",
                   requires_grad=True, **kw)
    x = lib.tensor(rng.standard_normal((1, 3, 5, 5)), dtype=lib.float64 if lib is not cl else "float64", **kw)
    loss = op(lib, w, x).sum()
    with lib.no_grad():
        update(w)
    try:
        loss.backward()
    except RuntimeError as e:
        return e
    return w.grad.numpy() if lib is cl else w.grad.detach().numpy()


OPS = {
    "add": lambda lib, w, x: w + 1.0,  # saves nothing: backward after the update is fine
    "mul": lambda lib, w, x: w * w,  # saves w
    "conv2d": lambda lib, w, x: (cl.nn.functional if lib is cl else lib.nn.functional).conv2d(x, w, padding=1),
}
UPDATES = {
    "sub_assign": lambda w: w.__isub__(0.5),
    "setitem_of_a_view": lambda w: w[0].__setitem__(slice(None), 0.0),
}


@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("op", OPS)
def test_backward_refuses_saved_values_modified_in_place_like_torch(device, op, update):
    torch = torch_or_skip()
    ours = _after_inplace_update(cl, device, OPS[op], UPDATES[update])
    theirs = _after_inplace_update(torch, "cpu", OPS[op], UPDATES[update])
    if isinstance(theirs, RuntimeError):
        assert isinstance(ours, RuntimeError), f"torch refuses ({theirs}), convlab gave a gradient"
        assert "modified by an in-place operation" in str(ours)
    else:
        assert not isinstance(ours, RuntimeError), ours
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_version_counts_writes_through_any_view(device):
    t = cl.zeros(4, 4, device=device)
    before = t._data._version
    t[1:, ::2][0] = 1.0
    assert t._data._version == before + 1
    assert t.reshape(16)._data._version == before + 1
