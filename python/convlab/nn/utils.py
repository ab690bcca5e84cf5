"""convlab.nn.utils: gradient clipping, as torch.nn.utils; and convlab's own convolution geometry: output
shapes, receptive fields, a convolution as a dense matrix."""
import math
import numbers
from collections import namedtuple

from .. import _C
from ..autograd import clamped, enable_grad, no_grad
from ..tensor import Tensor, eye, zeros
from . import functional as F
from ._args import conv_padding
from .module import Module


def _grads(parameters):
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


@no_grad()
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scales every gradient by max_norm / (total_norm + 1e-6) when that is below 1, where total_norm is
    the norm of the per-gradient norms (all gradients as one vector); returns total_norm as a 0-d tensor,
    as PyTorch does. foreach is accepted for PyTorch code (there is one implementation)."""
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return Tensor(0.0)
    if norm_type == math.inf:
        norms = [g._data.abs().max() for g in grads]
        total = norms[0]
        for n in norms[1:]:
            total = total.maximum(n)
    else:
        if norm_type <= 0:
            raise ValueError(f"clip_grad_norm_: norm_type must be positive or inf, got {norm_type}")
        norms = [(g._data.abs() ** norm_type).sum() ** (1.0 / norm_type) for g in grads]
        total = sum((n ** norm_type for n in norms[1:]), norms[0] ** norm_type) ** (1.0 / norm_type)
    total_norm = float(total.numpy())
    if error_if_nonfinite and not math.isfinite(total_norm):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                           f"{total_norm}, so they cannot be clipped (error_if_nonfinite=True)")
    coef = min(max_norm / (total_norm + 1e-6), 1.0)
    for g in grads:
        g._data = g._data * coef  # the same gradient Tensors, rescaled, as PyTorch's in-place mul_
    return Tensor(total)


@no_grad()
def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamps every gradient element into [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        g._data = clamped(g._data, -clip_value, clip_value)


# ---- convolution geometry: shapes, receptive fields, the conv as a matrix ----
def _per_dim(op, name, value, d):
    """An int or a sequence of d ints -> a tuple of d ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),) * d
    if isinstance(value, (tuple, list)) and len(value) == d and all(isinstance(v, numbers.Integral) for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(f"{op}: {name} must be an int or a tuple of {d} ints, got {value!r}")


def conv_output_shape(in_size, kernel_size, stride=1, padding=0, dilation=1, *, transposed=False, output_padding=0,
                      ceil_mode=False):
    """Output length(s) of a convolution, transposed convolution (transposed=True) or pooling window
    (ceil_mode as in PyTorch's pools; a pool's stride defaults to its kernel there, so pass it) over in_size
    (an int or a tuple, one entry per spatial dim), by the formulas the kernels use (params.cpp's conv_out_len,
    conv_transpose_out_len and pool_out_len). Returns an int for an int in_size, else a tuple."""
    op = "conv_output_shape"
    scalar = isinstance(in_size, numbers.Integral)
    sizes = (int(in_size),) if scalar else _per_dim(op, "in_size", in_size, len(in_size))
    d = len(sizes)
    kernel, stride, dilation = (_per_dim(op, n, v, d) for n, v in (("kernel_size", kernel_size), ("stride", stride),
                                                                     ("dilation", dilation)))
    out_pad = _per_dim(op, "output_padding", output_padding, d)
    for name, values, low in (("in_size", sizes, 0), ("kernel_size", kernel, 1), ("stride", stride, 1),
                              ("dilation", dilation, 1), ("output_padding", out_pad, 0)):
        if any(v < low for v in values):
            raise ValueError(f"{op}: {name} must be >= {low}, got {values if d > 1 else values[0]}")
    if transposed and isinstance(padding, str):
        raise ValueError(f"{op}: a transposed convolution takes no string padding, got {padding!r}")
    if ceil_mode and transposed:
        raise ValueError(f"{op}: ceil_mode is for pooling, not for a transposed convolution")
    pads = conv_padding(op, padding, d, kernel, stride, dilation)
    if any(lo < 0 for lo, _ in pads):
        raise ValueError(f"{op}: padding must be >= 0, got {padding!r}")
    out = []
    for n, k, s, dl, (lo, hi), op_ in zip(sizes, kernel, stride, dilation, pads, out_pad):
        span = dl * (k - 1) + 1
        if transposed:
            o = _C.conv_transpose_out_len(n, k, s, lo, hi, dl, op_)
        else:
            if span > n + lo + hi:
                raise ValueError(f"{op}: the window (kernel_size {k}, dilation {dl}: span {span}) is larger than "
                                 f"the padded input {n + lo + hi}")
            if ceil_mode and lo != hi:
                raise ValueError(f"{op}: ceil_mode (pooling) needs the same padding on both sides, got {padding!r}")
            o = _C.pool_out_len(n, k, s, lo, dl, True) if ceil_mode else _C.conv_out_len(n, k, s, lo, hi, dl)
        if o < 0:
            raise ValueError(f"{op}: the output size would be negative ({o}) for in_size {n}")
        out.append(o)
    return out[0] if scalar else tuple(out)


class LayerRF(namedtuple("LayerRF", "name kind output_size jump size start")):
    """One row of receptive_field: output_size, jump (the distance in input pixels between neighbouring
    outputs), size (receptive-field side) and start (input coordinate of the centre of output 0's field;
    input pixel i is centred at i), each a tuple with one entry per spatial dim."""


class ReceptiveFields(list):
    """receptive_field's rows (LayerRF); str() is the table."""

    def __str__(self):
        def cell(v):
            v = tuple(int(x) if float(x).is_integer() else float(x) for x in v)
            return str(v[0]) if len(set(v)) == 1 else "x".join(str(x) for x in v)
        header = ("layer", "type", "output", "jump", "rf size", "rf start")
        rows = [header] + [(r.name, r.kind, cell(r.output_size), cell(r.jump), cell(r.size), cell(r.start))
                           for r in self]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in rows]
        return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:])


