"""Run-to-run determinism: the same inputs give bit-identical results, at a fixed thread count, for every
convolution pass, pooling, reductions, matmul and a whole forward/backward step.

Results may legitimately differ between thread counts (a different split of a sum), so each count is
checked against itself only. Sizes are above the kernels' OpenMP thresholds, so the parallel paths run.
On CUDA, cl.backends.deterministic = True must give the same guarantee (no floating-point atomics)."""
import numpy as np
import pytest

import convlab as cl
from convlab import NDArray, _C
from conftest import DEVICES

REPEATS = 3


def nd(rng, shape, device, dtype="float32"):
    return NDArray.from_numpy(rng.standard_normal(shape).astype(dtype), device)


def kernel_calls(device, dtype):
    """name -> a zero-argument call of one kernel on fixed random inputs."""
    rng = np.random.default_rng(0)
    x = nd(rng, (3, 20, 19, 23), device, dtype)
    w = nd(rng, (24, 10, 3, 3), device, dtype)  # groups=2
    gy = nd(rng, (3, 24, 9, 12), device, dtype)
    wt = nd(rng, (24, 10, 3, 3), device, dtype)  # transposed, groups=2: 24 -> 20 channels
    conv = ([2, 2], [(1, 0), (1, 1)], [1, 1], 2)
    x1, w1 = nd(rng, (4, 16, 301), device, dtype), nd(rng, (16, 1, 5), device, dtype)  # depthwise 1-D
    big = nd(rng, (67, 129, 31), device, dtype)
    a, b = nd(rng, (3, 67, 129), device, dtype), nd(rng, (129, 45), device, dtype)
    pool_gy = nd(rng, (3, 20, 10, 12), device, dtype)
    return {
        "conv_forward": lambda: _C.conv_forward(x, w, None, *conv),
        "conv_backward_input": lambda: _C.conv_backward_input(gy, w, [19, 23], *conv),
        "conv_backward_weight": lambda: _C.conv_backward_weight(x, gy, [3, 3], *conv),
        "conv_transpose_forward": lambda: _C.conv_transpose_forward(gy, wt, None, [2, 2], [(1, 1), (0, 1)],
                                                                    [1, 1], [1, 1], 2),
        "conv1d_depthwise_weight": lambda: _C.conv_backward_weight(
            x1, _C.conv_forward(x1, w1, None, [1], [(2, 2)], [2], 16), [5], [1], [(2, 2)], [2], 16),
        "max_pool": lambda: _C.max_pool_forward(x, [3, 3], [2, 2], [1, 1], [1, 1], True),
        "max_pool_backward": lambda: _C.max_pool_backward(x, pool_gy, [3, 3], [2, 2], [1, 1], [1, 1], True),
        "avg_pool_backward": lambda: _C.avg_pool_backward(pool_gy, [19, 23], [3, 3], [2, 2], [1, 1], True, False),
        "adaptive_avg_pool": lambda: _C.adaptive_avg_pool_forward(x, [5, 7]),
        "sum_all": lambda: big.sum(),
        "sum_axes": lambda: big.sum((0, 2)),
        "mean": lambda: big.mean(1),
        "max": lambda: big.max(0),
        "matmul": lambda: a @ b,
    }


def bits(a):
    return a.numpy().tobytes()


def thread_counts():
    return sorted({1, 2, cl.get_num_threads()})


@pytest.fixture
def restore_flags():
    threads, deterministic = cl.get_num_threads(), cl.backends.deterministic
    yield
    cl.set_num_threads(threads)
    cl.backends.deterministic = deterministic


@pytest.mark.usefixtures("restore_flags")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("deterministic", [False, True])
def test_kernels_repeat_bit_for_bit(device, dtype, deterministic):
    if device == "cuda" and not deterministic:
        pytest.skip("CUDA kernels may use floating-point atomics unless cl.backends.deterministic is set")
    cl.backends.deterministic = deterministic
    for threads in thread_counts():
        cl.set_num_threads(threads)
        for name, call in kernel_calls(device, dtype).items():
            first = bits(call())
            for _ in range(REPEATS - 1):
                assert bits(call()) == first, f"{name} differs between runs with {threads} thread(s)"


def training_step(device, seed):
    """One forward/backward of a small CNN from fixed parameters; returns the loss and every gradient."""
    rng = np.random.default_rng(seed)
    F = cl.nn.functional

    def param(*shape):
        return cl.tensor(rng.standard_normal(shape) * 0.3, device=device, requires_grad=True)

    w1, b1, w2, lw = param(8, 3, 3, 3), param(8), param(12, 4, 3, 3), param(5, 12 * 4 * 4)
    x = cl.tensor(rng.standard_normal((4, 3, 17, 17)), device=device)
    h = F.max_pool2d(F.relu(F.conv2d(x, w1, b1, padding=1)), 2)
    h = F.avg_pool2d(F.conv2d(h, w2, groups=2, padding=1, stride=1), 2, ceil_mode=True)
    h = F.adaptive_avg_pool2d(h, 4)
    loss = F.cross_entropy(F.linear(F.flatten(h, 1), lw), np.array([0, 3, 1, 4]))
    loss.backward()
    return [loss.numpy().tobytes()] + [p.grad.numpy().tobytes() for p in (w1, b1, w2, lw)]


@pytest.mark.usefixtures("restore_flags")
@pytest.mark.parametrize("device", DEVICES)
def test_training_step_repeats_bit_for_bit(device):
    cl.backends.deterministic = True
    for threads in thread_counts():
        cl.set_num_threads(threads)
        first = training_step(device, seed=1)
        assert training_step(device, seed=1) == first, f"a training step differs between runs ({threads} threads)"
