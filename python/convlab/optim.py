"""convlab.optim: SGD and Adam with PyTorch's exact update rules, written as NDArray arithmetic on the
parameters' data (an update is not part of any autograd graph) and stored into the parameters' storage in
place, as PyTorch does (state_dict() entries and other views see the new values)."""
from . import _C
from .tensor import Tensor, write_

NDArray = _C.NDArray


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = defaults
        self.param_groups = []
        self.state = {}  # id(param) -> that parameter's buffers
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or dicts, got a Tensor "
                            f"(pass [tensor] or model.parameters())")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        name = type(self).__name__
        if not params:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = Tensor(NDArray.full(p.grad.shape, 0.0, p.grad.dtype, p.grad.device))

    def _params_with_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, self.state.setdefault(id(p), {})

    def step(self):
        raise NotImplementedError


class SGD(Optimizer):
    """g = grad + wd*p; buf = momentum*buf + (1-dampening)*g (buf = g on the first step);
    g = g + momentum*buf (nesterov) or buf; p = p - lr*g."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        if lr < 0.0:
            raise ValueError(f"SGD: invalid learning rate lr={lr}")
        if momentum < 0.0:
            raise ValueError(f"SGD: invalid momentum={momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"SGD: invalid weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def step(self):
        for group, p, state in self._params_with_grad():
            g = -p.grad._data if group["maximize"] else p.grad._data
            if group["weight_decay"]:
                g = g + p._data * group["weight_decay"]
            momentum = group["momentum"]
            if momentum:
                buf = state.get("momentum_buffer")
                buf = g.copy() if buf is None else buf * momentum + g * (1.0 - group["dampening"])
                state["momentum_buffer"] = buf
                g = g + buf * momentum if group["nesterov"] else buf
            write_(p, p._data - g * group["lr"])


class Adam(Optimizer):
    """m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    p = p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps); amsgrad uses the running max of v."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False):
        if lr < 0.0:
            raise ValueError(f"Adam: invalid learning rate lr={lr}")
        if eps < 0.0:
            raise ValueError(f"Adam: invalid eps={eps}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Adam: invalid betas={betas} (each must be in [0, 1))")
        if weight_decay < 0.0:
            raise ValueError(f"Adam: invalid weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def step(self):
        for group, p, state in self._params_with_grad():
            beta1, beta2 = group["betas"]
            g = -p.grad._data if group["maximize"] else p.grad._data
            if group["weight_decay"]:
                g = g + p._data * group["weight_decay"]
            if not state:
                state["step"] = 0
                state["exp_avg"] = NDArray.full(g.shape, 0.0, g.dtype, g.device)
                state["exp_avg_sq"] = NDArray.full(g.shape, 0.0, g.dtype, g.device)
            state["step"] += 1
            t = state["step"]
            m = state["exp_avg"] = state["exp_avg"] + (g - state["exp_avg"]) * (1.0 - beta1)
            v = state["exp_avg_sq"] = state["exp_avg_sq"] * beta2 + g * g * (1.0 - beta2)
            if group["amsgrad"]:
                v = state["max_exp_avg_sq"] = v if t == 1 else state["max_exp_avg_sq"].maximum(v)
            denom = v.sqrt() / (1.0 - beta2 ** t) ** 0.5 + group["eps"]
            write_(p, p._data - (m / denom) * (group["lr"] / (1.0 - beta1 ** t)))
