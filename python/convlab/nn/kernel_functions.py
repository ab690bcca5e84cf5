"""Autograd Functions over the convlab._C convolution, pooling, padding and batch-norm kernels.

Geometry arrives already normalised by functional.py: one entry per spatial dim, conv padding as (lo, hi)
pairs. Each backward is made of the same device kernels as the forward (docs/ndarray.md), so a device that
runs the forward pass trains too.
"""
import itertools

from .. import _C
from ..autograd import Function, arange_along, is_grad_enabled

NDArray = _C.NDArray


def _bias_grad(g):
    """Bias gradient: grad-output summed over the batch and every spatial position."""
    return g.sum((0,) + tuple(range(2, g.ndim)))


class Conv(Function):
    """y = conv(x, w) + b; gx = conv_backward_input(g, w), gw = conv_backward_weight(x, g)."""

    def forward(self, x, w, bias, stride, padding, dilation, groups):
        x, w = x.compact(), w.compact()
        self.x, self.w, self.args = x, w, (stride, padding, dilation, groups)
        return _C.conv_forward(x, w, None if bias is None else bias.compact(), stride, padding, dilation, groups)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        g = g.compact()
        x, w, args = self.x, self.w, self.args
        gx = _C.conv_backward_input(g, w, list(x.shape[2:]), *args) if need_x else None
        gw = _C.conv_backward_weight(x, g, list(w.shape[2:]), *args) if need_w else None
        return gx, gw, _bias_grad(g) if need_b else None


