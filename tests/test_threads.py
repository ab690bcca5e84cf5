"""Concurrency: kernels release the GIL, so Python threads may run convolutions at the same time; each
thread must still get exactly the result it gets alone (no shared scratch space, no global state)."""
import sys
import threading

import numpy as np
import pytest

from convlab import NDArray, _C
from conftest import DEVICES

THREADS = 4
ROUNDS = 6
GIL_PROBE_CALLS = 500  # a GIL-holding kernel runs this many times before the test fails


def nd(rng, shape, device):
    return NDArray.from_numpy(rng.standard_normal(shape), device)


def workloads(device):
    """Different problems per thread (shapes, groups, passes), so a kernel that kept per-shape state in a
    global would hand one thread another's scratch data."""
    jobs = []
    for t in range(THREADS):
        rng = np.random.default_rng(t)
        c, k = 4 + 3 * t, 1 + 2 * (t % 2)
        x, w = nd(rng, (2, c, 13 + t, 11), device), nd(rng, (2 * c, 1 if t % 2 else c, k, k), device)
        groups = c if t % 2 else 1
        args = ([1 + t % 2, 1], [(t % 3, 1), (1, 0)], [1, 1 + t % 2], groups)
        y = _C.conv_forward(x, w, None, *args)
        gy = nd(rng, y.shape, device)
        jobs.append([
            lambda x=x, w=w, args=args: _C.conv_forward(x, w, None, *args),
            lambda gy=gy, w=w, x=x, args=args: _C.conv_backward_input(gy, w, list(x.shape[2:]), *args),
            lambda x=x, gy=gy, w=w, args=args: _C.conv_backward_weight(x, gy, list(w.shape[2:]), *args),
            lambda x=x: _C.max_pool_forward(x, [3, 2], [2, 1], [1, 1], [1, 1], False),
            lambda x=x, w=w: x.reshape((2 * x.shape[1], -1)) @ x.reshape((-1, 2 * x.shape[1])),
        ])
    return jobs


def run_threads(target, count):
    """Starts `count` threads at one barrier; re-raises the first exception any of them hit."""
    errors, barrier = [], threading.Barrier(count)

    def guarded(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as e:  # noqa: BLE001  (reported in the main thread)
            errors.append(e)
    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("device", DEVICES)
def test_concurrent_kernels_match_serial_results(device):
    jobs = workloads(device)
    expected = [[call().numpy() for call in calls] for calls in jobs]

    def worker(i):
        for _ in range(ROUNDS):
            for j, call in enumerate(jobs[i]):
                np.testing.assert_array_equal(call().numpy(), expected[i][j], err_msg=f"thread {i} job {j}")
    run_threads(worker, THREADS)


@pytest.mark.parametrize("device", DEVICES)
def test_threads_share_inputs_without_changing_them(device):
    """Many threads reading one input and one weight at once: outputs right, inputs untouched."""
    rng = np.random.default_rng(7)
    x, w = nd(rng, (2, 6, 15, 15), device), nd(rng, (6, 3, 3, 3), device)
    x0, w0 = x.numpy(), w.numpy()
    args = ([1, 1], [(1, 1), (1, 1)], [1, 1], 2)
    want = _C.conv_forward(x, w, None, *args).numpy()

    def worker(i):
        for _ in range(ROUNDS):
            np.testing.assert_array_equal(_C.conv_forward(x, w, None, *args).numpy(), want)
    run_threads(worker, THREADS)
    np.testing.assert_array_equal(x.numpy(), x0)
    np.testing.assert_array_equal(w.numpy(), w0)


def gil_probe_calls():
    """name -> a call long enough (tens of ms) for another thread to be scheduled while it runs."""
    rng = np.random.default_rng(3)
    x, w = nd(rng, (8, 32, 48, 48), "cpu"), nd(rng, (32, 32, 3, 3), "cpu")
    gy = _C.conv_forward(x, w, None, [1, 1], [(1, 1), (1, 1)], [1, 1], 1)
    args = ([1, 1], [(1, 1), (1, 1)], [1, 1], 1)
    big, a = nd(rng, (4, 1 << 20), "cpu"), nd(rng, (512, 512), "cpu")
    return {
        "conv_forward": lambda: _C.conv_forward(x, w, None, *args),
        "conv_backward_input": lambda: _C.conv_backward_input(gy, w, [48, 48], *args),
        "conv_backward_weight": lambda: _C.conv_backward_weight(x, gy, [3, 3], *args),
        "max_pool_forward": lambda: _C.max_pool_forward(x, [3, 3], [1, 1], [1, 1], [1, 1], False),
        "matmul": lambda: a @ a,
        "exp": lambda: big.exp(),
        "add": lambda: big + big,
        "sum": lambda: big.sum(1),
        "max": lambda: big.max(),
        "mean": lambda: big.mean(0),
        "astype": lambda: big.astype("float32"),
    }


def other_thread_ran_during(call, max_calls):
    """With a switch interval of minutes, the interpreter hands the GIL to a waiting thread only when the
    running code releases it. The other thread below is made runnable and then waits for the GIL; this
    thread calls `call` again and again, touching nothing else that could release the GIL, until the other
    thread has run or max_calls calls are done. So the other thread can only have run inside a call, and
    only if that call released the GIL: a GIL-holding call never lets it, a releasing one does as soon as
    the OS has put the other thread on a core during one of the calls, however loaded the machine. No time
    is measured. Returns whether it ran, and the number of calls made."""
    go, ran = threading.Event(), []
    other = threading.Thread(target=lambda: (go.wait(), ran.append(True)))
    other.start()
    old = sys.getswitchinterval()
    sys.setswitchinterval(300.0)
    try:
        go.set()
        calls = 0
        while not ran and calls < max_calls:
            call()
            calls += 1
        overlapped = bool(ran)  # read before anything else can release the GIL
    finally:
        sys.setswitchinterval(old)
        other.join()
    return overlapped, calls


@pytest.mark.parametrize("name", list(gil_probe_calls()))
def test_kernel_releases_the_gil(name):
    overlapped, calls = other_thread_ran_during(gil_probe_calls()[name], GIL_PROBE_CALLS)
    assert overlapped, f"no other Python thread ran during {calls} {name} calls: the GIL seems to be held"


def test_gil_probe_catches_a_call_that_holds_the_gil():
    """The probe above must be able to fail: pure Python code holds the GIL throughout."""
    overlapped, calls = other_thread_ran_during(lambda: sum(i * i for i in range(20_000)), 50)
    assert not overlapped and calls == 50


@pytest.mark.parametrize("preset", [None, "123"])
def test_import_leaves_openmp_environment_as_it_was(preset):
    """convlab loads its OpenMP runtime with a short spin (GOMP_SPINCOUNT, docs/perf.md 14) but must not
    change the environment other libraries see afterwards, nor override a value the user set."""
    import os
    import subprocess
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if preset is not None:
        env["GOMP_SPINCOUNT"] = preset
    code = "import os, convlab; print(os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(preset)
