"""CUDA backend checks: every CUDA kernel agrees with the CPU kernel on the same inputs (the CPU kernels are
checked against NumPy/PyTorch references in the other test files), over views with odd strides, NaN and
ties, shapes that leave ragged tiles, and the code paths each kernel chooses (split reductions, 1x1 and
depthwise convolutions, split weight gradients); the caching allocator reuses freed blocks; and device
failures surface as RuntimeError. Skipped as a whole when no GPU is usable."""
import os
import subprocess
import sys

import numpy as np
import pytest

import convlab as cl
from conftest import CUDA_SKIP
from ndarray_helpers import as_view

pytestmark = CUDA_SKIP

C = cl._C
DTYPES = ["float32", "float64"]
# Summation order differs between the backends; float32 reductions over a few thousand terms need ~1e-5.
TOL = {"float32": dict(rtol=5e-5, atol=5e-5), "float64": dict(rtol=1e-11, atol=1e-11)}


def pair(a):
    """The same values as a CPU and a CUDA NDArray."""
    a = np.ascontiguousarray(a)
    return cl.NDArray.from_numpy(a, device="cpu"), cl.NDArray.from_numpy(a, device="cuda")


def agree(cpu, gpu, dtype):
    """dtype is the inputs' and sets the tolerance; comparisons give bool and argmax int64 on both devices."""
    assert gpu.device == "cuda" and cpu.device == "cpu"
    assert gpu.dtype == cpu.dtype
    assert tuple(gpu.shape) == tuple(cpu.shape)
    tol = TOL[dtype] if cpu.dtype in TOL else dict(rtol=0, atol=0)
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), equal_nan=True, **tol)


def run_both(fn, *arrays, dtype):
    """fn over CPU copies and over CUDA copies of the NumPy arrays; checks the results agree."""
    cpu = fn(*[pair(a)[0] for a in arrays])
    gpu = fn(*[pair(a)[1] for a in arrays])
    agree(cpu, gpu, dtype)
    return gpu


def with_nans(rng, x, frac=0.1):
    x = x.copy()
    x[rng.random(x.shape) < frac] = np.nan
    return x


# ---- element-wise ------------------------------------------------------------------------------------------

BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
    "pow": lambda a, b: a.abs() ** b, "maximum": lambda a, b: a.maximum(b), "minimum": lambda a, b: a.minimum(b),
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "permuted", "sliced", "flipped", "broadcast"])
@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_matches_cpu(dtype, layout, op):
    rng = np.random.default_rng(1)
    a = with_nans(rng, np.round(rng.standard_normal((3, 4, 5)), 1).astype(dtype))  # rounding makes ties
    b = np.round(rng.standard_normal((4, 1)), 1).astype(dtype)
    results = {}
    for device in ("cpu", "cuda"):
        av, _ = as_view(np.random.default_rng(2), a, layout, device)
        results[device] = BINARY[op](av, cl.NDArray.from_numpy(b, device=device))
    agree(results["cpu"], results["cuda"], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_forms_match_cpu(dtype):
    rng = np.random.default_rng(3)
    a = with_nans(rng, rng.standard_normal((7, 33)).astype(dtype))
    for fn in (lambda x: x + 2.5, lambda x: 2.5 - x, lambda x: x / 3.0, lambda x: 3.0 / x, lambda x: x.abs() ** 1.5,
               lambda x: 2.0 ** x, lambda x: x > 0.25, lambda x: 0.25 <= x):
        run_both(fn, a, dtype=dtype)


UNARY = ["neg", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "sign"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", UNARY)
def test_unary_matches_cpu(dtype, op):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((5, 67)).astype(dtype) * 4
    a[0, :6] = [0.0, -0.0, 100.0, -100.0, np.inf, -np.inf]  # sigmoid/exp at the extremes, sign of zeros
    a = with_nans(rng, a, 0.05)
    if op in ("log", "sqrt"):
        a = np.abs(a)
    fn = (lambda x: -x) if op == "neg" else (lambda x: getattr(x, op)())
    gpu = run_both(fn, a, dtype=dtype)
    if op == "sign":  # sign keeps the zero's sign bit and NaN, on both devices
        np.testing.assert_array_equal(np.signbit(gpu.numpy()[0, :2]), [False, True])


@pytest.mark.parametrize("src_dtype,dst_dtype", [("float32", "float64"), ("float64", "float32"), ("float64", "float64")])
def test_copy_converts_and_walks_views(src_dtype, dst_dtype):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((4, 3, 6)).astype(src_dtype)
    for layout in ("permuted", "sliced", "flipped", "broadcast"):
        views = {d: as_view(np.random.default_rng(6), a, layout, d)[0] for d in ("cpu", "cuda")}
        agree(views["cpu"].astype(dst_dtype), views["cuda"].astype(dst_dtype), dst_dtype)
        agree(views["cpu"].compact(), views["cuda"].compact(), src_dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_setitem_fill_and_assign_through_strided_views(dtype):
    rng = np.random.default_rng(7)
    base = rng.standard_normal((5, 8, 3)).astype(dtype)
    src = rng.standard_normal((8, 1)).astype(dtype)
    out = {}
    for device in ("cpu", "cuda"):
        x = cl.NDArray.from_numpy(base, device=device)
        x[1:4, ::-2, 1] = 7.5                                        # fill on a negative-stride view
        x[::2, :, 0] = cl.NDArray.from_numpy(src, device=device)[:, 0]   # assign with broadcasting
        out[device] = x
    agree(out["cpu"], out["cuda"], dtype)


def test_rank_8_views_that_cannot_merge():
    # NDArray allows rank <= 8; reversing the axes leaves no pair of axes the kernels could merge.
    a = np.random.default_rng(8).standard_normal((2, 3, 2, 3, 2, 3, 2, 3)).astype(np.float32)
    axes = tuple(range(7, -1, -1))
    run_both(lambda x: (x.permute(axes) * 2.0).compact(), a, dtype="float32")
    run_both(lambda x: x.permute(axes) + x.permute(axes).flip((0, 3)), a, dtype="float32")
    run_both(lambda x: x.permute(axes).astype("float64"), a, dtype="float64")


# ---- reductions --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axes", [((6, 7, 5), None), ((6, 7, 5), (1,)), ((6, 7, 5), (0, 2)),
                                        ((1, 20001), (1,)), ((3, 4099), (1,)), ((9000, 3), (1,)), ((0, 4), (1,))])
def test_sum_max_mean_match_cpu(dtype, shape, axes):
    rng = np.random.default_rng(8)
    a = rng.standard_normal(shape).astype(dtype)
    run_both(lambda x: x.sum(axes=axes), a, dtype=dtype)
    run_both(lambda x: x.mean(axes=axes, keepdims=True), a, dtype=dtype)
    if 0 not in shape:
        run_both(lambda x: x.max(axes=axes), with_nans(rng, a, 0.001), dtype=dtype)
        run_both(lambda x: x.max(axes=axes), a, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 37, 5000, 70001])
def test_argmax_first_maximum_and_first_nan(dtype, n):
    rng = np.random.default_rng(9)
    a = np.round(rng.standard_normal((3, n)), 1).astype(dtype)
    a[1, n // 3] = a[1, -1] = 50.0           # a tie: the first one wins, even across reduction chunks
    a[2, n // 2] = a[2, -1] = np.nan         # NaN is maximal; the first NaN wins
    gpu = run_both(lambda x: x.argmax(axis=1), a, dtype=dtype)
    if n > 1:
        assert gpu.numpy()[1] == n // 3 and gpu.numpy()[2] == n // 2
    run_both(lambda x: x.argmax(axis=None), a, dtype=dtype)


# ---- matmul and pad ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a_shape,b_shape", [((1, 1), (1, 1)), ((65, 17), (17, 33)), ((3, 70, 20), (3, 20, 130)),
                                             ((2, 5, 0), (2, 0, 4)), ((7,), (7, 3)), ((2, 1, 31, 16), (3, 16, 64))])
