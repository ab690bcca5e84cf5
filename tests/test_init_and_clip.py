"""nn.init's added initialisers (distributions checked over many samples, arguments against PyTorch) and
nn.utils.clip_grad_norm_ / clip_grad_value_ against torch.nn.utils."""
import math

import numpy as np
import pytest

import convlab as cl
import convlab.nn as nn
from autograd_helpers import assert_close, torch_or_skip


def test_trunc_normal_stays_in_bounds_with_the_truncated_moments():
    cl.manual_seed(0)
    w = nn.init.trunc_normal_(cl.zeros(200, 500), mean=0.5, std=2.0, a=-1.0, b=3.0).numpy()
    assert w.min() >= -1.0 and w.max() <= 3.0 and w.min() < -0.99 and w.max() > 2.99
    # the mean and std of N(0.5, 2^2) truncated to [-1, 3], from the normal pdf/cdf
    alpha, beta = (-1.0 - 0.5) / 2.0, (3.0 - 0.5) / 2.0
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: (1 + math.erf(z / math.sqrt(2))) / 2  # noqa: E731
    mass = cdf(beta) - cdf(alpha)
    mean = 0.5 + 2.0 * (pdf(alpha) - pdf(beta)) / mass
    var = 4.0 * (1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass - ((pdf(alpha) - pdf(beta)) / mass) ** 2)
    assert abs(w.mean() - mean) < 0.01 and abs(w.std() - math.sqrt(var)) < 0.01
    default = nn.init.trunc_normal_(cl.zeros(10000)).numpy()  # PyTorch's defaults: N(0, 1) cut at -2 and 2
    assert default.min() >= -2 and default.max() <= 2 and abs(default.std() - 0.8796) < 0.02
    with pytest.raises(ValueError, match="a must be less than b, got a=1, b=0"):
        nn.init.trunc_normal_(cl.zeros(3), a=1, b=0)


@pytest.mark.parametrize("shape", [(4, 4), (3, 7), (8, 2), (6, 2, 3, 3)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    cl.manual_seed(1)
    w = nn.init.orthogonal_(cl.zeros(*shape), gain=1.5).numpy().reshape(shape[0], -1)
    small = min(w.shape)
    gram = w @ w.T if w.shape[0] == small else w.T @ w
    np.testing.assert_allclose(gram, 2.25 * np.eye(small), atol=1e-5)
    with pytest.raises(ValueError, match="only tensors with 2 or more dimensions are supported"):
        nn.init.orthogonal_(cl.zeros(3))


def test_eye_and_the_private_fan_name_pytorch_code_calls():
    np.testing.assert_array_equal(nn.init.eye_(cl.zeros(2, 3)).numpy(), np.eye(2, 3))
    assert nn.init._calculate_fan_in_and_fan_out(cl.zeros(4, 3, 5)) == (15, 20)
    with pytest.raises(ValueError, match="only 2-D tensors"):
        nn.init.eye_(cl.zeros(2, 2, 2))


def test_init_functions_write_in_place_and_return_the_tensor():
    layer = nn.Conv2d(3, 4, 3)
    weight = layer.weight
    for fn in (nn.init.trunc_normal_, nn.init.orthogonal_, nn.init.xavier_uniform_):
        assert fn(layer.weight) is weight and layer.weight is weight
    assert layer.state_dict()["weight"].numpy().tolist() == weight.numpy().tolist()


def grads_pair(torch, shapes, scale):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(s) * scale for s in shapes]
    ours = [cl.zeros(*s, dtype="float64", requires_grad=True) for s in shapes]
    theirs = [torch.zeros(*s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for p, r, v in zip(ours, theirs, values):
        p.grad, r.grad = cl.tensor(v), torch.tensor(v)
    return ours, theirs


@pytest.mark.parametrize("max_norm, norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.3, math.inf), (2.0, 3)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    torch = torch_or_skip()
    ours, theirs = grads_pair(torch, [(3, 4), (4,), (2, 2, 2)], 2.0)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, cl.Tensor) and total.ndim == 0
    assert_close(total, ref, "float64")
    for p, r in zip(ours, theirs):
        assert_close(p.grad, r.grad, "float64")


def test_clip_grad_norm_by_hand_and_edge_cases():
    p = cl.zeros(2, requires_grad=True)
    p.grad = cl.tensor([3.0, 4.0])
    grad = p.grad
    assert nn.utils.clip_grad_norm_(p, 1.0).item() == pytest.approx(5.0)  # one tensor, not a list, works too
    np.testing.assert_allclose(p.grad.numpy(), np.array([0.6, 0.8]) * 5 / (5 + 1e-6), rtol=1e-6)
    assert p.grad is grad  # rescaled in place, as PyTorch's mul_
    model = nn.Linear(2, 1)
    assert nn.utils.clip_grad_norm_(model.parameters(), 1.0).item() == 0.0  # no gradients yet
    p.grad = cl.tensor([math.inf, 1.0])
    with pytest.raises(RuntimeError, match="error_if_nonfinite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type must be positive or inf, got -1"):
        nn.utils.clip_grad_norm_([p], 1.0, norm_type=-1)


def test_clip_grad_value_matches_torch():
    torch = torch_or_skip()
    ours, theirs = grads_pair(torch, [(3, 4), (5,)], 2.0)
    assert nn.utils.clip_grad_value_(ours, 0.7) is None
    torch.nn.utils.clip_grad_value_(theirs, 0.7)
    for p, r in zip(ours, theirs):
        assert_close(p.grad, r.grad, "float64")


def test_gains_fans_and_bounds_agree_with_torch():
    torch = torch_or_skip()
    for args in [("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",), ("leaky_relu", 0.2),
                 ("selu",)]:
        assert nn.init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args), rel=1e-12)
    for shape in [(4, 3), (6, 2, 3, 3), (3, 5, 7)]:
        assert nn.init._calculate_fan_in_and_fan_out(cl.zeros(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))
    # the uniform initialisers reach, and never pass, PyTorch's bound for the same shape and options
    for ours, theirs in [(lambda t: nn.init.kaiming_uniform_(t, a=0.1, mode="fan_out", nonlinearity="leaky_relu"),
                          lambda t: torch.nn.init.kaiming_uniform_(t, a=0.1, mode="fan_out",
                                                                   nonlinearity="leaky_relu")),
                         (lambda t: nn.init.xavier_uniform_(t, gain=2.0), lambda t: torch.nn.init.xavier_uniform_(t, gain=2.0))]:
        a = np.abs(ours(cl.zeros(64, 32, 3, 3)).numpy()).max()
        b = np.abs(theirs(torch.zeros(64, 32, 3, 3)).numpy()).max()
        assert a == pytest.approx(b, rel=0.01)
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        nn.init.calculate_gain("swish")
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out', got 'fan'"):
        nn.init.kaiming_normal_(cl.zeros(3, 3), mode="fan")
