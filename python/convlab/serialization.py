"""convlab.save / convlab.load: any picklable object holding tensors (a state_dict, a checkpoint dict, a
whole model) to a file or file-like object and back, as torch.save / torch.load do.

Tensors are pickled out of band (pickle's persistent ids) as (class, dtype, shape, raw bytes, device,
requires_grad), so load can place them on the device map_location asks for, and so a weights_only load
needs to trust nothing but the tensor classes, dtypes and OrderedDict.
"""
import collections
import contextlib
import os
import pickle

import numpy as np

from . import dtypes
from .tensor import NDArray, Tensor, canonical_device


def _trusted():
    """What a weights_only load may build: the tensor classes, dtypes and OrderedDict (state_dict())."""
    from .nn import Parameter  # nn builds on the tensor layer, so it is imported when first needed

    return {Tensor, Parameter, dtypes.as_dtype, collections.OrderedDict}


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if not isinstance(obj, Tensor):
            return None
        data = obj._data
        return ("tensor", type(obj), data.dtype, tuple(data.shape), data.numpy().tobytes(), data.device,
                obj.requires_grad)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, map_location, weights_only):
        super().__init__(file)
        self.map_location, self.weights_only = map_location, weights_only

    def persistent_load(self, pid):
        _, cls, dtype, shape, raw, device, requires_grad = pid
        array = np.frombuffer(raw, dtype=dtype).reshape(shape)
        return cls(NDArray.from_numpy(array, self._device(device)), requires_grad=requires_grad)

    def _device(self, saved):
        """Where a tensor saved on `saved` goes: map_location as a device, or a {saved: new} dict, or None
        (where it was; a CUDA tensor on a machine without a GPU raises RuntimeError, as in PyTorch)."""
        location = self.map_location
        if isinstance(location, dict):
            location = location.get(saved, saved)
        return canonical_device(saved if location is None else location)

    def find_class(self, module, name):
        cls = super().find_class(module, name)
        if self.weights_only and cls not in _trusted():
            raise pickle.UnpicklingError(
                f"load: weights_only=True refuses to build {module}.{name}; load only files you trust with "
                f"weights_only=False")
        return cls


def _open(f, mode):
    """The file at path f, or f itself when it is a file-like object (left open: it is the caller's)."""
    return open(f, mode) if isinstance(f, (str, os.PathLike)) else contextlib.nullcontext(f)


def save(obj, f, *, pickle_protocol=pickle.DEFAULT_PROTOCOL):
    """Writes obj (anything picklable; tensors go by value, grads are not saved) to f, a path or a binary
    file-like object."""
    with _open(f, "wb") as file:
        _Pickler(file, protocol=pickle_protocol).dump(obj)


def load(f, map_location=None, *, weights_only=None):
    """Reads what save wrote. map_location: None (each tensor where it was saved), a device, or a dict
    {saved_device: device}. weights_only (None means True, PyTorch's default) builds only tensors, numbers,
    strings and containers; weights_only=False unpickles anything, so use it only on files you trust."""
    if not (map_location is None or isinstance(map_location, (str, dict))):
        raise TypeError(f"load: map_location must be None, a device or a dict, got {type(map_location).__name__}")
    with _open(f, "rb") as file:
        return _Unpickler(file, map_location, weights_only is not False).load()