class ConvTranspose(Function):
    """The adjoint of Conv: gx = conv_forward(g, w), gw = conv_backward_weight(g, x), same geometry."""

    def forward(self, x, w, bias, stride, padding, output_padding, dilation, groups):
        x, w = x.compact(), w.compact()
        self.x, self.w, self.args = x, w, (stride, padding, dilation, groups)
        # output_padding >= stride (allowed when dilation > stride) makes the conv of g longer than x by
        # output_padding // stride: those positions are x's implicit zero tail.
        self.tail = [p // s for p, s in zip(output_padding, stride)]
        b = None if bias is None else bias.compact()
        return _C.conv_transpose_forward(x, w, b, stride, padding, output_padding, dilation, groups)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        g = g.compact()
        x, w, args, tail = self.x, self.w, self.args, any(self.tail)
        gx = gw = None
        if need_x:
            gx = _C.conv_forward(g, w, None, *args)
            gx = gx[(Ellipsis,) + tuple(slice(0, n) for n in x.shape[2:])] if tail else gx
        if need_w:
            x = x.pad([(0, 0), (0, 0)] + [(0, t) for t in self.tail]) if tail else x
            gw = _C.conv_backward_weight(g, x, list(w.shape[2:]), *args)
        return gx, gw, _bias_grad(g) if need_b else None


class Unfold(Function):
    """im2col; its backward is col2im (fold) of the gradient with the same geometry: the two are adjoints."""

    def forward(self, x, kernel_size, dilation, padding, stride):
        self.input_size = list(x.shape[2:])
        self.args = (kernel_size, dilation, padding, stride)
        return _C.unfold(x, *self.args)

    def backward(self, g):
        return (_C.fold(g.compact(), self.input_size, *self.args),)


class Fold(Function):
    """col2im; its backward is im2col (unfold) of the gradient."""

    def forward(self, cols, output_size, kernel_size, dilation, padding, stride):
        self.args = (kernel_size, dilation, padding, stride)
        return _C.fold(cols, output_size, *self.args)

    def backward(self, g):
        return (_C.unfold(g.compact(), *self.args),)


class MaxPool(Function):
    """When a gradient will be asked for, the forward keeps each window's argmax (as PyTorch does), so the
    backward routes g through it instead of searching x again."""

    def forward(self, x, kernel_size, stride, padding, dilation, ceil_mode):
        self.args = (kernel_size, stride, padding, dilation, ceil_mode)
        if not (is_grad_enabled() and self.needs_input_grad[0]):
            return _C.max_pool_forward(x, *self.args)
        self.input_size = list(x.shape[2:])
        y, self.indices = _C.max_pool_forward(x, *self.args, return_indices=True)
        return y

    def backward(self, g):
        return (_C.max_pool_backward_indices(self.indices, g.compact(), self.input_size, *self.args),)


class AvgPool(Function):
    def forward(self, x, kernel_size, stride, padding, ceil_mode, count_include_pad):
        self.input_size = list(x.shape[2:])
        self.args = (kernel_size, stride, padding, ceil_mode, count_include_pad)
        return _C.avg_pool_forward(x.compact(), *self.args)

    def backward(self, g):
        return (_C.avg_pool_backward(g.compact(), self.input_size, *self.args),)


class AdaptiveAvgPool(Function):
    def forward(self, x, output_size):
        self.input_size = list(x.shape[2:])
        return _C.adaptive_avg_pool_forward(x.compact(), output_size)

    def backward(self, g):
        return (_C.adaptive_avg_pool_backward(g.compact(), self.input_size),)


def adaptive_windows(n, out):
    """PyTorch's adaptive pooling windows along one axis: [floor(i n / out), ceil((i + 1) n / out))."""
    return [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]


class AdaptiveMaxPool(Function):
    """Windows of uneven size, so no single strided kernel covers them: one max (and, backward, one
    argmax, the first maximum as in PyTorch) per output position, over the window's elements flattened."""

    def forward(self, x, output_size):
        self.x = x
        self.windows = list(itertools.product(*(enumerate(adaptive_windows(n, out))
                                                for n, out in zip(x.shape[2:], output_size))))
        y = NDArray.empty(x.shape[:2] + tuple(output_size), x.dtype, x.device)
        for window in self.windows:
            out_index, region = self._indices(window)
            y[out_index] = self._flat(region).max(2, True).reshape(x.shape[:2] + (1,) * len(output_size))
        return y

    def _indices(self, window):
        whole = (slice(None), slice(None))
        return (whole + tuple(slice(i, i + 1) for i, _ in window),
                whole + tuple(slice(lo, hi) for _, (lo, hi) in window))

    def _flat(self, region):
        return self.x[region].reshape(self.x.shape[:2] + (-1,))

    def backward(self, g):
        x = self.x
        gx = NDArray.full(x.shape, 0.0, x.dtype, x.device)
        for window in self.windows:
            out_index, region = self._indices(window)
            flat = self._flat(region)
            first_max = flat.argmax(2, True).astype(x.dtype)
            one_hot = (arange_along(flat.shape[2], 2, 3, x.dtype, x.device) == first_max).astype(x.dtype)
            spread = one_hot * g[out_index].reshape(x.shape[:2] + (1,))
            gx[region] = gx[region] + spread.reshape(gx[region].shape)
        return (gx,)


def _axis_slice(ndim, axis, start, stop):
    index = [slice(None)] * ndim
    index[axis] = slice(start, stop)
    return tuple(index)


def _add_into(dst, index, src):
    """dst[index] += src, skipping empty regions."""
    if src.size:
        dst[index] = dst[index] + src


def _unpad_axis(g, axis, lo, hi, n, mode):
    """Gradient of padding one axis of length n by (lo, hi): every padded cell sends its gradient back to
    the input cell it copied (constant cells copied nothing)."""
    gx = g[_axis_slice(g.ndim, axis, lo, lo + n)].copy()
    if mode == "constant":
        return gx
    left = g[_axis_slice(g.ndim, axis, 0, lo)]
    right = g[_axis_slice(g.ndim, axis, lo + n, lo + n + hi)]
    if mode == "replicate":  # the pads copy the edge cells
        if lo:
            _add_into(gx, _axis_slice(g.ndim, axis, 0, 1), left.sum(axis, True))
        if hi:
            _add_into(gx, _axis_slice(g.ndim, axis, n - 1, n), right.sum(axis, True))
    elif mode == "reflect":  # pad cell lo-1-i copies x[1+i]; pad cell n+lo+i copies x[n-2-i]
        if lo:
            _add_into(gx, _axis_slice(g.ndim, axis, 1, lo + 1), left.flip([axis]))
        if hi:
            _add_into(gx, _axis_slice(g.ndim, axis, n - 1 - hi, n - 1), right.flip([axis]))
    else:  # circular: the left pad copies the last lo cells, the right pad the first hi cells
        if lo:
            _add_into(gx, _axis_slice(g.ndim, axis, n - lo, n), left)
        if hi:
            _add_into(gx, _axis_slice(g.ndim, axis, 0, hi), right)
    return gx


class Pad(Function):
    """Crop (negative pads) then pad; pads: one (lo, hi) per axis from the first."""

    def forward(self, x, pads, mode, value):
        self.shape, self.dtype, self.device = x.shape, x.dtype, x.device
        self.crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(pads, x.shape))
        self.grow = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
        self.mode = mode
        cropped = x[self.crop]
        if not any(lo or hi for lo, hi in self.grow):
            return cropped.copy()
        return cropped.compact().pad(self.grow, mode, value)

    def backward(self, g):
        cropped_shape = [s.stop - s.start for s in self.crop]
        for axis, (lo, hi) in enumerate(self.grow):
            if lo or hi:
                g = _unpad_axis(g, axis, lo, hi, cropped_shape[axis], self.mode)
        if list(self.shape) == cropped_shape:
            return (g,)
        gx = NDArray.full(self.shape, 0.0, self.dtype, self.device)
        gx[self.crop] = g
        return (gx,)


