"""Differential fuzzing: random convolution and pooling configurations, run through the convlab._C kernels
and through convlab.nn.functional with autograd, compared with PyTorch (float64 oracle) for the forward
pass and every gradient, in float32 and float64.

Configurations reach the extremes on purpose: kernel span equal to the padded input, stride larger than
the kernel, dilation whose receptive field covers the whole input, groups = channels, batch 1, size-1
dims, asymmetric padding, and inputs that are non-contiguous views (permuted, sliced with negative steps,
flipped, broadcast). The default profile is a few hundred examples, derandomized so CI is reproducible;
`CONVLAB_FUZZ=long python -m pytest tests/test_fuzz.py` runs thousands with fresh random seeds (Hypothesis
prints the seed and a @reproduce_failure blob for any failure; `--hypothesis-seed=N` replays a run).
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings, strategies as st

import convlab as cl
from convlab import NDArray, _C
from conftest import DEVICES
from ndarray_helpers import as_view

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.fuzz

settings.register_profile("convlab-fast", max_examples=40, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("convlab-long", max_examples=1500, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ = settings.get_profile("convlab-long" if os.environ.get("CONVLAB_FUZZ") == "long" else "convlab-fast")

DTYPES = ["float32", "float64"]
LAYOUTS = ["contiguous", "permuted", "sliced", "flipped", "broadcast"]
# Error relative to the largest reference magnitude: float32 sums of a few hundred terms stay well inside
# 1e-4; float64 must match PyTorch to 1e-10 (API.md).
TOL = {"float32": 1e-4, "float64": 1e-10}


def assert_close(got, want, dtype, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}"
    finite = want[np.isfinite(want)]
    scale = 1.0 + (np.abs(finite).max() if finite.size else 0.0)
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale, equal_nan=True, err_msg=what)


def draw_array(draw, shape, dtype, device, ties=False, nan=False):
    """A random array of `shape` as an NDArray in a drawn memory layout, with the float64 values it holds.
    ties=True draws from a few small integers, so max-pool windows hold equal maxima; nan=True puts a NaN
    in the first element."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = (rng.integers(-2, 3, shape) if ties else rng.standard_normal(shape)).astype(np.float64)
    if nan:
        values.flat[0] = np.nan
    layout = draw(st.sampled_from(LAYOUTS))
    nd, values = as_view(rng, values.astype(dtype), layout, device)
    note(f"layout={layout} shape={shape} strides={nd.strides}")
    return nd, np.asarray(values, np.float64)


