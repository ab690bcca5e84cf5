"""The fused batch-norm kernels (convlab._C.batch_norm_forward / batch_norm_backward) and F.batch_norm built
on them: against NumPy references written from the definition (float64 arithmetic), against PyTorch's
F.batch_norm (outputs, running statistics, gradients) and by float64 finite differences.

Shapes: 2-D (N, C), 3-D and 4-D inputs, batch 1 with spatial > 1, odd channel counts, spatial size 1."""
import numpy as np
import pytest

import convlab as cl
import convlab.nn.functional as F
from convlab import NDArray, _C

from autograd_helpers import gradcheck

TOL = {"float32": 1e-5, "float64": 1e-12}
DTYPES = ["float32", "float64"]
SHAPES = [(4, 3), (7, 5), (1, 3, 9), (3, 1, 5), (2, 5, 7), (1, 4, 3, 5), (5, 3, 2, 3), (2, 7, 1, 1),
          (3, 2, 4, 1), (6, 9, 5, 4)]
# The CPU kernels' two forms (batch_norm.cpp): channels of S >= 128 as rows (S = 323, 128; 131 channels: blocks
# of 64, 64 and 3), shorter ones in blocks of lanes (S = 127; 70 channels of 2x2 with a partial last block;
# BatchNorm1d's S = 1 over several blocks), and arrays large enough (>= 32768 elements) for the parallel loop
# in both forms.
BLOCK_SHAPES = [(3, 2, 17, 19), (3, 5, 128), (3, 5, 127), (3, 70, 2, 2), (5, 300), (4, 300, 5, 7),
                (2, 33, 1, 1025), (9, 515, 4, 4), (2, 131, 130)]


def nd(a, device):
    return NDArray.from_numpy(np.ascontiguousarray(a), device=device)


def close(actual, expected, dtype, scale=None):
    actual = actual.numpy() if hasattr(actual, "numpy") else np.asarray(actual)
    rtol = TOL[dtype]
    scale = float(np.max(np.abs(expected))) if scale is None else scale
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-3))


def case(shape, dtype, seed):
    """x with a channel-dependent offset and spread (so mean and variance matter), weight, bias, running stats."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    view = (1, c) + (1,) * (len(shape) - 2)
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3, c).reshape(view) + rng.uniform(-4, 4, c).reshape(view)
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.uniform(0.2, 3, c)
    return [a.astype(dtype) for a in (x, w, b, rm, rv)]


# ---- references from the definition, in float64 ----------------------------------------------------------

def ref_forward(x, w, b, mean, var, eps):
    x = x.astype(np.float64)
    view = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(view)) / np.sqrt(var.astype(np.float64).reshape(view) + eps)
    if w is not None:
        y = y * w.astype(np.float64).reshape(view)
    return y if b is None else y + b.astype(np.float64).reshape(view)


def ref_stats(x):
    axes = (0,) + tuple(range(2, x.ndim))
    x = x.astype(np.float64)
    return x.mean(axes), x.var(axes)


def ref_backward(x, gy, w, mean, var, eps, training):
    """gb = sum(gy), gw = sum(gy * xhat), gx = invstd * w * (gy - mean(gy) - xhat * mean(gy * xhat)) when the
    statistics are x's own, invstd * w * gy when they are constants."""
    axes = (0,) + tuple(range(2, x.ndim))
    view = (1, -1) + (1,) * (x.ndim - 2)
    x, gy = x.astype(np.float64), gy.astype(np.float64)
    invstd = 1 / np.sqrt(var.astype(np.float64) + eps)
    xhat = (x - mean.astype(np.float64).reshape(view)) * invstd.reshape(view)
    gb, gw = gy.sum(axes), (gy * xhat).sum(axes)
    g = gy
    if training:
        g = gy - gy.mean(axes, keepdims=True) - xhat * (gy * xhat).mean(axes, keepdims=True)
    scale = invstd if w is None else invstd * w.astype(np.float64)
    return g * scale.reshape(view), gw, gb


