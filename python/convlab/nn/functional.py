"""convlab.nn.functional: PyTorch's torch.nn.functional names, arguments and defaults.

Convolution, pooling and padding go through the Functions in kernel_functions.py, the piecewise
activations through theirs in autograd.py; everything else is composed from Tensor operations, so its
gradient comes from the autograd rules of those operations.
"""
import math
import numbers

import numpy as np

from .. import _C
from ..autograd import Elu, Gelu, Hardsigmoid, Hardswish, Hardtanh, LeakyRelu, LogSigmoid, Prelu, arange_along
from ..indexing import where
from ..tensor import IndexOutOfRangeError, Tensor, generator, write_
from ._args import REDUCTIONS, batched, check_reduction, check_tensor, conv_padding, ntuple, unbatch
from . import kernel_functions as kf

NDArray = _C.NDArray


# ---- convolution ----
def _conv(op, d, x, weight, bias, stride, padding, dilation, groups):
    x, unbatched = batched(op, x, d)
    check_tensor(op, "weight", weight)
    check_tensor(op, "bias", bias, optional=True)
    if weight.ndim != d + 2:
        raise ValueError(f"{op}: weight must be {d + 2}-D (C_out, C_in/groups, *kernel), got shape {weight.shape}")
    stride = ntuple(op, "stride", stride, d)
    dilation = ntuple(op, "dilation", dilation, d)
    pads = conv_padding(op, padding, d, list(weight.shape[2:]), stride, dilation)
    y = kf.Conv.apply(x, weight, bias, stride=stride, padding=pads, dilation=dilation, groups=int(groups))
    return unbatch(y, unbatched)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(op, d, x, weight, bias, stride, padding, output_padding, groups, dilation):
    x, unbatched = batched(op, x, d)
    check_tensor(op, "weight", weight)
    check_tensor(op, "bias", bias, optional=True)
    if weight.ndim != d + 2:
        raise ValueError(f"{op}: weight must be {d + 2}-D (C_in, C_out/groups, *kernel), got shape {weight.shape}")
    y = kf.ConvTranspose.apply(
        x, weight, bias, stride=ntuple(op, "stride", stride, d),
        padding=[(p, p) for p in ntuple(op, "padding", padding, d)],
        output_padding=ntuple(op, "output_padding", output_padding, d),
        dilation=ntuple(op, "dilation", dilation, d), groups=int(groups))
    return unbatch(y, unbatched)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# ---- locally connected (unshared) and tiled convolution ----
def _tiled_conv(op, d, x, weight, bias, stride, padding, dilation, unshared):
    x, unbatched = batched(op, x, d)
    check_tensor(op, "weight", weight)
    check_tensor(op, "bias", bias, optional=True)
    if weight.ndim != 2 * d + 2:
        layout = "out" if unshared else "tile"
        raise ValueError(f"{op}: weight must be {2 * d + 2}-D ({layout} size per spatial dim, C_out, C_in, *kernel), "
                         f"got shape {weight.shape}")
    stride = ntuple(op, "stride", stride, d)
    dilation = ntuple(op, "dilation", dilation, d)
    pads = conv_padding(op, padding, d, list(weight.shape[d + 2:]), stride, dilation)
    y = kf.TiledConv.apply(x, weight, bias, stride=stride, padding=pads, dilation=dilation, unshared=unshared)
    return unbatch(y, unbatched)


def locally_connected1d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Unshared 1-D convolution, one weight set per output position:
    y[n, co, l] = sum_{c, k} weight[l, co, c, k] * x_padded[n, c, l * stride + k * dilation] + bias[l, co],
    weight (out_l, C_out, C_in, k), bias (out_l, C_out)."""
    return _tiled_conv("locally_connected1d", 1, input, weight, bias, stride, padding, dilation, True)


def locally_connected2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Unshared 2-D convolution, one weight set per output position (i, j): weight (out_h, out_w, C_out, C_in,
    k_h, k_w) (weight[i, j].reshape(C_out, -1) is the (C_out, C_in * k_h * k_w) matrix applied to the patch
    that F.unfold gives for (i, j)), bias (out_h, out_w, C_out)."""
    return _tiled_conv("locally_connected2d", 2, input, weight, bias, stride, padding, dilation, True)