def test_matmul_matches_cpu(dtype, a_shape, b_shape):
    rng = np.random.default_rng(10)
    run_both(lambda a, b: a @ b, rng.standard_normal(a_shape).astype(dtype), rng.standard_normal(b_shape).astype(dtype),
             dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_matches_cpu(dtype, mode):
    rng = np.random.default_rng(11)
    a = rng.standard_normal((2, 5, 6)).astype(dtype)
    run_both(lambda x: x.pad([(0, 1), (2, 3), (4, 1)], mode=mode, value=-1.5), a, dtype=dtype)


# ---- convolution -------------------------------------------------------------------------------------------

# (n, c_in, c_out, spatial, kernel, stride, padding pairs, dilation, groups): each row takes a different path
# or corner: dense, stride > kernel, dilation with asymmetric padding, groups, 1x1 fast path, 1x1 with stride,
# depthwise with multiplier, a single input channel, 1-D, and a long n*oh*ow that splits the weight gradient.
CONV_CASES = [
    (2, 5, 7, (9, 11), (3, 3), (1, 1), [(1, 1), (1, 1)], (1, 1), 1),
    (1, 3, 4, (10, 9), (2, 2), (3, 3), [(1, 0), (0, 2)], (1, 1), 1),
    (2, 4, 6, (12, 13), (3, 2), (2, 1), [(2, 1), (0, 3)], (2, 3), 1),
    (2, 6, 9, (7, 8), (3, 3), (1, 2), [(1, 1), (1, 1)], (1, 1), 3),
    (2, 70, 66, (5, 7), (1, 1), (1, 1), [(0, 0), (0, 0)], (1, 1), 1),
    (1, 9, 5, (8, 7), (1, 1), (2, 2), [(0, 0), (1, 0)], (1, 1), 1),
    (2, 4, 8, (9, 10), (3, 3), (2, 2), [(1, 1), (1, 1)], (1, 1), 4),
    (3, 1, 3, (8, 9), (5, 5), (1, 1), [(2, 2), (2, 2)], (1, 1), 1),
    (2, 3, 4, (17,), (3,), (2,), [(1, 2)], (2,), 1),
    (3, 3, 4, (20, 20), (3, 3), (1, 1), [(1, 1), (1, 1)], (1, 1), 1),
]


def conv_arrays(rng, case, dtype):
    n, c_in, c_out, spatial, k, s, pad, d, g = case
    x = rng.standard_normal((n, c_in) + spatial).astype(dtype)
    w = rng.standard_normal((c_out, c_in // g) + k).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    y = C.conv_forward(cl.NDArray.from_numpy(x), cl.NDArray.from_numpy(w), None, list(s), pad, list(d), g)
    gy = rng.standard_normal(tuple(y.shape)).astype(dtype)
    return x, w, b, gy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[f"conv{i}" for i in range(len(CONV_CASES))])
def test_conv_matches_cpu(dtype, case):
    rng = np.random.default_rng(12)
    n, c_in, c_out, spatial, k, s, pad, d, g = case
    x, w, b, gy = conv_arrays(rng, case, dtype)
    s, d = list(s), list(d)
    run_both(lambda x, w, b: C.conv_forward(x, w, b, s, pad, d, g), x, w, b, dtype=dtype)
    run_both(lambda x, w: C.conv_forward(x, w, None, s, pad, d, g), x, w, dtype=dtype)
    run_both(lambda gy, w: C.conv_backward_input(gy, w, list(spatial), s, pad, d, g), gy, w, dtype=dtype)
    run_both(lambda x, gy: C.conv_backward_weight(x, gy, list(k), s, pad, d, g), x, gy, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_transpose_matches_cpu(dtype):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 6, 5, 4)).astype(dtype)
    w = rng.standard_normal((6, 2, 4, 3)).astype(dtype)  # (C_in, C_out/groups, kh, kw), groups 2
    b = rng.standard_normal(4).astype(dtype)
    run_both(lambda x, w, b: C.conv_transpose_forward(x, w, b, [2, 3], [(1, 1), (0, 2)], [1, 0], [1, 2], 2),
             x, w, b, dtype=dtype)


def test_conv_weight_gradient_is_deterministic():
    rng = np.random.default_rng(14)
    x, w, b, gy = conv_arrays(rng, CONV_CASES[-1], "float32")
    xg, gyg = pair(x)[1], pair(gy)[1]
    runs = [C.conv_backward_weight(xg, gyg, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1).numpy() for _ in range(3)]
    assert all(np.array_equal(runs[0], r) for r in runs[1:])


# ---- pooling -----------------------------------------------------------------------------------------------

# (spatial, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [((9, 10), [3, 3], [2, 2], [1, 1], [1, 1], True), ((8, 7), [2, 3], [1, 2], [0, 1], [2, 1], False),
             ((11,), [4], [3], [2], [2], True), ((5, 6), [2, 2], [2, 2], [0, 0], [1, 1], False)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES, ids=[f"max{i}" for i in range(len(MAX_CASES))])
