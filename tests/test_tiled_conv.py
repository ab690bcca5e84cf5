"""Tiled convolution: F.tiled_conv2d, nn.TiledConv2d and the convlab._C.tiled_conv_* kernels. The definition,
output (i, j) uses kernel (i % t_h, j % t_w), is checked by expanding the tiled weight to one weight set per
output position and running the direct locally connected reference of test_locally_connected; tile (1, 1)
must equal conv2d (convlab's and PyTorch's), and a tile of the output size the locally connected layer."""
import numpy as np
import pytest

import convlab as cl
import convlab.nn as nn
import convlab.nn.functional as F
from autograd_helpers import gradcheck
from conftest import DEVICES
from test_locally_connected import TOL, out_len, ref_backward, ref_forward

C = cl._C


def expand(w, b, oh, ow):
    """Per-position weights and biases of a tiled layer: position (i, j) gets set (i % t_h, j % t_w)."""
    rows, cols = np.arange(oh) % w.shape[0], np.arange(ow) % w.shape[1]
    return w[rows][:, cols], None if b is None else b[rows][:, cols]


def fold_back(g, tile):
    """The adjoint of expand: per-position gradients summed into their weight sets."""
    out = np.zeros(tile + g.shape[2:])
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            out[i % tile[0], j % tile[1]] += g[i, j]
    return out


# (N, C_in, C_out, (H, W), (KH, KW), stride, ((pt, pb), (pl, pr)), dilation, tile)
CASES = [
    (2, 3, 4, (8, 8), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), (2, 2)),
    (1, 2, 3, (9, 7), (3, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), (3, 2)),    # batch 1, tile not dividing out
    (3, 1, 2, (11, 10), (2, 2), (3, 4), ((0, 1), (2, 0)), (1, 1), (1, 3)),  # stride > kernel, asymmetric pad
    (2, 4, 5, (12, 9), (3, 3), (2, 1), ((1, 1), (0, 0)), (2, 2), (2, 5)),   # dilation
    (2, 3, 2, (5, 5), (2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), (6, 3)),    # tile beyond the output: unused sets
    (4, 17, 9, (7, 7), (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), (1, 1)),   # 1x1, one shared kernel
]


