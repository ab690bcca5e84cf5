"""What the programs share, the way a project keeps its helpers beside its scripts (d2l's `d2l.torch`):
weights ported from a seeded NumPy generator, and snapshots of gradients and parameters for RESULTS."""
import numpy as np
import torch


def init_params(model, seed=0):
    """Copies uniform(-1, 1) / sqrt(fan_in) values into every parameter, as code that ports weights does,
    so runs under different frameworks start from the same numbers."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for param in model.parameters():
            fan_in = param[0].numel() if param.dim() > 1 else param.numel()
            values = rng.uniform(-1.0, 1.0, size=tuple(param.shape)) / np.sqrt(fan_in)
            param.copy_(torch.tensor(values, dtype=param.dtype))


def gradients(model, prefix="grad."):
    """The gradient of every parameter that has one (frozen ones have none)."""
    return {prefix + name: param.grad.clone() for name, param in model.named_parameters()
            if param.grad is not None}


def parameters(model, prefix="state."):
    """The whole state_dict (buffers too: BatchNorm's running statistics)."""
    return {prefix + name: value.clone() for name, value in model.state_dict().items()}