# ---- the kernels -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + BLOCK_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_kernels_match_definition(device, dtype, shape, affine):
    eps = 1e-5
    x, w, b, rm, rv = case(shape, dtype, seed=len(shape) * 100 + shape[1])
    w, b = (w, b) if affine else (None, None)
    dw, db = (nd(w, device), nd(b, device)) if affine else (None, None)
    gy = np.random.default_rng(1).standard_normal(shape).astype(dtype)

    y, mean, var = _C.batch_norm_forward(nd(x, device), None, None, dw, db, True, eps)
    m, v = ref_stats(x)
    close(mean, m, dtype, scale=float(np.max(np.abs(m)) + np.sqrt(np.max(v))))
    close(var, v, dtype)
    close(y, ref_forward(x, w, b, m, v, eps), dtype)
    gx, gw, gb = _C.batch_norm_backward(nd(x, device), nd(gy, device), mean, var, dw, True, eps)
    want = ref_backward(x, gy, w, mean.numpy(), var.numpy(), eps, True)
    # gx's terms cancel (to 0 for N * S = 2): judge it against the size of its terms, gy * invstd * w.
    terms = float(np.max(np.abs(gy)) * np.max(np.abs(1 if w is None else w) / np.sqrt(v + eps)))
    close(gx, want[0], dtype, scale=terms)
    close(gw, want[1], dtype)
    close(gb, want[2], dtype)

    y, mean, var = _C.batch_norm_forward(nd(x, device), nd(rm, device), nd(rv, device), dw, db, False, eps)
    np.testing.assert_array_equal(mean.numpy(), rm)
    np.testing.assert_array_equal(var.numpy(), rv)
    close(y, ref_forward(x, w, b, rm, rv, eps), dtype)
    gx, gw, gb = _C.batch_norm_backward(nd(x, device), nd(gy, device), mean, var, dw, False, eps)
    for got, want in zip((gx, gw, gb), ref_backward(x, gy, w, rm, rv, eps, False)):
        close(got, want, dtype)


@pytest.mark.parametrize("shape", [(3, 70, 2, 2), (64, 20, 5, 7), (2, 33, 1, 1025), (2, 131, 130)])
def test_kernels_do_not_depend_on_thread_count(shape):
    """The block size follows the thread count (short channels: 18 or 9 channels of 2x2, 5 or 3 of 5x7; rows:
    33 or 17 channels of 1025, 64 of 130 with 1 and 2 threads alike); each channel's sums must not: the same
    bits with 1 and 2 threads."""
    x, w, b, _, _ = case(shape, "float32", seed=5)
    gy = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    threads, results = cl.get_num_threads(), []
    try:
        for n in (1, 2):
            cl.set_num_threads(n)
            y, mean, var = _C.batch_norm_forward(nd(x, "cpu"), None, None, nd(w, "cpu"), nd(b, "cpu"), True, 1e-5)
            grads = _C.batch_norm_backward(nd(x, "cpu"), nd(gy, "cpu"), mean, var, nd(w, "cpu"), True, 1e-5)
            results.append([a.numpy() for a in (y, mean, var, *grads)])
    finally:
        cl.set_num_threads(threads)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_eval_gradient_ignores_non_finite_input(device):
    """Eval's gx = invstd * w * gy has no x in it: NaN and inf in x stay out of gx (as in PyTorch), on short
    and long channels alike."""
    for shape in [(3, 70, 2, 2), (2, 3, 17, 19)]:
        x, w, _, rm, rv = case(shape, "float32", seed=7)
        x[0, 1].flat[0], x[1, 2].flat[-1] = np.nan, np.inf
        gy = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
        gx, _, _ = _C.batch_norm_backward(nd(x, device), nd(gy, device), nd(rm, device), nd(rv, device),
                                          nd(w, device), False, 1e-5)
        view = (1, -1) + (1,) * (len(shape) - 2)
        close(gx, gy * (w / np.sqrt(rv.astype(np.float64) + 1e-5)).reshape(view), "float32")


def test_large_offset_variance_is_accurate(device):
    """Two passes (mean, then squares about it): a channel at 1e4 +- 1e-2 keeps its variance in float32,
    where E[x^2] - mean^2 would lose every digit."""
    x = (1e4 + 1e-2 * np.random.default_rng(0).standard_normal((16, 2, 64))).astype(np.float32)
    _, mean, var = _C.batch_norm_forward(nd(x, device), None, None, None, None, True, 1e-5)
    centred = x.astype(np.float64) - x.astype(np.float64).mean((0, 2), keepdims=True)
    np.testing.assert_allclose(var.numpy(), (centred ** 2).mean((0, 2)), rtol=1e-4)


def test_non_contiguous_input(device):
    x = np.random.default_rng(0).standard_normal((5, 4, 6)).astype(np.float64)
    xt = nd(x, device).permute([0, 2, 1])  # (5, 6, 4): channel axis of size 6, not contiguous
    y, mean, var = _C.batch_norm_forward(xt, None, None, None, None, True, 1e-5)
    xt_np = x.transpose(0, 2, 1)
    m, v = ref_stats(xt_np)
    close(y, ref_forward(xt_np, None, None, m, v, 1e-5), "float64")


