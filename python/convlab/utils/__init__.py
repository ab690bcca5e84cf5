"""convlab.utils: data loading (convlab.utils.data), as torch.utils."""
from . import data

__all__ = ["data"]
