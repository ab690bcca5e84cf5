"""convlab.distributed: data-parallel training over torch.distributed (gloo on the CPU, NCCL on the GPU).

convlab sends no bytes itself: collectives run in PyTorch's engine on torch tensors that view convlab's
memory through DLPack (no copy for contiguous CPU tensors). Install with `pip install "convlab[distributed]"`
and launch with `torchrun --nproc_per_node N script.py`; see docs/distributed.md."""
from .collectives import (ReduceOp, all_reduce, barrier, broadcast, destroy_process_group, get_rank,
                          get_world_size, init_process_group, is_available, is_initialized)
from .parallel import DistributedDataParallel
from .sampler import DistributedSampler

__all__ = ["ReduceOp", "all_reduce", "barrier", "broadcast", "destroy_process_group", "get_rank",
           "get_world_size", "init_process_group", "is_available", "is_initialized", "DistributedDataParallel",
           "DistributedSampler"]