# ---- F.batch_norm against PyTorch -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_functional_matches_torch(device, dtype, shape, training, affine):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    x, w, b, rm, rv = case(shape, dtype, seed=shape[0] * 10 + len(shape))
    gy = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    ours = {k: cl.tensor(a, device=device, requires_grad=affine or k == "x")
            for k, a in (("x", x), ("w", w), ("b", b))}
    theirs = {k: torch.tensor(a, requires_grad=affine or k == "x") for k, a in (("x", x), ("w", w), ("b", b))}
    crm, crv = cl.tensor(rm, device=device), cl.tensor(rv, device=device)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    y = F.batch_norm(ours["x"], crm, crv, ours["w"] if affine else None, ours["b"] if affine else None,
                     training=training, momentum=0.3, eps=1e-4)
    ty = tF.batch_norm(theirs["x"], trm, trv, theirs["w"] if affine else None, theirs["b"] if affine else None,
                       training=training, momentum=0.3, eps=1e-4)
    close(y, ty.detach().numpy(), dtype)
    close(crm, trm.numpy(), dtype)
    close(crv, trv.numpy(), dtype)
    y.backward(cl.tensor(gy, device=device))
    ty.backward(torch.tensor(gy))
    for k in ("x", "w", "b") if affine else ("x",):
        close(ours[k].grad, theirs[k].grad.numpy(), dtype)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (1, 2, 5), (2, 3, 2, 3)])
def test_gradcheck(device, training, shape):
    _, _, _, rm, rv = case(shape, "float64", seed=3)
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape[1]), rng.standard_normal(shape[1])]

    def fn(x, w, b):
        stats = [cl.tensor(a, dtype="float64", device=device) for a in (rm, rv)]
        return F.batch_norm(x, *stats, w, b, training=training, eps=1e-3)

    gradcheck(fn, arrays, device=device)


# ---- bad input --------------------------------------------------------------------------------------------

def test_bad_input_names_argument():
    x = nd(np.zeros((2, 3, 4), np.float32), "cpu")
    c3 = nd(np.ones(3, np.float32), "cpu")
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\), got \(4,\)"):
        _C.batch_norm_forward(x, None, None, nd(np.ones(4, np.float32), "cpu"), None, True, 1e-5)
    with pytest.raises(TypeError, match="bias is float64"):
        _C.batch_norm_forward(x, None, None, None, nd(np.ones(3), "cpu"), True, 1e-5)
    with pytest.raises(ValueError, match=r"running_var must have shape \(3,\), got \(3, 1\)"):
        _C.batch_norm_forward(x, c3, nd(np.ones((3, 1), np.float32), "cpu"), None, None, False, 1e-5)
    with pytest.raises(ValueError, match="running_mean and running_var are required"):
        _C.batch_norm_forward(x, c3, None, None, None, False, 1e-5)
    with pytest.raises(ValueError, match=r"at least 2 dims .* got shape \(3,\)"):
        _C.batch_norm_forward(c3, None, None, None, None, True, 1e-5)
    with pytest.raises(ValueError, match=r"more than 1 value per channel .* \(1, 3, 1\)"):
        _C.batch_norm_forward(nd(np.zeros((1, 3, 1), np.float32), "cpu"), None, None, None, None, True, 1e-5)
    with pytest.raises(ValueError, match="eps must be >= 0, got -1"):
        _C.batch_norm_forward(x, None, None, None, None, True, -1.0)
    with pytest.raises(TypeError, match="input must be float32 or float64, got int32"):
        _C.batch_norm_forward(nd(np.zeros((2, 3), np.int32), "cpu"), None, None, None, None, True, 1e-5)
    with pytest.raises(ValueError, match=r"grad_output must have shape \(2, 3, 4\), got \(2, 3, 5\)"):
        _C.batch_norm_backward(x, nd(np.zeros((2, 3, 5), np.float32), "cpu"), c3, c3, None, True, 1e-5)
    with pytest.raises(ValueError, match=r"mean must have shape \(3,\), got \(2,\)"):
        _C.batch_norm_backward(x, x, nd(np.ones(2, np.float32), "cpu"), c3, None, True, 1e-5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(cl.tensor(np.ones((1, 3), np.float32)), None, None, training=True)
