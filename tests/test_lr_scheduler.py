"""convlab.optim.lr_scheduler against torch.optim.lr_scheduler: the lr (and momentum) of every parameter
group over many steps, and the schedules' closed forms written out by hand."""
import math

import numpy as np
import pytest

import convlab as cl
from convlab.optim import lr_scheduler
from autograd_helpers import torch_or_skip

CASES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=7)),  # 40 steps: past T_max, where the cosine turns back up
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.01)),
    ("LambdaLR", dict(lr_lambda=lambda epoch: 0.95 ** epoch + 1 / (epoch + 1))),
    ("OneCycleLR", dict(max_lr=0.8, total_steps=40)),
    ("OneCycleLR", dict(max_lr=[0.8, 0.4], epochs=4, steps_per_epoch=10, anneal_strategy="linear",
                        pct_start=0.25, div_factor=10.0)),
    ("OneCycleLR", dict(max_lr=0.8, total_steps=40, three_phase=True, base_momentum=0.7)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.5, total_iters=12)),
    ("CosineAnnealingWarmRestarts", dict(T_0=5, T_mult=2, eta_min=0.01)),
    ("CosineAnnealingWarmRestarts", dict(T_0=3)),
]


def two_groups(lib, optimizer="SGD"):
    params = [lib.zeros(2, requires_grad=True), lib.zeros(3, requires_grad=True)]
    extra = dict(momentum=0.9) if optimizer == "SGD" else {}
    return getattr(lib.optim, optimizer)([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.2}], lr=0.1,
                                         **extra)


def history(lib, name, options, optimizer="SGD", steps=40):
    opt = two_groups(lib, optimizer)
    scheduler = getattr(lib.optim.lr_scheduler, name)(opt, **options)
    seen = []
    for _ in range(steps):
        seen.append([(g["lr"], g.get("momentum"), g.get("betas")) for g in opt.param_groups])
        assert scheduler.get_last_lr() == [g["lr"] for g in opt.param_groups]
        opt.step()
        scheduler.step()
    return seen


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_schedule_matches_torch(case, optimizer):
    torch = torch_or_skip()
    name, options = CASES[case]
    ours, theirs = history(cl, name, options, optimizer), history(torch, name, options, optimizer)
    assert ours == theirs  # the same formulas in the same order: the same floats


@pytest.mark.parametrize("options", [dict(), dict(mode="max", factor=0.5, patience=2, threshold=0.1, cooldown=2),
                                     dict(threshold_mode="abs", threshold=0.05, patience=1, min_lr=[0.05, 0.1])])
def test_reduce_lr_on_plateau_matches_torch(options):
    torch = torch_or_skip()
    metrics = [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.5, 0.52, 0.51, 0.55, 0.6, 0.6, 0.6, 0.1] * 3
    seen = []
    for lib in (cl, torch):
        opt = two_groups(lib)
        scheduler = lib.optim.lr_scheduler.ReduceLROnPlateau(opt, **options)
        lrs = []
        for metric in metrics:
            opt.step()
            scheduler.step(metric)
            lrs.append(([g["lr"] for g in opt.param_groups], scheduler.get_last_lr()))
        seen.append(lrs)
    assert seen[0] == seen[1]
    with pytest.raises(ValueError, match="factor must be < 1.0, got 2"):
        lr_scheduler.ReduceLROnPlateau(two_groups(cl), factor=2)


