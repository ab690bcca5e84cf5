"""The API.md surface called the way a PyTorch user calls it (positional forms, PyTorch's keyword names,
in-place updates, indexing with None, module reprs and names), with torch as the oracle; and the clear
errors for the PyTorch features convlab leaves out."""
import inspect

import numpy as np
import pytest

import convlab as cl
import convlab.nn as nn
import convlab.nn.functional as F
from autograd_helpers import assert_close, compare_with_torch

torch = pytest.importorskip("torch")


def copy_into_torch(ours, theirs):
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    return theirs


def ours_and_theirs(array, device, requires_grad=False):
    return (cl.tensor(array, device=device, requires_grad=requires_grad),
            torch.tensor(array, requires_grad=requires_grad))


# ---- creation ----
@pytest.mark.parametrize("args, kwargs", [((5,), {}), ((1, 7, 2), {}), ((0.0, 1.0, 0.25), {}), ((), {"end": 4}),
                                          ((-1, 1.5, 0.5), {}), ((0, 1, 0.1), {})])
def test_arange_forms_match_torch(args, kwargs):
    ours = cl.arange(*args, **kwargs, dtype="float64")
    assert_close(ours, torch.arange(*args, **kwargs, dtype=torch.float64), "float64")


def test_shape_forms_and_bad_sizes(device):
    for make in (cl.zeros, cl.ones, cl.randn, cl.rand):
        assert make(2, 3, device=device).shape == make((2, 3), device=device).shape == make([2, 3]).shape == (2, 3)
        assert make(device=device).shape == ()
        with pytest.raises(TypeError, match="size"):
            make(2.5)
    with pytest.raises(TypeError, match="size"):
        cl.ones(6).reshape(2.0, 3)


# ---- indexing ----
INDEXES = [
    (1,), (-1,), (slice(1, None), slice(None, None, 2)), (Ellipsis, 0), (None,), (slice(None), None),
    (Ellipsis, None), (None, 1, Ellipsis, None, slice(0, 3)), (np.int64(1), np.int32(-2)), (0, -1, slice(1, 3)),
    (), (slice(1, 1),),
]


@pytest.mark.parametrize("index", INDEXES, ids=repr)
def test_basic_indexing_matches_torch(device, index):
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    compare_with_torch(lambda t: t[index], lambda t: t[index], [x], device, "float64")


def test_index_errors(device):
    t = cl.zeros(2, 3, device=device)
    with pytest.raises(IndexError, match="out of range for dimension 0 with size 2"):
        t[2]
    with pytest.raises(ValueError):  # the same error is a ValueError too, as API.md asks for bad arguments
        t[0, -4]
    with pytest.raises(IndexError, match="too many indices"):
        t[0, 0, 0]
    for bad in (True, cl.tensor([1.0]), 1.5):  # a bool, float positions: refused, not misread
        with pytest.raises(TypeError, match="indices"):
            t[bad]


def test_setitem_matches_torch(device):
    ours, theirs = ours_and_theirs(np.zeros((3, 4)), device)
    for lib, t in ((cl, ours), (torch, theirs)):
        t[0] = 5
        t[:, 1] = lib.tensor([1.0, 2.0, 3.0], dtype=t.dtype)
        t[1:, None, 2:] = 7.5
        t[..., -1] = lib.tensor(np.arange(3.0), dtype=t.dtype)
    assert_close(ours, theirs, "float64")


# ---- operators ----
@pytest.mark.parametrize("shape_a, dtype_a, shape_b, dtype_b", [
    ((3,), "float32", (), "float64"), ((), "float64", (2, 3), "float32"), ((3,), "float32", (3,), "float64"),
    ((), "float32", (), "float64"), ((2, 1), "float64", (), "float32")])
def test_dtype_promotion_matches_torch(device, shape_a, dtype_a, shape_b, dtype_b):
    """A 0-d tensor does not widen a tensor with dimensions (PyTorch's category rule)."""
    a, b = np.ones(shape_a), np.full(shape_b, 2.0)
    for op in (lambda x, y: x + y, lambda x, y: y * x, lambda x, y: x ** y):
        ours = op(cl.tensor(a, dtype=dtype_a, device=device), cl.tensor(b, dtype=dtype_b, device=device))
        theirs = op(torch.tensor(a, dtype=getattr(torch, dtype_a)), torch.tensor(b, dtype=getattr(torch, dtype_b)))
        assert ours.dtype == str(theirs.dtype).replace("torch.", "")
        assert_close(ours, theirs, ours.dtype)


