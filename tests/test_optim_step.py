"""The fused optimizer kernels _C.sgd_step_ and _C.adam_step_ against torch.optim's update rules written out
in NumPy (same operations, same order, in the parameter's dtype): every option, float32 and float64,
parameters and state as views (permuted, strided, flipped) with the memory around them left alone,
gradients as any view (broadcast too, or sharing the parameter's memory), threaded sizes, in-place
semantics (version counters move, the gradient is not modified) and argument errors. test_optim.py runs
the optimizers that call them against PyTorch itself."""
import math

import numpy as np
import pytest

import convlab as cl
from ndarray_helpers import as_view, check, rand

SHAPES = [(3, 4), (2, 3, 5, 7), (40001,), (1,), ()]  # 40001: above kParallelMin, so threaded
SGD_OPTIONS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, first_step=True),
    dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
    dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.1),
    dict(lr=0.1, weight_decay=0.2, maximize=True),
    dict(lr=0.3, momentum=0.5, nesterov=True, maximize=True, first_step=True),
]
ADAM_OPTIONS = [
    dict(step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8),
    dict(step=7, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.05),
    dict(step=3, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.3, decoupled_weight_decay=True),
    dict(step=2, lr=0.02, beta1=0.5, beta2=0.9, eps=1e-3, maximize=True, amsgrad=True),
    dict(step=1, lr=0.02, beta1=0.5, beta2=0.9, eps=1e-3, weight_decay=0.1, amsgrad=True),
]


def sgd_reference(p, g, buf, lr, weight_decay=0.0, momentum=0.0, dampening=0.0, nesterov=False, maximize=False,
                  first_step=False):
    """torch.optim.SGD on one parameter: returns the new (p, buf)."""
    c = p.dtype.type
    d = -g if maximize else g
    if weight_decay:
        d = d + p * c(weight_decay)
    if momentum:
        buf = d.copy() if first_step else buf * c(momentum) + (d * c(1 - dampening) if dampening else d)
        d = d + buf * c(momentum) if nesterov else buf
    return p - d * c(lr), buf


def adam_reference(p, g, m, v, v_max, step, lr, beta1, beta2, eps, weight_decay=0.0, maximize=False,
                   decoupled_weight_decay=False, amsgrad=False):
    """torch.optim.Adam / AdamW on one parameter: returns the new (p, m, v, v_max)."""
    c = p.dtype.type
    d = -g if maximize else g
    if weight_decay and decoupled_weight_decay:
        p = p * c(1 - lr * weight_decay)
    elif weight_decay:
        d = d + p * c(weight_decay)
    m = m + (d - m) * c(1 - beta1)
    v = v * c(beta2) + d * d * c(1 - beta2)
    if amsgrad:
        v_max = np.maximum(v_max, v)
    denom = np.sqrt(v_max if amsgrad else v) / c(math.sqrt(1 - beta2 ** step)) + c(eps)
    return p - m / denom * c(lr / (1 - beta1 ** step)), m, v, v_max


class Written:
    """An array a step writes, as a view of layout `layout` inside a bigger array whose other elements must
    come out unchanged."""

    def __init__(self, rng, values, layout, device):
        shape = values.shape
        if layout == "permuted" and values.ndim > 1:
            perm = tuple(int(i) for i in rng.permutation(values.ndim))
            base = np.ascontiguousarray(values.transpose(np.argsort(perm)))
            self.base, self.index = cl.NDArray.from_numpy(base, device=device), None
            self.view = self.base.permute(perm)
        elif layout == "strided":  # every second element, walked backwards on the first axis
            big = rand(rng, tuple(2 * n + 1 for n in shape), values.dtype)
            self.index = tuple(slice(2 * n - 1, None, -2) if d == 0 else slice(0, 2 * n, 2)
                               for d, n in enumerate(shape))
            big[self.index] = values
            self.base = cl.NDArray.from_numpy(big, device=device)
            self.view = self.base[self.index]
        else:
            self.base, self.index = cl.NDArray.from_numpy(values.copy(), device=device), None
            self.view = self.base
        self.before = self.base.numpy()
        self.version = self.view._version

    def check(self, want):
        check(self.view, want)
        assert self.view._version > self.version
        if self.index is not None:
            outside = self.before.copy()
            outside[self.index] = self.base.numpy()[self.index]
            np.testing.assert_array_equal(self.base.numpy(), outside)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(SGD_OPTIONS)))
def test_sgd_step_matches_torch_rule(device, dtype, case):
    options = SGD_OPTIONS[case]
    rng = np.random.default_rng(case)
    for shape in SHAPES:
        for p_layout, g_layout in [("contiguous", "contiguous"), ("permuted", "flipped"), ("strided", "broadcast"),
                                   ("contiguous", "sliced")]:
            xp, xb = rand(rng, shape, dtype), rand(rng, shape, dtype)
            g, xg = as_view(rng, rand(rng, shape, dtype), g_layout, device)
            g_before = g.numpy()
            p = Written(rng, xp, p_layout, device)
            buf = Written(rng, xb, "strided" if p_layout == "permuted" else p_layout, device)
            momentum = options.get("momentum", 0.0)
            cl._C.sgd_step_(p.view, g, buf.view if momentum else None, **options)
            want_p, want_buf = sgd_reference(xp, np.asarray(xg), xb, **options)
            p.check(want_p)
            if momentum:
                buf.check(want_buf)
            np.testing.assert_array_equal(g.numpy(), g_before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(ADAM_OPTIONS)))
