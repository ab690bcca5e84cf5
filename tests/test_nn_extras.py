"""The everyday functionals added for PyTorch programs: piecewise activations, layer/group norm, channel
dropout, adaptive max pooling and interpolate. Each against a NumPy reference written from the math and
against torch.nn.functional (outputs and gradients); the float64 gradchecks are in test_gradcheck_all.py."""
import math

import numpy as np
import pytest

import convlab as cl
from autograd_helpers import assert_close, compare_with_torch, torch_or_skip

F = cl.nn.functional
DTYPES = ["float64", "float32"]


def tf():
    return torch_or_skip().nn.functional


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- activations ----
def _references():
    relu6 = lambda x: np.minimum(np.maximum(x, 0), 6)  # noqa: E731
    return {
        "relu6": (F.relu6, lambda x: tf().relu6(x), relu6),
        "hardtanh": (lambda x: F.hardtanh(x, -2.0, 0.5), lambda x: tf().hardtanh(x, -2.0, 0.5),
                     lambda x: np.clip(x, -2.0, 0.5)),
        "hardsigmoid": (F.hardsigmoid, lambda x: tf().hardsigmoid(x), lambda x: relu6(x + 3) / 6),
        "hardswish": (F.hardswish, lambda x: tf().hardswish(x), lambda x: x * relu6(x + 3) / 6),
        "elu": (lambda x: F.elu(x, 0.5), lambda x: tf().elu(x, 0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
        "silu": (F.silu, lambda x: tf().silu(x), lambda x: x / (1 + np.exp(-x))),
        "gelu": (F.gelu, lambda x: tf().gelu(x), lambda x: x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))) / 2),
        "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: tf().gelu(x, approximate="tanh"),
                      lambda x: x / 2 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
        "logsigmoid": (F.logsigmoid, lambda x: tf().logsigmoid(x), lambda x: -np.logaddexp(0, -x)),
        "softplus": (lambda x: F.softplus(x, 2.0, 5.0), lambda x: tf().softplus(x, 2.0, 5.0),
                     lambda x: np.where(2 * x > 5, x, np.logaddexp(0, 2 * x) / 2)),
        "mish": (F.mish, lambda x: tf().mish(x), lambda x: x * np.tanh(np.logaddexp(0, x))),
        "prelu": (lambda x: F.prelu(x, cl.tensor([-0.3], dtype=x.dtype, device=x.device)),
                  lambda x: tf().prelu(x, torch_or_skip().tensor([-0.3], dtype=x.dtype)),
                  lambda x: np.where(x > 0, x, -0.3 * x)),
    }


ACTIVATIONS = _references()


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_matches_numpy_and_torch(device, name, dtype):
    ours, theirs, reference = ACTIVATIONS[name]
    x = randn(4, 3, 5) * 4
    assert_close(ours(cl.tensor(x.astype(dtype), device=device)), reference(x).astype(dtype), dtype)
    compare_with_torch(ours, theirs, [x], device, dtype)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_gradients_at_the_joins_are_torchs(device, name):
    """At x = -3, 0, 3, 6 (and hardtanh's ends) the one-sided derivatives differ; PyTorch picks one."""
    ours, theirs, _ = ACTIVATIONS[name]
    compare_with_torch(ours, theirs, [np.array([-3.0, -2.0, 0.0, 0.5, 3.0, 6.0, -700.0, 700.0])], device, "float64")


def test_activation_errors_and_input_unchanged():
    with pytest.raises(ValueError, match=r"min_val \(2.0\) must not be greater than max_val \(1.0\)"):
        F.hardtanh(cl.zeros(2), 2.0, 1.0)
    with pytest.raises(TypeError, match="hardswish: input must be a convlab Tensor, got ndarray"):
        F.hardswish(np.zeros(2))
    with pytest.raises(ValueError, match=r"prelu: weight must hold 1 value or one per channel \(3\), got shape"):
        F.prelu(cl.zeros(2, 3), cl.zeros(2))
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh', got 'fast'"):
        F.gelu(cl.zeros(2), approximate="fast")
    x = cl.tensor([-4.0, 1.0, 7.0])
    F.relu6(x, inplace=True)
    np.testing.assert_array_equal(x.numpy(), [-4.0, 1.0, 7.0])