def test_max_pool_matches_cpu(dtype, case):
    spatial, k, s, pad, d, ceil = case
    rng = np.random.default_rng(15)
    x = np.round(rng.standard_normal((2, 3) + spatial) * 2).astype(dtype)  # few distinct values: many ties
    x[0, 0].flat[::7] = np.nan
    y = run_both(lambda x: C.max_pool_forward(x, k, s, pad, d, ceil), x, dtype=dtype)
    gy = rng.standard_normal(tuple(y.shape)).astype(dtype)
    run_both(lambda x, gy: C.max_pool_backward(x, gy, k, s, pad, d, ceil), x, gy, dtype=dtype)


# (spatial, kernel, stride, padding, ceil_mode, count_include_pad)
AVG_CASES = [((9, 10), [3, 3], [2, 2], [1, 1], True, True), ((9, 10), [3, 2], [2, 1], [1, 1], True, False),
             ((7, 8), [2, 2], [3, 3], [0, 1], False, True), ((13,), [5], [2], [2], True, False)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG_CASES, ids=[f"avg{i}" for i in range(len(AVG_CASES))])
def test_avg_pool_matches_cpu(dtype, case):
    spatial, k, s, pad, ceil, cip = case
    rng = np.random.default_rng(16)
    x = rng.standard_normal((2, 3) + spatial).astype(dtype)
    y = run_both(lambda x: C.avg_pool_forward(x, k, s, pad, ceil, cip), x, dtype=dtype)
    gy = rng.standard_normal(tuple(y.shape)).astype(dtype)
    run_both(lambda gy: C.avg_pool_backward(gy, list(spatial), k, s, pad, ceil, cip), gy, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spatial,out", [((7, 9), [3, 4]), ((4, 5), [6, 7]), ((10, 10), [1, 1])])
def test_adaptive_avg_pool_matches_cpu(dtype, spatial, out):
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 3) + spatial).astype(dtype)
    y = run_both(lambda x: C.adaptive_avg_pool_forward(x, out), x, dtype=dtype)
    gy = rng.standard_normal(tuple(y.shape)).astype(dtype)
    run_both(lambda gy: C.adaptive_avg_pool_backward(gy, list(spatial)), gy, dtype=dtype)


# ---- initcheck ---------------------------------------------------------------------------------------------

POISON_INT32 = np.int32(np.uint32(0xFFF5A5A5).view(np.int32))