def case_arrays(case, rng, dtype):
    n, c_in, c_out, (h, wd), (kh, kw), s, pad, d, tile = case
    x = rng.standard_normal((n, c_in, h, wd)).astype(dtype)
    w = rng.standard_normal(tile + (c_out, c_in, kh, kw)).astype(dtype)
    b = rng.standard_normal(tile + (c_out,)).astype(dtype)
    oh, ow = out_len(h, kh, s[0], *pad[0], d[0]), out_len(wd, kw, s[1], *pad[1], d[1])
    return x, w, b, oh, ow


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_kernels_match_definition(case, dtype, device, rng):
    x, w, b, oh, ow = case_arrays(case, rng, dtype)
    s, pad, d, tile = case[5], case[6], case[7], case[8]
    nd = lambda a: C.NDArray.from_numpy(a).to(device)
    pads = [list(p) for p in pad]
    wf, bf = expand(w, b, oh, ow)
    y = C.tiled_conv_forward(nd(x), nd(w), nd(b), s, pads, d, False)
    np.testing.assert_allclose(y.numpy(), ref_forward(x, wf, bf, s, pad, d), **TOL[dtype])
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx_ref, gwf, _ = ref_backward(x, wf, gy, s, pad, d)
    gx = C.tiled_conv_backward_input(nd(gy), nd(w), list(x.shape[2:]), s, pads, d, False)
    gw = C.tiled_conv_backward_weight(nd(x), nd(gy), list(w.shape), s, pads, d, False)
    np.testing.assert_allclose(gx.numpy(), gx_ref, **TOL[dtype])
    np.testing.assert_allclose(gw.numpy(), fold_back(gwf, tile), **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_autograd_bias_grad(case, device, rng):
    """The bias gradient of a weight set sums grad-output over the positions that use it (zero if none)."""
    x, w, b, oh, ow = case_arrays(case, rng, "float64")
    s, pad, d, tile = case[5], case[6], case[7], case[8]
    xp = np.pad(x, ((0, 0), (0, 0), pad[0], pad[1]))
    tx, tw, tb = (cl.tensor(a, device=device, requires_grad=True) for a in (xp, w, b))
    y = F.tiled_conv2d(tx, tw, tb, stride=s, dilation=d)
    gy = rng.standard_normal(y.shape)
    y.backward(cl.tensor(gy, device=device))
    np.testing.assert_allclose(tb.grad.numpy(), fold_back(gy.sum(0).transpose(1, 2, 0), tile), rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(tw.grad.numpy(), fold_back(ref_backward(xp, expand(w, b, oh, ow)[0], gy, s,
                                                                       ((0, 0), (0, 0)), d)[1], tile),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tile_1x1_is_conv2d(device, dtype, rng):
    """Same kernels at every position: conv2d exactly, values and all three gradients, vs convlab and torch."""
    x = rng.standard_normal((3, 5, 10, 9)).astype(dtype)
    w = rng.standard_normal((1, 1, 7, 5, 3, 2)).astype(dtype)
    b = rng.standard_normal((1, 1, 7)).astype(dtype)
    args = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    ts = [cl.tensor(a, device=device, requires_grad=True) for a in (x, w, b)]
    cs = [cl.tensor(a, device=device, requires_grad=True) for a in (x, w[0, 0], b[0, 0])]
    y_tiled, y_conv = F.tiled_conv2d(*ts, **args), F.conv2d(*cs, **args)
    gy = rng.standard_normal(y_conv.shape).astype(dtype)
    y_tiled.backward(cl.tensor(gy, device=device))
    y_conv.backward(cl.tensor(gy, device=device))
    tol = TOL[dtype]
    np.testing.assert_allclose(y_tiled.numpy(), y_conv.numpy(), **tol)
    for t, c in zip(ts, cs):
        np.testing.assert_allclose(t.grad.numpy().reshape(c.shape), c.grad.numpy(), **tol)
    torch = pytest.importorskip("torch")
    tt = [torch.tensor(a, requires_grad=True) for a in (x, w[0, 0], b[0, 0])]
    y_torch = torch.nn.functional.conv2d(*tt, **args)
    y_torch.backward(torch.tensor(gy))
    np.testing.assert_allclose(y_tiled.numpy(), y_torch.detach().numpy(), **tol)
    for t, r in zip(ts, tt):
        np.testing.assert_allclose(t.grad.numpy().reshape(r.shape), r.grad.numpy(), **tol)


@pytest.mark.parametrize("device", DEVICES)
def test_tile_of_output_size_is_locally_connected(device, rng):
    x = rng.standard_normal((2, 3, 7, 8))
    w = rng.standard_normal((4, 3, 2, 3, 3, 3))  # stride (2, 3), padding 1: out (4, 3)
    b = rng.standard_normal((4, 3, 2))
    ys, grads = [], []
    for fn in (F.tiled_conv2d, F.locally_connected2d):
        ts = [cl.tensor(a, device=device, requires_grad=True) for a in (x, w, b)]
        y = fn(*ts, stride=(2, 3), padding=1)
        y.backward(cl.tensor(np.cos(np.arange(y.numel()).reshape(y.shape)), device=device))
        ys.append(y.numpy()), grads.append([t.grad.numpy() for t in ts])
    assert ys[0].shape == (2, 2, 4, 3)
    np.testing.assert_array_equal(ys[0], ys[1])
    for a, c in zip(*grads):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_float64(device, rng):
    x = rng.standard_normal((2, 2, 6, 5))
    w = rng.standard_normal((2, 3, 2, 2, 2, 2))
    b = rng.standard_normal((2, 3, 2))
    gradcheck(lambda x, w, b: F.tiled_conv2d(x, w, b, stride=(1, 2), padding=1, dilation=(2, 1)), [x, w, b], device)


@pytest.mark.parametrize("device", DEVICES)
def test_module(device, rng):
    m = nn.TiledConv2d(3, 4, 3, tile=(2, 3), padding=1).to(device)
    assert m.weight.shape == (2, 3, 4, 3, 3, 3) and m.bias.shape == (2, 3, 4)
    assert 0 < np.abs(m.weight.numpy()).max() <= 1 / np.sqrt(27)
    x = rng.standard_normal((2, 3, 7, 8)).astype("float32")
    y = m(cl.tensor(x, device=device))  # any input size: the tile cycles
    wf, bf = expand(m.weight.numpy(), m.bias.numpy(), 7, 8)
    np.testing.assert_allclose(y.numpy(), ref_forward(x, wf, bf, (1, 1), ((1, 1), (1, 1)), (1, 1)), rtol=1e-4,
                               atol=1e-4)
    assert m(cl.randn(1, 3, 5, 4, device=device)).shape == (1, 4, 5, 4)
    assert "tile=(2, 3)" in repr(m) and nn.TiledConv2d(1, 1, 2, 1, bias=False).bias is None


def test_bad_input():
    x, w = cl.randn(2, 3, 6, 6), cl.randn(2, 2, 4, 3, 3, 3)
    with pytest.raises(ValueError, match=r"tiled_conv2d: weight must be 6-D \(tile size per spatial dim"):
        F.tiled_conv2d(x, cl.randn(4, 3, 3, 3))
    with pytest.raises(ValueError, match="tiled_conv2d: input has 3 channels but weight expects 2"):
        F.tiled_conv2d(x, cl.randn(2, 2, 4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"tiled_conv2d: bias must have shape \(2, 2, 4\), got \(4,\)"):
        F.tiled_conv2d(x, w, cl.randn(4))
    with pytest.raises(ValueError, match="tiled_conv2d: weight tile size must be >= 1, got 0"):
        F.tiled_conv2d(x, cl.randn(0, 2, 4, 3, 3, 3))
    with pytest.raises(ValueError, match="tiled_conv2d: dilation must be >= 1, got 0"):
        F.tiled_conv2d(x, w, dilation=0)
    with pytest.raises(ValueError, match="tiled_conv2d: padding must be an int, a tuple, 'valid' or 'same'"):
        F.tiled_conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match="TiledConv2d: tile must be an int or a tuple of 2 ints, got"):
        nn.TiledConv2d(3, 4, 3, tile=(1, 2, 3))
    with pytest.raises(ValueError, match="TiledConv2d: tile must be >= 1, got 0"):
        nn.TiledConv2d(3, 4, 3, tile=0)
    with pytest.raises(TypeError, match="tiled_conv2d: weight must be a convlab Tensor, got ndarray"):
        F.tiled_conv2d(x, np.zeros((1, 1, 4, 3, 3, 3)))
