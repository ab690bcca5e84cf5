"""cl.signal against a NumPy reference written from the definition and against scipy.signal (float64 to
1e-10), with float64 gradchecks for both operands, batching, and bad input."""
import numpy as np
import pytest

import convlab as cl
from autograd_helpers import gradcheck

scipy_signal = pytest.importorskip("scipy.signal")

NUMPY_BOUNDARY = {"fill": "constant", "wrap": "wrap", "symm": "symmetric"}


def reference(a, k, mode, boundary="fill", fillvalue=0.0, convolve=False, same_start=lambda n: (n - 1) // 2):
    """full[i] = sum_t a_ext[i + t - (K - 1)] * k[t] over N-d t, a_ext = a extended by `boundary`;
    convolution flips k first. 'same' = full[same_start(K) :][: a.shape], 'valid' = the positions where one
    operand lies wholly inside the other (no extension is read there)."""
    a, k = np.asarray(a, np.float64), np.asarray(k, np.float64)
    if convolve:
        k = k[(slice(None, None, -1),) * k.ndim]
    if mode == "valid":
        if not all(x >= y for x, y in zip(a.shape, k.shape)):  # k holds a: out[m] = sum_s a[s] k[s + K - n - m]
            return reference(k, a, "valid")[(slice(None, None, -1),) * a.ndim]
        pads, start, size = [(0, 0)] * a.ndim, [0] * a.ndim, [n - m + 1 for n, m in zip(a.shape, k.shape)]
    else:
        pads = [(m - 1, m - 1) for m in k.shape]
        start = [0] * a.ndim if mode == "full" else [same_start(m) for m in k.shape]
        size = [n + m - 1 for n, m in zip(a.shape, k.shape)] if mode == "full" else list(a.shape)
    extra = {"constant_values": fillvalue} if boundary == "fill" else {}
    ext = np.pad(a, pads, mode=NUMPY_BOUNDARY[boundary], **extra)
    out = np.zeros(size)
    for idx in np.ndindex(*size):
        window = tuple(slice(s + i, s + i + m) for s, i, m in zip(start, idx, k.shape))
        out[idx] = np.sum(ext[window] * k)
    return out


CASES_2D = [((7, 8), (3, 4)), ((8, 7), (4, 3)), ((5, 5), (5, 5)), ((6, 9), (2, 2)), ((1, 6), (1, 3)),
            ((3, 4), (7, 8)), ((4, 5), (6, 9)), ((2, 3), (9, 11)), ((1, 1), (3, 3)), ((9, 2), (3, 5))]


@pytest.mark.parametrize("shapes", CASES_2D)
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_2d_matches_reference_and_scipy(shapes, boundary, device):
    rng = np.random.default_rng(hash(shapes) % 2**32)
    a, k = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    fill = 1.5 if boundary == "fill" else 0
    for mode in ("full", "same", "valid"):
        for name, flip, start in (("correlate2d", False, lambda n: n // 2),
                                  ("convolve2d", True, lambda n: (n - 1) // 2)):
            if mode == "valid" and not (all(x >= y for x, y in zip(*shapes)) or all(x <= y for x, y in zip(*shapes))):
                continue
            want = getattr(scipy_signal, name)(a, k, mode, boundary, fill)
            np.testing.assert_allclose(reference(a, k, mode, boundary, fill, flip, start), want, rtol=1e-12,
                                       atol=1e-12, err_msg=f"reference vs scipy {name} {mode}")
            got = getattr(cl.signal, name)(cl.tensor(a, device=device), cl.tensor(k, device=device), mode,
                                           boundary, fill)
            assert got.dtype == "float64" and got.device == device
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10, err_msg=f"{name} {mode}")


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("sizes", [(9, 3), (8, 4), (4, 8), (5, 5), (1, 4), (13, 6)])
def test_nd_matches_reference_and_scipy(n, sizes, device):
    rng = np.random.default_rng(sizes[0] * 31 + sizes[1] + n)
    a_shape = (sizes[0],) * n if n == 1 else (sizes[0], sizes[0] + 1)
    k_shape = (sizes[1],) * n if n == 1 else (sizes[1], max(sizes[1] - 1, 1))
    a, k = rng.standard_normal(a_shape), rng.standard_normal(k_shape)
    for mode in ("full", "same", "valid"):
        if mode == "valid" and not (all(x >= y for x, y in zip(a_shape, k_shape))
                                    or all(x <= y for x, y in zip(a_shape, k_shape))):
            continue
        for name, flip in (("correlate", False), ("convolve", True)):
            want = getattr(scipy_signal, name)(a, k, mode, method="direct")
            np.testing.assert_allclose(reference(a, k, mode, convolve=flip), want, rtol=1e-12, atol=1e-12)
            got = getattr(cl.signal, name)(cl.tensor(a, device=device), cl.tensor(k, device=device), mode)
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10, err_msg=f"{name} {mode}")


def test_same_mode_even_kernel_offsets():
    """An even kernel leaves one extra cell: correlate2d puts it before the image (start K // 2 of 'full'),
    correlate, convolve and convolve2d after it (start (K - 1) // 2), as SciPy documents."""
    a, k = np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[1.0, 10.0]])
    full = [10.0, 21.0, 32.0, 43.0, 4.0]  # full[i] = a[i - 1] * 1 + a[i] * 10 by hand
    np.testing.assert_array_equal(cl.signal.correlate2d(a, k).numpy()[0], full)
    np.testing.assert_array_equal(cl.signal.correlate2d(a, k, "same").numpy()[0], full[1:])
    np.testing.assert_array_equal(cl.signal.correlate(a, k, "same").numpy()[0], full[:4])
    np.testing.assert_array_equal(cl.signal.correlate2d(a, k, "same").numpy(), scipy_signal.correlate2d(a, k, "same"))
    np.testing.assert_array_equal(cl.signal.correlate(a, k, "same").numpy(), scipy_signal.correlate(a, k, "same"))


