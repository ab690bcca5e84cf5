"""--signal: cl.signal.convolve2d against scipy.signal.convolve2d (SciPy's direct sum, one thread) and
scipy.signal.fftconvolve on one image and kernel (default 1024x1024 and 15x15), each mode and dtype; the three
run interleaved window by window and each keeps its best window (timing.best_window_times). The last column
is convlab's time per image for a batch of two: one image with one kernel is a 1-in-1-out conv, which the
CPU runs as a GEMM, while a batch runs the depthwise kernel (groups = batch)."""
import numpy as np

from .. import _C
from .. import signal as cl_signal
from ..tensor import tensor
from .timing import best_window_times, max_rel_err


def run(args, size=1024, kernel=15):
    try:
        import scipy
        import scipy.signal as scipy_signal
    except ImportError:
        raise SystemExit("bench --signal: needs scipy") from None
    devices = [d.strip() for d in args.device.split(",") if d.strip()]
    rng = np.random.default_rng(0)
    image, weights = rng.standard_normal((size, size)), rng.standard_normal((kernel, kernel))
    print(f"convlab bench --signal: convolve2d of a {size}x{size} image with a {kernel}x{kernel} kernel, convlab "
          f"on {','.join(devices)} ({_C.get_num_threads()} CPU threads) vs SciPy {scipy.__version__} on the CPU")
    print(f"{'dtype':<8} {'mode':<6} {'dev':<4} {'convlab ms':>10} {'scipy ms':>9} {'fft ms':>8} "
          f"{'scipy/convlab':>13} {'fft/convlab':>11} {'rel err':>8} {'batch-2 ms/image':>16}", flush=True)
    for device in devices:
        sync = _C.cuda_synchronize if device == "cuda" else (lambda: None)
        for dtype in ("float64", "float32"):
            a, w = image.astype(dtype), weights.astype(dtype)
            ta, tw = tensor(a, device=device), tensor(w, device=device)
            pair = tensor(np.stack([a, a]), device=device)
            for mode in ("full", "same", "valid"):
                calls = [lambda: cl_signal.convolve2d(ta, tw, mode), lambda: scipy_signal.convolve2d(a, w, mode),
                         lambda: scipy_signal.fftconvolve(a, w, mode), lambda: cl_signal.convolve2d(pair, tw, mode)]
                ours, direct, fft, batched = best_window_times(calls, [sync, lambda: None, lambda: None, sync],
                                                               args.repeat, args.warmup)
                err = max_rel_err(calls[0]().numpy(), calls[1]())
                print(f"{dtype:<8} {mode:<6} {device:<4} {ours * 1e3:>10.1f} {direct * 1e3:>9.1f} {fft * 1e3:>8.1f} "
                      f"{direct / ours:>13.1f} {fft / ours:>11.1f} {err:>8.1e} {batched / 2 * 1e3:>16.1f}", flush=True)
    return 0
