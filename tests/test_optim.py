"""convlab.optim against torch.optim: several steps from the same parameters and gradients."""
import numpy as np
import pytest

import convlab as cl
from autograd_helpers import assert_close, torch_or_skip

SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
    dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.1),
    dict(lr=0.1, maximize=True),
]
ADAM_CASES = [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.005, weight_decay=0.05),
    dict(lr=0.01, amsgrad=True),
]
ADAMW_CASES = [
    dict(),  # PyTorch's default weight_decay=1e-2 is applied
    dict(lr=0.01, weight_decay=0.1, betas=(0.8, 0.99)),
    dict(lr=0.01, weight_decay=0.3, amsgrad=True),
    dict(lr=0.01, weight_decay=0.0),
]


def run_steps(name, options, device, dtype, steps=4):
    """Same quadratic-plus-sine objective, same starting point, both libraries; compares every step."""
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    starts = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    ours = [cl.tensor(a.astype(dtype), device=device, requires_grad=True) for a in starts]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in starts]
    opt = getattr(cl.optim, name)(ours, **options)
    ref = getattr(torch.optim, name)(theirs, **options)
    for _ in range(steps):
        for params, optimizer in ((ours, opt), (theirs, ref)):
            optimizer.zero_grad()
            w, b = params
            loss = ((w * w).sum() * 0.5 + (w.sum(0) * b).tanh().sum() + (b * b * b).sum())
            loss.backward()
            optimizer.step()
        for p, r in zip(ours, theirs):
            assert_close(p, r, dtype)


@pytest.mark.parametrize("case", range(len(SGD_CASES)))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sgd_matches_torch(device, case, dtype):
    run_steps("SGD", SGD_CASES[case], device, dtype)


@pytest.mark.parametrize("case", range(len(ADAM_CASES)))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adam_matches_torch(device, case, dtype):
    run_steps("Adam", ADAM_CASES[case], device, dtype)


@pytest.mark.parametrize("case", range(len(ADAMW_CASES)))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adamw_matches_torch(device, case, dtype):
    run_steps("AdamW", ADAMW_CASES[case], device, dtype)


OTHER_CASES = [
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.8, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3, eps=1e-6)),
]


@pytest.mark.parametrize("case", range(len(OTHER_CASES)))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adadelta_rmsprop_adagrad_match_torch(device, case, dtype):
    name, options = OTHER_CASES[case]
    run_steps(name, options, device, dtype)


def test_adamw_decay_is_decoupled_by_hand():
    # zero gradient: Adam's moments stay 0, so the step is the decay alone, p * (1 - lr * wd)
    p = cl.tensor([2.0, -4.0], dtype="float64", requires_grad=True)
    opt = cl.optim.AdamW([p], lr=0.1, weight_decay=0.5)
    assert opt.defaults["weight_decay"] == 0.5 and cl.optim.AdamW([p]).defaults["weight_decay"] == 1e-2
    (p * 0.0).sum().backward()
    opt.step()
    np.testing.assert_allclose(p.numpy(), [1.9, -3.8])


