"""The benchmark's layers: one suite entry resolved into array shapes, FLOPs and the calls that run each pass,
through convlab's kernels (convlab._C, not the autograd layer) and through PyTorch's aten ops."""
import math

import numpy as np

from .. import _C

PASSES = ("forward", "backward_input", "backward_weight")


def per_dim(value, dims):
    return list(value) if isinstance(value, (list, tuple)) else [value] * dims


CONV_OPS = ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d")
POOL_OPS = ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")


def random_arrays(seed, **shapes):
    """name -> standard-normal float32 array of that shape, the same for every run with one seed."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def make_layer(spec, device):
    if spec["op"] in CONV_OPS:
        return Layer(spec, device)
    if spec["op"] in POOL_OPS:
        return PoolLayer(spec, device)
    raise ValueError(f"layer {spec['name']}: unknown op {spec['op']!r} (expected one of {CONV_OPS + POOL_OPS})")


class Layer:
    """One convolution entry in PyTorch's conventions, resolved into per-dim lists and array shapes. A
    transposed layer's flops are those of the forward conv it is the adjoint of (the same multiply-adds)."""

    family, passes = "conv", PASSES

    def __init__(self, spec, device):
        self.name, self.op = spec["name"], spec["op"]
        self.transposed = self.op.startswith("conv_transpose")
        self.size = list(spec["hw"])
        self.k = list(spec["k"])
        dims = len(self.size)
        self.stride = per_dim(spec.get("stride", 1), dims)
        self.padding = per_dim(spec.get("padding", 0), dims)
        self.dilation = per_dim(spec.get("dilation", 1), dims)
        self.output_padding = per_dim(spec.get("output_padding", 0), dims)
        self.groups = spec.get("groups", 1)
        self.batch = spec["gpu_batch" if device == "cuda" else "cpu_batch"]
        self.c_in, self.c_out = spec["c_in"], spec["c_out"]
        g = self.groups
        if self.transposed:
            self.out_size = [(i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, s, p, d, k, op in
                             zip(self.size, self.stride, self.padding, self.dilation, self.k, self.output_padding)]
            self.w_shape = [self.c_in, self.c_out // g, *self.k]
            macs_per_out = (self.c_out // g) * math.prod(self.k)  # per input element of the adjoint conv
            self.flops = 2.0 * self.batch * self.c_in * math.prod(self.size) * macs_per_out
        else:
            self.out_size = [(i + 2 * p - d * (k - 1) - 1) // s + 1 for i, s, p, d, k in
                             zip(self.size, self.stride, self.padding, self.dilation, self.k)]
            self.w_shape = [self.c_out, self.c_in // g, *self.k]
            self.flops = 2.0 * self.batch * self.c_out * math.prod(self.out_size) * (self.c_in // g) * math.prod(self.k)
        self.x_shape = [self.batch, self.c_in, *self.size]
        self.y_shape = [self.batch, self.c_out, *self.out_size]

    def arrays(self, seed=0):
        return random_arrays(seed, x=self.x_shape, w=self.w_shape, gy=self.y_shape)

    def convlab_calls(self, arrays, device):
        """pass name -> a call of the convlab kernel on device-resident NDArrays."""
        x, w, gy = (_C.NDArray.from_numpy(arrays[n], device=device) for n in ("x", "w", "gy"))
        pads = [(p, p) for p in self.padding]
        s, d, g = self.stride, self.dilation, self.groups
        if self.transposed:  # its backward passes are the conv forward and the conv weight gradient
            return {
                "forward": lambda: _C.conv_transpose_forward(x, w, None, s, pads, self.output_padding, d, g),
                "backward_input": lambda: _C.conv_forward(gy, w, None, s, pads, d, g),
                "backward_weight": lambda: _C.conv_backward_weight(gy, x, self.k, s, pads, d, g),
            }
        return {
            "forward": lambda: _C.conv_forward(x, w, None, s, pads, d, g),
            "backward_input": lambda: _C.conv_backward_input(gy, w, self.size, s, pads, d, g),
            "backward_weight": lambda: _C.conv_backward_weight(x, gy, self.k, s, pads, d, g),
        }

    def torch_calls(self, torch, arrays, device):
        """pass name -> the same computation through PyTorch's own kernels (aten convolution and
        convolution_backward, which is what autograd runs)."""
        x, w, gy = (torch.from_numpy(arrays[n]).to(device) for n in ("x", "w", "gy"))
        args = (self.stride, self.padding, self.dilation, self.transposed, self.output_padding, self.groups)
        backward = torch.ops.aten.convolution_backward

        def grad(mask, which):
            return lambda: backward(gy, x, w, None, *args, mask)[which]

        return {
            "forward": lambda: torch.ops.aten.convolution(x, w, None, *args),
            "backward_input": grad([True, False, False], 0),
            "backward_weight": grad([False, True, False], 1),
        }


class PoolLayer:
    """One 2-D pooling entry: "c" channels of "hw" images, "k"/"stride"/"padding" (max and avg; stride
    defaults to k) or "output_size" (adaptive). Pools have no weight: passes forward and backward-to-input.
    "gflop" counts one compare or add per window element, the forward's work."""

    family, passes = "pool", PASSES[:2]

    def __init__(self, spec, device):
        self.name, self.op = spec["name"], spec["op"]
        self.batch, self.c, self.size = spec["gpu_batch" if device == "cuda" else "cpu_batch"], spec["c"], list(spec["hw"])
        if self.op == "adaptive_avg_pool2d":
            self.out_size = per_dim(spec["output_size"], 2)
            window = math.prod(math.ceil(i / o) for i, o in zip(self.size, self.out_size))
        else:
            self.k = per_dim(spec["k"], 2)
            self.stride = per_dim(spec.get("stride", spec["k"]), 2)
            self.padding = per_dim(spec.get("padding", 0), 2)
            self.out_size = [(i + 2 * p - k) // s + 1 for i, k, s, p in zip(self.size, self.k, self.stride, self.padding)]
            window = math.prod(self.k)
        self.x_shape = [self.batch, self.c, *self.size]
        self.y_shape = [self.batch, self.c, *self.out_size]
        self.flops = float(math.prod(self.y_shape) * window)

    def arrays(self, seed=0):
        return random_arrays(seed, x=self.x_shape, gy=self.y_shape)

    def convlab_calls(self, arrays, device):
        x, gy = (_C.NDArray.from_numpy(arrays[n], device=device) for n in ("x", "gy"))
        if self.op == "adaptive_avg_pool2d":
            return {"forward": lambda: _C.adaptive_avg_pool_forward(x, self.out_size),
                    "backward_input": lambda: _C.adaptive_avg_pool_backward(gy, self.size)}
        k, s, p = self.k, self.stride, self.padding
        if self.op == "max_pool2d":  # as autograd runs them: the forward keeps the argmax the backward reads
            indices = _C.max_pool_forward(x, k, s, p, [1, 1], False, return_indices=True)[1]
            return {"forward": lambda: _C.max_pool_forward(x, k, s, p, [1, 1], False, return_indices=True)[0],
                    "backward_input": lambda: _C.max_pool_backward_indices(indices, gy, self.size, k, s, p, [1, 1],
                                                                           False)}
        return {"forward": lambda: _C.avg_pool_forward(x, k, s, p, False, True),
                "backward_input": lambda: _C.avg_pool_backward(gy, self.size, k, s, p, False, True)}

    def torch_calls(self, torch, arrays, device):
        """PyTorch's pooling kernels as autograd runs them (max-pool backward reads the indices its forward
        saved, computed here once outside the timing)."""
        x, gy = (torch.from_numpy(arrays[n]).to(device) for n in ("x", "gy"))
        aten = torch.ops.aten
        if self.op == "adaptive_avg_pool2d":
            return {"forward": lambda: aten._adaptive_avg_pool2d(x, self.out_size),
                    "backward_input": lambda: aten._adaptive_avg_pool2d_backward(gy, x)}
        k, s, p = self.k, self.stride, self.padding
        if self.op == "max_pool2d":
            indices = aten.max_pool2d_with_indices(x, k, s, p, [1, 1], False)[1]
            return {"forward": lambda: aten.max_pool2d_with_indices(x, k, s, p, [1, 1], False)[0],
                    "backward_input": lambda: aten.max_pool2d_with_indices_backward(gy, x, k, s, p, [1, 1], False,
                                                                                    indices)}
        return {"forward": lambda: aten.avg_pool2d(x, k, s, p, False, True, None),
                "backward_input": lambda: aten.avg_pool2d_backward(gy, x, k, s, p, False, True, None)}
