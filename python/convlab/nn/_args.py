"""Argument checks and normalisation shared by nn.functional, the nn modules and the losses: each written
once, each error names the op, the argument and the expected vs. given value."""
import numbers

from ..tensor import Tensor


def check_tensor(op, name, t, optional=False):
    if not (isinstance(t, Tensor) or optional and t is None):
        kind = "a convlab Tensor or None" if optional else "a convlab Tensor"
        raise TypeError(f"{op}: {name} must be {kind}, got {type(t).__name__}")


def ntuple(op, name, value, d):
    """An int or a sequence of d ints (or of one, repeated, as PyTorch allows) -> a list of d ints."""
    if isinstance(value, numbers.Integral):
        return [int(value)] * d
    ints = isinstance(value, (tuple, list)) and all(isinstance(v, numbers.Integral) for v in value)
    if ints and len(value) in (1, d):
        return [int(v) for v in value] * (d // len(value))
    raise ValueError(f"{op}: {name} must be an int or a tuple of {d} ints, got {value!r}")


def conv_padding(op, padding, d, kernel_size, stride, dilation):
    """PyTorch's padding argument -> one (lo, hi) pair per spatial dim. 'same' pads total = dilation*(k-1),
    lo = total // 2, so an even kernel gets the extra cell at the end, as PyTorch does."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * d
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride={tuple(stride)}")
            totals = [dl * (k - 1) for dl, k in zip(dilation, kernel_size)]
            return [(t // 2, t - t // 2) for t in totals]
        raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    return [(p, p) for p in ntuple(op, "padding", padding, d)]


def batched(op, x, d):
    """PyTorch accepts unbatched input (C, *spatial); returns the batched input and whether it was unbatched."""
    check_tensor(op, "input", x)
    if x.ndim == d + 1:
        return x.unsqueeze(0), True
    if x.ndim != d + 2:
        raise ValueError(f"{op}: expected a {d + 1}-D (unbatched) or {d + 2}-D (batched) input, got shape {x.shape}")
    return x, False


def unbatch(y, unbatched):
    return y.squeeze(0) if unbatched else y


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(op, reduction, size_average=None, reduce=None):
    """size_average/reduce hold the places PyTorch gives its deprecated arguments, so positional calls mean
    the same in both; convlab refuses them rather than guess."""
    if size_average is not None or reduce is not None:
        raise ValueError(f"{op}: size_average and reduce are PyTorch's deprecated arguments and are not supported; "
                         f"pass reduction='mean', 'sum' or 'none'")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
