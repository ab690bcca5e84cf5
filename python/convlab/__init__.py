"""convlab: convolutional networks you can read to the bottom, on the CPU and the GPU."""
import builtins  # convlab.bool, convlab.int and convlab.float are dtypes, as in PyTorch
import importlib.util
import os


def _import_core():
    """Imports the compiled core with a short OpenMP spin. libgomp's threads spin ~300,000 times at every
    barrier before they sleep; on a machine shared with other busy processes that spinning eats the time
    slices the rest of the team is waiting for (the LeNet example: 11.5 s instead of 2.7 s with two runs
    at once, docs/perf.md section 14). 10,000 spins keep the quiet-machine speed. libgomp reads the
    variable once, when _C loads it; a value the user set wins, and ours is removed again afterwards so
    OpenMP runtimes loaded later (PyTorch's own) see the environment as it was."""
    ours = "GOMP_SPINCOUNT" not in os.environ
    if ours:
        os.environ["GOMP_SPINCOUNT"] = "10000"
    try:
        from . import _C
    except ImportError:
        # No compiled file at all (a source checkout on sys.path): say so, instead of Python's guess of a
        # circular import. An extension that is there but fails to load keeps its own error.
        if importlib.util.find_spec(f"{__name__}._C") is None:
            raise ImportError(f"the extension convlab._C is not built: run pip install . (or bash "
                              f"scripts/dev_build.sh and export the PYTHONPATH it prints); convlab was imported "
                              f"from {__path__[0]}") from None
        raise
    finally:
        if ours:
            del os.environ["GOMP_SPINCOUNT"]
    return _C


_C = _import_core()
from ._C import NDArray  # noqa: E402
from ._version import __version__  # noqa: E402


class _Cuda:
    """`cl.cuda`: is the GPU backend usable, and its runtime controls."""

    @staticmethod
    def is_available() -> bool:
        return _C.cuda_compiled() and _C.cuda_device_count() > 0

    @staticmethod
    def device_count() -> int:
        return _C.cuda_device_count()

    @staticmethod
    def synchronize() -> None:
        _C.cuda_synchronize()

    @staticmethod
    def empty_cache() -> None:
        """Returns the caching allocator's free blocks to the driver."""
        _C.cuda_empty_cache()

    @staticmethod
    def memory_allocated() -> int:
        """Bytes of GPU memory held by live arrays."""
        return _C.cuda_memory_stats()["allocated_bytes"]

    @staticmethod
    def memory_reserved() -> int:
        """Bytes the caching allocator holds: live arrays plus its free lists."""
        stats = _C.cuda_memory_stats()
        return stats["allocated_bytes"] + stats["cached_bytes"]


cuda = _Cuda()


class _CudaBackendFlags:
    """`cl.backends.cuda`: allow_tf32 (default False: float32 means float32)."""

    @property
    def allow_tf32(self) -> bool:
        return _C.get_allow_tf32()

    @allow_tf32.setter
    def allow_tf32(self, on: bool) -> None:
        _C.set_allow_tf32(builtins.bool(on))


class _CudnnFlags:
    """`cl.backends.cudnn`: where PyTorch scripts set benchmark / deterministic / enabled. convlab's kernels
    are its own (no cuDNN), so the flags are kept and change nothing; cl.backends.deterministic is the switch
    convlab's kernels read."""

    def __init__(self):
        self.benchmark, self.deterministic, self.enabled = False, False, True


class _Backends:
    """`cl.backends`: switches the kernels read when they run."""

    cuda = _CudaBackendFlags()
    cudnn = _CudnnFlags()

    @property
    def deterministic(self) -> bool:
        """True selects kernels without floating-point atomics (bit-identical results run to run)."""
        return _C.get_deterministic()

    @deterministic.setter
    def deterministic(self, on: bool) -> None:
        _C.set_deterministic(builtins.bool(on))


backends = _Backends()


def default_device() -> str:
    """"cuda" when a GPU backend is compiled in and a GPU is visible, else "cpu"."""
    return "cuda" if cuda.is_available() else "cpu"


def set_num_threads(n: int) -> None:
    """Number of OpenMP threads the CPU kernels use."""
    _C.set_num_threads(n)


def get_num_threads() -> int:
    return _C.get_num_threads()


from .tensor import (Tensor, arange, full, manual_seed, ones, ones_like, rand, randn, tensor, zeros,  # noqa: E402
                     zeros_like)
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled  # noqa: E402
# The tensor toolbox of PyTorch's top-level namespace.
from .tensor import (Device as device, Size, as_tensor, empty, empty_like, eye, from_numpy,  # noqa: E402
                     full_like, is_tensor, linspace, normal, numel, rand_like, randint, randn_like, randperm)
from .functions import (abs, add, allclose, bmm, cat, chunk, clamp, clip, clone, concat, concatenate, div,  # noqa: E402
                        divide, equal, exp, flatten, log, log_softmax, logsumexp, max, maximum, mean, minimum, mm,
                        mul, multiply, narrow, neg, permute, pow, relu, reshape, rsqrt, sigmoid, softmax, split,
                        sqrt, square, squeeze, stack, std, sub, subtract, sum, swapaxes, t, tanh, transpose,
                        true_divide, unbind, unsqueeze, var, sort, argsort, topk, dot, mv, outer, flip, fliplr,
                        flipud, prod)
from .tensor import matmul  # noqa: E402
from .functions import cumsum, isfinite, isinf, isnan, norm, roll, tril, triu  # noqa: E402
from .functions import (all, any, argmax, argmin, bitwise_and, bitwise_not, bitwise_or, bitwise_xor,  # noqa: E402
                        ceil, eq, erf, floor, floor_divide, ge, greater, greater_equal, gt, is_floating_point, le,
                        less, less_equal, logical_and, logical_not, logical_or, logical_xor, lt, min, ne,
                        not_equal, remainder, round, sign)
from .dtypes import (bool, double, dtype, float, float32, float64, get_default_dtype, int, int32,  # noqa: E402
                     int64, long, set_default_dtype)
from .indexing import (gather, index_add, index_select, masked_fill, masked_select, nonzero,  # noqa: E402
                       scatter, scatter_add, where)
from .serialization import load, save  # noqa: E402
from . import linalg, nn, optim, signal, utils  # noqa: E402  (they build on the names above)
from .utils.dlpack import from_dlpack  # noqa: E402
