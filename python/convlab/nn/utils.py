"""convlab.nn.utils: gradient clipping, as torch.nn.utils."""
import math

from ..autograd import no_grad
from ..tensor import Tensor


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
        g._data = g._data.maximum(-clip_value).minimum(clip_value)