def test_valid_with_larger_kernel_swaps_like_scipy(device):
    """scipy 1.17 swaps the operands in 'valid' mode when in2 is the larger: convolve2d is then convolve2d(in2,
    in1) (it commutes), correlate2d is correlate2d(in2, in1) reversed; boundary and fillvalue are not read."""
    a, k = np.array([[1.0, 2.0]]), np.array([[1.0, 10.0, 100.0, 1000.0]])
    t = lambda x: cl.tensor(x, device=device)  # noqa: E731
    corr = cl.signal.correlate2d(t(a), t(k), "valid", "fill", 7.0).numpy()
    conv = cl.signal.convolve2d(t(a), t(k), "valid", "symm").numpy()
    np.testing.assert_array_equal(corr, [[2100.0, 210.0, 21.0]])  # sum_t a[t] k[t - i], i = -2..0, by hand
    np.testing.assert_array_equal(conv, [[12.0, 120.0, 1200.0]])
    np.testing.assert_array_equal(corr, scipy_signal.correlate2d(a, k, "valid", "fill", 7.0))
    np.testing.assert_array_equal(conv, scipy_signal.convolve2d(a, k, "valid", "symm"))
    np.testing.assert_array_equal(cl.signal.correlate(t(a[0]), t(k[0]), "valid").numpy(),
                                  scipy_signal.correlate(a[0], k[0], "valid"))


def test_convolution_flips_the_kernel():
    """An impulse convolved with k reproduces k; correlated with k it gives k reversed."""
    rng = np.random.default_rng(3)
    k = rng.standard_normal((3, 4))
    delta = np.zeros((1, 1))
    delta[0, 0] = 1.0
    np.testing.assert_array_equal(cl.signal.convolve2d(delta, k).numpy(), k)
    np.testing.assert_array_equal(cl.signal.correlate2d(delta, k).numpy(), k[::-1, ::-1])
    np.testing.assert_array_equal(cl.signal.convolve(delta[0], k[0]).numpy(), k[0])


