"""convlab: convolutional networks you can read to the bottom, on the CPU and the GPU."""
from . import _C
from ._C import NDArray

__version__ = "0.1.0"


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
        _C.cuda_empty_cache()


cuda = _Cuda()


def default_device() -> str:
    """"cuda" when a GPU backend is compiled in and a GPU is visible, else "cpu"."""
    return "cuda" if cuda.is_available() else "cpu"


def set_num_threads(n: int) -> None:
    """Number of OpenMP threads the CPU kernels use."""
    _C.set_num_threads(n)


def get_num_threads() -> int:
    return _C.get_num_threads()
