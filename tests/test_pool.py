"""Pooling kernels (convlab._C) against convlab._C.reference, the same ops computed by common/reference.h
(the spec) one element at a time; the reference itself is pinned to direct NumPy references written from the
definitions and to PyTorch's functional pooling and its autograd gradients when PyTorch is installed.

Every random case draws its own shape and parameters: batch 1, odd sizes, stride > kernel, dilation > 1,
padding up to k/2, ceil_mode and count_include_pad both ways; max-pool inputs are often small integers
(ties) and sometimes hold NaN and -inf."""
import numpy as np
import pytest

from convlab import NDArray, _C

R = _C.reference

TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-12)}
DTYPES = ["float32", "float64"]
SEEDS = range(16)
TORCH_SEEDS = range(8)


def nd(a, device):
    return NDArray.from_numpy(np.ascontiguousarray(a), device=device)


# ---- references, written from the definitions -------------------------------------------------------------

def out_len(size, k, stride, pad, dilation, ceil_mode):
    """PyTorch's pooled length: floor (or ceil) of the window count; a ceil-mode window may not start in
    the right padding."""
    span = size + 2 * pad - dilation * (k - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def window_taps(o, k, stride, pad, dilation, size):
    """Input positions of window o's taps that are real input (not padding), in scan order."""
    return [o * stride - pad + t * dilation for t in range(k) if 0 <= o * stride - pad + t * dilation < size]


def max_pool_ref(x, k, stride, pad, dilation, ceil_mode):
    """y = max over each window's real taps, and the flat plane index of the element it came from (-1 for a
    window without real taps, whose y is -inf). PyTorch's CPU rule picks that element: the last NaN when
    the window holds a NaN, else the first maximum in row-major window order."""
    n, c, h, w = x.shape
    oh = out_len(h, k[0], stride[0], pad[0], dilation[0], ceil_mode)
    ow = out_len(w, k[1], stride[1], pad[1], dilation[1], ceil_mode)
    y = np.full((n, c, oh, ow), -np.inf, x.dtype)
    idx = np.full((n, c, oh, ow), -1, np.int64)
    for i in range(oh):
        for j in range(ow):
            taps = [(ih, iw) for ih in window_taps(i, k[0], stride[0], pad[0], dilation[0], h)
                    for iw in window_taps(j, k[1], stride[1], pad[1], dilation[1], w)]
            if not taps:
                continue
            vals = np.stack([x[:, :, ih, iw] for ih, iw in taps], axis=-1)
            isnan = np.isnan(vals)
            last_nan = len(taps) - 1 - np.argmax(isnan[..., ::-1], axis=-1)
            first_max = np.argmax(np.where(isnan, -np.inf, vals), axis=-1)
            pick = np.where(isnan.any(-1), last_nan, first_max)
            flat = np.array([ih * w + iw for ih, iw in taps])
            idx[:, :, i, j] = flat[pick]
            y[:, :, i, j] = np.take_along_axis(vals, pick[..., None], axis=-1)[..., 0]
    return y, idx


def max_pool_grad_ref(idx, gy, h, w):
    """gx[plane element] = sum of gy over the windows whose maximum it is."""
    n, c = gy.shape[:2]
    gx = np.zeros((n, c, h * w), gy.dtype)
    for a in range(n):
        for b in range(c):
            for flat, g in zip(idx[a, b].ravel(), gy[a, b].ravel()):
                if flat >= 0:
                    gx[a, b, flat] += g
    return gx.reshape(n, c, h, w)


def avg_pool_ref(x, gy_fn, k, stride, pad, ceil_mode, count_include_pad):
    """Average over windows of the zero-padded input. The divisor counts the window's cells inside the
    padded input (count_include_pad) or inside the real input; cells a ceil-mode window has past the right
    padding never count. Returns y and gx for gy = gy_fn(y.shape)."""
    n, c, h, w = x.shape
    oh = out_len(h, k[0], stride[0], pad[0], 1, ceil_mode)
    ow = out_len(w, k[1], stride[1], pad[1], 1, ceil_mode)
    hp = max(h + 2 * pad[0], (oh - 1) * stride[0] + k[0])
    wp = max(w + 2 * pad[1], (ow - 1) * stride[1] + k[1])
    xp = np.zeros((n, c, hp, wp), x.dtype)
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    real = np.zeros((hp, wp))
    real[pad[0]:pad[0] + h, pad[1]:pad[1] + w] = 1
    padded = np.zeros((hp, wp))
    padded[:h + 2 * pad[0], :w + 2 * pad[1]] = 1
    counted = padded if count_include_pad else real
    y = np.zeros((n, c, oh, ow), x.dtype)
    divisors = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = (slice(i * stride[0], i * stride[0] + k[0]), slice(j * stride[1], j * stride[1] + k[1]))
            divisors[i, j] = counted[win].sum()
            y[:, :, i, j] = xp[(..., *win)].sum(axis=(-2, -1)) / divisors[i, j]
    gy = gy_fn(y.shape)
    gxp = np.zeros_like(xp)
    for i in range(oh):
        for j in range(ow):
            win = (slice(i * stride[0], i * stride[0] + k[0]), slice(j * stride[1], j * stride[1] + k[1]))
            gxp[(..., *win)] += gy[:, :, i, j, None, None] / divisors[i, j] * real[win]
    return y, gy, gxp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w]