def t64(values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def torch_grads(out, inputs, seed):
    """Backpropagates a random grad-output through `out`; returns it with each input's gradient."""
    gy = torch.tensor(np.random.default_rng(seed).standard_normal(tuple(out.shape)), dtype=torch.float64)
    grads = torch.autograd.grad(out, inputs, gy, allow_unused=True)
    return gy.numpy(), [np.zeros(tuple(i.shape)) if g is None else g.numpy() for g, i in zip(grads, inputs)]


# ---- configurations --------------------------------------------------------------------------------------

@st.composite
def conv_geometry(draw, transposed, symmetric=False):
    """Per spatial dim: kernel, stride, dilation, (lo, hi) padding, output_padding, input size; plus groups,
    channels and batch. The input size is often the smallest one allowed (span = padded input).
    symmetric=True keeps lo = hi, as the functional API's padding argument does."""
    dims = draw(st.sampled_from([1, 2]))
    groups = draw(st.integers(1, 4))
    c_in_g, c_out_g = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if draw(st.booleans()):  # depthwise: groups = channels
        c_in_g = 1
    g = dict(dims=dims, groups=groups, c_in=groups * c_in_g, c_out=groups * c_out_g, n=draw(st.integers(1, 3)),
             kernel=[], stride=[], dilation=[], padding=[], output_padding=[], size=[])
    for _ in range(dims):
        k, s, d = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
        span = d * (k - 1) + 1
        if transposed:
            size = draw(st.integers(1, 7))
            full = (size - 1) * s + span
            op = draw(st.integers(0, max(s, d) - 1))
            lo = draw(st.integers(0, (full + op - 1) // 2 if symmetric else full - 1))
            hi = lo if symmetric else draw(st.integers(0, full + op - 1 - lo))
        else:
            lo = draw(st.integers(0, span))
            hi = lo if symmetric else draw(st.integers(0, span))
            size = max(1, span - lo - hi) + draw(st.sampled_from([0, 0, 1, 2, 5, 9]))
            op = 0
        for key, v in zip(["kernel", "stride", "dilation", "padding", "output_padding", "size"],
                          [k, s, d, (lo, hi), op, size]):
            g[key].append(v)
    note(f"geometry={g}")
    return g


def torch_conv(x, w, b, g):
    """PyTorch conv with (lo, hi) padding: explicit zero padding, then a padding-free convolution."""
    pads = [p for lo_hi in reversed(g["padding"]) for p in lo_hi]
    conv = F.conv1d if g["dims"] == 1 else F.conv2d
    return conv(F.pad(x, pads), w, b, stride=g["stride"], dilation=g["dilation"], groups=g["groups"])


def torch_conv_transpose(x, w, b, g):
    """PyTorch conv_transpose with (lo, hi) padding: the unpadded result cropped by lo at the start and hi at
    the end of each spatial dim."""
    conv = F.conv_transpose1d if g["dims"] == 1 else F.conv_transpose2d
    y = conv(x, w, b, stride=g["stride"], output_padding=g["output_padding"], dilation=g["dilation"],
             groups=g["groups"])
    crop = tuple(slice(lo, y.shape[2 + i] - hi) for i, (lo, hi) in enumerate(g["padding"]))
    return y[(Ellipsis,) + crop]


# ---- kernels (convlab._C) --------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_conv_kernels(device, data, dtype):
    g = data.draw(conv_geometry(False))
    x, xv = draw_array(data.draw, [g["n"], g["c_in"]] + g["size"], dtype, device)
    w, wv = draw_array(data.draw, [g["c_out"], g["c_in"] // g["groups"]] + g["kernel"], dtype, device)
    b, bv = draw_array(data.draw, [g["c_out"]], dtype, device)
    args = (g["stride"], g["padding"], g["dilation"], g["groups"])

    xt, wt, bt = t64(xv), t64(wv), t64(bv)
    yt = torch_conv(xt, wt, bt, g)
    gy, (gx_ref, gw_ref) = torch_grads(yt, [xt, wt], seed=1)
    assert_close(_C.conv_forward(x, w, b, *args).numpy(), yt.detach().numpy(), dtype, "conv forward")

    gy_nd = NDArray.from_numpy(gy.astype(dtype), device)
    assert_close(_C.conv_backward_input(gy_nd, w, g["size"], *args).numpy(), gx_ref, dtype, "grad input")
    assert_close(_C.conv_backward_weight(x, gy_nd, g["kernel"], *args).numpy(), gw_ref, dtype, "grad weight")


def conv_transpose_backward(x, w, gy, g):
    """The transposed conv's gradients from the conv kernels (docs/ndarray.md): conv_forward(gy, w) to the
    input and conv_backward_weight(gy, x) to the weight. When output_padding >= stride (allowed when
    dilation > stride) that conv of gy is longer than x: its extra positions belong to x's implicit zero
    tail, so the input gradient drops them and x is zero-extended to match for the weight gradient."""
    args = (g["stride"], g["padding"], g["dilation"], g["groups"])
    gx = _C.conv_forward(gy, w, None, *args)
    tail = [gx.shape[2 + i] - x.shape[2 + i] for i in range(g["dims"])]
    x_ext = x.pad([(0, 0), (0, 0)] + [(0, t) for t in tail]) if any(tail) else x
    gw = _C.conv_backward_weight(gy, x_ext, g["kernel"], *args)
    return gx[(Ellipsis,) + tuple(slice(0, n) for n in g["size"])], gw


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_conv_transpose_kernels(device, data, dtype):
    g = data.draw(conv_geometry(True))
    x, xv = draw_array(data.draw, [g["n"], g["c_in"]] + g["size"], dtype, device)
    w, wv = draw_array(data.draw, [g["c_in"], g["c_out"] // g["groups"]] + g["kernel"], dtype, device)
    b, bv = draw_array(data.draw, [g["c_out"]], dtype, device)

    xt, wt, bt = t64(xv), t64(wv), t64(bv)
    yt = torch_conv_transpose(xt, wt, bt, g)
    y = _C.conv_transpose_forward(x, w, b, g["stride"], g["padding"], g["output_padding"], g["dilation"],
                                  g["groups"])
    assert_close(y.numpy(), yt.detach().numpy(), dtype, "conv_transpose forward")

    gy, (gx_ref, gw_ref) = torch_grads(yt, [xt, wt], seed=2)
    gx, gw = conv_transpose_backward(x, w, NDArray.from_numpy(gy.astype(dtype), device), g)
    assert_close(gx.numpy(), gx_ref, dtype, "grad input")
    assert_close(gw.numpy(), gw_ref, dtype, "grad weight")


@st.composite
def pool_geometry(draw, kind):
    """kind: "max" (dilation, ceil_mode), "avg" (ceil_mode, count_include_pad). Padding up to k/2 as PyTorch
    allows; sizes down to the smallest input that still gives one window."""
    dims = draw(st.sampled_from([1, 2]))
    g = dict(dims=dims, n=draw(st.integers(1, 3)), c=draw(st.integers(1, 5)), ceil_mode=draw(st.booleans()),
             count_include_pad=draw(st.booleans()), kernel=[], stride=[], padding=[], dilation=[], size=[])
    for _ in range(dims):
        k, s = draw(st.integers(1, 5)), draw(st.integers(1, 6))
        d = draw(st.integers(1, 3)) if kind == "max" else 1
        p = draw(st.integers(0, k // 2))
        size = max(1, d * (k - 1) + 1 - 2 * p) + draw(st.sampled_from([0, 0, 1, 3, 8]))
        for key, v in zip(["kernel", "stride", "padding", "dilation", "size"], [k, s, p, d, size]):
            g[key].append(v)
    note(f"geometry={g}")
    return g


def every_window_reads_input(g):
    """False when some window covers only padding: its output is -inf, and PyTorch then sends the window's
    gradient to an index past the end of the plane (another channel's element), so there is no oracle."""
    for size, k, s, p, d in zip(g["size"], g["kernel"], g["stride"], g["padding"], g["dilation"]):
        span = size + 2 * p - d * (k - 1) - 1
        out = (-(-span // s) if g["ceil_mode"] else span // s) + 1
        out -= g["ceil_mode"] and (out - 1) * s >= size + p
        if not all(any(0 <= o * s - p + t * d < size for t in range(k)) for o in range(out)):
            return False
    return True


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(DTYPES), ties=st.booleans(), nan=st.booleans())
def test_max_pool_kernels(device, data, dtype, ties, nan):
    g = data.draw(pool_geometry("max"))
    # A NaN must win every window it is in, PyTorch's rule.
    x, xv = draw_array(data.draw, [g["n"], g["c"]] + g["size"], dtype, device, ties=ties, nan=nan)
    args = (g["kernel"], g["stride"], g["padding"], g["dilation"], g["ceil_mode"])

    xt = t64(xv)
    pool = F.max_pool1d if g["dims"] == 1 else F.max_pool2d
    yt = pool(xt, *args)
    assert_close(_C.max_pool_forward(x, *args).numpy(), yt.detach().numpy(), dtype, "max_pool forward")
    if not every_window_reads_input(g):
        return  # PyTorch's backward would write out of bounds here (it has aborted the process)
    gy, (gx_ref,) = torch_grads(yt, [xt], seed=3)
    gy_nd = NDArray.from_numpy(gy.astype(dtype), device)
    assert_close(_C.max_pool_backward(x, gy_nd, *args).numpy(), gx_ref, dtype, "max_pool grad input")


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_avg_pool_kernels(device, data, dtype):
    g = data.draw(pool_geometry("avg"))
    x, xv = draw_array(data.draw, [g["n"], g["c"]] + g["size"], dtype, device)
    args = (g["kernel"], g["stride"], g["padding"], g["ceil_mode"], g["count_include_pad"])

    xt = t64(xv)
    pool = F.avg_pool1d if g["dims"] == 1 else F.avg_pool2d
    yt = pool(xt, *args)
    gy, (gx_ref,) = torch_grads(yt, [xt], seed=4)
    assert_close(_C.avg_pool_forward(x, *args).numpy(), yt.detach().numpy(), dtype, "avg_pool forward")
    gy_nd = NDArray.from_numpy(gy.astype(dtype), device)
    assert_close(_C.avg_pool_backward(gy_nd, g["size"], *args).numpy(), gx_ref, dtype, "avg_pool grad input")


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_adaptive_avg_pool_kernels(device, data, dtype):
    """Output sizes from 1 to beyond the input size (windows then overlap and repeat)."""
    dims = data.draw(st.sampled_from([1, 2]))
    size = data.draw(st.lists(st.integers(1, 9), min_size=dims, max_size=dims))
    out = [data.draw(st.integers(1, s + 3)) for s in size]
    x, xv = draw_array(data.draw, [data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))] + size, dtype,
                       device)
    xt = t64(xv)
    pool = F.adaptive_avg_pool1d if dims == 1 else F.adaptive_avg_pool2d
    yt = pool(xt, out)
    gy, (gx_ref,) = torch_grads(yt, [xt], seed=5)
    assert_close(_C.adaptive_avg_pool_forward(x, out).numpy(), yt.detach().numpy(), dtype, "forward")
    gy_nd = NDArray.from_numpy(gy.astype(dtype), device)
    assert_close(_C.adaptive_avg_pool_backward(gy_nd, size).numpy(), gx_ref, dtype, "grad input")


# ---- the functional API with autograd (convlab.nn.functional vs torch.nn.functional) ---------------------

def leaf_and_view(draw, values, dtype, device):
    """A leaf tensor and a view of it holding `values` (itself, a permutation of a transposed leaf, or every
    second element of a wider leaf), and a function taking the leaf's gradient to the view's."""
    layout = draw(st.sampled_from(["contiguous", "permuted", "sliced"]))
    note(f"tensor layout={layout}")
    if layout == "contiguous":
        leaf = cl.tensor(values, dtype=dtype, device=device, requires_grad=True)
        return leaf, leaf, lambda g: g
    if layout == "permuted":
        perm = draw(st.permutations(range(values.ndim)))
        leaf = cl.tensor(np.ascontiguousarray(values.transpose(np.argsort(perm))), dtype=dtype, device=device,
                         requires_grad=True)
        return leaf, leaf.permute(*perm), lambda g: g.transpose(perm)
    wide = np.random.default_rng(0).standard_normal(values.shape[:-1] + (2 * values.shape[-1],))
    wide[..., 1::2] = values
    leaf = cl.tensor(wide, dtype=dtype, device=device, requires_grad=True)

    def view_grad(g):
        assert not g[..., 0::2].any(), "gradient leaked into elements the view does not hold"
        return g[..., 1::2]
    return leaf, leaf[..., 1::2], view_grad


def check_functional(data, device, dtype, name, arrays, kwargs, seed):
    """Calls cl.nn.functional.<name> and torch.nn.functional.<name> with the same arguments on the same
    values (convlab in `dtype`, PyTorch in float64); compares outputs and the gradients of every array
    argument after a backward pass with one random grad-output. arrays: name -> values or None."""
    clf = pytest.importorskip("convlab.nn.functional")
    ours, theirs, leaves = {}, {}, {}
    for key, values in arrays.items():
        if values is None:
            ours[key] = theirs[key] = None
            continue
        leaf, view, to_view = leaf_and_view(data.draw, values, dtype, device)
        ours[key], leaves[key] = view, (leaf, to_view)
        theirs[key] = t64(values)
    note(f"{name}({', '.join(arrays)}, **{kwargs})")
    ref = getattr(F, name)(*theirs.values(), **kwargs)
    out = getattr(clf, name)(*ours.values(), **kwargs)
    assert out.dtype == dtype and out.device == device
    assert_close(out.numpy(), ref.detach().numpy(), dtype, f"{name} forward")

    inputs = [theirs[k] for k in leaves]
    gy, grads = torch_grads(ref, inputs, seed)
    out.backward(cl.tensor(gy, dtype=dtype, device=device))
    for key, want in zip(leaves, grads):
        leaf, to_view = leaves[key]
        assert leaf.grad is not None, f"{name}: {key} got no gradient"
        assert_close(to_view(leaf.grad.numpy()), want, dtype, f"{name} grad {key}")


def functional_conv_args(draw, g, transposed):
    """PyTorch-style stride/padding/dilation arguments for geometry g: ints for 1-D (or equal entries),
    tuples otherwise; 'same' or 'valid' strings where they apply."""
    def arg(values):
        return values[0] if len(set(values)) == 1 and draw(st.booleans()) else tuple(values)
    kwargs = dict(stride=arg(g["stride"]), dilation=arg(g["dilation"]), groups=g["groups"])
    pads = [lo for lo, _ in g["padding"]]
    if transposed:
        kwargs.update(padding=arg(pads), output_padding=arg(g["output_padding"]))
    else:
        choice = draw(st.sampled_from(["explicit", "explicit", "valid", "same"]))
        kwargs["padding"] = arg(pads) if choice == "explicit" else choice
        if choice == "same":
            kwargs["stride"] = 1
    return kwargs


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(DTYPES), transposed=st.booleans(), use_bias=st.booleans(),
       unbatched=st.booleans())
def test_functional_conv(device, data, dtype, transposed, use_bias, unbatched):
    g = data.draw(conv_geometry(transposed, symmetric=True))
    kwargs = functional_conv_args(data.draw, g, transposed)
    if kwargs["padding"] == "valid":  # the smallest valid input is the kernel span
        g["size"] = [max(s, d * (k - 1) + 1) for s, d, k in zip(g["size"], g["dilation"], g["kernel"])]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x_shape = ([] if unbatched else [g["n"]]) + [g["c_in"]] + g["size"]
    w_shape = ([g["c_in"], g["c_out"] // g["groups"]] if transposed else
               [g["c_out"], g["c_in"] // g["groups"]]) + g["kernel"]
    arrays = dict(input=rng.standard_normal(x_shape), weight=rng.standard_normal(w_shape),
                  bias=rng.standard_normal(g["c_out"]) if use_bias else None)
    name = f"conv{'_transpose' if transposed else ''}{g['dims']}d"
    check_functional(data, device, dtype, name, arrays, kwargs, seed=6)


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(DTYPES), kind=st.sampled_from(["max", "avg", "adaptive_avg"]),
       default_stride=st.booleans())
def test_functional_pool(device, data, dtype, kind, default_stride):
    if kind == "adaptive_avg":
        size = data.draw(st.lists(st.integers(1, 9), min_size=2, max_size=2))
        kwargs = dict(output_size=tuple(data.draw(st.integers(1, s + 3)) for s in size))
        dims, shape = 2, [data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))] + size
    else:
        g = data.draw(pool_geometry(kind))
        if default_stride:  # stride=None means stride = kernel_size
            g["stride"] = list(g["kernel"])
        assume(kind != "max" or every_window_reads_input(g))
        dims, shape = g["dims"], [g["n"], g["c"]] + g["size"]
        kwargs = dict(kernel_size=tuple(g["kernel"]), stride=None if default_stride else tuple(g["stride"]),
                      padding=tuple(g["padding"]), ceil_mode=g["ceil_mode"])
        if kind == "max":
            kwargs["dilation"] = tuple(g["dilation"])
        else:
            kwargs["count_include_pad"] = g["count_include_pad"]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    check_functional(data, device, dtype, f"{kind}_pool{dims}d", dict(input=rng.standard_normal(shape)), kwargs,
                     seed=7)
