"""convlab.nn.functional: PyTorch's torch.nn.functional names, arguments and defaults.

Convolution, pooling and padding go through the Functions in kernel_functions.py; everything else is
composed from Tensor operations, so its gradient comes from the autograd rules of those operations.
"""
import numbers

import numpy as np

from .. import _C
from ..autograd import LeakyRelu, arange_along
from ..tensor import IndexOutOfRangeError, Tensor, generator, write_
from . import kernel_functions as kf

NDArray = _C.NDArray


# ---- argument normalisation ----
def _check_tensor(op, name, t, optional=False):
    if not (isinstance(t, Tensor) or optional and t is None):
        kind = "a convlab Tensor or None" if optional else "a convlab Tensor"
        raise TypeError(f"{op}: {name} must be {kind}, got {type(t).__name__}")


def _ntuple(op, name, value, d):
    """An int or a sequence of d ints (or of one, repeated, as PyTorch allows) -> a list of d ints."""
    if isinstance(value, numbers.Integral):
        return [int(value)] * d
    ints = isinstance(value, (tuple, list)) and all(isinstance(v, numbers.Integral) for v in value)
    if ints and len(value) in (1, d):
        return [int(v) for v in value] * (d // len(value))
    raise ValueError(f"{op}: {name} must be an int or a tuple of {d} ints, got {value!r}")


def _conv_padding(op, padding, d, kernel_size, stride, dilation):
    """PyTorch's padding argument -> one (lo, hi) pair per spatial dim. 'same' pads total = dilation*(k-1),
    lo = total // 2, so an even kernel gets the extra cell at the end, as PyTorch does."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * d
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
            totals = [dl * (k - 1) for dl, k in zip(dilation, kernel_size)]
            return [(t // 2, t - t // 2) for t in totals]
        raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    return [(p, p) for p in _ntuple(op, "padding", padding, d)]


def _batched(op, x, d):
    """PyTorch accepts unbatched input (C, *spatial); returns the batched input and whether it was unbatched."""
    _check_tensor(op, "input", x)
    if x.ndim == d + 1:
        return x.unsqueeze(0), True
    if x.ndim != d + 2:
        raise ValueError(f"{op}: expected a {d + 1}-D (unbatched) or {d + 2}-D (batched) input, got shape {x.shape}")
    return x, False


def _unbatch(y, unbatched):
    return y.squeeze(0) if unbatched else y


# ---- convolution ----
def _conv(op, d, x, weight, bias, stride, padding, dilation, groups):
    x, unbatched = _batched(op, x, d)
    _check_tensor(op, "weight", weight)
    _check_tensor(op, "bias", bias, optional=True)
    if weight.ndim != d + 2:
        raise ValueError(f"{op}: weight must be {d + 2}-D (C_out, C_in/groups, *kernel), got shape {weight.shape}")
    stride = _ntuple(op, "stride", stride, d)
    dilation = _ntuple(op, "dilation", dilation, d)
    pads = _conv_padding(op, padding, d, list(weight.shape[2:]), stride, dilation)
    y = kf.Conv.apply(x, weight, bias, stride=stride, padding=pads, dilation=dilation, groups=int(groups))
    return _unbatch(y, unbatched)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(op, d, x, weight, bias, stride, padding, output_padding, groups, dilation):
    x, unbatched = _batched(op, x, d)
    _check_tensor(op, "weight", weight)
    _check_tensor(op, "bias", bias, optional=True)
    if weight.ndim != d + 2:
        raise ValueError(f"{op}: weight must be {d + 2}-D (C_in, C_out/groups, *kernel), got shape {weight.shape}")
    y = kf.ConvTranspose.apply(
        x, weight, bias, stride=_ntuple(op, "stride", stride, d),
        padding=[(p, p) for p in _ntuple(op, "padding", padding, d)],
        output_padding=_ntuple(op, "output_padding", output_padding, d),
        dilation=_ntuple(op, "dilation", dilation, d), groups=int(groups))
    return _unbatch(y, unbatched)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# ---- pooling ----
def _max_pool(op, d, x, kernel_size, stride, padding, dilation, ceil_mode):
    x, unbatched = _batched(op, x, d)
    kernel = _ntuple(op, "kernel_size", kernel_size, d)
    stride = kernel if stride is None or stride == [] or stride == () else _ntuple(op, "stride", stride, d)
    y = kf.MaxPool.apply(x, kernel_size=kernel, stride=stride, padding=_ntuple(op, "padding", padding, d),
                         dilation=_ntuple(op, "dilation", dilation, d), ceil_mode=bool(ceil_mode))
    return _unbatch(y, unbatched)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode)


def _avg_pool(op, d, x, kernel_size, stride, padding, ceil_mode, count_include_pad):
    x, unbatched = _batched(op, x, d)
    kernel = _ntuple(op, "kernel_size", kernel_size, d)
    stride = kernel if stride is None or stride == [] or stride == () else _ntuple(op, "stride", stride, d)
    y = kf.AvgPool.apply(x, kernel_size=kernel, stride=stride, padding=_ntuple(op, "padding", padding, d),
                         ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad))
    return _unbatch(y, unbatched)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def _adaptive_avg_pool(op, d, x, output_size):
    x, unbatched = _batched(op, x, d)
    sizes = [output_size] * d if isinstance(output_size, numbers.Integral) or output_size is None else list(output_size)
    if len(sizes) != d:
        raise ValueError(f"{op}: output_size must be an int or a tuple of {d} ints, got {output_size!r}")
    sizes = [x.shape[2 + i] if s is None else s for i, s in enumerate(sizes)]
    y = kf.AdaptiveAvgPool.apply(x, output_size=_ntuple(op, "output_size", sizes, d))
    return _unbatch(y, unbatched)


def adaptive_avg_pool1d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool2d", 2, input, output_size)


# ---- padding ----
PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input, pad, mode="constant", value=None):
    """pad = (last_lo, last_hi, second_last_lo, second_last_hi, ...) as in PyTorch; negative entries crop."""
    _check_tensor("pad", "input", input)
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


# ---- dense layers and activations ----
def linear(input, weight, bias=None):
    """y = x @ W^T + b with W (out_features, in_features)."""
    _check_tensor("linear", "input", input)
    _check_tensor("linear", "weight", weight)
    _check_tensor("linear", "bias", bias, optional=True)
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


def _shift_by_max(op, input, dim):
    """input - max along dim (PyTorch's implicit dim when None). The shift keeps exp from overflowing and
    cancels out of softmax, so it is a constant to autograd."""
    _check_tensor(op, "input", input)
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


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes each element with probability p and scales the rest by 1/(1-p) (training only)."""
    _check_tensor("dropout", "input", input)
    if not isinstance(p, numbers.Real) or isinstance(p, bool):
        raise TypeError(f"dropout: p must be a number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    keep = generator().random(input.shape) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = NDArray.from_numpy((keep * scale).astype(input.dtype), input.device)
    return input * Tensor(mask)


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
    _check_tensor("batch_norm", "input", input)
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        _check_tensor("batch_norm", name, t, optional=True)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input of at least 2 dims (N, C, ...), got shape {input.shape}")
    axes = (0,) + tuple(range(2, input.ndim))
    shape = _channel_shape(input)
    if training:
        count = input.numel() // input.shape[1]
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                             f"shape {input.shape}")
        mean = input.mean(axes, keepdim=True)
        centred = input - mean
        var = (centred * centred).mean(axes, keepdim=True)
        m = float(momentum)  # the running stats are updated in place, as in PyTorch
        if running_mean is not None:
            write_(running_mean, running_mean._data * (1.0 - m) + mean._data.reshape(running_mean.shape) * m)
        if running_var is not None:
            unbiased = var._data.reshape(running_var.shape) * (count / (count - 1))
            write_(running_var, running_var._data * (1.0 - m) + unbiased * m)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        centred = input - running_mean.reshape(shape)
        var = running_var.reshape(shape)
    y = centred / (var + eps).sqrt()
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


# ---- losses ----
REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op, reduction, size_average=None, reduce=None):
    """size_average/reduce hold the places PyTorch gives its deprecated arguments, so positional calls mean
    the same in both; convlab refuses them rather than guess."""
    if size_average is not None or reduce is not None:
        raise ValueError(f"{op}: size_average and reduce are PyTorch's deprecated arguments and are not supported; "
                         f"pass reduction='mean', 'sum' or 'none'")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


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
    _check_tensor("nll_loss", "input", input)
    _check_tensor("nll_loss", "weight", weight, optional=True)
    _check_reduction("nll_loss", reduction, size_average, reduce)
    mask = _weighted_one_hot(input, _class_targets("nll_loss", input, target, ignore_index), weight, ignore_index)
    class_dim = 1 if input.ndim > 1 else 0
    return _reduce(-(input * mask).sum(class_dim), reduction, mask.sum())


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """nll_loss(log_softmax(input)), with PyTorch's label smoothing: (1-s) * nll + s/C * (-sum_c w_c logp_c).
    A float target of input's shape is a class-probability target, as in PyTorch."""
    _check_tensor("cross_entropy", "input", input)
    _check_tensor("cross_entropy", "weight", weight, optional=True)
    _check_reduction("cross_entropy", reduction, size_average, reduce)
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


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    _check_tensor("mse_loss", "input", input)
    _check_reduction("mse_loss", reduction, size_average, reduce)
    diff = input - target
    squared = diff * diff
    return squared.mean() if reduction == "mean" else _reduce(squared, reduction, None)