def tiled_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Tiled convolution: t_h * t_w kernels cycle over the output, position (i, j) using weight[i % t_h, j % t_w]
    (C_out, C_in, k_h, k_w) and bias[i % t_h, j % t_w]; weight (t_h, t_w, C_out, C_in, k_h, k_w), bias
    (t_h, t_w, C_out). Tile (1, 1) is conv2d; a tile of the output size is locally_connected2d."""
    return _tiled_conv("tiled_conv2d", 2, input, weight, bias, stride, padding, dilation, False)


# ---- pooling ----
def _max_pool(op, d, x, kernel_size, stride, padding, dilation, ceil_mode):
    x, unbatched = batched(op, x, d)
    kernel = ntuple(op, "kernel_size", kernel_size, d)
    stride = kernel if stride is None or stride == [] or stride == () else ntuple(op, "stride", stride, d)
    y = kf.MaxPool.apply(x, kernel_size=kernel, stride=stride, padding=ntuple(op, "padding", padding, d),
                         dilation=ntuple(op, "dilation", dilation, d), ceil_mode=bool(ceil_mode))
    return unbatch(y, unbatched)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode)


def _avg_pool(op, d, x, kernel_size, stride, padding, ceil_mode, count_include_pad):
    x, unbatched = batched(op, x, d)
    kernel = ntuple(op, "kernel_size", kernel_size, d)
    stride = kernel if stride is None or stride == [] or stride == () else ntuple(op, "stride", stride, d)
    y = kf.AvgPool.apply(x, kernel_size=kernel, stride=stride, padding=ntuple(op, "padding", padding, d),
                         ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad))
    return unbatch(y, unbatched)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def _adaptive_sizes(op, d, x, output_size):
    """output_size (an int, or a tuple whose None entries keep the input's size) -> d ints."""
    sizes = [output_size] * d if isinstance(output_size, numbers.Integral) or output_size is None else list(output_size)
    if len(sizes) != d:
        raise ValueError(f"{op}: output_size must be an int or a tuple of {d} ints, got {output_size!r}")
    return ntuple(op, "output_size", [x.shape[2 + i] if s is None else s for i, s in enumerate(sizes)], d)


def _adaptive_avg_pool(op, d, x, output_size):
    x, unbatched = batched(op, x, d)
    y = kf.AdaptiveAvgPool.apply(x, output_size=_adaptive_sizes(op, d, x, output_size))
    return unbatch(y, unbatched)


def adaptive_avg_pool1d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool2d", 2, input, output_size)


def _adaptive_max_pool(op, d, x, output_size, return_indices):
    if return_indices:
        raise ValueError(f"{op}: return_indices=True is not supported")
    x, unbatched = batched(op, x, d)
    sizes = _adaptive_sizes(op, d, x, output_size)
    if min(sizes) < 1:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    spatial = x.shape[2:]
    if all(n % out == 0 for n, out in zip(spatial, sizes)):  # even windows: the strided max-pool kernel
        kernel = [n // out for n, out in zip(spatial, sizes)]
        y = kf.MaxPool.apply(x, kernel_size=kernel, stride=kernel, padding=[0] * d, dilation=[1] * d, ceil_mode=False)
    else:
        y = kf.AdaptiveMaxPool.apply(x, output_size=sizes)
    return unbatch(y, unbatched)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool2d", 2, input, output_size, return_indices)


# ---- resampling ----
INTERPOLATE_MODES = ("nearest", "nearest-exact", "linear", "bilinear")


def _interpolation_matrix(n, out, mode, align_corners, scale, dtype):
    """The (out, n) matrix A with y = A @ x along one axis, by PyTorch's CPU index rules, computed in the
    input's float type as PyTorch does (nearest: always float32). scale: 1/scale_factor, or None for n/out."""
    a = np.zeros((out, n), dtype)
    dst = np.arange(out)
    if mode.startswith("nearest"):
        ratio = np.float32(n / out if scale is None else scale)
        offset = np.float32(0.5 if mode == "nearest-exact" else 0.0)
        src = np.minimum(np.floor((dst.astype(np.float32) + offset) * ratio).astype(np.int64), n - 1)
        if mode == "nearest" and out in (n, 2 * n):  # PyTorch's exact shortcuts for these two sizes
            src = dst if out == n else dst // 2
        a[dst, src] = 1
        return a
    if align_corners:
        ratio = dtype((n - 1) / (out - 1)) if out > 1 else dtype(0)
        real = ratio * dst.astype(dtype)
    else:
        ratio = dtype(n / out if scale is None else scale)
        real = np.maximum(ratio * (dst.astype(dtype) + dtype(0.5)) - dtype(0.5), dtype(0))
    if out == n:
        real = dst.astype(dtype)
    i0 = np.minimum(np.floor(real).astype(np.int64), n - 1)
    weight1 = np.clip(real - i0, 0, 1)
    i1 = np.minimum(i0 + 1, n - 1)
    np.add.at(a, (dst, i0), 1 - weight1)
    np.add.at(a, (dst, i1), weight1)
    return a


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """Resamples (N, C, L) or (N, C, H, W) by PyTorch's index rules, as one small matrix per axis:
    y = A_h @ x @ A_w^T. Each output is a fixed combination of inputs, so the gradient comes from matmul."""
    check_tensor("interpolate", "input", input)
    d = input.ndim - 2
    if d not in (1, 2):
        raise ValueError(f"interpolate: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape {input.shape}")
    if mode not in INTERPOLATE_MODES:
        raise ValueError(f"interpolate: mode must be one of {INTERPOLATE_MODES}, got {mode!r}")
    spatial_dims = {"linear": 1, "bilinear": 2}.get(mode, d)
    if spatial_dims != d:
        raise ValueError(f"interpolate: mode {mode!r} needs a {spatial_dims + 2}-D input, got shape {input.shape}")
    if align_corners is not None and mode.startswith("nearest"):
        raise ValueError(f"interpolate: align_corners can only be set with mode 'linear' or 'bilinear', got mode "
                         f"{mode!r}")
    if antialias:
        raise ValueError("interpolate: antialias=True is not supported")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: exactly one of size and scale_factor must be given")
    spatial = input.shape[2:]
    if size is not None:
        sizes, scales = ntuple("interpolate", "size", size, d), [None] * d
    else:
        factors = [float(f) for f in (scale_factor if isinstance(scale_factor, (tuple, list)) else [scale_factor] * d)]
        if len(factors) != d or min(factors) <= 0:
            raise ValueError(f"interpolate: scale_factor must be a positive number or a tuple of {d}, got "
                             f"{scale_factor!r}")
        sizes = [int(math.floor(n * f)) for n, f in zip(spatial, factors)]
        scales = [None if recompute_scale_factor else 1.0 / f for f in factors]
    if min(sizes) < 1:
        raise ValueError(f"interpolate: the output size must be positive, got {tuple(sizes)} for input {input.shape}")
    dtype = np.dtype(input.dtype).type

    def matrix(axis):
        a = _interpolation_matrix(spatial[axis], sizes[axis], mode, align_corners, scales[axis], dtype)
        return Tensor(NDArray.from_numpy(a.astype(input.dtype), input.device))

    y = input @ matrix(d - 1).transpose(0, 1)
    return matrix(0) @ y if d == 2 else y


# ---- lookups ----
def _class_indices(op, input):
    """input's values as a NumPy integer array (class indices must be an integer tensor, as in PyTorch)."""
    check_tensor(op, "input", input)
    values = input.numpy()
    if values.dtype.kind not in "iu":
        raise TypeError(f"{op}: input must be an integer tensor of indices, got {input.dtype}")
    return values


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    """weight[input]: one row of weight per index, of shape input.shape + (embedding_dim,). The row at
    padding_idx takes no gradient (its uses are cut from the graph)."""
    check_tensor("embedding", "weight", weight)
    indices = _class_indices("embedding", input)
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise ValueError("embedding: max_norm, scale_grad_by_freq and sparse are not supported")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {weight.shape}")
    bad = indices[(indices < 0) | (indices >= weight.shape[0])]
    if bad.size:
        raise IndexOutOfRangeError(f"embedding: index {int(bad.flat[0])} is out of range for {weight.shape[0]} "
                                   f"embeddings")
    rows = weight[input]
    if padding_idx is None:
        return rows
    padding = NDArray.from_numpy((indices == padding_idx % weight.shape[0])[..., None], input.device)
    return where(Tensor(padding), rows.detach(), rows)


def one_hot(tensor, num_classes=-1):
    """An int64 tensor of shape tensor.shape + (num_classes,) with a 1 at each index (num_classes=-1: the
    largest index + 1)."""
    indices = _class_indices("one_hot", tensor)
    if indices.size and indices.min() < 0:
        raise ValueError(f"one_hot: class values must be non-negative, got {int(indices.min())}")
    classes = int(indices.max()) + 1 if num_classes == -1 and indices.size else num_classes
    if classes < 0 or (indices.size and indices.max() >= classes):
        raise ValueError(f"one_hot: class values must be smaller than num_classes ({num_classes}), got "
                         f"{int(indices.max())}")
    eye = np.eye(classes, dtype=np.int64)
    return Tensor(NDArray.from_numpy(eye[indices], tensor.device))


# ---- padding ----
PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input, pad, mode="constant", value=None):
    """pad = (last_lo, last_hi, second_last_lo, second_last_hi, ...) as in PyTorch; negative entries crop."""
    check_tensor("pad", "input", input)
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or not all(isinstance(p, numbers.Integral) for p in pad):
        raise ValueError(f"pad: pad must be a tuple of an even number of ints, got {pad!r}")
    if len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: pad {tuple(pad)} covers {len(pad) // 2} dims but the input has only {input.ndim}")
    if mode != "constant" and value:
        raise ValueError(f"pad: value is only used with mode='constant', got value={value} with mode={mode!r}")
    pairs = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        pairs[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    for (lo, hi), n in zip(pairs, input.shape):
        if n + lo + hi < 0 or n - max(-lo, 0) - max(-hi, 0) < 0:
            raise ValueError(f"pad: pads {tuple(pad)} crop more than the input shape {input.shape} holds")
    if mode in ("reflect", "replicate") and any(lo < 0 or hi < 0 for lo, hi in pairs):
        # PyTorch pads these across the whole input and crops after (Pad crops first, as circular needs), so a
        # reflection may reach cells that the crop on the other side removes, or a crop may empty an axis
        grown = kf.Pad.apply(input, pads=[(max(lo, 0), max(hi, 0)) for lo, hi in pairs], mode=mode, value=0.0)
        return kf.Pad.apply(grown, pads=[(min(lo, 0), min(hi, 0)) for lo, hi in pairs], mode=mode, value=0.0)
    return kf.Pad.apply(input, pads=pairs, mode=mode, value=float(value or 0.0))


def _check_pixel_factor(op, name, factor):
    if isinstance(factor, bool) or not isinstance(factor, numbers.Integral) or factor <= 0:
        raise ValueError(f"{op}: {name} must be a positive int, got {factor!r}")
    return int(factor)


def pixel_shuffle(input, upscale_factor):
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r): each group of r^2 channels becomes an r x r block."""
    check_tensor("pixel_shuffle", "input", input)
    r = _check_pixel_factor("pixel_shuffle", "upscale_factor", upscale_factor)
    if input.ndim < 3 or input.shape[-3] % (r * r):
        raise ValueError(f"pixel_shuffle: expected input (*, C, H, W) with C divisible by upscale_factor^2 "
                         f"({r * r}), got shape {tuple(input.shape)}")
    *lead, c, h, w = input.shape
    k = len(lead)
    blocks = input.reshape(*lead, c // (r * r), r, r, h, w)
    return blocks.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2).reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W), the inverse of pixel_shuffle."""
    check_tensor("pixel_unshuffle", "input", input)
    r = _check_pixel_factor("pixel_unshuffle", "downscale_factor", downscale_factor)
    if input.ndim < 3 or input.shape[-2] % r or input.shape[-1] % r:
        raise ValueError(f"pixel_unshuffle: expected input (*, C, H, W) with H and W divisible by "
                         f"downscale_factor ({r}), got shape {tuple(input.shape)}")
    *lead, c, h, w = input.shape
    k = len(lead)
    blocks = input.reshape(*lead, c, h // r, r, w // r, r)
    return blocks.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3).reshape(*lead, c * r * r, h // r, w // r)


# ---- im2col ----
def _block_args(op, kernel_size, dilation, padding, stride):
    return (ntuple(op, "kernel_size", kernel_size, 2), ntuple(op, "dilation", dilation, 2),
            [(p, p) for p in ntuple(op, "padding", padding, 2)], ntuple(op, "stride", stride, 2))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col: (N, C, H, W) -> (N, C * KH * KW, L), column l holding the l-th sliding block (row-major over
    the output positions), row (c, kh, kw) one element of it; (C, H, W) -> (C * KH * KW, L)."""
    x, unbatched = batched("unfold", input, 2)
    y = kf.Unfold.apply(x, *_block_args("unfold", kernel_size, dilation, padding, stride))
    return unbatch(y, unbatched)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im, the adjoint of unfold: (N, C * KH * KW, L) -> (N, C, *output_size), each block added back where
    unfold took it from (overlaps sum); (C * KH * KW, L) -> (C, *output_size)."""
    x, unbatched = batched("fold", input, 1)
    size = ntuple("fold", "output_size", output_size, 2)
    y = kf.Fold.apply(x, size, *_block_args("fold", kernel_size, dilation, padding, stride))
    return unbatch(y, unbatched)


# ---- dense layers and activations ----
def linear(input, weight, bias=None):
    """y = x @ W^T + b with W (out_features, in_features)."""
    check_tensor("linear", "input", input)
    check_tensor("linear", "weight", weight)
    check_tensor("linear", "bias", bias, optional=True)
    if weight.ndim != 2 or input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {input.shape} does not match weight of shape {weight.shape} "
                         f"(expected input[..., {weight.shape[1] if weight.ndim == 2 else '?'}])")
    y = input @ weight.transpose(0, 1)
    return y if bias is None else y + bias


def relu(input, inplace=False):
    return input.relu()


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return LeakyRelu.apply(input, float(negative_slope))


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    check_tensor("hardtanh", "input", input)
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) must not be greater than max_val ({max_val})")
    return Hardtanh.apply(input, float(min_val), float(max_val))


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0)


