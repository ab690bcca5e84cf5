"""convlab.linalg: the part of torch.linalg that CNN code uses."""
from .tensor import vector_norm

__all__ = ["vector_norm"]
