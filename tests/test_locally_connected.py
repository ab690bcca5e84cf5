"""Locally connected (unshared) layers: F.locally_connected1d/2d, nn.LocallyConnected1d/2d and the tiled-conv
kernels under them (convlab._C.tiled_conv_* with unshared=True), checked against a direct per-position NumPy
reference, against the unfold formulation with PyTorch's F.unfold as the oracle, and by float64 finite
differences. Shapes sweep batch 1, odd sizes, stride > kernel, dilation > 1, asymmetric padding, 1x1."""
import numpy as np
import pytest

import convlab as cl
import convlab.nn as nn
import convlab.nn.functional as F
from autograd_helpers import gradcheck
from conftest import DEVICES

C = cl._C
TOL = {"float32": dict(rtol=1e-4, atol=1e-4), "float64": dict(rtol=1e-10, atol=1e-10)}


# ---- reference: y[n, co, i, j] = sum_{c, p, q} w[i, j, co, c, p, q] x_pad[n, c, i*sh + p*dh, j*sw + q*dw] + b[i, j, co]

def out_len(n, k, s, lo, hi, d):
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def patch(xp, i, j, kh, kw, s, d):
    """The (N, C, kh, kw) window of the padded input that output position (i, j) reads."""
    return xp[:, :, i * s[0]:i * s[0] + (kh - 1) * d[0] + 1:d[0], j * s[1]:j * s[1] + (kw - 1) * d[1] + 1:d[1]]


