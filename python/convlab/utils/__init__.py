"""convlab.utils: data loading (convlab.utils.data) and DLPack exchange (convlab.utils.dlpack), as torch.utils."""
from . import data, dlpack

__all__ = ["data", "dlpack"]
