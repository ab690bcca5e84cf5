"""convlab.signal: true convolution and cross-correlation with scipy.signal's semantics, on any device.

In 'full' indexing, with a_ext the first operand extended beyond its edges by `boundary`:
  correlate(a, k)[i] = sum_t a_ext[i + t - (K - 1)] * k[t]          (t and i are N-d indices, N = 1 or 2)
  convolve(a, k)     = correlate(a, k flipped along every axis)      (the kernel runs backwards: true convolution)
'same' keeps a's size, 'valid' keeps the positions where one operand lies wholly inside the other (SciPy
swaps the operands when the kernel is the larger one; the values are the same overlap sums either way).
Each call is one convlab convolution (a cross-correlation, as in every deep-learning library) of the padded
operand, so it runs on the operands' device and is differentiable with respect to both of them.

Beyond SciPy: leading axes are batch axes. In convolve2d / correlate2d the leading axes of the two operands
broadcast against each other; in convolve / correlate N is in2.ndim and in1's extra leading axes are batch
axes (with equal ranks, both operands are N-d as in SciPy). Differences from SciPy: real floating-point
operands only, and an empty operand is refused.
"""
import numbers

import numpy as np

from .nn import kernel_functions as kf
from .tensor import Tensor, tensor

MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symm")
METHODS = ("auto", "direct", "fft")


def _operand(op, name, x, like):
    """A Tensor as it is; anything array-like becomes one (integers as float64) on the other operand's device."""
    if isinstance(x, Tensor):
        t = x
    else:
        arr = np.asarray(x)
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        if arr.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must hold real numbers, got dtype {arr.dtype}")
        t = tensor(arr, device=like.device if isinstance(like, Tensor) else None)
    if not t.is_floating_point():
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got dtype {t.dtype}; convert it with .double()")
    return t