def test_zero_dim_tensor_keeps_gradient_dtype(device):
    x = cl.tensor([1.0, 2.0], device=device, requires_grad=True)
    s = cl.tensor(3.0, dtype="float64", device=device, requires_grad=True)
    (x * s).sum().backward()
    assert x.grad.dtype == "float32" and s.grad.dtype == "float64"
    assert_close(s.grad, np.array(3.0), "float64")


def test_inplace_operators_write_storage_like_torch(device):
    ours, theirs = ours_and_theirs(np.arange(6.0).reshape(2, 3) + 1, device)
    row_ours, row_theirs = ours[1], theirs[1]  # views: they see the in-place writes
    for t, other in ((ours, cl.tensor([1.0, 2.0, 3.0], device=device)), (theirs, torch.tensor([1.0, 2.0, 3.0]))):
        t += other
        t -= 0.5
        t *= 2
        t /= other
        t[0] += 1
    assert_close(ours, theirs, "float64")
    assert_close(row_ours, row_theirs, "float64")


def test_inplace_with_autograd_matches_torch(device):
    """`out += identity` (a residual block) and `total += loss` keep the graph right, as in PyTorch."""
    x, w = np.random.default_rng(0).standard_normal((2, 3)), np.random.default_rng(1).standard_normal((3,))

    def block(a, b):
        out = a * b
        identity = a.exp()
        out += identity
        out *= 2
        total = a.sum() * 0.0
        total += (out * out).sum()
        total -= a.mean()
        return total

    compare_with_torch(block, block, [x, w], device, "float64")
    f32 = cl.zeros(3, dtype="float32", device=device)
    f32 += cl.ones(3, dtype="float64", device=device, requires_grad=True)
    assert f32.dtype == "float32" and f32.requires_grad  # an in-place result keeps the tensor's dtype


def test_inplace_refusals(device):
    w = cl.ones(3, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w += 1  # as in PyTorch; under no_grad() it is the optimizer's update
    with pytest.raises(RuntimeError, match="requires grad"):
        w[0] = 2.0
    with pytest.raises(RuntimeError, match="view"):  # into a view under autograd: its base would not see it
        cl.zeros(2, 3, device=device)[0][1] = w[1]
    with pytest.raises(ValueError, match="shape"):
        cl.zeros(3, device=device).__iadd__(cl.ones(2, 3, device=device))
    e = cl.ones(3, device=device).expand(2, 3)
    for write in (lambda: e.__iadd__(1), lambda: e.__setitem__(0, cl.tensor([1.0, 2.0, 3.0], device=device))):
        with pytest.raises(RuntimeError, match="expanded"):
            write()
    with pytest.raises(RuntimeError, match="requires grad"):
        w.zero_()
    assert w.numpy().tolist() == [1, 1, 1]


def test_leaf_gradients_own_their_storage(device):
    """Add's backward hands one gradient array to both inputs; each leaf's .grad must still be its own, or an
    in-place update of one gradient (p.grad /= n) would change the other."""
    a, b = cl.ones(3, device=device, requires_grad=True), cl.ones(3, device=device, requires_grad=True)
    (a + b).backward(cl.ones(3, device=device))
    with cl.no_grad():
        a.grad *= 4
    assert b.grad.numpy().tolist() == [1.0] * 3 and a.grad.numpy().tolist() == [4.0] * 3


def test_manual_sgd_loop_matches_torch(device):
    """The common hand-written update `with no_grad(): p -= lr * p.grad` changes the model's parameters."""
    x = np.random.default_rng(0).standard_normal((5, 3))
    ours = nn.Linear(3, 2).double().to(device)
    theirs = copy_into_torch(ours, torch.nn.Linear(3, 2).double())
    for lib, model in ((cl, ours), (torch, theirs)):
        for _ in range(2):
            (model(lib.tensor(x, device=device) if lib is cl else lib.tensor(x)) ** 2).sum().backward()
            with lib.no_grad():  # the tutorial loop: update in place, then zero the gradient in place
                for p in model.parameters():
                    p -= 0.1 * p.grad
                    p.grad.zero_()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert_close(p, q, "float64")


@pytest.mark.parametrize("base, exponent", [([0.0, 0.0, 2.0, 0.0], [2.0, 0.0, 0.0, -1.0]),
                                            ([0.0, 1.5, -2.0], [0.5, 3.0, 2.0])])
def test_pow_gradients_at_zero_match_torch(device, base, exponent):
    """PyTorch's rules: d/da is 0 where b == 0, d/db is 0 where a == 0 and b >= 0 (no 0 * log 0 NaN).
    Outputs and gradients hold inf and NaN here, so they are compared entry by entry, NaN equal to NaN."""
    cases = [(lambda x, y: x ** y, [base, exponent]), (lambda y: 0.0 ** y, [exponent]),
             (lambda y: (-2.0) ** y, [exponent]), (lambda x: x ** 0.0, [base])]
    for fn, arrays in cases:
        ours = [cl.tensor(a, dtype="float64", device=device, requires_grad=True) for a in arrays]
        theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
        out, ref = fn(*ours), fn(*theirs)
        out.sum().backward()
        ref.sum().backward()
        for a, b in zip([out] + [t.grad for t in ours], [ref] + [t.grad for t in theirs]):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-12, atol=0, equal_nan=True)