def initcheck_cases(rng, dtype):
    """(name, fn) for every kernel family: fn runs it on finite CUDA inputs and returns its fresh output."""
    g = lambda *shape: pair(rng.standard_normal(shape).astype(dtype))[1]
    x4, x_pool = g(2, 6, 9, 10), g(2, 3, 20, 21)
    conv = [(2, 6, 8, (9, 10), (3, 3), (2, 1), [(1, 0), (2, 1)], (1, 2), 2),  # dense, grouped, dilated
            (2, 9, 70, (5, 7), (1, 1), (1, 1), [(0, 0), (0, 0)], (1, 1), 1),  # 1x1
            (2, 4, 8, (9, 10), (3, 3), (2, 2), [(1, 1), (1, 1)], (1, 1), 4),  # depthwise
            CONV_CASES[-1]]                                                   # split weight gradient
    cases = [("binary", lambda: g(3, 4, 5) + g(4, 1)), ("compare", lambda: g(3, 70) < g(3, 70)),
             ("scalar", lambda: 2.5 - g(7, 33)), ("unary", lambda: g(5, 67).tanh()),
             ("copy", lambda: g(4, 3, 6).permute((2, 0, 1)).compact()), ("astype", lambda: g(4, 37).astype("float64")),
             ("sum", lambda: g(3, 4099).sum(axes=(1,))), ("max", lambda: g(6, 7, 5).max(axes=(0, 2))),
             ("argmax", lambda: g(3, 5000).argmax(axis=1)), ("matmul", lambda: g(3, 70, 20) @ g(3, 20, 130)),
             ("pad", lambda: g(2, 5, 6).pad([(0, 1), (2, 3), (4, 1)], mode="reflect"))]
    for i, case in enumerate(conv):
        x, w, b, gy = (pair(a)[1] for a in conv_arrays(rng, case, dtype))
        n, c_in, c_out, spatial, k, st, pad, d, groups = case
        cases += [(f"conv{i}_forward", lambda x=x, w=w, b=b, st=st, pad=pad, d=d, gr=groups:
                   C.conv_forward(x, w, b, list(st), pad, list(d), gr)),
                  (f"conv{i}_backward_input", lambda gy=gy, w=w, sp=spatial, st=st, pad=pad, d=d, gr=groups:
                   C.conv_backward_input(gy, w, list(sp), list(st), pad, list(d), gr)),
                  (f"conv{i}_backward_weight", lambda x=x, gy=gy, k=k, st=st, pad=pad, d=d, gr=groups:
                   C.conv_backward_weight(x, gy, list(k), list(st), pad, list(d), gr))]
    pool = ([3, 3], [2, 2], [1, 1])
    y_max = C.max_pool_forward(x4, *pool, [1, 1], True)
    y_avg = C.avg_pool_forward(x4, *pool, True, False)
    cases += [("max_pool_forward", lambda: C.max_pool_forward(x4, *pool, [1, 1], True)),
              ("max_pool_backward", lambda: C.max_pool_backward(x4, g(*y_max.shape), *pool, [1, 1], True)),
              ("avg_pool_forward", lambda: C.avg_pool_forward(x4, *pool, True, False)),
              ("avg_pool_backward", lambda: C.avg_pool_backward(g(*y_avg.shape), [9, 10], *pool, True, False)),
              ("adaptive_forward", lambda: C.adaptive_avg_pool_forward(x4, [4, 3])),
              ("adaptive_forward_warp", lambda: C.adaptive_avg_pool_forward(x_pool, [1, 1])),
              ("adaptive_backward", lambda: C.adaptive_avg_pool_backward(g(2, 6, 4, 3), [9, 10]))]
    index = pair(rng.integers(0, 5, (4, 3)))[1]
    cond = pair(rng.random((4, 5)) < 0.5)[1]
    cases += [("gather", lambda: g(4, 5).gather(1, index)),
              ("scatter_add", lambda: C.scatter_add((4, 5), 1, index, g(4, 3))),
              ("where", lambda: C.where(cond, g(4, 5), g(1, 5))),
              ("nonzero", lambda: g(4, 5).nonzero())]
    return cases


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kernel_writes_every_output_element(dtype):
    """initcheck: on the emulator every fresh allocation holds NaN (int32 words 0xfff5a5a5, bytes 0xa5), and
    scripts/cuda_emulator/check.sh turns the caching allocator off, so an output element no thread wrote is
    still poison. On a GPU memory is not poisoned and this is only a finiteness check."""
    rng = np.random.default_rng(20)
    for name, fn in initcheck_cases(rng, dtype):
        out = fn().numpy()
        if out.dtype == np.bool_:
            assert (out.view(np.uint8) <= 1).all(), name
        elif out.dtype.kind == "f":
            assert np.isfinite(out).all(), name
        else:
            assert not (out.view(np.int32) == POISON_INT32).any(), name


