"""Shared checks for the autograd tests: PyTorch as the oracle (skipped where torch is not installed) and a
float64 central-difference gradient check that needs nothing but NumPy."""
import numpy as np
import pytest

import convlab as cl

TOL = {"float64": 1e-10, "float32": 1e-5}


def torch_or_skip():
    return pytest.importorskip("torch")


def assert_close(actual, expected, dtype, scale=None):
    """Relative closeness at dtype's tolerance; near-zero entries are judged against the array's scale."""
    actual = actual.numpy() if isinstance(actual, cl.Tensor) else np.asarray(actual)
    expected = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    rtol = TOL[dtype]
    if scale is None:
        scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-3))


def compare_with_torch(cl_fn, torch_fn, arrays, device, dtype, seed=0, grad_scale=None):
    """Runs cl_fn and torch_fn on the same inputs, then backward with the same random output gradient;
    checks the outputs and every input's gradient. grad_scale: the size gradients are judged against, for
    ops whose gradients cancel to far below their terms (default: each gradient's own largest entry)."""
    torch = torch_or_skip()
    ours = [cl.tensor(a.astype(dtype), device=device, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    out, ref = cl_fn(*ours), torch_fn(*theirs)
    assert out.device == device and out.dtype == dtype
    assert_close(out, ref, dtype)
    g = np.random.default_rng(seed).standard_normal(ref.shape).astype(dtype)
    out.backward(cl.tensor(g, device=device))
    ref.backward(torch.tensor(g))
    for i, (t, r) in enumerate(zip(ours, theirs)):
        assert t.grad is not None, f"input {i} got no gradient"
        assert_close(t.grad, r.grad, dtype, grad_scale)
    return out


def gradcheck(fn, arrays, device="cpu", eps=1e-6, rtol=1e-5, seed=0):
    """Compares backward's gradient of sum(fn(*inputs) * w), w random, with central differences in float64."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    inputs = [cl.tensor(a, dtype="float64", device=device, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    w = rng.standard_normal(out.shape)
    (out * cl.tensor(w, device=device)).sum().backward()

    def objective(i, perturbed):
        with cl.no_grad():
            args = [cl.tensor(perturbed if j == i else a, dtype="float64", device=device)
                    for j, a in enumerate(arrays)]
            return float((fn(*args).numpy() * w).sum())

    for i, a in enumerate(arrays):
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            up, down = a.copy(), a.copy()
            up[idx] += eps
            down[idx] -= eps
            numeric[idx] = (objective(i, up) - objective(i, down)) / (2 * eps)
        analytic = inputs[i].grad.numpy()
        scale = max(float(np.max(np.abs(numeric))), 1e-3)
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=rtol * scale,
                                   err_msg=f"gradient of input {i} disagrees with finite differences")