# ---- autograd switches and conversions ----
def test_python_builtins_on_tensors(device):
    ours, theirs = ours_and_theirs(np.array([-1.5, 2.0]), device)
    assert_close(abs(ours), abs(theirs), "float64")
    loss, ref = ours.sum(), theirs.sum()
    assert f"{loss:.3f} {loss:e}" == f"{ref:.3f} {ref:e}"  # the training-log idiom
    assert f"{ours}" == str(ours)
    with pytest.raises(TypeError):
        f"{ours:.2f}"  # a tensor with dimensions has no number format, as in PyTorch


def test_no_grad_forms():
    x = cl.ones(2, requires_grad=True)

    @cl.no_grad
    def bare(t):
        return t * 2

    @cl.no_grad()
    def called(t):
        """doc"""
        return t * 2

    assert not bare(x).requires_grad and not called(x).requires_grad
    assert called.__name__ == "called" and called.__doc__ == "doc"
    with pytest.raises(KeyError):
        with cl.no_grad():
            raise KeyError
    assert cl.is_grad_enabled() and (x * 2).requires_grad


def test_to_and_backward_accept_torch_keywords(device):
    x = cl.ones(2, device=device, requires_grad=True)
    y = x.to(cl.zeros(1, dtype="float64", device=device))
    assert y.dtype == "float64" and y.device == device and y.requires_grad
    assert x.to(device, non_blocking=True) is x and x.to(device, copy=True) is not x
    assert nn.Linear(2, 2).to(device, non_blocking=True).weight.device == device
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()  # the graph is always kept: a second pass accumulates, as torch does with retain_graph
    assert x.grad.numpy().tolist() == [4.0, 4.0]
    with pytest.raises(ValueError, match="create_graph"):
        loss.backward(create_graph=True)


def test_numpy_of_a_tensor_that_requires_grad(device):
    x = cl.ones(2, device=device, requires_grad=True)
    # unlike PyTorch, numpy() works on a tensor that requires grad (it always copies, see API.md)
    assert x.numpy().tolist() == [1.0, 1.0]


# ---- nn.functional ----
def test_one_element_tuples_repeat_as_in_torch(device):
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 6))
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
    compare_with_torch(lambda a, b: F.conv2d(a, b, stride=(2,), padding=[1], dilation=(1,)),
                       lambda a, b: torch.nn.functional.conv2d(a, b, stride=(2,), padding=[1], dilation=(1,)),
                       [x, w], device, "float64")
    compare_with_torch(lambda a: F.max_pool2d(a, (3,), (2,)), lambda a: torch.nn.functional.max_pool2d(a, (3,), (2,)),
                       [x], device, "float64")


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_dtype_argument(device, name):
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    ours = getattr(F, name)(cl.tensor(x, device=device), 1, dtype="float64")
    theirs = getattr(torch.nn.functional, name)(torch.tensor(x), 1, dtype=torch.float64)
    assert ours.dtype == "float64"
    assert_close(ours, theirs, "float64")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
@pytest.mark.parametrize("pads", [(2, -3), (-3, 2), (4, -4), (-4, 1, 1, -2), (3, -1, -3, 1)])
def test_pad_then_crop_order_matches_torch(device, mode, pads):
    """PyTorch reflects/replicates across the whole input and crops after, so a pad may reach cells that the
    crop on the other side removes (it used to raise) and a crop may empty an axis that is then padded."""
    x = np.random.default_rng(0).standard_normal((2, 4, 5))
    compare_with_torch(lambda t: F.pad(t, pads, mode=mode), lambda t: torch.nn.functional.pad(t, pads, mode=mode),
                       [x], device, "float64")


