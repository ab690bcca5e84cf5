"""Indexing by values: advanced indexing (x[mask], x[idx], x[rows, cols], and their assignments) and the ops
behind it, with PyTorch's names and results: where, gather, scatter_add, index_select, index_add,
masked_fill, masked_select, nonzero.

x[index] with any list, range, NumPy array or tensor in the index follows NumPy's rules as PyTorch applies
them: ints and slices select first (ints are never advanced, unlike NumPy); a bool mask stands for the
positions where it is True over the axes it covers; the index arrays broadcast together, and the result puts
their shape where the first of them stood when they are adjacent, or in front when slices separate them.
The axes the items cover are merged into one and the items into one flat index over it (a mask's positions
are flat from the start; several items go through ravel_index), so every form is one take along one axis,
whose gradient adds g back at the taken positions (put with accumulate).
"""
import math
import numbers

import numpy as np

from . import _C
from . import autograd
from . import tensor as tensor_module

NDArray = _C.NDArray
INTEGER_DTYPES = ("int64", "int32")


class IndexTypeError(IndexError, TypeError):
    """An index of the wrong kind (a float tensor): IndexError as PyTorch raises, and TypeError as convlab's
    error contract asks for a wrong type."""


def is_advanced(index):
    """Whether index holds an item that indexes by its values (a list, range, NumPy array or tensor)."""
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(item, (tensor_module.Tensor, np.ndarray, list, range)) for item in items)


def _index_array(item, device, position):
    """An advanced index item as an int64/int32 or bool NDArray on `device`."""
    if isinstance(item, tensor_module.Tensor):
        array = item._data
    else:
        values = np.asarray(item)
        if values.size == 0 or values.dtype.kind in "iu":  # [] and range(0) index nothing, as in PyTorch
            values = values.astype(np.int64)
        if values.dtype.kind not in "biu":
            raise IndexTypeError(f"index {position}: lists and arrays used as indices must hold ints or bools, "
                                 f"got {values.dtype}")
        array = NDArray.from_numpy(values, device)
    if array.dtype not in INTEGER_DTYPES + ("bool",):
        raise IndexTypeError(f"index {position}: tensors used as indices must be int64, int32 or bool, got "
                             f"{array.dtype}")
    return array if array.device == device else array.to(device)


def _split(index, shape, device):
    """x[index] as (the basic index, with full slices where advanced items stand; [(axis, array), ...]), each
    advanced item as an NDArray with the axis of the basic result where it starts."""
    items = index if isinstance(index, tuple) else (index,)
    items = [_index_array(item, device, i) if is_advanced(item) else item for i, item in enumerate(items)]

    def width(item):  # input axes an item consumes
        if item is None or item is Ellipsis:
            return 0
        return item.ndim if isinstance(item, NDArray) and item.dtype == "bool" else 1

    used = sum(width(item) for item in items)
    basic, advanced, axis = [], [], 0
    for item in items:
        if isinstance(item, NDArray):
            advanced.append((axis, item))
            basic += [slice(None)] * width(item)
            axis += width(item)
            continue
        basic.append(item)
        if item is Ellipsis:
            axis += max(len(shape) - used, 0)
        elif not isinstance(item, numbers.Integral):  # a slice or None: one axis of the result
            axis += 1
    return tuple(basic), advanced


def _plan(advanced, shape):
    """How the advanced items read an array of `shape` (the result of the basic index): permute it by `order`
    (None: as it is), view it as `merged` (the axes the items cover made one, at axis `first`), then take
    the int64 `flat` along that axis; `unique` when flat cannot repeat a position (a lone mask). A bool
    mask's positions are flat over its axes from the start, so only several items need ravel_index."""
    spans, flats = [], []  # per item: (first axis, how many axes) it covers; its flat index over them
    for axis, array in advanced:
        if array.dtype == "bool":
            covered = tuple(shape[axis:axis + array.ndim])
            if tuple(array.shape) != covered:
                raise IndexError(f"the shape of the mask {tuple(array.shape)} does not match the shape "
                                 f"{covered} of the indexed tensor at axis {axis}")
            spans.append((axis, array.ndim))
            flats.append(array.reshape((array.size,)).nonzero()[:, 0])
        else:
            spans.append((axis, 1))
            flats.append(array)
    order = None
    if any(start + n != next_start for (start, n), (next_start, _) in zip(spans, spans[1:])):
        covered = [a for start, n in spans for a in range(start, start + n)]  # NumPy moves them to the front
        order = tuple(covered) + tuple(d for d in range(len(shape)) if d not in covered)
        shape = tuple(shape[d] for d in order)
        spans = [(sum(n for _, n in spans[:i]), n) for i, (_, n) in enumerate(spans)]
    first, count = spans[0][0], sum(n for _, n in spans)
    sizes = [math.prod(shape[start:start + n]) for start, n in spans]
    merged = tuple(shape[:first]) + (math.prod(sizes),) + tuple(shape[first + count:])
    flat = flats[0] if len(flats) == 1 else _C.ravel_index(flats, sizes, first)
    unique = len(advanced) == 1 and advanced[0][1].dtype == "bool"
    return order, merged, first, flat, unique


def getitem(t, index):
    basic, advanced = _split(index, t.shape, t._data.device)
    y = t[basic]
    order, merged, first, flat, unique = _plan(advanced, y.shape)
    if order is not None:
        y = y.permute(*order)
    if merged != y.shape:
        y = y.reshape(merged)
    return autograd.Take.apply(y, axis=first, index=flat, unique=unique)