def test_batched_and_broadcast(device):
    rng = np.random.default_rng(4)
    images, kernels = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((3, 3, 2))
    t = lambda x: cl.tensor(x, device=device)  # noqa: E731
    shared = cl.signal.convolve2d(t(images), t(kernels[0]), "same", "wrap").numpy()
    per_kernel = cl.signal.correlate2d(t(images[0, 0]), t(kernels), "full").numpy()
    paired = cl.signal.convolve2d(t(images), t(kernels), "valid").numpy()  # (2, 3) with (3,): kernel c for channel c
    assert shared.shape == (2, 3, 6, 7) and per_kernel.shape == (3, 8, 8) and paired.shape == (2, 3, 4, 6)
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(shared[b, c], scipy_signal.convolve2d(images[b, c], kernels[0], "same", "wrap"),
                                       rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(paired[b, c], scipy_signal.convolve2d(images[b, c], kernels[c], "valid"),
                                       rtol=1e-10, atol=1e-12)
    for c in range(3):
        np.testing.assert_allclose(per_kernel[c], scipy_signal.correlate2d(images[0, 0], kernels[c]), rtol=1e-10,
                                   atol=1e-12)
    signals = rng.standard_normal((4, 11))
    one_d = cl.signal.correlate(t(signals), t(kernels[0, 0]), "same").numpy()
    for b in range(4):
        np.testing.assert_allclose(one_d[b], scipy_signal.correlate(signals[b], kernels[0, 0], "same"), rtol=1e-10)


def test_float32_and_array_inputs(device):
    rng = np.random.default_rng(5)
    a, k = rng.standard_normal((9, 10)), rng.standard_normal((3, 3))
    got = cl.signal.convolve2d(cl.tensor(a, dtype="float32", device=device), cl.tensor(k, dtype="float32",
                                                                                        device=device), "same")
    assert got.dtype == "float32"
    np.testing.assert_allclose(got.numpy(), scipy_signal.convolve2d(a, k, "same"), rtol=1e-5, atol=1e-5)
    ints = cl.signal.convolve2d(np.arange(12).reshape(3, 4), [[1, 2], [3, 4]])
    assert isinstance(ints, cl.Tensor) and ints.dtype == "float64"
    np.testing.assert_array_equal(ints.numpy(), scipy_signal.convolve2d(np.arange(12).reshape(3, 4), [[1, 2], [3, 4]]))


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_gradcheck_2d(mode, boundary, device):
    rng = np.random.default_rng(6)
    a, k = rng.standard_normal((4, 5)), rng.standard_normal((2, 3))
    for fn in (cl.signal.convolve2d, cl.signal.correlate2d):
        gradcheck(lambda x, w: fn(x, w, mode, boundary, 0.5), [a, k], device=device)
    # the larger operand second: 'valid' swaps them, 'full' and 'same' read the image far beyond its edges
    gradcheck(lambda x, w: cl.signal.convolve2d(x, w, mode, boundary), [k, a], device=device)


def test_gradcheck_nd_and_batched(device):
    rng = np.random.default_rng(7)
    gradcheck(lambda x, w: cl.signal.convolve(x, w, "same"), [rng.standard_normal(7), rng.standard_normal(4)],
              device=device)
    gradcheck(lambda x, w: cl.signal.correlate(x, w, "full"), [rng.standard_normal((2, 5)),
                                                                rng.standard_normal(3)], device=device)
    gradcheck(lambda x, w: cl.signal.correlate2d(x, w, "same", "symm"),
              [rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 2, 2))], device=device)


def test_bad_input():
    a, k = cl.zeros(4, 4, dtype="float64"), cl.ones(2, 2, dtype="float64")
    with pytest.raises(ValueError, match="mode must be one of .* got 'bogus'"):
        cl.signal.convolve2d(a, k, "bogus")
    with pytest.raises(ValueError, match="boundary must be one of .* got 'reflect'"):
        cl.signal.correlate2d(a, k, boundary="reflect")
    with pytest.raises(TypeError, match="fillvalue must be a real scalar"):
        cl.signal.correlate2d(a, k, fillvalue=[1, 2])
    with pytest.raises(ValueError, match="method must be one of"):
        cl.signal.convolve(a, k, method="fast")
    with pytest.raises(TypeError, match="in2 must hold real numbers, got dtype complex128"):
        cl.signal.convolve2d(a, np.ones((2, 2), complex))
    with pytest.raises(TypeError, match="in1 and in2 must have the same dtype, got .*float32 and .*float64"):
        cl.signal.convolve2d(a.float(), k)
    with pytest.raises(ValueError, match="in1 must have at least 2 dims, got shape"):
        cl.signal.convolve2d(cl.zeros(4, dtype="float64"), k)
    with pytest.raises(ValueError, match="in2 must be 1-D or 2-D"):
        cl.signal.convolve(cl.zeros(2, 4, 4, dtype="float64"), cl.ones(2, 2, 2, dtype="float64"))
    with pytest.raises(ValueError, match="in1 must not be empty"):
        cl.signal.convolve2d(cl.zeros(0, 4, dtype="float64"), k)
    with pytest.raises(ValueError, match=r"one of in1 \(4, 1\) and in2 \(2, 2\) must be at least as large"):
        cl.signal.convolve2d(cl.zeros(4, 1, dtype="float64"), k, "valid")
    with pytest.raises(ValueError, match=r"leading \(batch\) axes of in1 and in2 do not broadcast: \(3,\) and \(2,\)"):
        cl.signal.convolve2d(cl.zeros(3, 4, 4, dtype="float64"), cl.ones(2, 2, 2, dtype="float64"))
