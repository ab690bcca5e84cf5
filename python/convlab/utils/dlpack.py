"""DLPack: zero-copy exchange of tensors with NumPy, PyTorch, JAX and CuPy (torch.utils.dlpack's names).

Only metadata moves: a tensor imported with from_dlpack views the producer's memory, and the producer's
memory stays alive while either side holds it. Writes through one side are seen by the other."""
from .._C import NDArray

_CUDA = 2  # DLPack's device type of CUDA memory (kDLCUDA)
_LEGACY_DEFAULT_STREAM = 1  # the stream convlab's CUDA kernels are queued on, as DLPack numbers it


def from_dlpack(ext_tensor, *, device=None, copy=None):
    """A Tensor viewing the memory of `ext_tensor` (anything with __dlpack__, or a DLPack capsule) without a
    copy. copy=True copies; device= (the array API's keyword) copies to another device unless copy=False,
    which then raises BufferError, as does memory convlab cannot address (another device type, a second GPU,
    a CPU-only build given CUDA memory). Unsupported dtypes raise TypeError."""
    from ..tensor import Tensor, canonical_device
    capsule = ext_tensor
    if hasattr(ext_tensor, "__dlpack__"):
        device_type, _ = ext_tensor.__dlpack_device__()
        # The producer makes its queued CUDA work visible on the stream convlab reads on.
        stream = _LEGACY_DEFAULT_STREAM if device_type == _CUDA else None
        try:
            capsule = ext_tensor.__dlpack__(stream=stream, max_version=(1, 0))
        except TypeError:  # a producer older than DLPack 1.0 takes no max_version
            capsule = ext_tensor.__dlpack__(stream=stream)
    array = NDArray.from_dlpack(capsule, copy=bool(copy))
    if device is not None and canonical_device(device) != array.device:
        if copy is False:
            raise BufferError(f"from_dlpack: the data is on '{array.device}' and device={device!r} needs a copy, "
                              f"which copy=False forbids")
        array = array.to(canonical_device(device))
    return Tensor(array)


def to_dlpack(tensor):
    """A DLPack capsule viewing `tensor`'s memory (for consumers that take capsules, such as
    torch.utils.dlpack.from_dlpack); it can be imported once."""
    return tensor.__dlpack__()