def test_per_group_lr_is_read_at_each_step():
    torch = torch_or_skip()
    ours = [cl.tensor([1.0, 2.0], dtype="float64", requires_grad=True) for _ in range(2)]
    theirs = [torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True) for _ in range(2)]
    opts = [lib.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
            for lib, (a, b) in ((cl, ours), (torch, theirs))]
    for step in range(3):
        for opt, (a, b) in zip(opts, (ours, theirs)):
            opt.zero_grad()
            (a * a + b * b * b).sum().backward()
            opt.step()
            opt.param_groups[1]["lr"] *= 0.5  # what a scheduler does between steps
    assert [g["lr"] for g in opts[0].param_groups] == [g["lr"] for g in opts[1].param_groups]
    for p, r in zip(ours, theirs):
        assert_close(p, r, "float64")


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_optimizer_state_dict_round_trip_matches_uninterrupted_run(name):
    """Two steps, save, load into a fresh optimizer over copies of the parameters, two more steps: the same
    numbers as four steps of one optimizer; the saved layout is PyTorch's."""
    torch = torch_or_skip()
    options = dict(lr=0.05, momentum=0.9) if name == "SGD" else dict(lr=0.05, weight_decay=0.1)
    start = np.random.default_rng(3).standard_normal((2, 3))

    def steps(opt, p, n):
        for _ in range(n):
            opt.zero_grad()
            (p * p * p).sum().backward()
            opt.step()

    p = cl.tensor(start, dtype="float64", requires_grad=True)
    opt = getattr(cl.optim, name)([p], **options)
    steps(opt, p, 2)
    saved = opt.state_dict()
    ref_p = torch.tensor(start, requires_grad=True)
    ref = getattr(torch.optim, name)([ref_p], **options)
    for _ in range(2):
        ref.zero_grad()
        (ref_p ** 3).sum().backward()
        ref.step()
    ref_saved = ref.state_dict()
    assert list(saved) == ["state", "param_groups"] and list(saved["state"]) == [0]
    assert sorted(saved["state"][0]) == sorted(ref_saved["state"][0])
    assert saved["param_groups"][0]["params"] == [0] and saved["param_groups"][0]["lr"] == 0.05
    for key, value in saved["state"][0].items():
        if isinstance(value, cl.Tensor):
            assert_close(value, ref_saved["state"][0][key], "float64")
    q = cl.tensor(p.numpy(), dtype="float64", requires_grad=True)
    fresh = getattr(cl.optim, name)([q], lr=1.0)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == 0.05 and fresh.param_groups[0]["params"][0] is q
    steps(fresh, q, 2)
    steps(opt, p, 2)
    np.testing.assert_array_equal(q.numpy(), p.numpy())
    with pytest.raises(ValueError, match="parameter groups"):
        fresh.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="group 0 holds 2"):
        fresh.load_state_dict({"state": {}, "param_groups": [{**saved["param_groups"][0], "params": [0, 1]}]})


def test_step_closure_returns_the_loss():
    p = cl.tensor([3.0], dtype="float64", requires_grad=True)
    opt = cl.optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 9.0
    np.testing.assert_allclose(p.numpy(), [2.4])


def test_sgd_by_hand():
    p = cl.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    opt = cl.optim.SGD([p], lr=0.5, momentum=0.5)
    for _ in range(2):
        opt.zero_grad()
        (p * p).sum().backward()  # gradient 2p
        opt.step()
    # step 1: buf = 2p0 = [2, -4], p1 = p0 - 0.5 buf = [0, 0]; step 2: grad 0, buf = 0.5 buf, p2 = p1 - 0.5 buf
    np.testing.assert_allclose(p.numpy(), [-0.5, 1.0])


def test_param_groups_and_skipped_params():
    a = cl.tensor([1.0], requires_grad=True)
    b = cl.tensor([1.0], requires_grad=True)
    opt = cl.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    (a * 1.0 + b * 1.0).sum().backward()
    opt.step()
    np.testing.assert_allclose([a.item(), b.item()], [0.9, 0.5])
    c = cl.tensor([1.0], requires_grad=True)
    cl.optim.Adam([c]).step()  # no gradient yet: left alone
    assert c.item() == 1.0


def test_optimizer_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        cl.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        cl.optim.Adam(iter([]))
    with pytest.raises(TypeError, match="Tensors"):
        cl.optim.SGD([np.zeros(2)], lr=0.1)
    p = cl.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="nesterov"):
        cl.optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="lr"):
        cl.optim.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="betas"):
        cl.optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="more than one"):
        cl.optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match=r"Adadelta: invalid rho=1.5 \(must be in \[0, 1\]\)"):
        cl.optim.Adadelta([p], rho=1.5)
    with pytest.raises(ValueError, match=r"RMSprop: invalid momentum=-0.1 \(must be >= 0\)"):
        cl.optim.RMSprop([p], momentum=-0.1)