def _window_of(module, in_size):
    """(kernel, stride, dilation, pads) of a module that slides a window, or None for any other module. An
    adaptive pool counts where its bins are one window (the input a multiple of output_size)."""
    d = len(in_size)
    name = type(module).__name__
    if getattr(module, "transposed", False):
        raise ValueError(f"receptive_field: {name} is a transposed convolution, whose outputs have no single "
                         "receptive field of this form")
    if hasattr(module, "output_size") and not hasattr(module, "kernel_size"):  # adaptive pooling
        out = _per_dim(name, "output_size", module.output_size, d)
        if any(o is None or n % o for n, o in zip(in_size, out)):
            raise ValueError(f"receptive_field: {name} with output_size {module.output_size} on input {in_size} "
                             "pools windows of unequal size")
        kernel = tuple(n // o for n, o in zip(in_size, out))
        return kernel, kernel, (1,) * d, ((0, 0),) * d
    if not hasattr(module, "kernel_size"):
        return None
    kernel = _per_dim(name, "kernel_size", module.kernel_size, d)
    stride = _per_dim(name, "stride", module.stride if module.stride is not None else kernel, d)
    dilation = _per_dim(name, "dilation", getattr(module, "dilation", 1), d)
    return kernel, stride, dilation, conv_padding(name, getattr(module, "padding", 0), d, kernel, stride, dilation)


def receptive_field(model, input_shape):
    """Runs model once, in eval mode, on zeros of shape (1, *input_shape) (input_shape = (C, H, W) or (C, L))
    and returns, for every layer that slides a window (convolutions, pools; in the order they run), its output
    size, jump, receptive-field size and start, with the recurrences (k' = dilation*(k-1) + 1):
      jump_out = jump_in * stride,  size_out = size_in + (k' - 1) * jump_in,
      start_out = start_in + ((k' - 1) / 2 - pad_lo) * jump_in.
    Element-wise layers keep their input's field. Where branches meet (a residual sum, a concatenation) the
    field is the union of theirs, found through the autograd graph of the run. Layers after the spatial axes
    are gone (Flatten, Linear) are not listed. print() of the result is a table."""
    if not isinstance(model, Module):
        raise TypeError(f"receptive_field: model must be a convlab nn.Module, got {type(model).__name__}")
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) not in (2, 3)
            or not all(isinstance(n, numbers.Integral) and n > 0 for n in input_shape)):
        raise ValueError(f"receptive_field: input_shape must be (C, L) or (C, H, W) of positive ints, got "
                         f"{input_shape!r}")
    d = len(input_shape) - 1
    param = next(iter(model.parameters()), None)
    x = zeros(1, *input_shape, dtype=param.dtype if param is not None else "float32",
              device=param.device if param is not None else "cpu", requires_grad=True)
    fields = {id(x): (x, (1.0,) * d, (1.0,) * d, (0.0,) * d)}  # id -> (tensor kept alive, jump, size, start)
    rows = ReceptiveFields()
    names = {id(m): n for n, m in model.named_modules()}

    def field_of(t):
        """The field of tensor t: known, or the union of the fields of what it was computed from."""
        if id(t) in fields:
            return fields[id(t)][1:]
        ctx = getattr(t, "_ctx", None)
        parents = []
        for p in ctx.inputs if ctx is not None else ():
            f = field_of(p) if p is not None else None
            if f is None:
                continue
            if p.shape[2:] != t.shape[2:]:
                raise ValueError(f"receptive_field: an operation outside any module maps spatial size "
                                 f"{tuple(p.shape[2:])} to {tuple(t.shape[2:])}; only modules may change it")
            parents.append(f)
        if not parents:
            return None
        jump = tuple(max(f[0][i] for f in parents) for i in range(d))
        lo = [min(f[2][i] - (f[1][i] - 1) / 2 for f in parents) for i in range(d)]
        hi = [max(f[2][i] + (f[1][i] - 1) / 2 for f in parents) for i in range(d)]
        field = (jump, tuple(h - l + 1 for l, h in zip(lo, hi)), tuple((l + h) / 2 for l, h in zip(lo, hi)))
        fields[id(t)] = (t,) + field
        return field

    def hook(module, args, output):
        if not isinstance(output, Tensor) or not args or not isinstance(args[0], Tensor) or output.ndim != d + 2:
            return
        field = field_of(args[0])
        if field is None:
            return
        jump, size, start = field
        window = _window_of(module, tuple(args[0].shape[2:]))
        if window is not None:
            kernel, stride, dilation, pads = window
            spans = [dl * (k - 1) + 1 for k, dl in zip(kernel, dilation)]
            size = tuple(r + (k - 1) * j for r, k, j in zip(size, spans, jump))
            start = tuple(s + ((k - 1) / 2 - lo) * j for s, k, (lo, _), j in zip(start, spans, pads, jump))
            jump = tuple(j * s for j, s in zip(jump, stride))
            rows.append(LayerRF(names.get(id(module), ""), type(module).__name__, tuple(output.shape[2:]), jump,
                                size, start))
        fields[id(output)] = (output, jump, size, start)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # no batch-norm statistics move, no dropout
    try:
        with enable_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    return rows