# ---- memory, transfers, errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (1000, 3)])
def test_transfers_round_trip(shape):
    a = np.random.default_rng(18).standard_normal(shape)
    g = cl.NDArray.from_numpy(a, device="cuda")
    assert g.device == "cuda" and tuple(g.shape) == shape
    np.testing.assert_array_equal(g.numpy(), a)
    np.testing.assert_array_equal(g.to("cpu").to("cuda").to("cpu").numpy(), a)


# The two caching tests need the cache on: scripts/cuda_emulator/check.sh runs them without
# CONVLAB_CUDA_NO_CACHING, the rest of the profile with it.
def test_caching_allocator_reuses_released_blocks():
    C.cuda_synchronize()
    x = cl.NDArray.empty((123457,), dtype="float32", device="cuda")
    del x
    before = C.cuda_memory_stats()
    assert before["cached_bytes"] >= 123457 * 4
    y = cl.NDArray.empty((123457,), dtype="float32", device="cuda")  # same bucket: no new cudaMalloc
    assert C.cuda_memory_stats()["device_mallocs"] == before["device_mallocs"]
    assert C.cuda_memory_stats()["allocated_bytes"] >= before["allocated_bytes"] + 123457 * 4
    del y
    C.cuda_empty_cache()
    after = C.cuda_memory_stats()
    assert after["cached_bytes"] == 0
    assert after["allocated_bytes"] == before["allocated_bytes"]


def test_caching_training_step_stops_calling_cuda_malloc():
    rng = np.random.default_rng(19)
    x, w, b, gy = conv_arrays(rng, CONV_CASES[-1], "float32")
    xg, wg, gyg = pair(x)[1], pair(w)[1], pair(gy)[1]
    counts = []
    for _ in range(3):
        y = C.conv_forward(xg, wg, None, [1, 1], [(1, 1), (1, 1)], [1, 1], 1)
        gx = C.conv_backward_input(gyg, wg, [20, 20], [1, 1], [(1, 1), (1, 1)], [1, 1], 1)
        gw = C.conv_backward_weight(xg, gyg, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1)
        loss = (y * y).sum() + gx.sum() + gw.sum()
        loss.numpy()
        del y, gx, gw, loss
        counts.append(C.cuda_memory_stats()["device_mallocs"])
    assert counts[1] == counts[2]


def test_no_caching_allocates_and_frees_each_array():
    # CONVLAB_CUDA_NO_CACHING is read once per process, so the check runs in a fresh one.
    code = (
        "import convlab as cl; C = cl._C; s0 = C.cuda_memory_stats()\n"
        "x = cl.NDArray.empty((1001,), dtype='float32', device='cuda'); s1 = C.cuda_memory_stats(); del x\n"
        "y = cl.NDArray.empty((1001,), dtype='float32', device='cuda'); s2 = C.cuda_memory_stats(); del y\n"
        "s3 = C.cuda_memory_stats()\n"
        "assert s1['allocated_bytes'] - s0['allocated_bytes'] == 4004, (s0, s1)  # exact size, no bucket\n"
        "assert s2['device_mallocs'] == s1['device_mallocs'] + 1, (s1, s2)       # no reuse\n"
        "assert s3['cached_bytes'] == 0 and s3['allocated_bytes'] == s0['allocated_bytes'], (s0, s3)\n"
        "print('ok')\n")
    env = dict(os.environ, CONVLAB_CUDA_NO_CACHING="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_out_of_memory_is_runtime_error_and_recoverable():
    with pytest.raises(RuntimeError, match="cuda alloc"):
        cl.NDArray.empty((2 ** 40,), dtype="float32", device="cuda")
    a = np.arange(5.0)
    run_both(lambda x: x + 1.0, a, dtype="float64")  # the failure left no error behind for the next launch


def test_device_count_and_synchronize():
    assert C.cuda_device_count() >= 1
    C.cuda_synchronize()
    C.cuda_empty_cache()
