"""DLPack both ways: zero-copy exchange with NumPy and PyTorch, strides and dtypes carried, the memory kept
alive while either side holds it, clear errors for what cannot be shared. A hand-built capsule (ctypes)
checks the protocol itself: the deleter runs exactly once, when the last convlab array viewing it is gone."""
import ctypes
import gc
import weakref

import numpy as np
import pytest

import convlab as cl
from convlab import NDArray

torch = pytest.importorskip("torch")

DTYPES = ["float32", "float64", "int32", "int64", "bool"]
TORCH_CUDA = pytest.mark.skipif(not (cl.cuda.is_available() and torch.cuda.is_available()),
                                reason="needs a GPU visible to both convlab and PyTorch")


def random_array(rng, shape, dtype):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        return rng.integers(-1000, 1000, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# Views a convlab array can be, each with the NumPy expression that gives the same elements.
VIEWS = [
    ("whole", lambda a: a, lambda n: n),
    ("transpose", lambda a: a.transpose(0, 2), lambda n: n.transpose(2, 1, 0)),
    ("strided slice", lambda a: a[1::2, :, 1:6:3], lambda n: n[1::2, :, 1:6:3]),
    ("integer index", lambda a: a[2], lambda n: n[2]),
    ("broadcast", lambda a: a[:, :1, :].broadcast_to((5, 4, 7)), lambda n: np.broadcast_to(n[:, :1, :], (5, 4, 7))),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,view,np_view", VIEWS, ids=[v[0] for v in VIEWS])
def test_export_to_numpy_is_a_view(rng, dtype, name, view, np_view):
    ref = random_array(rng, (5, 3, 7), dtype)
    a = view(NDArray.from_numpy(ref))
    shared = np.from_dlpack(a)
    assert shared.dtype == np.dtype(dtype) and shared.shape == tuple(a.shape)
    np.testing.assert_array_equal(shared, np_view(ref))
    assert [s // shared.itemsize for s in shared.strides] == list(a.strides)


def test_flipped_view_leaves_as_a_copy():
    """Negative strides are valid DLPack, but PyTorch aborts the process on them: a flipped NDArray view is
    exported as a copy (which copy=None allows), and copy=False refuses."""
    a = NDArray.from_numpy(np.arange(12.0).reshape(3, 4))
    flipped = a.flip(1)
    assert flipped.strides == (4, -1)
    for shared in (np.from_dlpack(flipped), torch.from_dlpack(flipped).numpy()):
        np.testing.assert_array_equal(shared, np.arange(12.0).reshape(3, 4)[:, ::-1])
        shared[0, 0] = -1
        assert a.numpy()[0, 3] == 3  # a copy: the write stays on the consumer's side
    with pytest.raises(BufferError, match="negative strides"):
        np.from_dlpack(flipped, copy=False)
    np.testing.assert_array_equal(np.from_dlpack(a[2:].flip(0)), [[8, 9, 10, 11]])  # one row: nothing to flip


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_writes_show_in_convlab_and_back(rng, dtype):
    ref = random_array(rng, (4, 6), dtype)
    a = NDArray.from_numpy(ref)
    shared = np.from_dlpack(a[:, 1::2])
    value = random_array(rng, (4, 3), dtype)
    shared[...] = value
    expected = ref.copy()
    expected[:, 1::2] = value
    np.testing.assert_array_equal(a.numpy(), expected)
    a[1:3] = NDArray.from_numpy(~ref[1:3] if dtype == "bool" else ref[1:3] * 2)
    np.testing.assert_array_equal(shared[1:3], (~ref[1:3] if dtype == "bool" else ref[1:3] * 2)[:, 1::2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slicer", [np.s_[...], np.s_[::2, 1:], np.s_[::-1, ::3], np.s_[3]],
                         ids=["whole", "strided", "negative", "row"])
def test_import_from_numpy_shares_memory(rng, dtype, slicer):
    base = random_array(rng, (6, 8), dtype)
    src = base[slicer]
    t = cl.from_dlpack(src)
    assert isinstance(t, cl.Tensor) and t.dtype == getattr(cl, dtype) and tuple(t.shape) == src.shape
    np.testing.assert_array_equal(t.numpy(), src)
    t._data[...] = 1  # a write through convlab lands in NumPy's array
    assert (base[slicer] == 1).all()
    np.testing.assert_array_equal(t.numpy(), np.ones(src.shape, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_with_torch(rng, dtype):
    ref = random_array(rng, (3, 5, 4), dtype)
    t = cl.tensor(ref)
    tt = torch.from_dlpack(t)
    assert tt.dtype == getattr(torch, dtype) and tuple(tt.shape) == ref.shape
    np.testing.assert_array_equal(tt.numpy(), ref)
    tt[0] = torch.from_numpy(ref[1])  # torch's write, seen by convlab
    back = cl.from_dlpack(tt.permute(2, 0, 1)[:, ::2])  # a non-contiguous torch view, back into convlab
    expected = ref.copy()
    expected[0] = ref[1]
    np.testing.assert_array_equal(t.numpy(), expected)
    np.testing.assert_array_equal(back.numpy(), expected.transpose(2, 0, 1)[:, ::2])
    back._data[...] = 0
    assert not tt.permute(2, 0, 1)[:, ::2].any() and tt.permute(2, 0, 1)[:, 1::2].numpy().any()


def test_torch_capsule_functions_and_expanded_views():
    tt = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    t = cl.utils.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(tt[:, None, :].expand(3, 5, 4)))
    assert t._data.strides == (4, 0, 1)
    np.testing.assert_array_equal(t.numpy(), np.broadcast_to(np.arange(12.0).reshape(3, 1, 4), (3, 5, 4)))
    back = torch.utils.dlpack.from_dlpack(cl.utils.dlpack.to_dlpack(cl.tensor([[1, 2], [3, 4]]).T))
    assert back.stride() == (1, 2)
    np.testing.assert_array_equal(back.numpy(), [[1, 3], [2, 4]])


def test_zero_size_and_scalar_arrays():
    for shape in [(0,), (3, 0, 2), ()]:
        ref = np.asarray(np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) + 5)
        t = cl.from_dlpack(ref)
        assert tuple(t.shape) == shape
        np.testing.assert_array_equal(t.numpy(), ref)
        np.testing.assert_array_equal(np.from_dlpack(t), ref)
        np.testing.assert_array_equal(torch.from_dlpack(t).numpy(), ref)


def test_producer_deleted_first_keeps_memory_alive():
    src = np.arange(100, dtype=np.float64)
    alive = weakref.ref(src)
    t = cl.from_dlpack(src)[10:20]  # a view of the import: the storage, not the first array, holds the memory
    del src
    gc.collect()
    assert alive() is not None
    np.testing.assert_array_equal(t.numpy(), np.arange(10, 20))
    del t
    gc.collect()
    assert alive() is None  # the last convlab array gone, the producer's deleter ran and let NumPy's array go

    tt = torch.arange(50, dtype=torch.int64)
    c = cl.from_dlpack(tt)
    del tt
    gc.collect()
    np.testing.assert_array_equal(c.numpy(), np.arange(50))


def test_consumer_outlives_convlab_tensor():
    t = cl.arange(30, dtype=cl.float32).reshape(5, 6)
    shared_np, shared_torch = np.from_dlpack(t[1:]), torch.from_dlpack(t.T)
    del t
    gc.collect()
    np.testing.assert_array_equal(shared_np, np.arange(6, 30, dtype=np.float32).reshape(4, 6))
    np.testing.assert_array_equal(shared_torch.numpy(), np.arange(30, dtype=np.float32).reshape(5, 6).T)


def test_unconsumed_capsule_frees_its_reference():
    a = cl.ones(4)
    for _ in range(3):
        capsule = a.__dlpack__()
        del capsule  # never imported: the capsule's destructor drops the exported view
    capsule = a.__dlpack__(max_version=(1, 0))
    del capsule
    np.testing.assert_array_equal(a.numpy(), np.ones(4))


def test_copy_and_device_keywords():
    t = cl.tensor([1.0, 2.0, 3.0])
    copied = np.from_dlpack(t, copy=True)
    copied[0] = 9
    assert t[0].item() == 1.0
    shared = np.from_dlpack(t, copy=False)
    shared[0] = 7
    assert t[0].item() == 7.0
    c = cl.from_dlpack(np.arange(3.0), copy=True)
    c._data[...] = 0
    imported = np.arange(3.0)
    same = cl.from_dlpack(imported, device="cpu", copy=False)
    same._data[0] = 5
    assert imported[0] == 5
    if not cl.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            cl.from_dlpack(np.arange(3.0), device="cuda")


def test_tensor_dlpack_refuses_requires_grad():
    w = cl.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        w.__dlpack__()
    np.testing.assert_array_equal(torch.from_dlpack(w.detach()).numpy(), np.ones(3, np.float32))
    assert w.__dlpack_device__() == (1, 0)


def test_array_shares_cpu_memory_and_copies_where_needed():
    t = cl.arange(6, dtype=cl.float32).reshape(2, 3)
    a = np.asarray(t)
    a[0, 0] = 42  # shared, as np.asarray(torch_tensor) is
    assert t[0, 0].item() == 42
    b = np.asarray(t.T)
    assert b.shape == (3, 2) and b[0, 0] == 42
    c = np.array(t)  # np.array copies by default
    c[0, 1] = -1
    assert t[0, 1].item() == 1
    d = np.asarray(t, dtype=np.float64)
    assert d.dtype == np.float64 and d[0, 0] == 42
    np.testing.assert_array_equal(np.asarray(t, copy=False), np.asarray(t))
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(t, dtype=np.float64, copy=False)


@pytest.mark.parametrize("bad", [np.arange(4, dtype=np.uint8), np.ones(3, np.float16), np.ones(2, np.complex64),
                                 np.arange(3, dtype=np.int16)], ids=["uint8", "float16", "complex64", "int16"])
def test_unsupported_numpy_dtypes_raise_type_error(bad):
    with pytest.raises(TypeError, match=r"dtype must be float32, float64, int32, int64 or bool, got "):
        cl.from_dlpack(bad)


def test_unsupported_torch_dtype_and_read_only_memory():
    with pytest.raises(TypeError, match="got bfloat16"):
        cl.from_dlpack(torch.ones(3, dtype=torch.bfloat16))
    frozen = np.arange(4.0)
    frozen.flags.writeable = False
    with pytest.raises(BufferError, match="read-only"):
        cl.from_dlpack(frozen)
    np.testing.assert_array_equal(cl.from_dlpack(frozen, copy=True).numpy(), frozen)


def test_capsule_imported_twice_and_non_capsules():
    capsule = np.arange(3.0).__dlpack__()
    cl.from_dlpack(capsule)
    with pytest.raises(ValueError, match="can be imported only once"):
        cl.from_dlpack(capsule)
    with pytest.raises(TypeError, match="expected a DLPack capsule, got list"):
        cl.from_dlpack([1, 2, 3])


# ---- a hand-built producer: the protocol as the spec states it ----
class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32), ("dtype", DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", DELETER)]


class HandMade:
    """A capsule over `buffer` (a NumPy array) with the given layout; counts its deleter's calls."""

    def __init__(self, buffer, shape, strides=None, byte_offset=0, device=(1, 0), dtype=(2, 64, 1)):
        self.buffer, self.deleted = buffer, 0
        self.shape = (ctypes.c_int64 * len(shape))(*shape)
        self.strides = None if strides is None else (ctypes.c_int64 * len(strides))(*strides)
        self.deleter = DELETER(self._delete)
        tensor = DLTensor(buffer.ctypes.data, DLDevice(*device), len(shape), DLDataType(*dtype), self.shape,
                          self.strides, byte_offset)
        self.managed = DLManagedTensor(tensor, None, self.deleter)
        new = ctypes.pythonapi.PyCapsule_New
        new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        self.capsule = new(ctypes.addressof(self.managed), b"dltensor", None)

    def _delete(self, _):
        self.deleted += 1


def test_hand_made_capsule_layout_and_one_deleter_call():
    buffer = np.arange(40, dtype=np.float64)
    made = HandMade(buffer, (3, 4), strides=(-8, 2), byte_offset=8 * 17)  # rows backwards from element 17
    t = cl.from_dlpack(made.capsule)
    expected = np.array([[17 - 8 * i + 2 * j for j in range(4)] for i in range(3)], np.float64)
    np.testing.assert_array_equal(t.numpy(), expected)
    view = t[1:]
    del t
    gc.collect()
    assert made.deleted == 0
    np.testing.assert_array_equal(view.numpy(), expected[1:])
    del view
    gc.collect()
    assert made.deleted == 1
    contiguous = HandMade(buffer, (5, 8))  # strides NULL: compact row-major
    np.testing.assert_array_equal(cl.from_dlpack(contiguous.capsule).numpy(), buffer.reshape(5, 8))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(device=(2, 0)), BufferError if not cl._C.cuda_compiled() else None, "without the CUDA backend"),
    (dict(device=(2, 1)), BufferError, "CUDA device 1" if cl._C.cuda_compiled() else "without the CUDA"),
    (dict(device=(8, 0)), BufferError, "device type 8 cannot be shared"),
    (dict(dtype=(2, 32, 4)), TypeError, "got float32 x4 lanes"),
    (dict(dtype=(1, 8, 1)), TypeError, "got uint8"),
    (dict(byte_offset=3), BufferError, "byte_offset 3 is not a multiple of the element size 8"),
], ids=["cuda-on-cpu-build", "second-gpu", "other-device", "vector-lanes", "uint8", "misaligned"])
def test_hand_made_capsule_errors_free_the_memory_at_once(kwargs, error, match):
    if error is None:
        pytest.skip("this build has CUDA: device (2, 0) is importable")
    made = HandMade(np.zeros(8), (2, 4), **kwargs)
    with pytest.raises(error, match=match):
        cl.from_dlpack(made.capsule)
    gc.collect()
    assert made.deleted == 1  # consumed: the import that failed called the deleter, and only once


def test_too_many_dimensions():
    made = HandMade(np.zeros(1), (1,) * 9)
    with pytest.raises(ValueError, match="at most 8 dimensions, got 9"):
        cl.from_dlpack(made.capsule)


@TORCH_CUDA
def test_cuda_round_trip_with_torch():
    tt = torch.arange(24, dtype=torch.float32, device="cuda").reshape(4, 6)
    t = cl.from_dlpack(tt[:, 1::2])
    assert t.device == "cuda" and t.__dlpack_device__() == (2, 0)
    np.testing.assert_array_equal(t.numpy(), np.arange(24, dtype=np.float32).reshape(4, 6)[:, 1::2])
    t._data[...] = -1
    torch.cuda.synchronize()
    assert (tt[:, 1::2] == -1).all() and (tt[:, ::2] >= 0).all()
    c = cl.randn(3, 5, device="cuda")
    back = torch.from_dlpack(c.T)
    assert back.device.type == "cuda" and back.stride() == (1, 5)
    np.testing.assert_array_equal(back.cpu().numpy(), c.numpy().T)
    back.mul_(2)  # on PyTorch's stream; convlab's next kernel on the legacy stream is ordered after it
    np.testing.assert_allclose((c * 1).numpy(), np.from_dlpack(back.cpu()).T)
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(c, copy=False)
    np.testing.assert_array_equal(np.asarray(c), c.numpy())
