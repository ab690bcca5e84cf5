"""convlab.nn.functional against torch.nn.functional (values and every gradient) and finite differences."""
import numpy as np
import pytest

import convlab as cl
import convlab.nn.functional as F
from autograd_helpers import assert_close, compare_with_torch, gradcheck, torch_or_skip

DTYPES = ["float64", "float32"]


def tf():
    return torch_or_skip().nn.functional


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- convolution ----
# (n, c_in, c_out, size, kernel, stride, padding, dilation, groups, bias): odd sizes, batch 1, stride > kernel,
# dilation > 1, asymmetric 'same' padding for even kernels, groups, channel counts off multiples of 8.
CONV2D = [
    (2, 3, 5, (7, 9), (3, 3), 1, 1, 1, 1, True),
    (1, 4, 6, (8, 7), (2, 4), (2, 3), (1, 2), 1, 2, True),
    (2, 6, 3, (9, 9), (3, 2), 4, 0, (2, 1), 3, False),
    (1, 5, 5, (6, 10), (4, 3), 1, "same", (1, 2), 5, True),
    (3, 2, 7, (5, 5), (1, 1), 1, "valid", 1, 1, True),
    (2, 9, 18, (11, 6), (2, 2), 1, "same", 3, 9, False),
]


@pytest.mark.parametrize("case", range(len(CONV2D)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_matches_torch(device, case, dtype):
    n, c_in, c_out, size, k, stride, padding, dilation, groups, bias = CONV2D[case]
    arrays = [randn(n, c_in, *size, seed=case), randn(c_out, c_in // groups, *k, seed=case + 10)]
    arrays += [randn(c_out, seed=case + 20)] if bias else []
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    compare_with_torch(lambda x, w, *b: F.conv2d(x, w, *b, **args), lambda x, w, *b: tf().conv2d(x, w, *b, **args),
                       arrays, device, dtype)


CONV1D = [
    (2, 3, 4, 11, 3, 1, 1, 1, 1, True),
    (1, 6, 4, 16, 4, 5, 2, 1, 2, True),
    (3, 4, 8, 9, 2, 1, "same", 3, 4, False),
    (2, 5, 3, 7, 7, 1, "valid", 1, 1, True),
]


@pytest.mark.parametrize("case", range(len(CONV1D)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv1d_matches_torch(device, case, dtype):
    n, c_in, c_out, length, k, stride, padding, dilation, groups, bias = CONV1D[case]
    arrays = [randn(n, c_in, length, seed=case), randn(c_out, c_in // groups, k, seed=case + 1)]
    arrays += [randn(c_out, seed=case + 2)] if bias else []
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    compare_with_torch(lambda x, w, *b: F.conv1d(x, w, *b, **args), lambda x, w, *b: tf().conv1d(x, w, *b, **args),
                       arrays, device, dtype)


# (n, c_in, c_out, size, kernel, stride, padding, output_padding, dilation, groups, bias)
CONV_T2D = [
    (2, 3, 4, (5, 6), (3, 3), 2, 1, 1, 1, 1, True),
    (1, 4, 6, (4, 3), (2, 3), (3, 2), (0, 1), (2, 0), (1, 2), 2, True),
    (2, 6, 3, (3, 5), (4, 2), 1, 2, 0, 2, 3, False),
]


@pytest.mark.parametrize("case", range(len(CONV_T2D)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_transpose2d_matches_torch(device, case, dtype):
    n, c_in, c_out, size, k, stride, padding, out_pad, dilation, groups, bias = CONV_T2D[case]
    arrays = [randn(n, c_in, *size, seed=case), randn(c_in, c_out // groups, *k, seed=case + 1)]
    arrays += [randn(c_out, seed=case + 2)] if bias else []
    args = dict(stride=stride, padding=padding, output_padding=out_pad, groups=groups, dilation=dilation)
    compare_with_torch(lambda x, w, *b: F.conv_transpose2d(x, w, *b, **args),
                       lambda x, w, *b: tf().conv_transpose2d(x, w, *b, **args), arrays, device, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_transpose1d_matches_torch(device, dtype):
    arrays = [randn(2, 4, 7), randn(4, 3, 3, seed=1), randn(6, seed=2)]
    args = dict(stride=3, padding=1, output_padding=2, groups=2, dilation=2)
    compare_with_torch(lambda x, w, b: F.conv_transpose1d(x, w, b, **args),
                       lambda x, w, b: tf().conv_transpose1d(x, w, b, **args), arrays, device, dtype)


def test_conv_gradcheck(device):
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
              [randn(1, 4, 5, 6), randn(2, 2, 2, 3, seed=1), randn(2, seed=2)], device)
    gradcheck(lambda x, w: F.conv1d(x, w, padding="same", dilation=2), [randn(2, 2, 7), randn(3, 2, 2, seed=1)],
              device)


def test_conv_transpose_gradcheck(device):
    gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
              [randn(1, 2, 3, 4), randn(2, 2, 3, 2, seed=1), randn(4, seed=2)], device)
    gradcheck(lambda x, w: F.conv_transpose1d(x, w, stride=3, dilation=2), [randn(2, 2, 4), randn(2, 1, 2, seed=1)],
              device)


def test_conv_unbatched_input_matches_batched(device):
    x, w = cl.randn(3, 6, 6, device=device), cl.randn(2, 3, 3, 3, device=device)
    assert_close(F.conv2d(x, w, padding=1), F.conv2d(x.unsqueeze(0), w, padding=1).squeeze(0).numpy(), "float32")


def test_conv_errors():
    x = cl.zeros(1, 3, 5, 5)
    with pytest.raises(ValueError, match="channels"):
        F.conv2d(x, cl.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="same"):
        F.conv2d(x, cl.zeros(2, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match="padding"):
        F.conv2d(x, cl.zeros(2, 3, 3, 3), padding="full")
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(x, cl.zeros(2, 3, 3, 3), stride=(1, 2, 3))
    with pytest.raises(ValueError, match="4-D"):
        F.conv2d(cl.zeros(5, 5), cl.zeros(2, 3, 3, 3))
    with pytest.raises(TypeError, match="Tensor"):
        F.conv2d(np.zeros((1, 3, 5, 5)), cl.zeros(2, 3, 3, 3))


# ---- pooling ----
# (kernel, stride, padding, dilation, ceil_mode)
MAX_POOL2D = [(2, None, 0, 1, False), ((3, 2), (2, 1), (1, 0), 1, True), (3, 2, 1, 2, False), (2, 3, 1, 1, True)]


@pytest.mark.parametrize("case", range(len(MAX_POOL2D)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_matches_torch(device, case, dtype):
    k, s, p, d, ceil = MAX_POOL2D[case]
    args = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    compare_with_torch(lambda x: F.max_pool2d(x, **args), lambda x: tf().max_pool2d(x, **args),
                       [randn(2, 3, 9, 8, seed=case)], device, dtype)


@pytest.mark.parametrize("ceil", [False, True])
def test_max_pool1d_matches_torch(device, ceil):
    args = dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=ceil)
    compare_with_torch(lambda x: F.max_pool1d(x, **args), lambda x: tf().max_pool1d(x, **args), [randn(2, 3, 12)],
                       device, "float64")


# (kernel, stride, padding, ceil_mode, count_include_pad)
AVG_POOL2D = [(2, None, 0, False, True), ((3, 2), (2, 1), (1, 0), True, True), (3, 2, 1, True, False),
              ((2, 3), 3, (1, 1), False, False)]


@pytest.mark.parametrize("case", range(len(AVG_POOL2D)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool2d_matches_torch(device, case, dtype):
    k, s, p, ceil, cip = AVG_POOL2D[case]
    args = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip)
    compare_with_torch(lambda x: F.avg_pool2d(x, **args), lambda x: tf().avg_pool2d(x, **args),
                       [randn(2, 3, 9, 8, seed=case)], device, dtype)


def test_avg_pool1d_matches_torch(device):
    args = dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)
    compare_with_torch(lambda x: F.avg_pool1d(x, **args), lambda x: tf().avg_pool1d(x, **args), [randn(2, 3, 11)],
                       device, "float64")


@pytest.mark.parametrize("out", [1, 3, (2, 5), (None, 4), (7, 6)])
def test_adaptive_avg_pool2d_matches_torch(device, out):
    compare_with_torch(lambda x: F.adaptive_avg_pool2d(x, out), lambda x: tf().adaptive_avg_pool2d(x, out),
                       [randn(2, 3, 7, 10)], device, "float64")


def test_pool_gradcheck(device):
    x = randn(1, 2, 5, 6)
    gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True), [x], device)
    gradcheck(lambda t: F.avg_pool2d(t, (2, 3), 2, 1, ceil_mode=True, count_include_pad=False), [x], device)
    gradcheck(lambda t: F.adaptive_avg_pool2d(t, (3, 4)), [x], device)
    gradcheck(lambda t: F.max_pool1d(t, 2, dilation=2) + F.avg_pool1d(t, 2, 1)[..., :2], [randn(2, 2, 6)], device)


# ---- padding ----
PADS = [
    ("constant", (1, 2)), ("constant", (2, 0, 1, 3)), ("constant", (-1, 2, 1, -2)), ("constant", (1, 1, 1, 1, 1, 1)),
    ("reflect", (2, 1)), ("reflect", (1, 2, 3, 0)), ("replicate", (3, 1)), ("replicate", (0, 2, 4, 1)),
    ("circular", (2, 3)), ("circular", (1, 0, 2, 3)),
]


@pytest.mark.parametrize("case", range(len(PADS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_matches_torch(device, case, dtype):
    mode, pad = PADS[case]
    # PyTorch pads non-constant modes only on inputs of len(pad)//2 + 1 or + 2 dims
    shape = (2, 3, 5, 4)[:len(pad) // 2 + 2] if mode != "constant" else (2, 3, 5, 4)
    value = 0.5 if mode == "constant" else None
    kwargs = dict(mode=mode, value=value) if value is not None else dict(mode=mode)
    compare_with_torch(lambda x: F.pad(x, pad, **kwargs), lambda x: tf().pad(x, pad, **kwargs),
                       [randn(*shape, seed=case)], device, dtype)


def test_pad_gradcheck(device):
    x = randn(1, 2, 4, 5)
    for mode, pad in [("reflect", (2, 1, 1, 3)), ("replicate", (1, 3, 2, 0)), ("circular", (2, 1, 3, 1)),
                      ("constant", (-1, 2, 1, -1))]:
        gradcheck(lambda t: F.pad(t, pad, mode=mode), [x], device)


def test_pad_errors():
    x = cl.zeros(1, 2, 3)
    with pytest.raises(ValueError, match="mode"):
        F.pad(x, (1, 1), mode="wrap")
    with pytest.raises(ValueError, match="even"):
        F.pad(x, (1, 1, 1))
    with pytest.raises(ValueError, match="crop"):
        F.pad(x, (-2, -2))


# ---- dense, activations ----
def test_linear_matches_torch(device):
    for shape in [(4, 5), (2, 3, 5), (5,)]:
        compare_with_torch(F.linear, tf().linear, [randn(*shape), randn(3, 5, seed=1), randn(3, seed=2)], device,
                           "float64")
    compare_with_torch(F.linear, tf().linear, [randn(4, 5), randn(3, 5, seed=1)], device, "float32")
    with pytest.raises(ValueError, match="linear"):
        F.linear(cl.zeros(4, 6), cl.zeros(3, 5))


ACTIVATIONS = {
    "relu": (lambda x: F.relu(x), lambda x: tf().relu(x)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: tf().leaky_relu(x, 0.2)),
    "sigmoid": (F.sigmoid, lambda x: tf().sigmoid(x)),
    "tanh": (F.tanh, lambda x: tf().tanh(x)),
    "softmax": (lambda x: F.softmax(x, dim=1), lambda x: tf().softmax(x, dim=1)),
    "softmax_last": (lambda x: F.softmax(x, -1), lambda x: tf().softmax(x, -1)),
    "log_softmax": (lambda x: F.log_softmax(x, dim=1), lambda x: tf().log_softmax(x, dim=1)),
    "log_softmax_0": (lambda x: F.log_softmax(x, 0), lambda x: tf().log_softmax(x, 0)),
    "flatten": (lambda x: F.flatten(x, 1), lambda x: x.flatten(1)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_match_torch(device, name, dtype):
    ours, theirs = ACTIVATIONS[name]
    compare_with_torch(ours, theirs, [randn(3, 5, 2) * 3], device, dtype)


def test_leaky_relu_gradient_at_zero_is_the_slope(device):
    torch = torch_or_skip()
    x = np.array([-1.0, 0.0, 2.0])
    compare_with_torch(lambda t: F.leaky_relu(t, 0.1), lambda t: torch.nn.functional.leaky_relu(t, 0.1), [x], device,
                       "float64")


def test_softmax_is_stable_for_large_logits(device):
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1002.0, -1001.0]])
    compare_with_torch(lambda t: F.log_softmax(t, 1), lambda t: tf().log_softmax(t, 1), [x], device, "float64")
    p = F.softmax(cl.tensor(x, device=device), 1).numpy()
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(1), 1.0)


def test_activation_gradcheck(device):
    x = randn(2, 4) * 2
    gradcheck(lambda t: F.softmax(t, 1) * F.log_softmax(t, 0) + F.leaky_relu(t, 0.3) + F.sigmoid(t) * F.tanh(t), [x],
              device)
    gradcheck(lambda t, w, b: F.relu(F.linear(t, w, b)), [x, randn(3, 4, seed=1), randn(3, seed=2)], device)


def test_dropout(device):
    cl.manual_seed(0)
    x = cl.ones(200, 100, dtype="float64", device=device, requires_grad=True)
    y = F.dropout(x, 0.3)
    values = y.numpy()
    kept = values != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(values[kept], 1 / 0.7)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)  # the gradient is the same scaled mask
    assert F.dropout(x, 0.3, training=False) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match="p"):
        F.dropout(x, 1.5)


# ---- batch norm ----
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (5, 3), (3, 3, 7)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_training_matches_torch(device, shape, dtype):
    torch = torch_or_skip()
    c = shape[1]
    rm, rv = np.random.default_rng(1).standard_normal(c), np.random.default_rng(2).uniform(0.5, 2, c)
    ours_rm, ours_rv = cl.tensor(rm.astype(dtype), device=device), cl.tensor(rv.astype(dtype), device=device)
    ref_rm, ref_rv = torch.tensor(rm.astype(dtype)), torch.tensor(rv.astype(dtype))
    compare_with_torch(
        lambda x, w, b: F.batch_norm(x, ours_rm, ours_rv, w, b, training=True, momentum=0.3, eps=1e-3),
        lambda x, w, b: torch.nn.functional.batch_norm(x, ref_rm, ref_rv, w, b, training=True, momentum=0.3,
                                                       eps=1e-3),
        [randn(*shape) * 2 + 1, randn(c, seed=3), randn(c, seed=4)], device, dtype,
        grad_scale=1.0)  # the input gradient cancels to ~1e-3 of its O(1) terms: judge float32 against those
    assert_close(ours_rm, ref_rm, dtype)
    assert_close(ours_rv, ref_rv, dtype)  # updated with the unbiased batch variance


def test_batch_norm_eval_matches_torch(device):
    torch = torch_or_skip()
    rm, rv = randn(3, seed=1), np.random.default_rng(2).uniform(0.5, 2, 3)
    ours_rm, ours_rv = cl.tensor(rm, device=device), cl.tensor(rv, device=device)
    compare_with_torch(lambda x, w, b: F.batch_norm(x, ours_rm, ours_rv, w, b, training=False),
                       lambda x, w, b: torch.nn.functional.batch_norm(x, torch.tensor(rm), torch.tensor(rv), w, b),
                       [randn(2, 3, 4, 4), randn(3, seed=3), randn(3, seed=4)], device, "float64")
    np.testing.assert_array_equal(ours_rm.numpy(), rm)  # eval leaves the running stats alone


def test_batch_norm_gradcheck(device):
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
              [randn(3, 2, 2, 3), randn(2, seed=1), randn(2, seed=2)], device)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="more than 1 value"):
        F.batch_norm(cl.zeros(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(cl.zeros(2, 3), None, None, training=False)


# ---- losses ----
def _targets(shape, classes, seed=0):
    return np.random.default_rng(seed).integers(0, classes, shape)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_matches_torch(device, reduction, dtype):
    torch = torch_or_skip()
    target = _targets((6,), 4)
    compare_with_torch(lambda x: F.cross_entropy(x, target, reduction=reduction),
                       lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(target), reduction=reduction),
                       [randn(6, 4) * 3], device, dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_options_match_torch(device, reduction):
    torch = torch_or_skip()
    target = _targets((3, 4, 2), 5)
    target[0, 0, 0] = target[1, 2, 1] = 2  # a few ignored entries
    weight = np.random.default_rng(3).uniform(0.2, 2, 5)
    kwargs = dict(ignore_index=2, reduction=reduction, label_smoothing=0.15)
    ours_target = cl.tensor(target, dtype="float64", device=device)  # a Tensor of whole numbers works too
    ours_w, ref_w = cl.tensor(weight, device=device), torch.tensor(weight)
    compare_with_torch(lambda x: F.cross_entropy(x, ours_target, ours_w, **kwargs),
                       lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(target), ref_w, **kwargs),
                       [randn(3, 5, 4, 2)], device, "float64")


def test_cross_entropy_probability_targets_match_torch(device):
    torch = torch_or_skip()
    probs = np.random.default_rng(5).dirichlet(np.ones(4), 3)
    compare_with_torch(lambda x: F.cross_entropy(x, cl.tensor(probs, device=device), label_smoothing=0.1),
                       lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(probs), label_smoothing=0.1),
                       [randn(3, 4)], device, "float64")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_torch(device, reduction):
    torch = torch_or_skip()
    target = _targets((5,), 3)
    target[1] = -100
    weight = np.array([0.5, 2.0, 1.0])
    compare_with_torch(
        lambda x: F.nll_loss(x, target, cl.tensor(weight, device=device), reduction=reduction),
        lambda x: torch.nn.functional.nll_loss(x, torch.tensor(target), torch.tensor(weight), reduction=reduction),
        [randn(5, 3)], device, "float64")


def test_cross_entropy_numpy_reference(device):
    x, target = randn(4, 3), np.array([0, 2, 1, 2])
    ref = np.mean([np.log(np.exp(row).sum()) - row[t] for row, t in zip(x, target)])
    assert_close(F.cross_entropy(cl.tensor(x, device=device), target), ref, "float64")


def test_unbatched_cross_entropy(device):
    x = randn(5)
    ref = np.log(np.exp(x).sum()) - x[3]
    assert_close(F.cross_entropy(cl.tensor(x, device=device), np.array(3)), ref, "float64")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(device, reduction):
    compare_with_torch(lambda x, y: F.mse_loss(x, y, reduction=reduction),
                       lambda x, y: tf().mse_loss(x, y, reduction=reduction), [randn(3, 4), randn(3, 4, seed=1)],
                       device, "float64")


def test_loss_gradcheck(device):
    target = np.array([[1, 0], [2, 2]])
    gradcheck(lambda x: F.cross_entropy(x, target, label_smoothing=0.2), [randn(2, 3, 2)], device)
    gradcheck(lambda x: F.nll_loss(F.log_softmax(x, 1), target[0], reduction="sum"), [randn(2, 3)], device)
    gradcheck(lambda x, y: F.mse_loss(x, y), [randn(2, 3), randn(2, 3, seed=1)], device)


def test_loss_errors():
    x = cl.zeros(3, 4)
    with pytest.raises(ValueError, match="out of bounds"):
        F.cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="whole"):
        F.nll_loss(x, cl.tensor([0.5, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(x, x, reduction="avg")