def conv_matrix(conv, input_shape, stride=1, padding=0, dilation=1, groups=1):
    """The dense matrix M of a (transposed) convolution over one input of shape input_shape ((C, L) or
    (C, H, W)): conv(x) = M @ x.flatten() + conv(0), so M has one row per output element and one column per
    input element (row-major, as flatten). conv is a module (Conv*, ConvTranspose*, or any layer that is linear
    up to its bias: padding modes included) or a weight tensor (C_out, C_in/groups, *k) of a plain convolution
    with the given stride, padding, dilation and groups. Column j is the response to the j-th unit input, so M
    is differentiable with respect to the weight. A transposed convolution with the same weight and geometry
    has the matrix M.T."""
    op = "conv_matrix"
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) not in (2, 3)
            or not all(isinstance(n, numbers.Integral) and n > 0 for n in input_shape)):
        raise ValueError(f"{op}: input_shape must be (C, L) or (C, H, W) of positive ints, got {input_shape!r}")
    if isinstance(conv, Tensor):
        if conv.ndim != len(input_shape) + 1:
            raise ValueError(f"{op}: a weight for input_shape {tuple(input_shape)} must be {len(input_shape) + 1}-D "
                             f"(C_out, C_in/groups, *kernel), got shape {tuple(conv.shape)}")
        weight, fn = conv, F.conv1d if len(input_shape) == 2 else F.conv2d
        layer = lambda x: fn(x, weight, None, stride, padding, dilation, groups)  # noqa: E731
        like = weight
    elif isinstance(conv, Module):
        layer, like = conv, next(iter(conv.parameters()), None)
    else:
        raise TypeError(f"{op}: conv must be a convlab nn.Module or a weight Tensor, got {type(conv).__name__}")
    n = math.prod(input_shape)
    dtype, device = (like.dtype, like.device) if like is not None else ("float32", "cpu")
    basis = eye(n, dtype=dtype, device=device).reshape(n, *input_shape)
    responses = layer(basis) - layer(zeros(1, *input_shape, dtype=dtype, device=device))
    return responses.reshape(n, -1).t()
