"""convlab.optim: PyTorch's optimizers with their exact update rules, on the parameters' data (an update is
not part of any autograd graph), written into the parameters' storage in place as PyTorch does (state_dict()
entries and other views see the new values). SGD and Adam/AdamW run one fused kernel per parameter
(_C.sgd_step_, _C.adam_step_: one pass over p, its gradient and its state), the others NDArray arithmetic.
Learning-rate schedules are in convlab.optim.lr_scheduler."""
import copy

from .. import _C
from ..tensor import Tensor, _ndarray_from, write_

NDArray = _C.NDArray


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = defaults
        self.param_groups = []
        self.state = {}  # param -> that parameter's buffers (a Tensor hashes by identity)
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

    def _params_to_step(self):
        """(group, p, state) for each parameter that has a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, self.state.setdefault(p, {})

    def _params_with_grad(self):
        """(group, p, state, g) for each parameter that has a gradient, g being the gradient the update uses:
        negated under maximize, plus weight_decay * p (L2 in the gradient). SGD and Adam do without: their
        fused kernels (_C.sgd_step_, _C.adam_step_) apply both in the same pass as the update."""
        for group, p, state in self._params_to_step():
            g = -p.grad._data if group["maximize"] else p.grad._data
            yield group, p, state, g + p._data * group["weight_decay"] if group["weight_decay"] else g

    def step(self, closure=None):
        """closure, as in PyTorch: re-evaluates the model and returns the loss, which step returns."""
        loss = None if closure is None else closure()
        self._update()
        return loss

    def _update(self):
        raise NotImplementedError

    def state_dict(self):
        """PyTorch's layout: {"state": {index: buffers}, "param_groups": [options + "params": [indices]]},
        parameters numbered in group order. Buffers are Tensors sharing the optimizer's storage."""
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        state = {index[id(p)]: {k: Tensor(v) if isinstance(v, NDArray) else v for k, v in s.items()}
                 for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Takes options and buffers from a state_dict() of an optimizer over parameters of the same shapes;
        buffers are copied to each parameter's dtype and device."""
        name = type(self).__name__
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(groups)} parameter groups, the "
                             f"optimizer has {len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} holds {len(saved['params'])} "
                                 f"parameters in the state dict and {len(own['params'])} in the optimizer")
        params = {i: p for saved, own in zip(groups, self.param_groups) for i, p in zip(saved["params"], own["params"])}
        self.state = {}
        for i, buffers in state_dict["state"].items():
            p = params[i]
            self.state[p] = {k: _ndarray_from(v, p.dtype, p.device) if isinstance(v, (Tensor, NDArray)) else
                             copy.deepcopy(v) for k, v in buffers.items()}
        self.param_groups = [{**copy.deepcopy({k: v for k, v in saved.items() if k != "params"}),
                              "params": own["params"]} for saved, own in zip(groups, self.param_groups)]


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

    def _update(self):
        """One pass per parameter (_C.sgd_step_), updating p and its momentum buffer in place."""
        for group, p, state in self._params_to_step():
            buf, first_step = None, False
            if group["momentum"]:
                buf = state.get("momentum_buffer")
                first_step = buf is None
                if first_step:
                    buf = state["momentum_buffer"] = NDArray.empty(p.shape, p._data.dtype, p._data.device)
            _C.sgd_step_(p._data, p.grad._data, buf, lr=group["lr"], weight_decay=group["weight_decay"],
                         momentum=group["momentum"], dampening=group["dampening"], nesterov=group["nesterov"],
                         maximize=group["maximize"], first_step=first_step)