def test_loss_signatures_follow_torch_positions():
    """Arguments sit where PyTorch puts them; the deprecated size_average/reduce are refused, not guessed."""
    for name in ("cross_entropy", "nll_loss", "mse_loss", "CrossEntropyLoss", "NLLLoss", "MSELoss"):
        ours = getattr(F, name, None) or getattr(nn, name)
        theirs = getattr(torch.nn.functional, name, None) or getattr(torch.nn, name)
        names = list(inspect.signature(ours).parameters)
        assert names == list(inspect.signature(theirs).parameters)[:len(names)], name
    x, target = cl.zeros(2, 3), np.array([0, 2])
    with pytest.raises(ValueError, match="size_average"):
        F.mse_loss(x, x, "sum")  # torch reads "sum" as size_average here
    with pytest.raises(ValueError, match="size_average"):
        nn.CrossEntropyLoss(reduce=False)
    with pytest.raises(IndexError, match="out of bounds"):  # torch's error type; also a ValueError
        F.cross_entropy(x, np.array([0, 3]))


def test_conv_channel_mismatch_message():
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but weight expects 4 \(groups=1\)"):
        F.conv2d(cl.zeros(1, 3, 5, 5), cl.zeros(2, 4, 3, 3))


# ---- nn ----
def small_net(lib):
    m = lib.nn
    return m.Sequential(m.Conv2d(3, 4, 3, padding=1), m.BatchNorm2d(4), m.ReLU(), m.MaxPool2d(2), m.Flatten(),
                        m.Linear(4 * 4 * 4, 5), m.Dropout(0.2), m.Linear(5, 2))


def test_torch_state_dict_loads_into_the_same_model():
    """Names follow torch's (Sequential indices, BatchNorm buffers); a torch state_dict turned into NumPy
    arrays loads, and the two models then agree."""
    theirs, ours = small_net(torch), small_net(cl)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs(torch.randn(4, 3, 8, 8))  # moves the running stats away from their defaults
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert_close(ours.eval()(cl.tensor(x)), theirs.eval()(torch.tensor(x)), "float32")


def test_sequential_slice_keeps_names():
    ours, theirs = small_net(cl), small_net(torch)
    assert [n for n, _ in ours[4:6].named_parameters()] == [n for n, _ in theirs[4:6].named_parameters()]
    assert repr(ours[2:4]) == repr(theirs[2:4])
    assert len(ours) == 8 and isinstance(ours[-1], nn.Linear) and [type(m) for m in ours][1] is nn.BatchNorm2d


REPRS = [
    lambda m: m.Conv2d(3, 8, 3), lambda m: m.Conv2d(3, 8, (3, 5), 2, (1, 2), 2, bias=False, padding_mode="reflect"),
    lambda m: m.Conv2d(4, 8, 3, padding="same", groups=2), lambda m: m.Conv1d(3, 6, 3, groups=3),
    lambda m: m.ConvTranspose2d(3, 8, 3, stride=2, output_padding=1), lambda m: m.ConvTranspose1d(2, 4, 5, 3),
    lambda m: m.MaxPool2d(2), lambda m: m.MaxPool2d(3, 2, 1, ceil_mode=True), lambda m: m.MaxPool1d(2),
    lambda m: m.AvgPool2d(2), lambda m: m.AvgPool2d(3, 1, 1), lambda m: m.AvgPool1d(3, 2),
    lambda m: m.AdaptiveAvgPool2d((1, 1)), lambda m: m.Linear(3, 4, bias=False), lambda m: m.ReLU(),
    lambda m: m.ReLU(True), lambda m: m.LeakyReLU(0.2), lambda m: m.LeakyReLU(inplace=True), lambda m: m.Sigmoid(),
    lambda m: m.Tanh(), lambda m: m.Flatten(), lambda m: m.Flatten(0, 2), lambda m: m.Dropout(0.3),
    lambda m: m.Dropout(inplace=True), lambda m: m.BatchNorm2d(4),
    lambda m: m.BatchNorm2d(4, momentum=None, affine=False), lambda m: m.BatchNorm2d(4, bias=False),
    lambda m: m.CrossEntropyLoss(), lambda m: m.MSELoss(),
]