def test_schedules_by_hand():
    def lrs(name, steps, **options):
        opt = cl.optim.SGD([cl.zeros(1, requires_grad=True)], lr=1.0)
        scheduler = getattr(lr_scheduler, name)(opt, **options)
        out = []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            scheduler.step()
        return np.array(out)

    np.testing.assert_allclose(lrs("StepLR", 7, step_size=2, gamma=0.1), [1, 1, .1, .1, .01, .01, .001])
    np.testing.assert_allclose(lrs("MultiStepLR", 6, milestones=[1, 4, 4], gamma=0.5), [1, .5, .5, .5, .125, .125])
    np.testing.assert_allclose(lrs("ExponentialLR", 4, gamma=0.5), [1, .5, .25, .125])
    t = np.arange(15)
    cosine = 0.1 + 0.9 * (1 + np.cos(np.pi * t / 5)) / 2  # one formula for all t: a period of 2 T_max
    np.testing.assert_allclose(lrs("CosineAnnealingLR", 15, T_max=5, eta_min=0.1), cosine, atol=1e-12)
    # 1cycle over 10 steps, pct_start 0.3: up from 1/25 to 1 at step 2, then down to 1/25/1e4 at step 9
    one_cycle = lrs("OneCycleLR", 10, max_lr=1.0, total_steps=10, anneal_strategy="linear")
    np.testing.assert_allclose(one_cycle[:3], [0.04, 0.52, 1.0])
    np.testing.assert_allclose(one_cycle[9], 0.04 / 1e4)
    np.testing.assert_allclose(np.diff(one_cycle[2:]), (0.04 / 1e4 - 1.0) / 7)


def test_lr_changed_by_hand_carries_on_as_in_torch():
    torch = torch_or_skip()
    seen = []
    for lib in (cl, torch):
        opt = two_groups(lib)
        scheduler = lib.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6)
        lrs = []
        for step in range(12):
            opt.step()
            scheduler.step()
            if step == 4:
                opt.param_groups[0]["lr"] = 0.05
            lrs.append([g["lr"] for g in opt.param_groups])
        seen.append(lrs)
    assert seen[0] == seen[1]


def test_onecycle_moves_adam_beta1_and_sgd_momentum():
    opt = two_groups(cl, "Adam")
    lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=10)
    assert opt.param_groups[0]["betas"] == (0.95, 0.999) and opt.param_groups[0]["lr"] == pytest.approx(0.02)
    sgd = two_groups(cl)
    scheduler = lr_scheduler.OneCycleLR(sgd, max_lr=0.5, total_steps=10, anneal_strategy="linear")
    for _ in range(2):
        scheduler.step()
    assert sgd.param_groups[0]["momentum"] == pytest.approx(0.95 - 0.10 * 2 / 2)  # base 0.85 at step 2
    for _ in range(8):
        scheduler.step()
    with pytest.raises(ValueError, match="tried to step 11 times"):
        scheduler.step()


def test_scheduler_state_dict_resumes():
    opt = two_groups(cl)
    scheduler = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        scheduler.step()
    state = scheduler.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 3
    other = lr_scheduler.StepLR(two_groups(cl), step_size=5)
    other.load_state_dict(state)
    assert other.last_epoch == 3 and other.step_size == 2 and other.get_last_lr() == scheduler.get_last_lr()
    assert "lr_lambdas" not in lr_scheduler.LambdaLR(two_groups(cl), lambda e: 1.0).state_dict()
    assert math.isclose(opt.param_groups[0]["initial_lr"], 0.1)


def test_scheduler_errors():
    opt = two_groups(cl)
    with pytest.raises(TypeError, match="optimizer must be a convlab.optim.Optimizer, got list"):
        lr_scheduler.StepLR([], step_size=1)
    with pytest.raises(ValueError, match="expected 2 lr_lambdas .* got 1"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(two_groups(cl), step_size=1, last_epoch=3)
    with pytest.raises(ValueError, match="total_steps or both epochs and steps_per_epoch"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="positive integer total_steps, got 0"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=0)
    with pytest.raises(ValueError, match="pct_start in \\[0, 1\\], got 1.5"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy must be 'cos' or 'linear', got 'exp'"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5, anneal_strategy="exp")
    with pytest.raises(ValueError, match="expected 2 values of max_lr"):
        lr_scheduler.OneCycleLR(opt, max_lr=[1.0], total_steps=5)
    with pytest.raises(ValueError, match=r"LinearLR: start_factor must be in \(0, 1\], got 0"):
        lr_scheduler.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="expected a positive integer T_0, got 0"):
        lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=0)
    assert cl.optim.lr_scheduler.StepLR is lr_scheduler.StepLR