class Adam(Optimizer):
    """m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    p = p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps); amsgrad uses the running max of v.
    Weight decay adds wd*p to g, or with decoupled_weight_decay (AdamW) first scales p by (1 - lr*wd)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        name = type(self).__name__
        if lr < 0.0:
            raise ValueError(f"{name}: invalid learning rate lr={lr}")
        if eps < 0.0:
            raise ValueError(f"{name}: invalid eps={eps}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"{name}: invalid betas={betas} (each must be in [0, 1))")
        if weight_decay < 0.0:
            raise ValueError(f"{name}: invalid weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _update(self):
        """One pass per parameter (_C.adam_step_), updating p and its moments in place."""
        for group, p, state in self._params_to_step():
            if not state:
                state["step"] = 0
                zeros = [NDArray.full(p.shape, 0.0, p._data.dtype, p._data.device) for _ in range(2 + group["amsgrad"])]
                state["exp_avg"], state["exp_avg_sq"] = zeros[:2]
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = zeros[2]
            state["step"] += 1
            beta1, beta2 = group["betas"]
            _C.adam_step_(p._data, p.grad._data, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq"),
                          step=state["step"], lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                          weight_decay=group["weight_decay"], maximize=group["maximize"],
                          decoupled_weight_decay=group["decoupled_weight_decay"])


def _check_options(name, **options):
    """Each option must be >= 0 (PyTorch's 'Invalid ...' checks)."""
    for key, value in options.items():
        if value < 0.0:
            raise ValueError(f"{name}: invalid {key}={value} (must be >= 0)")


class Adadelta(Optimizer):
    """v = rho*v + (1-rho)*g^2; d = sqrt(u + eps) / sqrt(v + eps) * g; u = rho*u + (1-rho)*d^2; p = p - lr*d."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *, maximize=False):
        _check_options("Adadelta", lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: invalid rho={rho} (must be in [0, 1])")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _update(self):
        for group, p, state, g in self._params_with_grad():
            rho, eps = group["rho"], group["eps"]
            if not state:
                state["step"] = 0
                state["square_avg"] = NDArray.full(g.shape, 0.0, g.dtype, g.device)
                state["acc_delta"] = NDArray.full(g.shape, 0.0, g.dtype, g.device)
            state["step"] += 1
            v = state["square_avg"] = state["square_avg"] * rho + g * g * (1.0 - rho)
            delta = (state["acc_delta"] + eps).sqrt() / (v + eps).sqrt() * g
            state["acc_delta"] = state["acc_delta"] * rho + delta * delta * (1.0 - rho)
            write_(p, p._data - delta * group["lr"])


class RMSprop(Optimizer):
    """v = alpha*v + (1-alpha)*g^2; centered: m = alpha*m + (1-alpha)*g, v - m^2 in place of v;
    p = p - lr * g / (sqrt(v) + eps), or through a momentum buffer b = momentum*b + g / (sqrt(v) + eps)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False):
        _check_options("RMSprop", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self):
        for group, p, state, g in self._params_with_grad():
            alpha = group["alpha"]
            if not state:
                state["step"] = 0
                state["square_avg"] = NDArray.full(g.shape, 0.0, g.dtype, g.device)
                if group["momentum"] > 0:
                    state["momentum_buffer"] = NDArray.full(g.shape, 0.0, g.dtype, g.device)
                if group["centered"]:
                    state["grad_avg"] = NDArray.full(g.shape, 0.0, g.dtype, g.device)
            state["step"] += 1
            v = state["square_avg"] = state["square_avg"] * alpha + g * g * (1.0 - alpha)
            if group["centered"]:
                m = state["grad_avg"] = state["grad_avg"] + (g - state["grad_avg"]) * (1.0 - alpha)
                v = v - m * m
            scaled = g / (v.sqrt() + group["eps"])
            if group["momentum"] > 0:
                scaled = state["momentum_buffer"] = state["momentum_buffer"] * group["momentum"] + scaled
            write_(p, p._data - scaled * group["lr"])


class Adagrad(Optimizer):
    """s = s + g^2; p = p - lr / (1 + (t-1)*lr_decay) * g / (sqrt(s) + eps)."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, *,
                 maximize=False):
        _check_options("Adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                       initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize))

    def _update(self):
        for group, p, state, g in self._params_with_grad():
            if not state:
                state["step"] = 0
                state["sum"] = NDArray.full(g.shape, float(group["initial_accumulator_value"]), g.dtype, g.device)
            state["step"] += 1
            lr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
            state["sum"] = state["sum"] + g * g
            write_(p, p._data - g / (state["sum"].sqrt() + group["eps"]) * lr)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's defaults (weight_decay=1e-2)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)


from . import lr_scheduler  # noqa: E402  (it builds on Optimizer)
