"""Memory: thousands of training steps of a small CNN must not grow resident memory or the number of live
Python objects once warmed up (a leaked graph, NDArray or workspace per step would show as steady growth)."""
import gc
import os

import numpy as np
import pytest

import convlab as cl
from conftest import DEVICES

STEPS, WARMUP = 2000, 200
RSS_SLACK = 8 << 20  # allocator and interpreter noise; a leak of one step's graph per step is far larger
OBJECT_SLACK = 200


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def live_objects():
    gc.collect()
    return len(gc.get_objects())


def small_cnn(device):
    nn = cl.nn
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, groups=2), nn.Tanh(), nn.AvgPool2d(2, ceil_mode=True),
        nn.ConvTranspose2d(6, 3, 2, stride=2), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 3))
    return model.to(device=device)


@pytest.fixture
def one_thread():
    """Tiny layers cost microseconds; an OpenMP fork/join per kernel on a loaded 2-core machine costs
    milliseconds, so the loop runs single-threaded to stay within its time budget."""
    threads = cl.get_num_threads()
    cl.set_num_threads(1)
    yield
    cl.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("device", DEVICES)
def test_training_loop_does_not_grow_memory(device):
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("needs Linux /proc/self/statm")
    cl.manual_seed(0)
    model = small_cnn(device)
    opt = cl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = cl.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = cl.tensor(rng.standard_normal((2, 1, 12, 12)), dtype="float32", device=device)
    target = np.array([0, 2])

    def steps(count):
        for _ in range(count):
            opt.zero_grad()
            loss = loss_fn(model(x), target)
            loss.backward()
            opt.step()
        return loss.item()

    first_loss = steps(WARMUP)
    if device == "cuda":
        cl.cuda.synchronize()
    rss, objects, gpu = resident_bytes(), live_objects(), cl.cuda.memory_allocated()
    last_loss = steps(STEPS - WARMUP)
    if device == "cuda":
        cl.cuda.synchronize()
        grown_gpu = cl.cuda.memory_allocated() - gpu
        assert grown_gpu < 1 << 20, f"GPU memory held by live arrays grew by {grown_gpu} bytes over {STEPS - WARMUP} steps"
    grown_rss, grown_objects = resident_bytes() - rss, live_objects() - objects
    assert np.isfinite(last_loss) and last_loss < first_loss, "the loop should still be training"
    assert grown_rss < RSS_SLACK, f"resident memory grew by {grown_rss / 2**20:.1f} MiB over {STEPS - WARMUP} steps"
    assert grown_objects < OBJECT_SLACK, f"{grown_objects} more live Python objects after {STEPS - WARMUP} steps"


def test_empty_cache_releases_gpu_memory():
    if not cl.cuda.is_available():
        pytest.skip("CUDA backend not compiled in or no GPU visible")
    a = cl.NDArray.full((1 << 20,), 1.0, "float32", "cuda")
    del a
    assert cl.cuda.memory_reserved() >= 4 << 20, "a freed block should stay cached for reuse"
    cl.cuda.empty_cache()
    assert cl.cuda.memory_reserved() == cl.cuda.memory_allocated(), "empty_cache() must release the free lists"


def test_freed_arrays_return_memory():
    """Allocating and dropping a large NDArray repeatedly does not accumulate (the storage is released, or
    reused by a cache, when the last view goes)."""
    shape = (64, 1 << 16)  # 32 MiB in float64
    a = cl.NDArray.full(shape, 1.0, "float64")
    del a
    rss = resident_bytes()
    for _ in range(20):
        a = cl.NDArray.full(shape, 1.0, "float64")
        b = (a * 2.0)[::2]
        del a, b
    assert resident_bytes() - rss < 80 << 20, "20 dropped 32 MiB arrays were not released"


def host_address(a):
    """The address of a CPU NDArray's first element (through a NumPy view that is dropped at once)."""
    return np.from_dlpack(a).ctypes.data


def test_released_host_blocks_are_reused_and_never_shared():
    """Host blocks of 64 KiB and more go to convlab's cache when released (cpu/memory.cpp) and come out again
    for the same size: the released block must come back, and never to two live arrays at once."""
    shape = (128, 257)  # 131,584 bytes of float32, above the cache's floor
    a = cl.NDArray.full(shape, 1.0, "float32", "cpu")
    address = host_address(a)
    del a
    b = cl.NDArray.full(shape, 2.0, "float32", "cpu")
    assert host_address(b) == address, "the released block should be reused for the same size"
    c = cl.NDArray.full(shape, 3.0, "float32", "cpu")
    d = c * 2.0
    assert len({host_address(b), host_address(c), host_address(d)}) == 3
    np.testing.assert_array_equal(b.numpy(), np.full(shape, 2.0, np.float32))
    np.testing.assert_array_equal(c.numpy(), np.full(shape, 3.0, np.float32))
    np.testing.assert_array_equal(d.numpy(), np.full(shape, 6.0, np.float32))