@pytest.mark.parametrize("make", REPRS)
def test_module_repr_and_attributes_match_torch(make):
    ours, theirs = make(nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    for name in ("kernel_size", "stride", "padding", "dilation", "output_padding", "groups"):
        if hasattr(theirs, name):
            assert getattr(ours, name) == getattr(theirs, name), name


def test_inplace_flag_leaves_the_input_unchanged(device):
    """inplace=True is accepted (and shown in repr) but convlab never changes an input: same result."""
    x = np.array([-1.0, 2.0, -3.0])
    ours = cl.tensor(x, device=device)
    for name, args in (("relu", ()), ("leaky_relu", (0.1,))):
        theirs = torch.tensor(x)
        getattr(torch.nn.functional, name)(theirs, *args, inplace=True)  # torch's input now holds the result
        assert_close(getattr(F, name)(ours, *args, inplace=True), theirs, "float64")
    assert_close(nn.ReLU(inplace=True)(ours), torch.relu(torch.tensor(x)), "float64")
    assert_close(nn.LeakyReLU(0.1, True)(ours), theirs, "float64")
    assert ours.numpy().tolist() == x.tolist()


def test_batchnorm_without_bias_matches_torch(device):
    ours = nn.BatchNorm2d(3, bias=False).double().to(device)
    theirs = torch.nn.BatchNorm2d(3, bias=False).double()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()] == ["weight"]
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2))
    assert_close(ours(cl.tensor(x, device=device)), theirs(torch.tensor(x)), "float64")
    assert_close(ours.running_var, theirs.running_var, "float64")


def test_updates_are_in_place_so_state_dict_entries_follow(device):
    """As in PyTorch, optimizer steps, running statistics, loads and init write into the existing storage:
    a state_dict() taken earlier shows the new values."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)).to(device)
    state = model.state_dict()
    opt = cl.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    model(cl.randn(2, 2, 5, 5, device=device)).sum().backward()
    opt.step()
    nn.init.constant_(model[1].weight, 3.0)
    live = {k: v.numpy() for k, v in model.state_dict().items()}
    for key, value in state.items():
        np.testing.assert_array_equal(value.numpy(), live[key], err_msg=key)
    assert state["1.num_batches_tracked"].item() == 1.0 and state["1.weight"].numpy().tolist() == [3.0] * 3
    copy_state = {k: np.zeros(v.shape) for k, v in live.items()}
    model.load_state_dict(copy_state)
    assert not state["0.weight"].numpy().any()


def test_optimizer_rejects_a_bare_tensor():
    for make in (cl.optim.SGD, cl.optim.Adam):
        with pytest.raises(TypeError, match="iterable of Tensors"):
            make(cl.ones(2, requires_grad=True), lr=0.1)


def _torch_style_params(fn):
    """Parameter name -> inspect.Parameter, without self and the device/dtype factory keywords (convlab's
    modules take them after construction, through .to()) and without PyTorch's private `_stacklevel`."""
    return {k: p for k, p in inspect.signature(fn).parameters.items()
            if k not in ("self", "device", "dtype") and not k.startswith("_")}


@pytest.mark.parametrize("ours_module, theirs_name", [
    (F, "torch.nn.functional"), (nn, "torch.nn"), (cl.optim, "torch.optim"),
    (cl.optim.lr_scheduler, "torch.optim.lr_scheduler"), (nn.init, "torch.nn.init")])
def test_every_torch_name_takes_torch_arguments(ours_module, theirs_name):
    """Every public function or class convlab shares a name with takes PyTorch's arguments in PyTorch's
    order (keyword-only ones by name) with PyTorch's defaults (a prefix of them: what convlab lacks is refused, not misread). Names
    PyTorch defines as C builtins or *args wrappers have no signature to compare and are passed over."""
    import importlib
    theirs_module = importlib.import_module(theirs_name)
    compared = 0
    for name, ours in vars(ours_module).items():
        theirs = getattr(theirs_module, name, None)
        if name.startswith("_") or theirs is None or not (inspect.isfunction(ours) or inspect.isclass(ours)):
            continue
        ours, theirs = (ours.__init__, theirs.__init__) if inspect.isclass(ours) else (ours, theirs)
        try:
            their_params = _torch_style_params(theirs)
        except (TypeError, ValueError):
            continue
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in their_params.values()):
            continue
        our_params = _torch_style_params(ours)
        positional = [k for k, p in our_params.items() if p.kind != p.KEYWORD_ONLY]
        their_positional = [k for k, p in their_params.items() if p.kind != p.KEYWORD_ONLY]
        assert positional == their_positional[:len(positional)], (name, positional, their_positional)
        assert set(our_params) <= set(their_params), (name, sorted(set(our_params) - set(their_params)))
        for key, p in our_params.items():
            if p.default is not inspect.Parameter.empty and their_params[key].default is not inspect.Parameter.empty:
                assert p.default == their_params[key].default, (name, key, p.default, their_params[key].default)
        compared += 1
    assert compared >= 5, f"only {compared} names of {theirs_name} could be compared"
