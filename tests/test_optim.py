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
