"""F.unfold / F.fold (im2col / col2im) and nn.Unfold / nn.Fold: against a NumPy reference written from the
definition and against PyTorch, float64 gradchecks, the adjoint identity, conv2d written as a GEMM over
unfold, conv's backward-input as fold, and bad input."""
import numpy as np
import pytest

import convlab as cl
import convlab.nn as nn
import convlab.nn.functional as F
from autograd_helpers import compare_with_torch, gradcheck

# (input shape, kernel_size, dilation, padding, stride)
CONFIGS = [
    ((2, 3, 7, 6), (3, 2), 1, 0, 1),
    ((1, 1, 9, 11), 3, 2, 1, 2),            # batch 1, dilation > 1
    ((3, 2, 8, 5), (2, 3), (1, 2), (2, 1), (3, 1)),
    ((1, 4, 10, 10), 2, 1, 0, 4),           # stride > kernel: gaps between blocks
    ((2, 1, 5, 7), (5, 1), 1, (0, 3), (1, 2)),
    ((1, 2, 3, 3), 3, 1, 2, 1),             # padding wider than half the kernel
]


def _pairs(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def unfold_reference(x, kernel_size, dilation, padding, stride):
    """cols[n][(c, i, j)][(oh, ow)] = x[n][c][oh*sh + i*dh - ph][ow*sw + j*dw - pw], 0 outside x."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = map(_pairs, (kernel_size, dilation, padding, stride))
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((n, c, kh, kw, oh, ow), x.dtype)
    for b, ch, i, j, y, z in np.ndindex(*cols.shape):
        r, s = y * sh + i * dh - ph, z * sw + j * dw - pw
        if 0 <= r < h and 0 <= s < w:
            cols[b, ch, i, j, y, z] = x[b, ch, r, s]
    return cols.reshape(n, c * kh * kw, oh * ow)


def fold_reference(cols, output_size, kernel_size, dilation, padding, stride):
    """Every column entry added to the x element unfold took it from."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = map(_pairs, (kernel_size, dilation, padding, stride))
    h, w = output_size
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    n, c = cols.shape[0], cols.shape[1] // (kh * kw)
    blocks = cols.reshape(n, c, kh, kw, oh, ow)
    x = np.zeros((n, c, h, w), cols.dtype)
    for b, ch, i, j, y, z in np.ndindex(*blocks.shape):
        r, s = y * sh + i * dh - ph, z * sw + j * dw - pw
        if 0 <= r < h and 0 <= s < w:
            x[b, ch, r, s] += blocks[b, ch, i, j, y, z]
    return x


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unfold_and_fold_match_reference(config, dtype, device):
    shape, k, d, p, s = config
    rng = np.random.default_rng(len(shape) + shape[-1])
    x = rng.standard_normal(shape).astype(dtype)
    cols = F.unfold(cl.tensor(x, device=device), k, d, p, s)
    want = unfold_reference(x, k, d, p, s)
    assert cols.dtype == dtype and cols.device == device
    np.testing.assert_array_equal(cols.numpy(), want)  # a copy: exact
    c = rng.standard_normal(want.shape).astype(dtype)
    folded = F.fold(cl.tensor(c, device=device), shape[2:], k, d, p, s).numpy()
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(folded, fold_reference(c, shape[2:], k, d, p, s), rtol=tol, atol=tol)


@pytest.mark.parametrize("config", CONFIGS)
def test_against_torch_with_gradients(config, device):
    shape, k, d, p, s = config
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(shape[-2])
    x = rng.standard_normal(shape)
    compare_with_torch(lambda t: F.unfold(t, k, d, p, s), lambda t: torch.nn.functional.unfold(t, k, d, p, s),
                       [x], device, "float64")
    cols = unfold_reference(x, k, d, p, s)
    compare_with_torch(lambda t: F.fold(t, shape[2:], k, d, p, s),
                       lambda t: torch.nn.functional.fold(t, shape[2:], k, d, p, s),
                       [rng.standard_normal(cols.shape)], device, "float32")


def test_unbatched_input_and_modules(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 5))
    unfold, fold = nn.Unfold((2, 3), dilation=1, padding=1, stride=2), nn.Fold((6, 5), (2, 3), padding=1, stride=2)
    cols = unfold(cl.tensor(x, device=device))
    want = torch.nn.Unfold((2, 3), padding=1, stride=2)(torch.tensor(x))
    np.testing.assert_array_equal(cols.numpy(), want.numpy())
    np.testing.assert_allclose(fold(cols).numpy(), torch.nn.Fold((6, 5), (2, 3), padding=1, stride=2)(want).numpy(),
                               rtol=1e-12)
    assert repr(unfold) == repr(torch.nn.Unfold((2, 3), dilation=1, padding=1, stride=2))
    assert repr(fold) == repr(torch.nn.Fold((6, 5), (2, 3), padding=1, stride=2))


