"""Lazy modules, as in torch.nn: the input size (in_channels, in_features, num_features) is read from the
first input, then the module turns into its plain class (type(m) is nn.Conv2d, the same state_dict keys)
with PyTorch's default initialisation drawn at that moment.

Before the first call the parameters exist as Parameters with a zero-sized input dimension (PyTorch has
UninitializedParameter there). The first call (or load_state_dict, at the saved sizes) fills those same
Parameter objects with their real data, so an optimizer built before the first call updates the
materialised parameters; placement and dtype set by .to() before the first call are kept.
"""
from ..tensor import generator
from .layers import BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d, Linear


class _LazyMixin:
    """Built as the plain class with input size 0; cls_to_become(size, *args, **kwargs) on the first call."""

    cls_to_become = None

    def _build_empty(self, args, device, dtype):
        """The plain module with input size 0 (zero-sized weights), and the arguments that the first call
        builds the real one from. The generator is put back afterwards: a bias of fan-in 0 still draws, and
        the draws belong to the first call, as in PyTorch."""
        state = generator().bit_generator.state
        self.cls_to_become.__init__(self, 0, *args, device=device, dtype=dtype)
        generator().bit_generator.state = state
        object.__setattr__(self, "_lazy_args", args)

    def has_uninitialized_params(self):
        return type(self) is not self.cls_to_become

    def _input_size(self, input):
        raise NotImplementedError

    def _size_in_state(self, state_dict, prefix):
        """The input size a saved state of this module implies, or None when it holds no entry to read it from."""
        raise NotImplementedError

    def _prepare_load(self, state_dict, prefix):
        """Loading a state_dict into a module not yet called materialises it at the saved size first, as
        PyTorch does (d2l loads saved parameters into a fresh Lazy network)."""
        size = self._size_in_state(state_dict, prefix)
        if size is not None:
            self._materialize(size)

    def initialize_parameters(self, input):
        self._materialize(self._input_size(input))

    def _materialize(self, size):
        """Builds the plain module for this input size, with the dtype and device the placeholders hold
        now, and moves its state into this module's own Parameter and buffer objects."""
        placeholder = next(self.parameters(), next(self.buffers(), None))
        kwargs = {} if placeholder is None else {"device": placeholder.device, "dtype": placeholder.dtype}
        plain = self.cls_to_become(size, *self._lazy_args, **kwargs)
        for own, new in ((self._parameters, plain._parameters), (self._buffers, plain._buffers)):
            for name, value in new.items():
                if own.get(name) is not None:
                    own[name]._data = value._data
                    own[name].grad = None
        for name, value in vars(plain).items():
            if name not in ("_parameters", "_buffers", "_modules", "_non_persistent", "training") \
                    and not name.endswith("_hooks"):
                object.__setattr__(self, name, value)
        del self._lazy_args
        self.__class__ = self.cls_to_become

    def forward(self, input, *args, **kwargs):
        self.initialize_parameters(input)
        return self.forward(input, *args, **kwargs)


def _saved_shape(state_dict, key):
    return tuple(state_dict[key].shape) if key in state_dict else None


class _LazyConvMixin(_LazyMixin):
    def _size_in_state(self, state_dict, prefix):
        """A conv weight is (C_out, C_in / groups, *k); a transposed conv's (C_in, C_out / groups, *k)."""
        shape = _saved_shape(state_dict, prefix + "weight")
        if shape is None:
            return None
        return shape[0] if self.cls_to_become.transposed else shape[1] * self.groups

    def _input_size(self, input):
        d = self.cls_to_become.dims
        if input.ndim not in (d + 1, d + 2):
            raise ValueError(f"{type(self).__name__}: expected a {d + 1}-D (unbatched) or {d + 2}-D (batched) "
                             f"input, got shape {input.shape}")
        return input.shape[1] if input.ndim == d + 2 else input.shape[0]


class _LazyConv(_LazyConvMixin):
    def __init__(self, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        self._build_empty((out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode),
                          device, dtype)


class _LazyConvTranspose(_LazyConvMixin):
    def __init__(self, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1, bias=True,
                 dilation=1, padding_mode="zeros", device=None, dtype=None):
        self._build_empty((out_channels, kernel_size, stride, padding, output_padding, groups, bias, dilation,
                           padding_mode), device, dtype)


class LazyConv1d(_LazyConv, Conv1d):
    cls_to_become = Conv1d


class LazyConv2d(_LazyConv, Conv2d):
    cls_to_become = Conv2d


class LazyConvTranspose1d(_LazyConvTranspose, ConvTranspose1d):
    cls_to_become = ConvTranspose1d


class LazyConvTranspose2d(_LazyConvTranspose, ConvTranspose2d):
    cls_to_become = ConvTranspose2d


class LazyLinear(_LazyMixin, Linear):
    def __init__(self, out_features, bias=True, device=None, dtype=None):
        self._build_empty((out_features, bias), device, dtype)

    cls_to_become = Linear

    def _size_in_state(self, state_dict, prefix):
        shape = _saved_shape(state_dict, prefix + "weight")
        return None if shape is None else shape[1]

    def _input_size(self, input):
        if input.ndim == 0:
            raise ValueError(f"LazyLinear: expected an input of at least 1 dim, got shape {input.shape}")
        return input.shape[-1]


class _LazyBatchNorm(_LazyMixin):
    def __init__(self, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None, dtype=None):
        self._build_empty((eps, momentum, affine, track_running_stats), device, dtype)

    def _size_in_state(self, state_dict, prefix):
        shapes = [_saved_shape(state_dict, prefix + name) for name in ("weight", "bias", "running_mean", "running_var")]
        return next((shape[0] for shape in shapes if shape is not None), None)

    def _input_size(self, input):
        dims = self.cls_to_become.input_dims
        if input.ndim not in dims:
            raise ValueError(f"{type(self).__name__}: expected a {' or '.join(f'{d}-D' for d in dims)} input, "
                             f"got shape {input.shape}")
        return input.shape[1]


class LazyBatchNorm1d(_LazyBatchNorm, BatchNorm1d):
    cls_to_become = BatchNorm1d


class LazyBatchNorm2d(_LazyBatchNorm, BatchNorm2d):
    cls_to_become = BatchNorm2d