def adaptive_bounds(i, size, out):
    return (i * size) // out, -(-((i + 1) * size) // out)


def adaptive_avg_pool_ref(x, gy_fn, out):
    """Window (i, j) averages rows [floor(i*H/OH), ceil((i+1)*H/OH)) and the same along W."""
    n, c, h, w = x.shape
    y = np.zeros((n, c, *out), x.dtype)
    gx = np.zeros_like(x)
    gy = gy_fn(y.shape)
    for i in range(out[0]):
        h0, h1 = adaptive_bounds(i, h, out[0])
        for j in range(out[1]):
            w0, w1 = adaptive_bounds(j, w, out[1])
            count = (h1 - h0) * (w1 - w0)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].sum(axis=(-2, -1)) / count
            gx[:, :, h0:h1, w0:w1] += gy[:, :, i, j, None, None] / count
    return y, gy, gx


# ---- random cases -----------------------------------------------------------------------------------------

def draw_case(rng, ndim, dilated):
    """Input shape and (kernel, stride, padding, dilation, ceil_mode) per spatial dim, with >= 1 output."""
    while True:
        k = [int(v) for v in rng.integers(1, 5, ndim)]
        stride = [int(v) for v in rng.integers(1, 6, ndim)]
        pad = [int(rng.integers(0, kk // 2 + 1)) for kk in k]
        dil = [int(v) for v in rng.integers(1, 4, ndim)] if dilated else [1] * ndim
        ceil_mode = bool(rng.integers(2))
        size = [int(v) for v in rng.integers(1, 14, ndim)]
        if all(out_len(*a, ceil_mode) >= 1 for a in zip(size, k, stride, pad, dil)):
            shape = [int(rng.integers(1, 4)), int(rng.choice([1, 3, 5]))] + size
            return shape, k, stride, pad, dil, ceil_mode


def as_2d(x, k, stride, pad, dil):
    """A 1-D problem as the 2-D one with H = KH = 1 (how the references handle both ranks)."""
    if x.ndim == 4:
        return x, k, stride, pad, dil
    return x[:, :, None, :], [1] + k, [1] + stride, [0] + pad, [1] + dil


def max_input(rng, shape, dtype):
    """Small integers for ties in most cases; sometimes NaN and -inf sprinkled in."""
    kind = rng.integers(3)
    x = rng.integers(-3, 4, shape).astype(dtype) if kind else rng.standard_normal(shape).astype(dtype)
    if rng.random() < 0.3:
        x[rng.random(shape) < 0.1] = np.nan
        x[rng.random(shape) < 0.1] = -np.inf
    return x


def has_empty_window(shape, k, stride, pad, dil, ceil_mode):
    """A dilated window can land entirely in the padding; PyTorch then routes its gradient out of bounds
    (into the next plane), so PyTorch is no oracle there."""
    for size, kk, s, p, d in zip(shape[2:], k, stride, pad, dil):
        if any(not window_taps(o, kk, s, p, d, size) for o in range(out_len(size, kk, s, p, d, ceil_mode))):
            return True
    return False


# ---- max pool -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_matches_reference(device, dtype, ndim, seed):
    rng = np.random.default_rng([seed, ndim, 11])
    shape, k, stride, pad, dil, ceil_mode = draw_case(rng, ndim, dilated=True)
    x = max_input(rng, shape, dtype)
    y = R.max_pool_forward(nd(x, "cpu"), k, stride, pad, dil, ceil_mode).numpy()
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = R.max_pool_backward(nd(x, "cpu"), nd(gy, "cpu"), k, stride, pad, dil, ceil_mode).numpy()
    np.testing.assert_array_equal(_C.max_pool_forward(nd(x, device), k, stride, pad, dil, ceil_mode).numpy(), y)
    np.testing.assert_allclose(_C.max_pool_backward(nd(x, device), nd(gy, device), k, stride, pad, dil,
                                                    ceil_mode).numpy(), gx, **TOL[dtype])
    x2, k2, s2, p2, d2 = as_2d(x, k, stride, pad, dil)
    y_np, idx = max_pool_ref(x2, k2, s2, p2, d2, ceil_mode)
    np.testing.assert_array_equal(y, y_np.reshape(y.shape))
    gx_np = max_pool_grad_ref(idx, gy.reshape(y_np.shape), *x2.shape[2:]).reshape(x.shape)
    np.testing.assert_allclose(gx, gx_np, **TOL[dtype])


@pytest.mark.parametrize("seed", TORCH_SEEDS)
@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_matches_torch(device, dtype, ndim, seed):
    """Values and gradient are PyTorch's; the argmax the forward keeps for autograd is PyTorch's
    return_indices (plane positions), and routing gy through it (max_pool_backward_indices, what autograd
    runs) is PyTorch's gradient too."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng([seed, ndim, 12])
    case = draw_case(rng, ndim, dilated=True)
    while has_empty_window(*case):
        case = draw_case(rng, ndim, dilated=True)
    shape, k, stride, pad, dil, ceil_mode = case
    x = max_input(rng, shape, dtype)
    pool = torch.nn.functional.max_pool2d if ndim == 2 else torch.nn.functional.max_pool1d
    xt = torch.from_numpy(x).requires_grad_()
    yt, it = pool(xt, k, stride, pad, dil, ceil_mode=ceil_mode, return_indices=True)
    gy = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.from_numpy(gy))

    for ops, dev in ((R, "cpu"), (_C, device)):
        y = ops.max_pool_forward(nd(x, dev), k, stride, pad, dil, ceil_mode).numpy()
        gx = ops.max_pool_backward(nd(x, dev), nd(gy, dev), k, stride, pad, dil, ceil_mode).numpy()
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_allclose(gx, xt.grad.numpy(), **TOL[dtype])
        y, idx = ops.max_pool_forward(nd(x, dev), k, stride, pad, dil, ceil_mode, return_indices=True)
        np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
        assert idx.dtype == "int64"
        np.testing.assert_array_equal(idx.numpy(), it.numpy())
        gx = ops.max_pool_backward_indices(idx, nd(gy, dev), list(shape[2:]), k, stride, pad, dil, ceil_mode)
        np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), **TOL[dtype])


def test_max_pool_backward_indices_checks(device):
    """Indices of the wrong dtype or shape are refused by name; an index outside the plane (a window with
    no tap on x has -1) selects no element on either device, whatever its value."""
    x = nd(np.arange(24.0).reshape(1, 2, 3, 4), device)
    args = ([2, 2], [2, 2], [0, 0], [1, 1], False)
    y, idx = _C.max_pool_forward(x, *args, return_indices=True)
    gy = nd(np.ones((1, 2, 1, 2)), device)
    with pytest.raises(TypeError, match="indices"):
        _C.max_pool_backward_indices(idx.astype("float64"), gy, [3, 4], *args)
    with pytest.raises(ValueError, match="indices"):
        _C.max_pool_backward_indices(nd(np.zeros((1, 2, 2, 1), np.int64), device), gy, [3, 4], *args)
    wild = nd(np.array([-1, 12, -(1 << 40), 1 << 40], np.int64).reshape(1, 2, 1, 2), device)
    gx = _C.max_pool_backward_indices(wild, gy, [3, 4], *args).numpy()
    np.testing.assert_array_equal(gx, np.zeros((1, 2, 3, 4)))
    expected = np.zeros((1, 2, 3, 4))
    expected.reshape(2, 12)[:, [5, 7]] = 1
    np.testing.assert_array_equal(_C.max_pool_backward_indices(idx, gy, [3, 4], *args).numpy(), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_ties_nan_and_overlap(device, dtype):
    """Ties go to the first maximum, NaN beats everything and the last NaN wins, overlapping windows add."""
    x = np.array([[[[5, 5, 1, 5],
                    [2, 5, np.nan, 0],
                    [np.nan, 1, 0, np.nan]]]], dtype)
    k, stride, pad, dil = [2, 2], [1, 1], [0, 0], [1, 1]
    gy = np.array([[[[1, 10, 100], [1000, 10000, 100000]]]], dtype)
    expected = np.array([[[[1, 0, 0, 0],
                           [0, 0, 10 + 100 + 10000, 0],
                           [1000, 0, 0, 100000]]]], dtype)
    for ops, dev in ((R, "cpu"), (_C, device)):
        y = ops.max_pool_forward(nd(x, dev), k, stride, pad, dil, False).numpy()
        np.testing.assert_array_equal(y, np.array([[[[5, np.nan, np.nan], [np.nan, np.nan, np.nan]]]], dtype))
        gx = ops.max_pool_backward(nd(x, dev), nd(gy, dev), k, stride, pad, dil, False).numpy()
        np.testing.assert_array_equal(gx, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_all_minus_inf_routes_to_first_tap(device, dtype):
    """A window of -inf only has no strictly larger value: its first real tap is the argmax, as in PyTorch."""
    x = np.full((1, 2, 5, 9), -np.inf, dtype)
    x[0, 1, 2, 4] = 1.0
    k, stride, pad, dil = [3, 3], [2, 1], [1, 1], [1, 2]
    y_ref, idx = max_pool_ref(x, k, stride, pad, dil, True)
    gy = np.arange(1, y_ref.size + 1, dtype=dtype).reshape(y_ref.shape)
    for ops, dev in ((R, "cpu"), (_C, device)):
        y = ops.max_pool_forward(nd(x, dev), k, stride, pad, dil, True).numpy()
        gx = ops.max_pool_backward(nd(x, dev), nd(gy, dev), k, stride, pad, dil, True).numpy()
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(gx, max_pool_grad_ref(idx, gy, 5, 9))


@pytest.mark.parametrize("shape, k, pad, dil", [
    ((1, 2, 4), [2], [1], [5]),
    ((1, 2, 4, 6), [2, 2], [1, 0], [5, 1]),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_window_in_padding_only(device, dtype, shape, k, pad, dil):
    """kernel 2, dilation 5, padding 1 over length 4: every window's taps sit at -1 and 4, both padding.
    Its output is -inf (as in PyTorch) and its gradient goes nowhere (PyTorch writes it out of bounds)."""
    x = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    stride = [1] * len(k)
    for ops, dev in ((R, "cpu"), (_C, device)):
        y = ops.max_pool_forward(nd(x, dev), k, stride, pad, dil, False).numpy()
        np.testing.assert_array_equal(y, np.full(y.shape, -np.inf, dtype))
        gx = ops.max_pool_backward(nd(x, dev), nd(np.ones(y.shape, dtype), dev), k, stride, pad, dil, False).numpy()
        np.testing.assert_array_equal(gx, np.zeros_like(x))


# ---- average pool ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_matches_reference(device, dtype, ndim, seed):
    rng = np.random.default_rng([seed, ndim, 21])
    shape, k, stride, pad, _, ceil_mode = draw_case(rng, ndim, dilated=False)
    count_include_pad = bool(rng.integers(2))
    x = rng.standard_normal(shape).astype(dtype)
    x2, k2, s2, p2, _ = as_2d(x, k, stride, pad, [1] * ndim)
    draw_gy = lambda s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    y_np, gy, gx_np = avg_pool_ref(x2, draw_gy, k2, s2, p2, ceil_mode, count_include_pad)
    gy = gy.reshape(y_np.shape[:2] + y_np.shape[4 - ndim:])
    for ops, dev in ((R, "cpu"), (_C, device)):  # the reference against NumPy, the kernels against both
        y = ops.avg_pool_forward(nd(x, dev), k, stride, pad, ceil_mode, count_include_pad).numpy()
        gx = ops.avg_pool_backward(nd(gy, dev), shape[2:], k, stride, pad, ceil_mode, count_include_pad).numpy()
        np.testing.assert_allclose(y, y_np.reshape(y.shape), **TOL[dtype])
        np.testing.assert_allclose(gx, gx_np.reshape(x.shape), **TOL[dtype])


@pytest.mark.parametrize("seed", TORCH_SEEDS)
@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_matches_torch(device, dtype, ndim, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng([seed, ndim, 22])
    shape, k, stride, pad, _, ceil_mode = draw_case(rng, ndim, dilated=False)
    count_include_pad = bool(rng.integers(2))
    x = rng.standard_normal(shape).astype(dtype)
    pool = torch.nn.functional.avg_pool2d if ndim == 2 else torch.nn.functional.avg_pool1d
    xt = torch.from_numpy(x).requires_grad_()
    yt = pool(xt, k, stride, pad, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    gy = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.from_numpy(gy))

    for ops, dev in ((R, "cpu"), (_C, device)):
        y = ops.avg_pool_forward(nd(x, dev), k, stride, pad, ceil_mode, count_include_pad).numpy()
        gx = ops.avg_pool_backward(nd(gy, dev), shape[2:], k, stride, pad, ceil_mode, count_include_pad).numpy()
        np.testing.assert_allclose(y, yt.detach().numpy(), **TOL[dtype])
        np.testing.assert_allclose(gx, xt.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_ceil_mode_divisor(device, count_include_pad):
    """Length 6, kernel 3, stride 2, padding 1, ceil_mode: windows start at -1, 1, 3, 5 and the last one
    runs one cell past the right padding. Divisors: 3, 3, 3, 2 with count_include_pad (cut at the padded
    end), 2, 3, 3, 1 without (real elements only)."""
    x = np.array([[[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]]])
    divisors = [3, 3, 3, 2] if count_include_pad else [2, 3, 3, 1]
    for ops, dev in ((R, "cpu"), (_C, device)):
        y = ops.avg_pool_forward(nd(x, dev), [3], [2], [1], True, count_include_pad).numpy()
        np.testing.assert_allclose(y[0, 0], np.array([3.0, 14.0, 56.0, 32.0]) / divisors, rtol=1e-12)


# ---- adaptive average pool --------------------------------------------------------------------------------------

def draw_adaptive(rng, ndim):
    size = [int(v) for v in rng.integers(1, 14, ndim)]
    out = [int(rng.integers(1, 2 * s + 2)) for s in size]  # larger than the input too: windows overlap
    return [int(rng.integers(1, 4)), int(rng.choice([1, 3, 5]))] + size, out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_avg_pool_matches_reference(device, dtype, ndim, seed):
    rng = np.random.default_rng([seed, ndim, 31])
    shape, out = draw_adaptive(rng, ndim)
    x = rng.standard_normal(shape).astype(dtype)
    x2 = x if ndim == 2 else x[:, :, None, :]
    out2 = out if ndim == 2 else [1] + out
    y_np, gy, gx_np = adaptive_avg_pool_ref(x2, lambda s: rng.standard_normal(s).astype(dtype), out2)
    gy = gy.reshape(shape[:2] + out)
    for ops, dev in ((R, "cpu"), (_C, device)):  # the reference against NumPy, the kernels against both
        y = ops.adaptive_avg_pool_forward(nd(x, dev), out).numpy()
        gx = ops.adaptive_avg_pool_backward(nd(gy, dev), shape[2:]).numpy()
        np.testing.assert_allclose(y, y_np.reshape(y.shape), **TOL[dtype])
        np.testing.assert_allclose(gx, gx_np.reshape(x.shape), **TOL[dtype])


@pytest.mark.parametrize("out", [[1, 1], [2, 1], [1, 2], [3, 2], [1, 300]])
@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_avg_pool_large_windows(device, dtype, out):
    """Windows of whole rows (global average pooling: one run of h*w elements) and runs of >= 32 columns
    take the kernel's partial-sum path; the random cases above are too small to reach it."""
    rng = np.random.default_rng(len(out) + out[-1])
    shape = [2, 3, 47, 53] if out[-1] < 300 else [1, 2, 1, 901]
    x = rng.standard_normal(shape).astype(dtype) + 3.0  # a mean far from 0, so lost terms would show
    y_ref, gy, gx_ref = adaptive_avg_pool_ref(x, lambda s: rng.standard_normal(s).astype(dtype), out)
    for ops, dev in ((R, "cpu"), (_C, device)):
        np.testing.assert_allclose(ops.adaptive_avg_pool_forward(nd(x, dev), out).numpy(), y_ref, **TOL[dtype])
        np.testing.assert_allclose(ops.adaptive_avg_pool_backward(nd(gy, dev), shape[2:]).numpy(), gx_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_large_windows(device, dtype):
    """A 40x35 window (runs of >= 32 columns that are not whole rows), stride 9, padding 3."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 61, 70)).astype(dtype) + 3.0
    args = ([40, 35], [9, 9], [3, 3])
    y_ref, gy, gx_ref = avg_pool_ref(x, lambda s: rng.standard_normal(s).astype(dtype), *args, False, True)
    for ops, dev in ((R, "cpu"), (_C, device)):
        np.testing.assert_allclose(ops.avg_pool_forward(nd(x, dev), *args, False, True).numpy(), y_ref, **TOL[dtype])
        np.testing.assert_allclose(ops.avg_pool_backward(nd(gy, dev), [61, 70], *args, False, True).numpy(), gx_ref,
                                   **TOL[dtype])


@pytest.mark.parametrize("seed", TORCH_SEEDS)
@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_avg_pool_matches_torch(device, dtype, ndim, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng([seed, ndim, 32])
    shape, out = draw_adaptive(rng, ndim)
    x = rng.standard_normal(shape).astype(dtype)
    pool = torch.nn.functional.adaptive_avg_pool2d if ndim == 2 else torch.nn.functional.adaptive_avg_pool1d
    xt = torch.from_numpy(x).requires_grad_()
    yt = pool(xt, out)
    gy = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.from_numpy(gy))

    for ops, dev in ((R, "cpu"), (_C, device)):
        y = ops.adaptive_avg_pool_forward(nd(x, dev), out).numpy()
        gx = ops.adaptive_avg_pool_backward(nd(gy, dev), shape[2:]).numpy()
        np.testing.assert_allclose(y, yt.detach().numpy(), **TOL[dtype])
        np.testing.assert_allclose(gx, xt.grad.numpy(), **TOL[dtype])


# ---- threads and bad arguments ----------------------------------------------------------------------------------

def test_pool_results_do_not_depend_on_threads(device):
    rng = np.random.default_rng(41)
    x = rng.integers(-3, 4, (3, 7, 11, 13)).astype("float32")
    gy = rng.standard_normal((3, 7, 6, 7)).astype("float32")
    args = ([3, 3], [2, 2], [1, 1])
    before = _C.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            _C.set_num_threads(threads)
            xd, gyd = nd(x, device), nd(gy, device)
            results.append([_C.max_pool_backward(xd, gyd, *args, [1, 1], True).numpy(),
                            _C.avg_pool_backward(gyd, [11, 13], *args, True, False).numpy(),
                            _C.adaptive_avg_pool_backward(gyd, [11, 13]).numpy()])
    finally:
        _C.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_pool_inputs_unchanged(device):
    rng = np.random.default_rng(42)
    x = rng.standard_normal((2, 3, 9, 8))
    xd = nd(x, device)
    y = _C.max_pool_forward(xd, [3, 2], [2, 2], [1, 1], [1, 1], True)
    _C.max_pool_backward(xd, y, [3, 2], [2, 2], [1, 1], [1, 1], True)
    _C.avg_pool_backward(y, [9, 8], [3, 2], [2, 2], [1, 1], True, True)
    np.testing.assert_array_equal(xd.numpy(), x)


BAD_MAX_POOL = [
    # (input shape, kernel_size, stride, padding, dilation, word the message must name)
    ((1, 1, 5, 5), [0, 2], [1, 1], [0, 0], [1, 1], "kernel_size"),
    ((1, 1, 5, 5), [2, 2], [0, 1], [0, 0], [1, 1], "stride"),
    ((1, 1, 5, 5), [2, 2], [1, 1], [0, 2], [1, 1], "padding"),
    ((1, 1, 5, 5), [2, 2], [1, 1], [0, 0], [0, 1], "dilation"),
    ((1, 1, 5, 5), [2], [1], [0], [1], "kernel_size"),
    ((5, 5), [2, 2], [1, 1], [0, 0], [1, 1], "input"),
    ((1, 1, 2, 5), [3, 2], [1, 1], [0, 0], [1, 1], "output size"),
    ((1, 1, 5), [2], [1], [0], [5], "output size"),
]


@pytest.mark.parametrize("shape, k, stride, pad, dil, word", BAD_MAX_POOL)
def test_max_pool_bad_arguments(device, shape, k, stride, pad, dil, word):
    x = nd(np.zeros(shape), device)
    with pytest.raises(ValueError, match=word):
        _C.max_pool_forward(x, k, stride, pad, dil, False)


@pytest.mark.parametrize("k, stride, pad, word", [
    ([0, 2], [1, 1], [0, 0], "kernel_size"),
    ([2, 2], [1, 0], [0, 0], "stride"),
    ([3, 3], [1, 1], [2, 0], "padding"),
    ([6, 2], [1, 1], [0, 0], "output size"),
])
def test_avg_pool_bad_arguments(device, k, stride, pad, word):
    x = nd(np.zeros((2, 3, 5, 5)), device)
    with pytest.raises(ValueError, match=word):
        _C.avg_pool_forward(x, k, stride, pad, False, True)


@pytest.mark.parametrize("shape, out, word", [
    ((1, 1, 5, 5), [0, 2], "output_size"),
    ((1, 1, 5, 5), [2], "output_size"),
    ((1, 5), [2], "input"),
])
def test_adaptive_avg_pool_bad_arguments(device, shape, out, word):
    with pytest.raises(ValueError, match=word):
        _C.adaptive_avg_pool_forward(nd(np.zeros(shape), device), out)
