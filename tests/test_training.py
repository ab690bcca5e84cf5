"""A small CNN (conv, batch norm, relu, pool, linear, cross-entropy) trained 3 steps in convlab and in PyTorch
from identical weights ends with the same parameters and running stats."""
import numpy as np
import pytest

import convlab as cl
import convlab.nn as nn
from autograd_helpers import assert_close, torch_or_skip


def small_cnn(lib):
    # No bias before batch norm: its true gradient is exactly 0, so Adam would amplify rounding noise there.
    return lib.nn.Sequential(
        lib.nn.Conv2d(2, 5, 3, padding=1, bias=False), lib.nn.BatchNorm2d(5), lib.nn.ReLU(), lib.nn.MaxPool2d(2),
        lib.nn.Conv2d(5, 4, (2, 3), stride=(1, 2), groups=1), lib.nn.ReLU(), lib.nn.AvgPool2d(2, ceil_mode=True),
        lib.nn.Flatten(), lib.nn.Linear(4 * 2 * 1, 3))


@pytest.mark.parametrize("optimizer, options", [("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
                                                ("Adam", dict(lr=0.01))])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_three_training_steps_match_torch(device, optimizer, options, dtype):
    torch = torch_or_skip()
    cl.manual_seed(0)
    ours = small_cnn(cl).to(device=device, dtype=dtype)
    theirs = small_cnn(torch).to(getattr(torch, dtype))
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    opt = getattr(cl.optim, optimizer)(ours.parameters(), **options)
    ref = getattr(torch.optim, optimizer)(theirs.parameters(), **options)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((6, 2, 9, 8)).astype(dtype)
        y = rng.integers(0, 3, 6)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(ours(cl.tensor(x, device=device)), y)
        loss.backward()
        opt.step()
        ref.zero_grad()
        ref_loss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        ref_loss.backward()
        ref.step()
        assert_close(loss, ref_loss, dtype)
    for name, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[name], value.numpy().astype(dtype), dtype)