# ---- layer norm and group norm ----
def standardize(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize("shape, normalized", [((4, 6), 6), ((2, 3, 4, 5), (4, 5)), ((1, 7), [7]), ((3,), 3)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_matches_numpy_and_torch(device, shape, normalized, dtype):
    trailing = (normalized,) if isinstance(normalized, int) else tuple(normalized)
    x, w, b = randn(*shape) * 3 + 1, randn(*trailing, seed=1), randn(*trailing, seed=2)
    axes = tuple(range(len(shape) - len(trailing), len(shape)))
    out = F.layer_norm(cl.tensor(x.astype(dtype), device=device), normalized,
                       cl.tensor(w.astype(dtype), device=device), cl.tensor(b.astype(dtype), device=device))
    assert_close(out, standardize(x, axes, 1e-5) * w + b, dtype)
    compare_with_torch(lambda x, w, b: F.layer_norm(x, normalized, w, b, 1e-3),
                       lambda x, w, b: tf().layer_norm(x, trailing, w, b, 1e-3), [x, w, b], device, dtype,
                       grad_scale=1.0)
    compare_with_torch(lambda x: F.layer_norm(x, normalized), lambda x: tf().layer_norm(x, trailing), [x], device,
                       dtype, grad_scale=1.0)


@pytest.mark.parametrize("shape, groups", [((2, 6, 3, 4), 3), ((3, 4, 5), 4), ((1, 4, 2, 2), 1), ((5, 4), 2)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm_matches_numpy_and_torch(device, shape, groups, dtype):
    c = shape[1]
    x, w, b = randn(*shape) * 2 - 1, randn(c, seed=1), randn(c, seed=2)
    grouped = x.reshape(shape[0], groups, -1)
    expected = standardize(grouped, (2,), 1e-5).reshape(shape) * w.reshape((1, c) + (1,) * (len(shape) - 2)) \
        + b.reshape((1, c) + (1,) * (len(shape) - 2))
    out = F.group_norm(cl.tensor(x.astype(dtype), device=device), groups,
                       cl.tensor(w.astype(dtype), device=device), cl.tensor(b.astype(dtype), device=device))
    assert_close(out, expected, dtype)
    compare_with_torch(lambda x, w, b: F.group_norm(x, groups, w, b), lambda x, w, b: tf().group_norm(x, groups, w, b),
                       [x, w, b], device, dtype, grad_scale=1.0)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 7)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_instance_norm_matches_numpy_and_torch(device, shape, dtype):
    c = shape[1]
    x, w, b = randn(*shape) * 2 + 3, randn(c, seed=1), randn(c, seed=2)
    affine_shape = (1, c) + (1,) * (len(shape) - 2)
    expected = standardize(x, tuple(range(2, len(shape))), 1e-5) * w.reshape(affine_shape) + b.reshape(affine_shape)
    out = F.instance_norm(cl.tensor(x.astype(dtype), device=device), weight=cl.tensor(w.astype(dtype), device=device),
                          bias=cl.tensor(b.astype(dtype), device=device))
    assert_close(out, expected, dtype)
    compare_with_torch(lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
                       lambda x, w, b: tf().instance_norm(x, weight=w, bias=b), [x, w, b], device, dtype, grad_scale=1.0)


def test_norm_errors():
    with pytest.raises(ValueError, match=r"normalized_shape \(4,\) does not match the trailing dims of input shape "
                                         r".*2, 3"):
        F.layer_norm(cl.zeros(2, 3), 4)
    with pytest.raises(ValueError, match=r"layer_norm: weight must have shape \(3,\), got .*2"):
        F.layer_norm(cl.zeros(2, 3), 3, cl.ones(2))
    with pytest.raises(ValueError, match=r"C divisible by num_groups \(4\), got shape .*2, 6, 3"):
        F.group_norm(cl.zeros(2, 6, 3), 4)
    with pytest.raises(ValueError, match="running statistics .* are not supported"):
        F.instance_norm(cl.zeros(2, 3, 4), running_mean=cl.zeros(3))
    with pytest.raises(ValueError, match="track_running_stats=True is not supported"):
        cl.nn.InstanceNorm2d(3, track_running_stats=True)
    with pytest.raises(ValueError, match="InstanceNorm2d: input has 2 channels but num_features is 3"):
        cl.nn.InstanceNorm2d(3)(cl.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"group_norm: bias must have shape \(6,\)"):
        F.group_norm(cl.zeros(2, 6, 3), 3, None, cl.zeros(3))


# ---- channel dropout ----
@pytest.mark.parametrize("fn, shape", [(F.dropout2d, (40, 30, 3, 2)), (F.dropout1d, (40, 30, 5)),
                                       (F.dropout1d, (300, 4)), (F.dropout2d, (40, 30, 5))])
def test_channel_dropout_zeroes_whole_channels(device, fn, shape):
    cl.manual_seed(0)
    x = cl.ones(*shape, dtype="float64", device=device, requires_grad=True)
    y = fn(x, 0.3)
    values = y.numpy()
    per_channel = values.reshape(shape[:2] + (-1,)) if len(shape) > 2 else values.reshape(shape + (1,))
    assert np.all(per_channel == per_channel[..., :1])  # one draw per (n, c)
    kept = per_channel[..., 0] != 0
    assert abs(kept.mean() - 0.7) < 0.05
    np.testing.assert_allclose(per_channel[kept], 1 / 0.7)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)
    assert fn(x, 0.3, training=False) is x


def test_channel_dropout_errors():
    with pytest.raises(ValueError, match=r"dropout1d: expected a 2-D \(unbatched\) or 3-D \(batched\) input, got "
                                         r"shape .*2, 3, 4, 5"):
        F.dropout1d(cl.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="dropout2d: p must be in"):
        F.dropout2d(cl.zeros(2, 3, 4, 5), 1.5)


# ---- adaptive max pooling ----
def adaptive_max_pool_reference(x, out):
    """Window i along an axis of length n is [floor(i n / out), ceil((i + 1) n / out))."""
    windows = [[(i * n // o, math.ceil((i + 1) * n / o)) for i in range(o)] for n, o in zip(x.shape[2:], out)]
    y = np.empty(x.shape[:2] + tuple(out))
    for index in np.ndindex(*out):
        region = tuple(slice(*windows[a][i]) for a, i in enumerate(index))
        y[(...,) + index] = x[(slice(None), slice(None)) + region].reshape(x.shape[:2] + (-1,)).max(-1)
    return y


@pytest.mark.parametrize("shape, out", [((2, 3, 7, 5), (3, 2)), ((1, 2, 5, 5), 3), ((2, 2, 6, 4), (2, 4)),
                                        ((1, 1, 3, 4), (5, 6)), ((2, 3, 8, 9), 1), ((2, 3, 7, 6), (None, 4)),
                                        ((3, 5, 6), (2, 3))])  # the last: unbatched
@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_max_pool2d_matches_numpy_and_torch(device, shape, out, dtype):
    x = randn(*shape)
    batched = x if len(shape) == 4 else x[None]
    sizes = [out, out] if isinstance(out, int) else [batched.shape[2 + i] if o is None else o for i, o in enumerate(out)]
    expected = adaptive_max_pool_reference(batched, sizes)
    assert_close(F.adaptive_max_pool2d(cl.tensor(x.astype(dtype), device=device), out),
                 expected if len(shape) == 4 else expected[0], dtype)
    compare_with_torch(lambda t: F.adaptive_max_pool2d(t, out), lambda t: tf().adaptive_max_pool2d(t, out), [x],
                       device, dtype)


def test_adaptive_max_pool_ties_send_the_gradient_to_the_first_maximum(device):
    x = np.maximum(randn(2, 2, 7, 5), 0)  # after ReLU: windows of zeros, where every element ties
    x[0, 0] = 0.0
    compare_with_torch(lambda t: F.adaptive_max_pool2d(t, (3, 2)), lambda t: tf().adaptive_max_pool2d(t, (3, 2)), [x],
                       device, "float64")
    compare_with_torch(lambda t: F.adaptive_max_pool1d(t, 4), lambda t: tf().adaptive_max_pool1d(t, 4),
                       [np.maximum(randn(2, 3, 9), 0)], device, "float64")


def test_adaptive_max_pool_errors():
    with pytest.raises(ValueError, match="return_indices=True is not supported"):
        F.adaptive_max_pool2d(cl.zeros(1, 1, 4, 4), 2, return_indices=True)
    with pytest.raises(ValueError, match="output_size must be positive, got 0"):
        F.adaptive_max_pool2d(cl.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match="output_size must be an int or a tuple of 2 ints, got"):
        F.adaptive_max_pool2d(cl.zeros(1, 1, 4, 4), (1, 2, 3))


# ---- interpolate ----
def linear_reference(x, axis, out, align_corners, scale):
    """Each output position's source coordinate (PyTorch's rule), then the two neighbours' weighted sum."""
    n = x.shape[axis]
    y = np.zeros(x.shape[:axis] + (out,) + x.shape[axis + 1:])
    for j in range(out):
        if n == out:
            src = float(j)
        elif align_corners:
            src = j * (n - 1) / (out - 1) if out > 1 else 0.0
        else:
            src = max((j + 0.5) * (n / out if scale is None else scale) - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n - 1)
        i1 = min(i0 + 1, n - 1)
        w1 = min(max(src - i0, 0.0), 1.0)
        y[(slice(None),) * axis + (j,)] = (1 - w1) * np.take(x, i0, axis) + w1 * np.take(x, i1, axis)
    return y


def nearest_reference(x, axis, out, scale, exact=False):
    n = x.shape[axis]
    ratio = n / out if scale is None else scale
    src = [min(int(math.floor((j + (0.5 if exact else 0.0)) * ratio)), n - 1) for j in range(out)]
    return np.take(x, src, axis)


INTERPOLATIONS = [
    dict(scale_factor=2),
    dict(scale_factor=2, mode="bilinear"),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(size=(5, 9)),
    dict(size=(5, 9), mode="bilinear"),
    dict(size=(2, 3), mode="bilinear", align_corners=True),
    dict(size=(1, 1), mode="bilinear", align_corners=True),
    dict(scale_factor=(0.5, 1.5), mode="bilinear"),
    dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True),
    dict(scale_factor=0.6),
    dict(size=(7, 4), mode="nearest-exact"),
    dict(size=(4, 6)),  # the input's own size: a copy
]


@pytest.mark.parametrize("case", range(len(INTERPOLATIONS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_interpolate_2d_matches_numpy_and_torch(device, case, dtype):
    options = INTERPOLATIONS[case]
    x = randn(2, 3, 4, 6)
    mode = options.get("mode", "nearest")
    if "size" in options:
        sizes, scales = options["size"], (None, None)
    else:
        factors = options["scale_factor"] if isinstance(options["scale_factor"], tuple) else (options["scale_factor"],) * 2
        sizes = tuple(int(math.floor(n * f)) for n, f in zip(x.shape[2:], factors))
        scales = (None, None) if options.get("recompute_scale_factor") else tuple(1 / f for f in factors)
    expected = x
    for axis, (out, scale) in enumerate(zip(sizes, scales), start=2):
        if mode == "bilinear":
            expected = linear_reference(expected, axis, out, options.get("align_corners"), scale)
        else:
            expected = nearest_reference(expected, axis, out, scale, exact=mode == "nearest-exact")
    assert_close(F.interpolate(cl.tensor(x.astype(dtype), device=device), **options), expected.astype(dtype), dtype)
    compare_with_torch(lambda t: F.interpolate(t, **options), lambda t: tf().interpolate(t, **options), [x], device,
                       dtype)


@pytest.mark.parametrize("options", [dict(scale_factor=3, mode="linear"), dict(size=4, mode="linear",
                                                                                align_corners=True),
                                     dict(size=11), dict(scale_factor=0.5, mode="linear")])
def test_interpolate_1d_matches_torch(device, options):
    compare_with_torch(lambda t: F.interpolate(t, **options), lambda t: tf().interpolate(t, **options),
                       [randn(2, 3, 7)], device, "float64")


def test_interpolate_nearest_with_awkward_float32_ratios_matches_torch(device):
    # PyTorch computes nearest source indices in float32; sizes whose ratio rounds near an integer
    for n, out in [(3, 9), (5, 3), (7, 10), (10, 7), (9, 12), (6, 9), (49, 51)]:
        compare_with_torch(lambda t: F.interpolate(t, size=out), lambda t: tf().interpolate(t, size=out),
                           [randn(1, 1, n)], device, "float64")


def test_interpolate_errors():
    x = cl.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(x, size=2, scale_factor=2)
    with pytest.raises(ValueError, match="mode must be one of .* got 'bicubic'"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="mode 'linear' needs a 3-D input, got shape"):
        F.interpolate(x, scale_factor=2, mode="linear")
    with pytest.raises(ValueError, match="align_corners can only be set with mode 'linear' or 'bilinear'"):
        F.interpolate(x, scale_factor=2, align_corners=False)
    with pytest.raises(ValueError, match=r"expected a 3-D \(N, C, L\) or 4-D \(N, C, H, W\) input, got shape .*4, 4"):
        F.interpolate(cl.zeros(4, 4), scale_factor=2)
    with pytest.raises(ValueError, match="the output size must be positive"):
        F.interpolate(x, scale_factor=0.1)
    with pytest.raises(ValueError, match="antialias"):
        F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True)


# ---- losses ----
def losses():
    def bce(x, t, w=None):
        return -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100)) * (1 if w is None else w)

    def smooth_l1(d, beta):
        return np.where(np.abs(d) < beta, 0.5 * d * d / beta, np.abs(d) - 0.5 * beta)

    return {
        "l1_loss": (lambda x, t, r: F.l1_loss(x, t, reduction=r), lambda x, t, r: tf().l1_loss(x, t, reduction=r),
                    lambda x, t: np.abs(x - t), False),
        "smooth_l1_loss": (lambda x, t, r: F.smooth_l1_loss(x, t, reduction=r, beta=0.5),
                           lambda x, t, r: tf().smooth_l1_loss(x, t, reduction=r, beta=0.5),
                           lambda x, t: smooth_l1(x - t, 0.5), False),
        "smooth_l1_loss_beta0": (lambda x, t, r: F.smooth_l1_loss(x, t, reduction=r, beta=0.0),
                                 lambda x, t, r: tf().smooth_l1_loss(x, t, reduction=r, beta=0.0),
                                 lambda x, t: np.abs(x - t), False),
        "huber_loss": (lambda x, t, r: F.huber_loss(x, t, reduction=r, delta=2.0),
                       lambda x, t, r: tf().huber_loss(x, t, reduction=r, delta=2.0),
                       lambda x, t: 2.0 * smooth_l1(x - t, 2.0), False),
        "binary_cross_entropy": (lambda x, t, r: F.binary_cross_entropy(x.sigmoid(), t, reduction=r),
                                 lambda x, t, r: tf().binary_cross_entropy(x.sigmoid(), t, reduction=r),
                                 lambda x, t: bce(1 / (1 + np.exp(-x)), t), True),
        "binary_cross_entropy_with_logits": (
            lambda x, t, r: F.binary_cross_entropy_with_logits(x, t, reduction=r),
            lambda x, t, r: tf().binary_cross_entropy_with_logits(x, t, reduction=r),
            lambda x, t: bce(1 / (1 + np.exp(-x)), t), True),
    }


@pytest.mark.parametrize("name", sorted(losses()))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_matches_numpy_and_torch(device, name, reduction, dtype):
    ours, theirs, reference, probability_target = losses()[name]
    x = randn(4, 3, 2) * 3
    t = np.random.default_rng(1).uniform(0, 1, x.shape) if probability_target else randn(4, 3, 2, seed=1) * 3
    t[0, 0, 0] = x[0, 0, 0] if not probability_target else 1.0  # a zero difference / a hard label
    expected = reference(x, t)
    expected = expected.mean() if reduction == "mean" else expected.sum() if reduction == "sum" else expected
    target = cl.tensor(t.astype(dtype), device=device)
    assert_close(ours(cl.tensor(x.astype(dtype), device=device), target, reduction), np.asarray(expected, dtype), dtype)
    torch = torch_or_skip()
    compare_with_torch(lambda x: ours(x, target, reduction), lambda x: theirs(x, torch.tensor(t.astype(dtype)), reduction),
                       [x], device, dtype)


def test_bce_with_logits_weights_and_the_gradient_at_zero_logits(device):
    torch = torch_or_skip()
    x = np.array([[0.0, -3.0, 40.0], [-800.0, 2.0, 0.0]])  # zero logits: an untrained head's output
    t = np.array([[1.0, 0.0, 1.0], [0.0, 0.3, 0.0]])
    w, pw = np.array([0.5, 2.0, 1.0]), np.array([3.0, 1.0, 0.5])
    compare_with_torch(  # PyTorch differentiates with respect to the input only
        lambda x: F.binary_cross_entropy_with_logits(x, cl.tensor(t, device=device), cl.tensor(w, device=device),
                                                     pos_weight=cl.tensor(pw, device=device)),
        lambda x: tf().binary_cross_entropy_with_logits(x, torch.tensor(t), torch.tensor(w), pos_weight=torch.tensor(pw)),
        [x], device, "float64")
    compare_with_torch(lambda p: F.binary_cross_entropy(p, cl.tensor(t, device=device), reduction="sum"),
                       lambda p: tf().binary_cross_entropy(p, torch.tensor(t), reduction="sum"),
                       [np.array([[0.5, 0.1, 0.999], [1e-3, 0.7, 0.2]])], device, "float64")
    assert np.isfinite(F.binary_cross_entropy(cl.tensor([0.0, 1.0]), cl.tensor([1.0, 0.0])).item())  # log clamped


def test_loss_modules_match_torch(device):
    torch = torch_or_skip()
    x, t = randn(3, 4), np.random.default_rng(1).uniform(0, 1, (3, 4))
    w = np.array([1.0, 2.0, 0.5, 1.5])
    pairs = [(cl.nn.L1Loss(), torch.nn.L1Loss()), (cl.nn.SmoothL1Loss(beta=0.3), torch.nn.SmoothL1Loss(beta=0.3)),
             (cl.nn.HuberLoss(reduction="sum", delta=0.4), torch.nn.HuberLoss(reduction="sum", delta=0.4)),
             (cl.nn.BCEWithLogitsLoss(pos_weight=cl.tensor(w, device=device)),
              torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w))),
             (cl.nn.Sequential(cl.nn.Sigmoid(), cl.nn.BCELoss(cl.tensor(w, device=device))), None)]
    for ours, theirs in pairs:
        if theirs is None:
            theirs = lambda x, t: torch.nn.BCELoss(torch.tensor(w))(x.sigmoid(), t)  # noqa: E731
            got = ours[1](ours[0](cl.tensor(x, device=device)), cl.tensor(t, device=device))
        else:
            got = ours(cl.tensor(x, device=device), cl.tensor(t, device=device))
            assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
        assert_close(got, theirs(torch.tensor(x), torch.tensor(t)), "float64")


def test_loss_errors():
    with pytest.raises(ValueError, match=r"target must be a Tensor of the input's shape .*3.*got .*2"):
        F.binary_cross_entropy_with_logits(cl.zeros(3), cl.zeros(2))
    with pytest.raises(ValueError, match="all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(cl.tensor([0.5, 1.5]), cl.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be >= 0, got -1"):
        F.smooth_l1_loss(cl.zeros(2), cl.zeros(2), beta=-1)
    with pytest.raises(ValueError, match="reduction"):
        F.l1_loss(cl.zeros(2), cl.zeros(2), reduction="avg")


# ---- embedding and one_hot ----
def long(values):
    """An int64 index tensor (built from the NDArray, which holds int64 on every device)."""
    return cl.Tensor(cl.NDArray.from_numpy(np.asarray(values, dtype=np.int64)))


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_numpy_and_torch(padding_idx):
    torch = torch_or_skip()
    weight = randn(6, 4)
    index = np.array([[0, 2, 5], [2, 2, 1]])
    ours = cl.tensor(weight, requires_grad=True)
    out = F.embedding(long(index), ours, padding_idx)
    np.testing.assert_array_equal(out.numpy(), weight[index])  # rows looked up, the padding row included
    ref_weight = torch.tensor(weight, requires_grad=True)
    ref = tf().embedding(torch.tensor(index), ref_weight, padding_idx)
    g = randn(*ref.shape, seed=3)
    out.backward(cl.tensor(g))
    ref.backward(torch.tensor(g))
    assert_close(ours.grad, ref_weight.grad, "float64")  # repeated rows add up; the padding row gets none


def test_embedding_module_matches_torch():
    torch = torch_or_skip()
    cl.manual_seed(0)
    ours, theirs = cl.nn.Embedding(10, 3, padding_idx=1), torch.nn.Embedding(10, 3, padding_idx=1)
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
    w = ours.weight.numpy()
    assert np.all(w[1] == 0) and abs(w[np.arange(10) != 1].std() - 1) < 0.5  # N(0, 1) rows, padding zeroed
    pretrained = cl.nn.Embedding.from_pretrained(cl.tensor(randn(5, 2)))
    assert not pretrained.weight.requires_grad and pretrained(long([4, 0])).shape == (2, 2)
    with pytest.raises(ValueError, match="padding_idx must be within num_embeddings \\(10\\), got 10"):
        cl.nn.Embedding(10, 3, padding_idx=10)


def test_embedding_errors():
    w = cl.zeros(4, 2)
    with pytest.raises(TypeError, match="embedding: input must be an integer tensor of indices, got .*float32"):
        F.embedding(cl.zeros(3), w)
    with pytest.raises(IndexError, match="embedding: index 4 is out of range for 4 embeddings"):
        F.embedding(long([0, 4]), w)
    with pytest.raises(ValueError, match="max_norm, scale_grad_by_freq and sparse are not supported"):
        F.embedding(long([0]), w, max_norm=1.0)


def test_one_hot_matches_torch():
    torch = torch_or_skip()
    index = np.array([[0, 3], [2, 2]])
    for classes in (-1, 5):
        ours = F.one_hot(long(index), classes)
        ref = tf().one_hot(torch.tensor(index), classes)
        assert ours.numpy().dtype == np.int64
        np.testing.assert_array_equal(ours.numpy(), ref.numpy())
    with pytest.raises(ValueError, match="class values must be smaller than num_classes \\(3\\), got 3"):
        F.one_hot(long([3]), 3)
    with pytest.raises(ValueError, match="class values must be non-negative, got -1"):
        F.one_hot(long([-1]))
    with pytest.raises(TypeError, match="one_hot: input must be an integer tensor"):
        F.one_hot(cl.zeros(2))