@pytest.mark.parametrize("config", CONFIGS[:4])
def test_gradcheck(config, device):
    shape, k, d, p, s = config
    shape = (1, min(shape[1], 2)) + shape[2:]
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    gradcheck(lambda t: F.unfold(t, k, d, p, s), [x], device=device)
    gradcheck(lambda t: F.fold(t, shape[2:], k, d, p, s), [unfold_reference(x, k, d, p, s)], device=device)


@pytest.mark.parametrize("config", CONFIGS)
def test_fold_is_the_adjoint_of_unfold(config, device):
    """<unfold(x), c> == <x, fold(c)> for every x and c."""
    shape, k, d, p, s = config
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    c = rng.standard_normal(unfold_reference(x, k, d, p, s).shape)
    lhs = float((F.unfold(cl.tensor(x, device=device), k, d, p, s).numpy() * c).sum())
    rhs = float((x * F.fold(cl.tensor(c, device=device), shape[2:], k, d, p, s).numpy()).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1.0)


@pytest.mark.parametrize("config", CONFIGS)
def test_conv2d_is_a_gemm_over_unfold(config, device):
    """conv2d(x, w) == (w.view(C_out, -1) @ unfold(x)).view(N, C_out, OH, OW), and conv's backward-input is
    fold(w.view(C_out, -1)^T @ grad): im2col's adjoint written out."""
    shape, k, d, p, s = config
    rng = np.random.default_rng(4)
    kh, kw = _pairs(k)
    c_out = 3
    x = cl.tensor(rng.standard_normal(shape), device=device, requires_grad=True)
    w = cl.tensor(rng.standard_normal((c_out, shape[1], kh, kw)), device=device)
    y = F.conv2d(x, w, stride=s, padding=p, dilation=d)
    n, _, oh, ow = y.shape
    gemm = (w.view(c_out, -1) @ F.unfold(x, k, d, p, s)).view(n, c_out, oh, ow)
    np.testing.assert_allclose(gemm.numpy(), y.numpy(), rtol=1e-10, atol=1e-10)
    g = cl.tensor(rng.standard_normal(y.shape), device=device)
    y.backward(g)
    adjoint = F.fold(w.view(c_out, -1).t() @ g.view(n, c_out, oh * ow), shape[2:], k, d, p, s)
    np.testing.assert_allclose(adjoint.numpy(), x.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_bad_input():
    x = cl.zeros(1, 2, 5, 5)
    with pytest.raises(ValueError, match=r"unfold: expected a 3-D \(unbatched\) or 4-D \(batched\) input"):
        F.unfold(cl.zeros(5, 5), 2)
    with pytest.raises(ValueError, match="unfold: kernel_size must be an int or a tuple of 2 ints, got"):
        F.unfold(x, (2, 2, 2))
    with pytest.raises(ValueError, match="unfold: kernel size must be >= 1, got 0"):
        F.unfold(x, 0)
    with pytest.raises(ValueError, match="unfold: padding must be >= 0, got -1"):
        F.unfold(x, 2, padding=-1)
    with pytest.raises(ValueError, match="unfold: stride must be >= 1, got 0"):
        F.unfold(x, 2, stride=0)
    with pytest.raises(ValueError, match="unfold: kernel size 6 .* is larger than the padded input size 5"):
        F.unfold(x, 6)
    with pytest.raises(TypeError, match="unfold: input must be float32 or float64, got int64"):
        F.unfold(cl.zeros(1, 1, 3, 3, dtype="int64"), 2)
    with pytest.raises(TypeError, match="unfold: input must be a convlab Tensor"):
        F.unfold(np.zeros((1, 1, 3, 3)), 2)
    cols = cl.zeros(1, 8, 9)
    with pytest.raises(ValueError, match=r"fold: input's dim 1 \(8\) must be divisible by the product of "
                                         r"kernel_size \(3\)"):
        F.fold(cols, (4, 4), (1, 3))
    with pytest.raises(ValueError, match=r"fold: input has 9 blocks \(dim 2\) but output_size \(5, 5\) holds "
                                         r"4 x 4 = 16 blocks"):
        F.fold(cols, (5, 5), 2)
    with pytest.raises(ValueError, match=r"fold: expected a 2-D \(unbatched\) or 3-D \(batched\) input"):
        F.fold(cl.zeros(1, 1, 8, 9), (4, 4), 2)
    with pytest.raises(ValueError, match="fold: output_size must be an int or a tuple of 2 ints"):
        F.fold(cols, (4, 4, 4), 2)
    with pytest.raises(ValueError, match="fold: kernel_size must be >= 1, got 0"):
        F.fold(cols, (4, 4), (0, 2))