def setitem(t, index, value):
    """t[index] = value with an advanced index, written into t's storage (outside autograd); where an index
    repeats a position, the last value written there stays."""
    data = t._data
    basic, advanced = _split(index, t.shape, data.device)
    shape, basic = tensor_module._basic_index(basic, t.shape)
    target = (data if shape == t.shape else data.view(shape))[basic]
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        values = NDArray.full((), float(value), data.dtype, data.device)
    else:
        values = tensor_module._ndarray_from(value, data.dtype, data.device)
    order, merged, first, flat, unique = _plan(advanced, tuple(target.shape))
    if order is not None:
        target = target.permute(order)
    try:
        view = target.view(merged)
    except ValueError:  # the strides do not let those axes merge: write into a merged copy, then back
        copy = target.copy()
        copy.view(merged).put(first, flat, values, unique_indices=unique)
        target[...] = copy
    else:
        view.put(first, flat, values, unique_indices=unique)


# ---- the ops, as torch.* functions (Tensor has them as methods too) ----
def _index_of(index, op):
    if not isinstance(index, tensor_module.Tensor):
        raise TypeError(f"{op}: index must be a tensor of int64, got {type(index).__name__}")
    return index._data


def _mask_of(mask, op):
    array = mask._data if isinstance(mask, tensor_module.Tensor) else NDArray.from_numpy(np.asarray(mask))
    if array.dtype != "bool":
        raise TypeError(f"{op}: mask must be a bool tensor, got {array.dtype}")
    return array


def _scalar_like(value, like):
    """A number as a 0-d tensor of the dtype PyTorch promotes `like` and it to."""
    return tensor_module.Tensor(NDArray.full((), float(value), like._data.result_type(value), like._data.device))


def where(condition, input=None, other=None):
    """condition ? input : other, broadcast together (either may be a number); where(condition) alone is
    nonzero(condition, as_tuple=True)."""
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    cond = _mask_of(condition, "where")
    Tensor = tensor_module.Tensor
    if not isinstance(input, Tensor):
        input = (_scalar_like(input, other) if isinstance(other, Tensor) else
                 tensor_module.tensor(input, device=cond.device))
    if not isinstance(other, Tensor):
        other = _scalar_like(other, input)
    a, b = input._operand(other)
    return autograd.Where.apply(a, b, cond=cond)


def gather(input, dim, index):
    return autograd.Gather.apply(input, axis=tensor_module._axis(dim, input.ndim), index=_index_of(index, "gather"))


def scatter_add(input, dim, index, src):
    return autograd.ScatterAdd.apply(input, src, axis=tensor_module._axis(dim, input.ndim),
                                     index=_index_of(index, "scatter_add"))


def _scatter_src(input, index, src, op):
    """src as scatter takes it: a tensor, or a number filling index's shape in input's dtype."""
    if isinstance(src, tensor_module.Tensor):
        return src
    if isinstance(src, numbers.Number) and not isinstance(src, complex):
        return NDArray.full(index.shape, float(src), input._data.dtype, input._data.device)
    raise TypeError(f"{op}: src must be a tensor or a number, got {type(src).__name__}")


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """input with src (or the number value) written at index's positions along dim; where index repeats a
    position the last entry stays (PyTorch leaves it unspecified)."""
    if reduce is not None:
        raise TypeError("scatter: reduce= is not supported (PyTorch deprecates it); use scatter_add")
    if (src is None) == (value is None):
        raise TypeError("scatter: pass exactly one of src and value")
    index = _index_of(index, "scatter")
    src = _scatter_src(input, index, value if src is None else src, "scatter")
    return autograd.Scatter.apply(input, src, axis=tensor_module._axis(dim, input.ndim), index=index)


def index_select(input, dim, index):
    return autograd.IndexSelect.apply(input, axis=tensor_module._axis(dim, input.ndim),
                                      index=_index_of(index, "index_select"))


def index_add(input, dim, index, source, *, alpha=1):
    return autograd.IndexAdd.apply(input, source, axis=tensor_module._axis(dim, input.ndim),
                                   index=_index_of(index, "index_add"), alpha=alpha)


def masked_fill(input, mask, value):
    """input with value wherever mask (broadcast to input's shape) holds; value: a number or a 0-d tensor."""
    cond = _mask_of(mask, "masked_fill")
    try:
        shape = np.broadcast_shapes(tuple(cond.shape), input.shape)
    except ValueError:
        shape = None
    if shape != input.shape:
        raise ValueError(f"masked_fill: mask of shape {tuple(cond.shape)} does not broadcast to the input's "
                         f"shape {input.shape}")
    if isinstance(value, tensor_module.Tensor):
        if value.ndim != 0:
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
        value = value.to(dtype=input.dtype)
    else:
        value = _scalar_like(value, input).to(dtype=input.dtype)
    return autograd.Where.apply(value, input, cond=cond)


def masked_select(input, mask):
    """The elements of input where mask holds (both broadcast together), as a 1-D tensor."""
    cond = _mask_of(mask, "masked_select")
    shape = np.broadcast_shapes(tuple(cond.shape), input.shape)
    return getitem(input.expand(*shape), tensor_module.Tensor(cond.broadcast_to(shape)))


def nonzero(input, *, as_tuple=False):
    """The positions of input's non-zero elements: an int64 (count, ndim) tensor in row-major order, or with
    as_tuple one 1-D tensor per axis (what x[...] takes)."""
    positions = input._data.nonzero()
    if not as_tuple:
        return tensor_module.Tensor(positions)
    if input.ndim == 0:  # PyTorch treats a 0-d tensor as 1-D here
        return (tensor_module.Tensor(NDArray.full((positions.shape[0],), 0.0, "int64", positions.device)),)
    return tuple(tensor_module.Tensor(positions[:, d]) for d in range(input.ndim))