def ref_forward(x, w, b, s, pad, d):
    (pt, pb), (pl, pr) = pad
    oh, ow, c_out, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    y = np.zeros((x.shape[0], c_out, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = np.einsum("ncpq,ocpq->no", patch(xp, i, j, kh, kw, s, d), w[i, j])
            if b is not None:
                y[:, :, i, j] += b[i, j]
    return y


def ref_backward(x, w, gy, s, pad, d):
    """(gx, gw, gb) of sum(y * gy): each position's patch gets w^T gy, each weight set gy^T patch."""
    (pt, pb), (pl, pr) = pad
    oh, ow, _, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(oh):
        for j in range(ow):
            patch(gxp, i, j, kh, kw, s, d)[...] += np.einsum("no,ocpq->ncpq", gy[:, :, i, j], w[i, j])
            gw[i, j] = np.einsum("no,ncpq->ocpq", gy[:, :, i, j], patch(xp, i, j, kh, kw, s, d))
    gx = gxp[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]]
    return gx, gw, gy.sum(0).transpose(1, 2, 0)


# (N, C_in, C_out, (H, W), (KH, KW), stride, ((pt, pb), (pl, pr)), dilation)
CASES = [
    (2, 3, 4, (7, 6), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    (1, 1, 1, (5, 5), (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1)),     # batch 1, 1x1
    (3, 2, 5, (9, 11), (2, 3), (3, 4), ((0, 0), (0, 0)), (1, 1)),    # stride > kernel, odd sizes
    (2, 3, 3, (10, 9), (3, 2), (1, 2), ((2, 1), (0, 3)), (2, 3)),    # dilation, asymmetric padding
    (1, 5, 2, (4, 13), (4, 1), (2, 1), ((1, 2), (0, 0)), (1, 1)),
    (2, 17, 7, (6, 6), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),    # channels past a vector
    (37, 2, 3, (3, 3), (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1)),    # output 1x1, many rows per weight set
]


def case_arrays(case, rng, dtype, bias=True):
    n, c_in, c_out, (h, wd), (kh, kw), s, pad, d = case
    oh = out_len(h, kh, s[0], *pad[0], d[0])
    ow = out_len(wd, kw, s[1], *pad[1], d[1])
    x = rng.standard_normal((n, c_in, h, wd)).astype(dtype)
    w = rng.standard_normal((oh, ow, c_out, c_in, kh, kw)).astype(dtype)
    b = rng.standard_normal((oh, ow, c_out)).astype(dtype) if bias else None
    return x, w, b


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_kernels_match_reference(case, dtype, device, rng):
    x, w, b = case_arrays(case, rng, dtype)
    s, pad, d = case[5], [list(p) for p in case[6]], case[7]
    nd = lambda a: C.NDArray.from_numpy(a).to(device)
    y = C.tiled_conv_forward(nd(x), nd(w), nd(b), s, pad, d, True)
    np.testing.assert_allclose(y.numpy(), ref_forward(x, w, b, s, case[6], d), **TOL[dtype])
    y_nobias = C.tiled_conv_forward(nd(x), nd(w), None, s, pad, d, True)
    np.testing.assert_allclose(y_nobias.numpy(), ref_forward(x, w, None, s, case[6], d), **TOL[dtype])
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx_ref, gw_ref, _ = ref_backward(x, w, gy, s, case[6], d)
    gx = C.tiled_conv_backward_input(nd(gy), nd(w), list(x.shape[2:]), s, pad, d, True)
    gw = C.tiled_conv_backward_weight(nd(x), nd(gy), list(w.shape), s, pad, d, True)
    np.testing.assert_allclose(gx.numpy(), gx_ref, **TOL[dtype])
    np.testing.assert_allclose(gw.numpy(), gw_ref, **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_equals_unfold_formulation(case, device, rng):
    """y[n, :, l] = W[l] @ unfold(x_pad)[n, :, l] with W[l] = w[i, j].reshape(C_out, -1), the columns from
    torch's F.unfold; the kernels get the (possibly asymmetric) padding, torch the padded input."""
    torch = pytest.importorskip("torch")
    x, w, b = case_arrays(case, rng, "float64")
    n, c_in, c_out, _, k, s, pad, d = case
    oh, ow = w.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), pad[0], pad[1]))
    cols = torch.nn.functional.unfold(torch.tensor(xp), k, dilation=d, stride=s)
    mats = torch.tensor(w).reshape(oh * ow, c_out, -1)                      # (L, C_out, C_in*KH*KW)
    expected = torch.einsum("lok,nkl->nol", mats, cols).reshape(n, c_out, oh, ow) + torch.tensor(b).permute(2, 0, 1)
    nd = lambda a: C.NDArray.from_numpy(a).to(device)
    got = C.tiled_conv_forward(nd(x), nd(w), nd(b), s, [list(p) for p in pad], d, True)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_autograd_matches_reference_2d(device, rng):
    x, w, b = case_arrays(CASES[3], rng, "float64")
    s, pad, d = CASES[3][5], CASES[3][6], CASES[3][7]
    # F takes symmetric padding: pad the input asymmetrically first, then no padding.
    xp = np.pad(x, ((0, 0), (0, 0), pad[0], pad[1]))
    tx, tw, tb = (cl.tensor(a, device=device, requires_grad=True) for a in (xp, w, b))
    y = F.locally_connected2d(tx, tw, tb, stride=s, dilation=d)
    gy = rng.standard_normal(y.shape)
    y.backward(cl.tensor(gy, device=device))
    gx_ref, gw_ref, gb_ref = ref_backward(xp, w, gy, s, ((0, 0), (0, 0)), d)
    np.testing.assert_allclose(y.numpy(), ref_forward(xp, w, b, s, ((0, 0), (0, 0)), d), rtol=1e-10, atol=1e-10)
    for got, want in [(tx.grad, gx_ref), (tw.grad, gw_ref), (tb.grad, gb_ref)]:
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_1d_is_2d_with_height_1(device, rng):
    x = rng.standard_normal((3, 4, 17))
    out_l = (17 + 2 * 1 - 2 * (3 - 1) - 1) // 2 + 1
    w = rng.standard_normal((out_l, 5, 4, 3))
    b = rng.standard_normal((out_l, 5))
    tx, tw, tb = (cl.tensor(a, device=device, requires_grad=True) for a in (x, w, b))
    y = F.locally_connected1d(tx, tw, tb, stride=2, padding=1, dilation=2)
    gy = rng.standard_normal(y.shape)
    y.backward(cl.tensor(gy, device=device))
    pad = ((0, 0), (1, 1))
    w2 = w[None, :, :, :, None, :]
    np.testing.assert_allclose(y.numpy(), ref_forward(x[:, :, None], w2, b[None], (1, 2), pad, (1, 2))[:, :, 0],
                               rtol=1e-10, atol=1e-10)
    gx, gw, gb = ref_backward(x[:, :, None], w2, gy[:, :, None], (1, 2), pad, (1, 2))
    np.testing.assert_allclose(tx.grad.numpy(), gx[:, :, 0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(tw.grad.numpy(), gw[0, :, :, :, 0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(tb.grad.numpy(), gb[0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_float64(device, rng):
    x = rng.standard_normal((2, 2, 5, 4))
    w = rng.standard_normal((3, 3, 3, 2, 2, 2))  # stride 2, padding 1, dilation (2, 1): out (3, 3)
    b = rng.standard_normal((3, 3, 3))
    gradcheck(lambda x, w, b: F.locally_connected2d(x, w, b, stride=2, padding=1, dilation=(2, 1)), [x, w, b],
              device)
    gradcheck(lambda x, w, b: F.locally_connected1d(x, w, b, stride=1, padding=1),
              [rng.standard_normal((2, 3, 5)), rng.standard_normal((5, 2, 3, 3)), rng.standard_normal((5, 2))], device)


@pytest.mark.parametrize("device", DEVICES)
def test_unbatched_input(device, rng):
    x, w, b = case_arrays(CASES[0], rng, "float64")
    full = F.locally_connected2d(cl.tensor(x, device=device), cl.tensor(w, device=device),
                                 cl.tensor(b, device=device), padding=1)
    one = F.locally_connected2d(cl.tensor(x[1], device=device), cl.tensor(w, device=device),
                                cl.tensor(b, device=device), padding=1)
    np.testing.assert_allclose(one.numpy(), full.numpy()[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_module(device, rng):
    m = nn.LocallyConnected2d(3, 4, (9, 8), (3, 2), stride=(2, 1), padding=1, dilation=(1, 2)).to(device)
    assert m.weight.shape == (5, 8, 4, 3, 3, 2) and m.bias.shape == (5, 8, 4)
    bound = 1 / np.sqrt(3 * 3 * 2)
    assert 0 < np.abs(m.weight.numpy()).max() <= bound and np.abs(m.bias.numpy()).max() <= bound
    x = rng.standard_normal((2, 3, 9, 8)).astype("float32")
    y = m(cl.tensor(x, device=device))
    want = ref_forward(x, m.weight.numpy(), m.bias.numpy(), (2, 1), ((1, 1), (1, 1)), (1, 2))
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-4)
    y.sum().backward()
    assert m.weight.grad.shape == m.weight.shape and m.bias.grad.shape == m.bias.shape
    assert nn.LocallyConnected2d(2, 2, 5, 3, bias=False).bias is None
    m1 = nn.LocallyConnected1d(2, 3, 12, 3, stride=3)
    assert m1.weight.shape == (4, 3, 2, 3) and m1(cl.randn(5, 2, 12)).shape == (5, 3, 4)
    assert "in_size=(12,)" in repr(m1)


def test_bad_input():
    x = cl.randn(2, 3, 6, 6)
    w = cl.randn(4, 4, 5, 3, 3, 3)
    with pytest.raises(ValueError, match=r"locally_connected2d: weight must have shape .*= \(4, 4, 5, 3, 3, 3\).*"
                                         r"got \(5, 4, 5, 3, 3, 3\)"):
        F.locally_connected2d(x, cl.randn(5, 4, 5, 3, 3, 3))
    with pytest.raises(ValueError, match="locally_connected2d: input has 2 channels but weight expects 3"):
        F.locally_connected2d(cl.randn(2, 2, 6, 6), w)
    with pytest.raises(ValueError, match=r"locally_connected2d: bias must have shape \(4, 4, 5\), got \(5,\)"):
        F.locally_connected2d(x, w, cl.randn(5))
    with pytest.raises(ValueError, match="locally_connected2d: weight must be 6-D"):
        F.locally_connected2d(x, cl.randn(5, 3, 3, 3))
    with pytest.raises(ValueError, match="locally_connected2d: stride must be >= 1, got 0"):
        F.locally_connected2d(x, w, stride=0)
    with pytest.raises(ValueError, match="locally_connected2d: kernel size 7 .* larger than the padded input size 6"):
        F.locally_connected2d(x, cl.randn(1, 1, 5, 3, 7, 7))
    with pytest.raises(TypeError, match="locally_connected2d: input must be float32 or float64, got int64"):
        F.locally_connected2d(cl.tensor(np.ones((2, 3, 6, 6), np.int64)), cl.tensor(np.ones((4, 4, 5, 3, 3, 3),
                                                                                              np.int64)))
    with pytest.raises(TypeError, match="locally_connected2d: input is float32 but weight is float64"):
        F.locally_connected2d(x, w.double())
    with pytest.raises(ValueError, match="locally_connected1d: expected a 2-D .* or 3-D .* input"):
        F.locally_connected1d(x, cl.randn(4, 5, 3, 3))
    with pytest.raises(ValueError, match=r"LocallyConnected2d: in_size \(2, 2\) is too small for kernel_size"):
        nn.LocallyConnected2d(1, 1, 2, 3)
    with pytest.raises(ValueError, match="LocallyConnected2d: in_channels must be >= 1, got 0"):
        nn.LocallyConnected2d(0, 1, 5, 3)
    with pytest.raises(ValueError, match=r"locally_connected2d: grad_output must have shape \(2, 5, 4, 4\)"):
        C.tiled_conv_backward_input(C.NDArray.from_numpy(np.zeros((2, 5, 3, 4), np.float32)),
                                    C.NDArray.from_numpy(w.numpy()), [6, 6], [1, 1], [[0, 0], [0, 0]], [1, 1], True)