def _tiled_bias_grad(g, tile):
    """gb[t][co]: g summed over the batch and the output positions that use weight set t (position % tile
    == t along every axis). g is padded with zeros to whole tiles, then each axis splits into (blocks, tile)."""
    out = g.shape[2:]
    whole = [-(-o // t) * t for o, t in zip(out, tile)]
    if whole != list(out):
        g = g.pad([(0, w - o) for w, o in zip(whole, out)])
    g = g.reshape(g.shape[:2] + tuple(s for w, t in zip(whole, tile) for s in (w // t, t)))
    d = len(tile)
    g = g.sum((0,) + tuple(2 + 2 * i for i in range(d)))  # (C_out, *tile)
    return g.permute(tuple(range(1, d + 1)) + (0,)).compact()


class TiledConv(Function):
    """y = tiled_conv(x, w) + b, output position p using weight set and bias p % tile (unshared: tile == the
    output size, a locally connected layer); gx = tiled_conv_backward_input(g, w),
    gw = tiled_conv_backward_weight(x, g), gb = g summed per weight set."""

    def forward(self, x, w, bias, stride, padding, dilation, unshared):
        x, w = x.compact(), w.compact()
        self.x, self.w, self.args = x, w, (stride, padding, dilation, unshared)
        return _C.tiled_conv_forward(x, w, None if bias is None else bias.compact(), *self.args)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        g = g.compact()
        x, w, args = self.x, self.w, self.args
        gx = _C.tiled_conv_backward_input(g, w, list(x.shape[2:]), *args) if need_x else None
        gw = _C.tiled_conv_backward_weight(x, g, list(w.shape), *args) if need_w else None
        d = x.ndim - 2
        return gx, gw, _tiled_bias_grad(g, w.shape[:d]) if need_b else None


class BatchNorm(Function):
    """Batch norm over axis 1 by the fused kernels: training normalises by the batch's mean and biased
    variance, eval by the running ones. The forward appends the (mean, var) it used to `stats` (the caller
    moves the running statistics toward them); the backward needs only x and those."""

    def forward(self, x, weight, bias, running_mean, running_var, training, eps, stats):
        y, self.mean, self.var = _C.batch_norm_forward(x, running_mean, running_var, weight, bias, training, eps)
        self.x, self.w, self.args = x, weight, (training, eps)
        stats.append((self.mean, self.var))
        return y

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad[:3]
        gx, gw, gb = _C.batch_norm_backward(self.x, g, self.mean, self.var, self.w, *self.args)
        return gx if need_x else None, gw if need_w else None, gb if need_b else None, None, None
