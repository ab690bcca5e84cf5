"""The depthwise kernels (cpu/conv_depthwise.cpp: groups == c_in, any multiplier) on both of their paths.

The channel path turns up to one vector's worth of planes pixel-major (one vector = one pixel of L planes,
L = 4..16 lanes by ISA and dtype) and is taken when 2 * planes >= L, forward and backward-weight in bands of
output rows whose buffers fit in L2, backward-input only when a whole plane's do; the plane path (the
stride-phased layout, vectorised along rows) takes the rest. The shapes below are picked so that each
surely takes its path on every x86-64 ISA and cache size: >= 16 planes of <= 12x12 pixels (a few tens of KB,
one band) for the channel path; one float32 plane (2 < 4 lanes) for the plane path; 8 or more float64 planes
of 128x128 (> 3 MB of buffers) for the channel path in several bands (of output rows in forward and
backward-weight, of gx rows in backward-input). Planes counted per pass: forward n * c_out, backward-input
n * c_in, backward-weight c_out (its lanes never span images). Every pass is checked against convlab._C.reference (common/reference.h,
itself pinned to NumPy and PyTorch by test_conv.py) and against PyTorch."""
import numpy as np
import pytest

from test_conv import TOL, C, R, case, make_data, passes, torch_passes


def random_depthwise(count, seed, planes, hw_max):
    """Depthwise cases with c_in * n >= planes (and c_out >= c_in): any kernel 1-7, stride 1-3, dilation 1-3,
    asymmetric padding, multiplier 1-3, batch 1-3, sizes up to hw_max."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        n, mult = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        c_in = max(int(rng.integers(1, 24)), -(-planes // n))
        k = (int(rng.integers(1, 8)), int(rng.integers(1, 8)))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        d = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pad = tuple((int(rng.integers(0, 4)), int(rng.integers(0, 4))) for _ in range(2))
        hw = (int(rng.integers(1, hw_max + 1)), int(rng.integers(1, hw_max + 1)))
        if any(hw[a] + sum(pad[a]) < d[a] * (k[a] - 1) + 1 for a in range(2)):
            continue
        out.append(case(n, c_in, c_in * mult, hw, k, s, pad, d, groups=c_in))
    return out


CHANNEL_PATH = {
    "mobilenet_7x7_s1": case(2, 24, 24, (7, 7), (3, 3), pad=((1, 1), (1, 1)), groups=24),
    "mobilenet_2x2": case(3, 19, 19, (2, 2), (3, 3), pad=((1, 1), (1, 1)), groups=19),
    "stride2_odd": case(1, 33, 33, (11, 9), (3, 3), s=(2, 2), pad=((1, 1), (1, 1)), groups=33),
    "efficientnet_5x5_s2": case(2, 17, 17, (12, 11), (5, 5), s=(2, 2), pad=((2, 2), (2, 2)), groups=17),
    "dilated_asym": case(2, 16, 32, (10, 12), (3, 2), s=(1, 3), pad=((2, 0), (1, 3)), d=(3, 2), groups=16),
    "stride_gt_kernel_mult3": case(3, 7, 21, (12, 12), (2, 2), s=(3, 3), pad=((0, 1), (1, 0)), groups=7),
    "conv1d_like": case(2, 20, 20, (1, 12), (1, 7), pad=((0, 0), (3, 3)), groups=20),
    "1x1": case(2, 9, 18, (5, 6), (1, 1), groups=9),
}
CHANNEL_PATH.update({f"random{i}": c for i, c in enumerate(random_depthwise(24, 77, planes=16, hw_max=12))})

PLANE_PATH = {
    "one_plane": case(1, 1, 1, (17, 23), (3, 3), pad=((1, 1), (1, 1)), groups=1),
    "one_plane_strided_dilated": case(1, 1, 1, (31, 29), (5, 3), s=(2, 3), pad=((2, 1), (0, 2)), d=(2, 2)),
}
# Channel path in bands (float64: 8 planes fill a vector on every ISA).
BANDS = {
    "large_planes": case(1, 8, 8, (128, 128), (3, 3), pad=((1, 1), (1, 1)), groups=8),
    "large_planes_s2_5x5": case(2, 8, 8, (128, 130), (5, 5), s=(2, 2), pad=((2, 2), (2, 2)), groups=8),
    "large_planes_mult2_dilated": case(1, 4, 8, (129, 128), (3, 3), s=(1, 2), pad=((2, 1), (2, 2)), d=(2, 1), groups=4),
    "large_planes_s3_dilated": case(1, 8, 8, (131, 128), (4, 3), s=(3, 1), pad=((2, 1), (1, 1)), d=(2, 1), groups=8),
}


def check_all_passes(c, dtype, seed):
    x, w, b, _, gy = make_data(c, dtype, seed)
    ref = passes(R, x, w, b, gy, c, "cpu")
    for ours, theirs in zip(passes(C, x, w, b, gy, c, "cpu"), ref):
        np.testing.assert_allclose(ours, theirs, **TOL[dtype])
        assert ours.dtype == np.dtype(dtype)
    for ours, theirs in zip(ref, torch_passes(x, w, b, gy, c)):
        np.testing.assert_allclose(ours, theirs, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,c", CHANNEL_PATH.items(), ids=list(CHANNEL_PATH))
def test_channel_path(name, c, dtype):
    check_all_passes(c, dtype, seed=len(name))


@pytest.mark.parametrize("name,c", PLANE_PATH.items(), ids=list(PLANE_PATH))
def test_plane_path(name, c):
    """float32: one plane takes this path on every ISA."""
    check_all_passes(c, "float32", seed=len(name))


@pytest.mark.parametrize("name,c", BANDS.items(), ids=list(BANDS))
def test_channel_path_bands(name, c):
    """float64 (the weight gradients sum 16k terms, beyond float32's tolerance here); the bands of gx rows
    start at phase 0 of a stride 2 and read overlapping rows of gy."""
    check_all_passes(c, "float64", seed=len(name))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["mobilenet_7x7_s1", "stride2_odd", "dilated_asym"])
def test_channel_path_nonfinite_like_reference(name, dtype):
    """inf and NaN in w, x and gy spread as the definition says: forward and backward-weight read the zero
    padding as terms (0 * inf = NaN at the border), backward-input has no stand-in zeros."""
    c = CHANNEL_PATH[name]
    x, w, b, _, gy = make_data(c, dtype, seed=3)
    w[1, 0, 0, -1], w[5, 0, -1, 0] = np.inf, np.nan
    x[0, 3, 0, 0], x[-1, -1, -1, -1] = -np.inf, np.nan
    gy[0, 2, 0, 0] = np.inf
    for ours, theirs in zip(passes(C, x, w, b, gy, c, "cpu"), passes(R, x, w, b, gy, c, "cpu")):
        np.testing.assert_allclose(ours, theirs, equal_nan=True, **TOL[dtype])


@pytest.mark.parametrize("threads", [1, 3, 5])
@pytest.mark.parametrize("name", ["one_plane", "one_plane_strided_dilated"])
def test_plane_path_bands(name, threads):
    """Fewer planes than threads: the plane path's forward cuts each plane into bands of output rows, one per
    task (5 threads: 10 bands of 2 rows for these 17 and 13 rows, the last ones empty). Same results as the
    reference at any thread count."""
    c = PLANE_PATH[name]
    x, w, b, _, gy = make_data(c, "float32", seed=1)
    old = C.get_num_threads()
    try:
        C.set_num_threads(threads)
        ours = passes(C, x, w, b, gy, c, "cpu")
    finally:
        C.set_num_threads(old)
    for o, r in zip(ours, passes(R, x, w, b, gy, c, "cpu")):
        np.testing.assert_allclose(o, r, **TOL["float32"])
