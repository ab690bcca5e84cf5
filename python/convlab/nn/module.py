"""Module (a tree of layers holding Parameters and buffers), Parameter and Sequential, as in torch.nn."""
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

from ..autograd import no_grad
from ..tensor import Tensor, _ndarray_from, parse_to_args, write_, zeros_like

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class LoadStateDictError(RuntimeError, ValueError):
    """load_state_dict's error: a RuntimeError as PyTorch raises, and a ValueError as convlab's error
    contract asks for a bad argument."""


class Parameter(Tensor):
    """A leaf Tensor that a Module registers as trainable; shares storage with the data it wraps."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data._data if isinstance(data, Tensor) else Tensor(data)._data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration ----
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called")
        if isinstance(value, (Parameter, Module)):
            for table in (self.__dict__, self._parameters, self._buffers, self._modules):
                table.pop(name, None)
            (self._parameters if isinstance(value, Parameter) else self._modules)[name] = value
        elif name in self._parameters or name in self._modules:
            if value is not None:
                kind = "parameter" if name in self._parameters else "submodule"
                raise TypeError(f"cannot assign a {type(value).__name__} to {kind} {name!r} "
                                f"(expected a {'Parameter' if kind == 'parameter' else 'Module'} or None)")
            (self._parameters if name in self._parameters else self._modules)[name] = None
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign a {type(value).__name__} to buffer {name!r} "
                                f"(expected a Tensor or None)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"add_module: the name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise ValueError(f"add_module: the name must be non-empty and hold no '.', got {name!r}")
        self._modules[name] = module

    register_module = add_module  # PyTorch's other name for it

    # ---- running ----
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        """forward, with the pre-hooks first (each may replace the positional inputs) and the hooks after
        (each may replace the output), in registration order, as in PyTorch."""
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_pre_hook(self, hook):
        """hook(module, args) -> None or new args; returns a handle whose remove() unregisters it."""
        return RemovableHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook):
        """hook(module, args, output) -> None or a new output; returns a handle whose remove() unregisters it."""
        return RemovableHandle(self._forward_hooks, hook)

    # ---- traversal ----
    def named_modules(self, prefix=""):
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def get_submodule(self, target):
        """The module at a dotted path such as "features.0"; "" is the module itself."""
        module = self
        for i, name in enumerate(target.split(".") if target else []):
            if name not in module._modules or module._modules[name] is None:
                path = ".".join(target.split(".")[:i])
                raise AttributeError(f"get_submodule: {type(module).__name__} at {path or 'the top'!r} has no "
                                     f"submodule {name!r} (target {target!r})")
            module = module._modules[name]
        return module

    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, table, recurse):
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for module_name, module in modules:
            for name, value in getattr(module, table).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(self, prefix="", recurse=True):
        for name, p in self._named_members("_parameters", recurse):
            yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        for name, b in self._named_members("_buffers", recurse):
            yield (f"{prefix}.{name}" if prefix else name), b

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """fn(module) for every module, children before their parent, depth first (PyTorch's order, which
        decides the order of random draws in an init function)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes and placement ----
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = zeros_like(p.grad)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, device=None, dtype=None, non_blocking=False):
        """Moves every parameter and buffer in place (the same Parameter objects), as PyTorch does, and casts
        the floating-point ones to dtype (integer buffers such as num_batches_tracked keep theirs);
        non_blocking is accepted for PyTorch code (copies are synchronous)."""
        device, dtype = parse_to_args(args, device, dtype)
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"Module.to only accepts floating point dtypes, got {dtype}")
        with no_grad():
            for t in list(self.parameters()) + list(self.buffers()):
                cast = dtype if dtype is not None and t.is_floating_point() else t.dtype
                t._data = _ndarray_from(t._data, cast, device or t.device)
                if t.grad is not None:
                    t.grad = Tensor(_ndarray_from(t.grad._data, cast, device or t.device))
        return self

    def float(self):
        return self.to(dtype="float32")

    def double(self):
        return self.to(dtype="float64")

    def cpu(self):
        return self.to(device="cpu")

    def cuda(self, device=None):
        """device: None, an index or "cuda:N" (convlab drives one GPU, so any index means it)."""
        return self.to(device="cuda")

    # ---- state ----
    def _state_entries(self):
        """name -> tensor for every parameter and persistent buffer, in registration order."""
        entries = OrderedDict()
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, p in module._parameters.items():
                if p is not None:
                    entries[prefix + name] = p
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    entries[prefix + name] = b
        return entries

    def state_dict(self):
        """name -> detached Tensor sharing storage with the parameter/buffer."""
        return OrderedDict((name, t.detach()) for name, t in self._state_entries().items())

    def load_state_dict(self, state_dict, strict=True):
        """Copies values (Tensors, NDArrays or NumPy arrays, e.g. from numpy.load of a savez file) into the
        parameters' and buffers' storage, converting to each one's dtype and device. Checks everything
        first, so a failed load changes nothing."""
        if not isinstance(state_dict, Mapping) and not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
        for name, module in list(self.named_modules()):
            module._prepare_load(state_dict, f"{name}." if name else "")
        own = self._state_entries()
        keys = list(state_dict.keys())
        missing = [k for k in own if k not in keys]
        unexpected = [k for k in keys if k not in own]
        errors = []
        if strict and missing:
            errors.append("missing key(s) in state_dict: " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            errors.append("unexpected key(s) in state_dict: " + ", ".join(repr(k) for k in unexpected))
        updates = []
        for name, target in own.items():
            if name not in keys:
                continue
            value = state_dict[name]
            try:
                array = _ndarray_from(value, target.dtype, target.device)
            except TypeError as e:
                errors.append(f"value for {name!r} is not an array of numbers ({e})")
                continue
            if tuple(array.shape) != target.shape:
                errors.append(f"size mismatch for {name!r}: copying a value of shape {tuple(array.shape)} from the "
                              f"state_dict, the shape in the current model is {tuple(target.shape)}")
                continue
            updates.append((target, array))
        if errors:
            raise LoadStateDictError(f"Error(s) in loading state_dict for {type(self).__name__}: " + "; ".join(errors))
        for target, array in updates:
            write_(target, array)
        return IncompatibleKeys(missing, unexpected)

    def _prepare_load(self, state_dict, prefix):
        """Called on every module before load_state_dict checks shapes; Lazy modules materialise here."""

    # ---- printing ----
    def extra_repr(self):
        return ""

    def __repr__(self):
        """PyTorch's layout: the extra_repr alone on the head line, or one line per extra_repr line and per
        child, indented, the children's own lines indented further."""
        extra = self.extra_repr().split("\n") if self.extra_repr() else []
        children = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        if len(extra) == 1 and not children:
            return f"{type(self).__name__}({extra[0]})"
        lines = extra + children
        return f"{type(self).__name__}(" + ("\n  " + "\n  ".join(lines) + "\n" if lines else "") + ")"


class RemovableHandle:
    """What register_forward_hook returns: remove() takes the hook out again; also a context manager."""

    _next_id = 0

    def __init__(self, hooks, hook):
        self.hooks, self.id = hooks, RemovableHandle._next_id
        RemovableHandle._next_id += 1
        hooks[self.id] = hook

    def remove(self):
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Sequential(Module):
    """Runs its modules in order. Sequential(m1, m2, ...) or Sequential(OrderedDict(name=module, ...))."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def __getitem__(self, index):
        """seq[i] is a module; seq[a:b] a Sequential that keeps the names, so its parameter names match the
        full model's ("3.weight"), as in PyTorch."""
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return list(self._modules.values())[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def __setitem__(self, index, module):
        self.add_module(_key_at(self, index), module)

    def __delitem__(self, index):
        _delete_and_renumber(self, index)

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        self.extend(modules)
        return self

    def pop(self, index):
        module = self[index]
        del self[index]
        return module

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x


def _key_at(container, index, kind="modules"):
    """The name of the index-th module (or parameter; negative counts from the end), IndexError past either
    end."""
    keys = list(container._modules if kind == "modules" else container._parameters)
    if not -len(keys) <= index < len(keys):
        raise IndexError(f"{type(container).__name__}: index {index} is out of range for {len(keys)} {kind}")
    return keys[index]


def _delete_and_renumber(container, index):
    """del container[index] (an int or a slice), then the names "0".."n-1" again, as PyTorch does."""
    keys = list(container._modules)[index] if isinstance(index, slice) else [_key_at(container, index)]
    for key in keys:
        del container._modules[key]
    modules = list(container._modules.values())
    container._modules.clear()
    for i, module in enumerate(modules):
        container.add_module(str(i), module)


class ModuleList(Module):
    """A list of modules whose parameters the owner sees (names "0", "1", ...); it has no forward."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[_key_at(self, index)]

    def __setitem__(self, index, module):
        self.add_module(_key_at(self, index), module)

    def __delitem__(self, index):
        _delete_and_renumber(self, index)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))

    append, extend, insert, pop = Sequential.append, Sequential.extend, Sequential.insert, Sequential.pop

    def __repr__(self):
        """PyTorch's: a run of modules that print the same is one line, "(2-5): 4 x Block(...)"."""
        runs = []  # [first, last, repr]
        for i, module in enumerate(self):
            text = repr(module)
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        if not runs:
            return "ModuleList()"
        lines = [(f"({first}): " if first == last else f"({first}-{last}): {last - first + 1} x ")
                 + text.replace("\n", "\n  ") for first, last, text in runs]
        return "ModuleList(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """An ordered dict of modules whose parameters the owner sees (names are the keys); it has no forward."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key):
        return self._modules.pop(key)

    def clear(self):
        self._modules.clear()

    def update(self, modules):
        """From a mapping, or an iterable of (key, module) pairs."""
        for key, module in (modules.items() if isinstance(modules, Mapping) else modules):
            self.add_module(key, module)


class ParameterList(Module):
    """A list of Parameters whose owner sees them (names "0", "1", ...); plain tensors are wrapped."""

    def __init__(self, values=None):
        super().__init__()
        for value in values or []:
            self.append(value)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ParameterList(list(self)[index])
        return self._parameters[_key_at(self, index, "parameters")]

    def __setitem__(self, index, value):
        self.register_parameter(_key_at(self, index, "parameters"), _as_parameter(value))

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __iadd__(self, values):
        return self.extend(values)

    def append(self, value):
        self.register_parameter(str(len(self)), _as_parameter(value))
        return self

    def extend(self, values):
        for value in values:
            self.append(value)
        return self

    def extra_repr(self):
        return _parameter_lines(self)


class ParameterDict(Module):
    """An ordered dict of Parameters whose owner sees them (names are the keys); plain tensors are wrapped."""

    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key):
        return self._parameters[key]

    def __setitem__(self, key, value):
        self.register_parameter(key, _as_parameter(value))

    def __delitem__(self, key):
        del self._parameters[key]

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, key):
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def values(self):
        return self._parameters.values()

    def items(self):
        return self._parameters.items()

    def update(self, parameters):
        for key, value in (parameters.items() if isinstance(parameters, Mapping) else parameters):
            self[key] = value

    def extra_repr(self):
        return _parameter_lines(self)


def _parameter_lines(container):
    return "\n".join(f"({name}): Parameter containing: [{p.dtype} of size {'x'.join(map(str, p.shape))}]"
                     for name, p in container._parameters.items())


def _as_parameter(value):
    return value if isinstance(value, Parameter) or value is None else Parameter(value)