def hardsigmoid(input, inplace=False):
    check_tensor("hardsigmoid", "input", input)
    return Hardsigmoid.apply(input)


def hardswish(input, inplace=False):
    check_tensor("hardswish", "input", input)
    return Hardswish.apply(input)


def elu(input, alpha=1.0, inplace=False):
    check_tensor("elu", "input", input)
    return Elu.apply(input, float(alpha))


def silu(input, inplace=False):
    """x * sigmoid(x) (swish)."""
    check_tensor("silu", "input", input)
    return input * input.sigmoid()


def gelu(input, approximate="none"):
    """x Phi(x) with the normal CDF Phi from erf ('none'), or PyTorch's tanh approximation ('tanh')."""
    check_tensor("gelu", "input", input)
    if approximate == "none":
        return Gelu.apply(input)
    if approximate != "tanh":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
    return input * 0.5 * (inner.tanh() + 1.0)


def logsigmoid(input):
    check_tensor("logsigmoid", "input", input)
    return LogSigmoid.apply(input)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, as -logsigmoid(-beta x) / beta (stable, and its gradient sigmoid(beta x)
    is exact everywhere); x itself where beta x > threshold, as PyTorch."""
    check_tensor("softplus", "input", input)
    scaled = input * float(beta)
    smooth = -logsigmoid(-scaled) / float(beta)
    return where(scaled > threshold, input, smooth)


def mish(input, inplace=False):
    """x * tanh(softplus(x))."""
    check_tensor("mish", "input", input)
    return input * softplus(input).tanh()


def prelu(input, weight):
    """max(0, x) + weight * min(0, x), weight (one value, or one per channel along dim 1)."""
    check_tensor("prelu", "input", input)
    check_tensor("prelu", "weight", weight)
    channels = input.shape[1] if input.ndim > 1 else 1
    if weight.ndim != 1 or weight.shape[0] not in (1, channels):
        raise ValueError(f"prelu: weight must hold 1 value or one per channel ({channels}), got shape {weight.shape}")
    shape = (1, weight.shape[0]) + (1,) * (input.ndim - 2) if input.ndim > 1 else (weight.shape[0],)
    return Prelu.apply(input, weight.reshape(*shape))


def _shift_by_max(op, input, dim):
    """input - max along dim (PyTorch's implicit dim when None). The shift keeps exp from overflowing and
    cancels out of softmax, so it is a constant to autograd."""
    check_tensor(op, "input", input)
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1
    if not -max(input.ndim, 1) <= dim < max(input.ndim, 1):
        raise ValueError(f"{op}: dim {dim} is out of range for an input of shape {input.shape}")
    dim %= max(input.ndim, 1)
    return input - Tensor(input._data.max(dim, True)), dim


def log_softmax(input, dim=None, *, dtype=None):
    """x - max - log(sum(exp(x - max))); dtype casts the input first, as in PyTorch."""
    shifted, dim = _shift_by_max("log_softmax", input if dtype is None else input.to(dtype=dtype), dim)
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


def softmax(input, dim=None, *, dtype=None):
    shifted, dim = _shift_by_max("softmax", input if dtype is None else input.to(dtype=dtype), dim)
    e = shifted.exp()
    return e / e.sum(dim, keepdim=True)


def _dropout(op, input, p, training, drawn_dims=None):
    """Zeroes with probability p, and scales the rest by 1/(1-p) (training only): each element, or with
    drawn_dims = k each slice over the first k dims (one draw per (n, c), broadcast over the rest: PyTorch's
    feature dropout, which reads dropout2d's 3-D input as (N, C, L) too)."""
    check_tensor(op, "input", input)
    if not isinstance(p, numbers.Real) or isinstance(p, bool):
        raise TypeError(f"{op}: p must be a number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    k = input.ndim if drawn_dims is None else drawn_dims
    keep = generator().random(input.shape[:k] + (1,) * (input.ndim - k)) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = NDArray.from_numpy((keep * scale).astype(input.dtype), input.device)
    return input * Tensor(mask)


def dropout(input, p=0.5, training=True, inplace=False):
    return _dropout("dropout", input, p, training)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Channel dropout for (N, C, L) or unbatched (C, L)."""
    check_tensor("dropout1d", "input", input)
    if input.ndim not in (2, 3):
        raise ValueError(f"dropout1d: expected a 2-D (unbatched) or 3-D (batched) input, got shape {input.shape}")
    return _dropout("dropout1d", input, p, training, input.ndim - 1)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Channel dropout for (N, C, H, W)."""
    check_tensor("dropout2d", "input", input)
    if input.ndim < 2:
        raise ValueError(f"dropout2d: expected an input of at least 2 dims (N, C, ...), got shape {input.shape}")
    return _dropout("dropout2d", input, p, training, 2)


def flatten(input, start_dim=0, end_dim=-1):
    return input.flatten(start_dim, end_dim)


# ---- normalisation ----
def _channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1). Training uses the batch's
    mean and biased variance and moves the running stats toward them (the variance unbiased, n/(n-1)), as
    PyTorch does; momentum=None makes the running stats a cumulative average (the caller passes the
    factor 1/num_batches as momentum then)."""
    check_tensor("batch_norm", "input", input)
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        check_tensor("batch_norm", name, t, optional=True)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input of at least 2 dims (N, C, ...), got shape {input.shape}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: running_mean and running_var are required when training=False")
    stats = []
    running = (None, None) if training else (running_mean, running_var)
    y = kf.BatchNorm.apply(input, weight, bias, *running, training=bool(training), eps=float(eps), stats=stats)
    if training:
        count = input.numel() // input.shape[1]
        mean, var = stats[0]
        m = float(momentum)  # the running stats are updated in place, as in PyTorch
        if running_mean is not None:
            write_(running_mean, running_mean._data * (1.0 - m) + mean.reshape(running_mean.shape) * m)
        if running_var is not None:
            unbiased = var.reshape(running_var.shape) * (count / (count - 1))
            write_(running_var, running_var._data * (1.0 - m) + unbiased * m)
    return y


def _standardize(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over axes, with the biased variance (the normalisation layers' rule)."""
    centred = x - x.mean(axes, keepdim=True)
    return centred / ((centred * centred).mean(axes, keepdim=True) + eps).sqrt()


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Standardises over the trailing dims given by normalized_shape, then weight * y + bias (of that shape)."""
    check_tensor("layer_norm", "input", input)
    check_tensor("layer_norm", "weight", weight, optional=True)
    check_tensor("layer_norm", "bias", bias, optional=True)
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if not shape or input.shape[input.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the trailing dims of input shape "
                         f"{input.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != shape:
            raise ValueError(f"layer_norm: {name} must have shape {shape}, got {t.shape}")
    y = _standardize(input, tuple(range(input.ndim - len(shape), input.ndim)), eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Standardises each (sample, channel) over its positions, then a per-channel weight * y + bias.
    Running statistics are not supported (PyTorch's InstanceNorm does not track them by default)."""
    check_tensor("instance_norm", "input", input)
    if running_mean is not None or running_var is not None or not use_input_stats:
        raise ValueError("instance_norm: running statistics (running_mean, running_var, use_input_stats=False) "
                         "are not supported")
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected input (N, C, *spatial), got shape {input.shape}")
    return group_norm(input, input.shape[1], weight, bias, eps)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Standardises each sample over each group of C / num_groups channels (and all positions), then a
    per-channel weight * y + bias."""
    check_tensor("group_norm", "input", input)
    check_tensor("group_norm", "weight", weight, optional=True)
    check_tensor("group_norm", "bias", bias, optional=True)
    if input.ndim < 2 or num_groups <= 0 or input.shape[1] % num_groups:
        raise ValueError(f"group_norm: expected input (N, C, ...) with C divisible by num_groups ({num_groups}), "
                         f"got shape {input.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (input.shape[1],):
            raise ValueError(f"group_norm: {name} must have shape ({input.shape[1]},), got {t.shape}")
    grouped = input.reshape(input.shape[0], num_groups, -1)
    y = _standardize(grouped, (2,), eps).reshape(*input.shape)
    shape = _channel_shape(input)
    if weight is not None:
        y = y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha * mean of x^2 over a window of `size` channels centred on each)^beta, PyTorch's formula
    (AlexNet's LRN): the window average is an avg_pool over the channel axis, zero-padded at both ends."""
    check_tensor("local_response_norm", "input", input)
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected input (N, C, *spatial) with 3 or more dimensions, got "
                         f"shape {tuple(input.shape)}")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    n, c = input.shape[:2]
    squares = (input * input).reshape(n, 1, c, math.prod(input.shape[2:]))
    squares = pad(squares, (0, 0, size // 2, (size - 1) // 2))
    window_mean = avg_pool2d(squares, (size, 1), stride=1).reshape(input.shape)
    return input / (window_mean * alpha + k) ** beta


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input divided by its p-norm along dim, the norm kept at eps or above."""
    check_tensor("normalize", "input", input)
    if out is not None:
        raise TypeError("normalize: out= is not supported; use the returned tensor")
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


# ---- distances ----
def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 / |x1| * x2 / |x2|) along dim (broadcasting), each norm raised to eps where below it. As in
    PyTorch (which clamps outside autograd) the gradient passes through a raised norm as if it were not."""
    check_tensor("cosine_similarity", "x1", x1)
    check_tensor("cosine_similarity", "x2", x2)
    n1, n2 = (n + (n.clamp(min=eps) - n).detach() for n in (x1.norm(2, dim, True), x2.norm(2, dim, True)))
    return (x1 / n1 * (x2 / n2)).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """The p-norm of x1 - x2 + eps along the last dim (broadcasting)."""
    check_tensor("pairwise_distance", "x1", x1)
    check_tensor("pairwise_distance", "x2", x2)
    return (x1 - x2 + eps).norm(p, -1, keepdim)


# ---- losses ----
def _class_targets(op, input, target, ignore_index):
    """Class-index targets (a Tensor of whole numbers, a NumPy integer array or a list) -> an NDArray of
    input's dtype on input's device, checked for shape and range."""
    values = target.numpy() if isinstance(target, Tensor) else np.asarray(target)
    if isinstance(target, Tensor):
        target_device = target.device
        if target_device != input.device:
            raise RuntimeError(f"{op}: input is on {input.device} but target is on {target_device}")
    with np.errstate(invalid="ignore"):  # NaN/inf targets: refused below, without a NumPy warning first
        whole = values.dtype.kind in "iu" or values.dtype.kind == "f" and bool(np.all(np.mod(values, 1) == 0))
    if not whole:
        raise ValueError(f"{op}: target must hold whole class indices, got dtype {values.dtype}")
    expected = input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()
    if tuple(values.shape) != expected:
        raise ValueError(f"{op}: target shape {tuple(values.shape)} does not match input shape {input.shape} "
                         f"(expected {expected})")
    classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    bad = values[(values != ignore_index) & ((values < 0) | (values >= classes))]
    if bad.size:
        raise IndexOutOfRangeError(f"{op}: target {int(bad.flat[0])} is out of bounds for {classes} classes")
    return NDArray.from_numpy(values.astype(input.dtype), input.device)


def _weighted_one_hot(input, target_nd, weight, ignore_index):
    """(N, C, ...) mask: weight[c] where target == c (and target != ignore_index), else 0."""
    class_dim = 1 if input.ndim > 1 else 0
    classes = input.shape[class_dim]
    positions = arange_along(classes, class_dim, input.ndim, input.dtype, input.device)
    target_nd = target_nd.reshape(target_nd.shape[:1] + (1,) + target_nd.shape[1:]) if class_dim else target_nd
    mask = Tensor((positions == target_nd) * (target_nd != float(ignore_index)))
    if weight is not None:
        mask = mask * weight.detach().reshape((classes,) + (1,) * (input.ndim - class_dim - 1))
    return mask


def _reduce(loss, reduction, total_weight):
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / total_weight


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """-input[n, target[n]] * weight[target[n]]; 'mean' divides by the summed weights of the counted targets."""
    check_tensor("nll_loss", "input", input)
    check_tensor("nll_loss", "weight", weight, optional=True)
    check_reduction("nll_loss", reduction, size_average, reduce)
    mask = _weighted_one_hot(input, _class_targets("nll_loss", input, target, ignore_index), weight, ignore_index)
    class_dim = 1 if input.ndim > 1 else 0
    return _reduce(-(input * mask).sum(class_dim), reduction, mask.sum())


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """nll_loss(log_softmax(input)), with PyTorch's label smoothing: (1-s) * nll + s/C * (-sum_c w_c logp_c).
    A float target of input's shape is a class-probability target, as in PyTorch."""
    check_tensor("cross_entropy", "input", input)
    check_tensor("cross_entropy", "weight", weight, optional=True)
    check_reduction("cross_entropy", reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    class_dim = 1 if input.ndim > 1 else 0
    classes = input.shape[class_dim]
    logp = log_softmax(input, class_dim)
    class_weight = None if weight is None else weight.detach().reshape((classes,) + (1,) * (input.ndim - class_dim - 1))
    if isinstance(target, Tensor) and target.shape == input.shape:
        probs = target.detach() * (1.0 - label_smoothing) + label_smoothing / classes
        weighted = logp * probs if class_weight is None else logp * probs * class_weight
        return _reduce(-weighted.sum(class_dim), reduction, input.numel() / classes)
    target_nd = _class_targets("cross_entropy", input, target, ignore_index)
    mask = _weighted_one_hot(input, target_nd, weight, ignore_index)
    total_weight = mask.sum()
    loss = _reduce(-(logp * mask).sum(class_dim), reduction, total_weight)
    if label_smoothing == 0.0:
        return loss
    valid = Tensor(target_nd != float(ignore_index))
    smooth = -(logp if class_weight is None else logp * class_weight).sum(class_dim) * valid
    return loss * (1.0 - label_smoothing) + _reduce(smooth, reduction, total_weight) * (label_smoothing / classes)


def _reduce_pointwise(loss, reduction):
    return loss.mean() if reduction == "mean" else _reduce(loss, reduction, None)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    check_tensor("mse_loss", "input", input)
    check_reduction("mse_loss", reduction, size_average, reduce)
    diff = input - target
    return _reduce_pointwise(diff * diff, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    check_tensor("l1_loss", "input", input)
    check_reduction("l1_loss", reduction, size_average, reduce)
    return _reduce_pointwise((input - target).abs(), reduction)


def _smooth_l1(op, input, target, beta):
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere, written as q = min(|d|, beta):
    0.5 q^2 / beta + (|d| - q), whose gradient is PyTorch's on both sides of |d| = beta."""
    check_tensor(op, "input", input)
    if beta < 0:
        raise ValueError(f"{op}: beta must be >= 0, got {beta}")
    distance = (input - target).abs()
    if beta == 0:
        return distance
    q = distance.clamp(max=float(beta))
    return q * q * (0.5 / beta) + (distance - q)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    check_reduction("smooth_l1_loss", reduction, size_average, reduce)
    return _reduce_pointwise(_smooth_l1("smooth_l1_loss", input, target, beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """delta * smooth_l1(beta=delta): 0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere."""
    check_reduction("huber_loss", reduction)
    return _reduce_pointwise(_smooth_l1("huber_loss", input, target, delta) * float(delta), reduction)


def _check_same_shape(op, input, target):
    if not isinstance(target, Tensor) or target.shape != input.shape:
        given = target.shape if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"{op}: target must be a Tensor of the input's shape {input.shape}, got {given}")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-w (t log x + (1 - t) log(1 - x)), each log clamped at -100 as PyTorch does, so x = 0 or 1 gives a
    finite loss."""
    check_tensor("binary_cross_entropy", "input", input)
    check_tensor("binary_cross_entropy", "weight", weight, optional=True)
    check_reduction("binary_cross_entropy", reduction, size_average, reduce)
    _check_same_shape("binary_cross_entropy", input, target)
    values = input.numpy()
    if np.any((values < 0) | (values > 1)):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1")
    log_x, log_1mx = input.log().clamp(min=-100.0), (1.0 - input).log().clamp(min=-100.0)
    loss = -(target * log_x + (1.0 - target) * log_1mx)
    return _reduce_pointwise(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """binary_cross_entropy(sigmoid(x), t) without forming sigmoid: (1 - t) x - l log(sigmoid(x)), with
    l = 1 + (pos_weight - 1) t weighing the positive term."""
    check_tensor("binary_cross_entropy_with_logits", "input", input)
    for name, t in (("weight", weight), ("pos_weight", pos_weight)):
        check_tensor("binary_cross_entropy_with_logits", name, t, optional=True)
    check_reduction("binary_cross_entropy_with_logits", reduction, size_average, reduce)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    log_weight = 1.0 if pos_weight is None else (pos_weight - 1.0) * target + 1.0
    loss = (1.0 - target) * input - log_weight * logsigmoid(input)
    return _reduce_pointwise(loss if weight is None else loss * weight, reduction)