def _check_arguments(op, in1, in2, n, mode, boundary, fillvalue):
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be one of {MODES}, got {mode!r}")
    if boundary not in BOUNDARIES:
        raise ValueError(f"{op}: boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if isinstance(fillvalue, bool) or not isinstance(fillvalue, numbers.Real):
        raise TypeError(f"{op}: fillvalue must be a real scalar, got {fillvalue!r}")
    if in1.dtype != in2.dtype:
        raise TypeError(f"{op}: in1 and in2 must have the same dtype, got {in1.dtype} and {in2.dtype}")
    if in1.device != in2.device:
        raise RuntimeError(f"{op}: in1 and in2 must be on the same device, got {in1.device} and {in2.device}")
    for name, t in (("in1", in1), ("in2", in2)):
        if t.ndim < n:
            raise ValueError(f"{op}: {name} must have at least {n} dims, got shape {tuple(t.shape)}")
        if 0 in t.shape[t.ndim - n:]:
            raise ValueError(f"{op}: {name} must not be empty, got shape {tuple(t.shape)}")


def _extend(x, n, pads, boundary, fillvalue):
    """x (..., *spatial) extended by pads[d] = (lo, hi) along its last n axes: constant fillvalue, periodic
    (wrap) or mirrored with the edge repeated (symm); pads may exceed the size, as in SciPy."""
    lead = x.ndim - n
    if boundary == "fill":
        return kf.Pad.apply(x, pads=[(0, 0)] * lead + list(pads), mode="constant", value=float(fillvalue))
    numpy_mode = "wrap" if boundary == "wrap" else "symmetric"
    for d, (lo, hi) in enumerate(pads):
        if lo or hi:
            source = np.pad(np.arange(x.shape[lead + d]), (lo, hi), mode=numpy_mode)
            x = x.index_select(lead + d, tensor(source, dtype="int64", device=x.device))
    return x


def _padded_correlation(op, image, kernel, n, pads, boundary, fillvalue):
    """correlate(image, kernel) over the last n axes with image extended by pads; the leading axes of the two
    broadcast. One convolution: one image meets the kernels as output channels, otherwise image b meets
    kernel b (a shared kernel repeated) in a depthwise (groups = batch) convolution."""
    lead1, lead2 = tuple(image.shape[:-n]), tuple(kernel.shape[:-n])
    try:
        lead = np.broadcast_shapes(lead1, lead2)
    except ValueError:
        raise ValueError(f"{op}: the leading (batch) axes of in1 and in2 do not broadcast: "
                         f"{lead1} and {lead2}") from None
    s_img, s_ker = tuple(image.shape[-n:]), tuple(kernel.shape[-n:])
    zero_fill = boundary == "fill" and fillvalue == 0
    if not zero_fill and any(lo or hi for lo, hi in pads):
        image = _extend(image, n, pads, boundary, fillvalue)
        s_img, pads = tuple(image.shape[-n:]), [(0, 0)] * n
    if int(np.prod(lead1)) == 1 < int(np.prod(lead2)):
        groups = 1
        x, w = image.reshape(1, 1, *s_img), kernel.reshape(-1, 1, *s_ker)
    else:
        groups = int(np.prod(lead))
        x = image.expand(*lead, *s_img).reshape(1, groups, *s_img)
        w = kernel.expand(*lead, *s_ker).reshape(groups, 1, *s_ker)
    y = kf.Conv.apply(x, w, None, stride=[1] * n, padding=list(pads), dilation=[1] * n, groups=groups)
    return y.reshape(*lead, *y.shape[2:])


def _correlate(op, in1, in2, n, mode, boundary, fillvalue, flip, same_offset):
    """The shared body: flip=True is convolution; same_offset(K) is where 'same' starts in 'full'."""
    in1 = _operand(op, "in1", in1, in2)
    in2 = _operand(op, "in2", in2, in1)
    _check_arguments(op, in1, in2, n, mode, boundary, fillvalue)
    axes = tuple(range(-n, 0))
    s1, s2 = in1.shape[-n:], in2.shape[-n:]
    kernel = in2.flip(*axes) if flip else in2
    if mode == "valid":
        if all(a >= k for a, k in zip(s1, s2)):
            return _padded_correlation(op, in1, kernel, n, [(0, 0)] * n, boundary, fillvalue)
        if not all(k >= a for a, k in zip(s1, s2)):
            raise ValueError(f"{op}: in 'valid' mode one of in1 {tuple(s1)} and in2 {tuple(s2)} must be at least "
                             "as large as the other in every dimension")
        # in2 holds in1 wholly: convolution commutes, and correlate(in1, in2) is correlate(in2, in1) reversed
        if flip:
            return _padded_correlation(op, in2, in1.flip(*axes), n, [(0, 0)] * n, boundary, fillvalue)
        return _padded_correlation(op, in2, in1, n, [(0, 0)] * n, boundary, fillvalue).flip(*axes)
    if mode == "full":
        pads = [(k - 1, k - 1) for k in s2]
    else:  # 'same': output i is full output i + offset, which reads a_ext from i + offset - (K - 1) on
        pads = [(k - 1 - same_offset(k), same_offset(k)) for k in s2]
    return _padded_correlation(op, in1, kernel, n, pads, boundary, fillvalue)


def _nd(op, in1, in2):
    """N of convolve / correlate: in2's rank, 1 or 2."""
    n = in2.ndim if isinstance(in2, Tensor) else np.ndim(in2)
    if n not in (1, 2):
        raise ValueError(f"{op}: in2 must be 1-D or 2-D (N-d for N = 1, 2), got {n} dims")
    return n


def _check_method(op, method):
    if method not in METHODS:
        raise ValueError(f"{op}: method must be one of {METHODS}, got {method!r}")


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """scipy.signal.correlate2d: 'same' starts at K // 2 of 'full' along each axis (one later than
    correlate's (K - 1) // 2 for an even K, as in SciPy)."""
    return _correlate("correlate2d", in1, in2, 2, mode, boundary, fillvalue, False, lambda k: k // 2)


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """scipy.signal.convolve2d: true 2-D convolution, 'same' starting at (K - 1) // 2 of 'full'."""
    return _correlate("convolve2d", in1, in2, 2, mode, boundary, fillvalue, True, lambda k: (k - 1) // 2)


def correlate(in1, in2, mode="full", method="auto"):
    """scipy.signal.correlate for N = 1, 2 (zero-filled); every method is the direct sum here."""
    _check_method("correlate", method)
    n = _nd("correlate", in1, in2)
    return _correlate("correlate", in1, in2, n, mode, "fill", 0, False, lambda k: (k - 1) // 2)


def convolve(in1, in2, mode="full", method="auto"):
    """scipy.signal.convolve for N = 1, 2 (zero-filled); every method is the direct sum here."""
    _check_method("convolve", method)
    n = _nd("convolve", in1, in2)
    return _correlate("convolve", in1, in2, n, mode, "fill", 0, True, lambda k: (k - 1) // 2)


__all__ = ["convolve", "correlate", "convolve2d", "correlate2d"]