def test_adam_step_matches_torch_rule(device, dtype, case):
    options = dict(ADAM_OPTIONS[case])
    amsgrad = options.pop("amsgrad", False)
    rng = np.random.default_rng(case)
    for shape in SHAPES:
        # the first: every array contiguous, the kernel's vectorised loop
        for p_layout, g_layout, m_layout in [("contiguous", "contiguous", "contiguous"),
                                             ("contiguous", "contiguous", "strided"),
                                             ("permuted", "flipped", "strided"), ("strided", "broadcast", "strided")]:
            xp, xm = rand(rng, shape, dtype), rand(rng, shape, dtype)
            xv, xv_max = np.abs(rand(rng, shape, dtype)), np.abs(rand(rng, shape, dtype))
            g, xg = as_view(rng, rand(rng, shape, dtype), g_layout, device)
            p, m, v, v_max = (Written(rng, x, layout, device) for x, layout in
                              [(xp, p_layout), (xm, m_layout), (xv, p_layout), (xv_max, "contiguous")])
            cl._C.adam_step_(p.view, g, m.view, v.view, v_max.view if amsgrad else None, **options)
            want = adam_reference(xp, np.asarray(xg), xm, xv, xv_max, **options, amsgrad=amsgrad)
            for got, w in zip((p, m, v, v_max) if amsgrad else (p, m, v), want):
                got.check(w)


def test_steps_read_a_gradient_that_shares_the_parameters_memory(device):
    """g a view of p's own storage (here p itself, and p reversed): read as it was before the step."""
    for flip in (False, True):
        xp = rand(np.random.default_rng(1), (5, 6), "float64")
        p = cl.NDArray.from_numpy(xp, device=device)
        g = p.flip((0, 1)) if flip else p
        xg = np.flip(xp, (0, 1)).copy() if flip else xp.copy()
        cl._C.sgd_step_(p, g, None, lr=0.5, weight_decay=0.1)
        check(p, sgd_reference(xp, xg, None, lr=0.5, weight_decay=0.1)[0])


@pytest.mark.filterwarnings("ignore:invalid value")
def test_steps_carry_nan_and_inf_as_the_rule_does(device):
    xp = np.array([1.0, np.nan, 2.0, np.inf, -1.0], np.float32)
    xg = np.array([np.inf, 1.0, np.nan, 0.5, 0.0], np.float32)
    xb = np.array([0.5, 0.5, 0.5, 0.5, np.nan], np.float32)
    p, g, buf = (cl.NDArray.from_numpy(a.copy(), device=device) for a in (xp, xg, xb))
    cl._C.sgd_step_(p, g, buf, lr=0.1, momentum=0.9, weight_decay=0.01)
    want_p, want_buf = sgd_reference(xp, xg, xb, lr=0.1, momentum=0.9, weight_decay=0.01)
    check(p, want_p)
    check(buf, want_buf)
    p, m, v, v_max = (cl.NDArray.from_numpy(a.copy(), device=device) for a in (xp, xb, np.abs(xb), np.abs(xb)))
    cl._C.adam_step_(p, g, m, v, v_max, step=2, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
    want = adam_reference(xp, xg, xb, np.abs(xb), np.abs(xb), 2, 0.1, 0.9, 0.99, 1e-8, amsgrad=True)
    for got, w in zip((p, m, v, v_max), want):
        check(got, w)


def test_step_errors(device):
    def nd(shape=(3, 4), dtype="float32"):
        return cl.NDArray.from_numpy(np.zeros(shape, dtype), device=device)

    p = nd()
    with pytest.raises(TypeError, match="sgd_step: param must be float32 or float64, got int64"):
        cl._C.sgd_step_(nd(dtype="int64"), nd(dtype="int64"), None, lr=0.1)
    with pytest.raises(TypeError, match="sgd_step: param is float32 but grad is float64"):
        cl._C.sgd_step_(p, nd(dtype="float64"), None, lr=0.1)
    with pytest.raises(TypeError, match="param is float32 but momentum_buffer is float64"):
        cl._C.sgd_step_(p, nd(), nd(dtype="float64"), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"sgd_step: grad must have shape \(3, 4\), got \(4,\)"):
        cl._C.sgd_step_(p, nd((4,)), None, lr=0.1)
    with pytest.raises(ValueError, match=r"momentum_buffer must have shape \(3, 4\), got \(4, 3\)"):
        cl._C.sgd_step_(p, nd(), nd((4, 3)), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="param is written in place but is broadcast along axis 0"):
        cl._C.sgd_step_(nd((1, 4)).broadcast_to((3, 4)), nd(), None, lr=0.1)
    with pytest.raises(ValueError, match="param and momentum_buffer share memory"):
        cl._C.sgd_step_(p, nd(), p.flip((0,)), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="exp_avg and max_exp_avg_sq share memory"):
        m = nd()
        cl._C.adam_step_(p, nd(), m, nd(), m, step=1, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
    with pytest.raises(ValueError, match="adam_step: step must be >= 1"):
        cl._C.adam_step_(p, nd(), nd(), nd(), None, step=0, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
    with pytest.raises(ValueError, match=r"adam_step: exp_avg_sq must have shape \(3, 4\)"):
        cl._C.adam_step_(p, nd(), nd(), nd((3,)), None, step=1, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
    if device == "cuda":
        with pytest.raises(RuntimeError, match="sgd_step: param is on cuda but grad is on cpu"):
            cl._C.sgd_step_(p, cl.NDArray.from_numpy(np.zeros((3, 4), np.float32)), None, lr=0.1)
    np.testing.assert_array_equal(p.numpy(), 0)  # refused steps write nothing
