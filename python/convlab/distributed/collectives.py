"""The process group and collectives on convlab tensors, run by torch.distributed.

A collective gets a torch tensor that views the convlab tensor's memory (torch.from_dlpack: no copy for a
contiguous tensor; a non-contiguous one goes through a compact copy that is written back), so the result
lands in the convlab tensor itself, as torch.distributed's collectives work in place."""
from .. import cuda
from ..tensor import Tensor

try:
    import torch
    import torch.distributed as _dist
except ImportError:  # the core package needs no PyTorch; only convlab.distributed does
    torch = _dist = None


class ReduceOp:
    """all_reduce's op: torch.distributed.ReduceOp's names. AVG (which gloo lacks) is SUM then a division."""
    SUM, PRODUCT, MIN, MAX, AVG = "sum", "product", "min", "max", "avg"


def is_available():
    """True when torch.distributed, the engine convlab.distributed runs on, is installed."""
    return _dist is not None and _dist.is_available()


def _engine():
    if not is_available():
        raise ImportError("convlab.distributed runs on torch.distributed, which is not installed here: "
                          "pip install 'convlab[distributed]'")
    return _dist


def _group_engine(what):
    dist = _engine()
    if not dist.is_initialized():
        raise RuntimeError(f"{what}: the default process group is not initialised; call "
                           f"convlab.distributed.init_process_group() first (under torchrun, or with MASTER_ADDR, "
                           f"MASTER_PORT, RANK and WORLD_SIZE set)")
    return dist


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1, store=None):
    """torch.distributed.init_process_group with convlab's default backend: gloo for CPU tensors, and NCCL
    for CUDA tensors when both convlab and PyTorch see a GPU. timeout (a datetime.timedelta) bounds how long
    a collective waits for a rank that does not come (PyTorch's default: 30 minutes)."""
    dist = _engine()
    if backend is None:
        backend = "cpu:gloo,cuda:nccl" if cuda.is_available() and torch.cuda.is_available() else "gloo"
    extra = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group(backend, init_method=init_method, world_size=world_size, rank=rank, store=store,
                            **extra)


def is_initialized():
    return is_available() and _dist.is_initialized()


def destroy_process_group(group=None):
    _group_engine("destroy_process_group").destroy_process_group(group)


def get_rank(group=None):
    return _group_engine("get_rank").get_rank(group)


def get_world_size(group=None):
    return _group_engine("get_world_size").get_world_size(group)


class Work:
    """What a collective with async_op=True returns: wait() blocks until the result is in the tensor."""

    def __init__(self, what, work, finish=None):
        self._what, self._work, self._finish = what, work, finish

    def wait(self):
        try:
            self._work.wait()
        except RuntimeError as e:
            raise RuntimeError(f"convlab.distributed.{self._what} on rank {_dist.get_rank()}: another rank failed "
                               f"or did not answer in time: {e}") from e
        if self._finish is not None:
            self._finish()
            self._finish = None
        return True

    def is_completed(self):
        return self._work.is_completed()


def _shared(tensor, what):
    """A torch tensor viewing `tensor`'s memory, or a compact copy of it, and what writes the copy back."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what}: tensor must be a convlab Tensor, got {type(tensor).__name__}")
    data = tensor._data
    if data.is_contiguous():
        return torch.from_dlpack(data), None
    compact = data.compact()

    def write_back():
        data[...] = compact
    return torch.from_dlpack(compact), write_back


def _run(what, work, finish, async_op):
    work = Work(what, work, finish)
    if async_op:
        return work
    work.wait()
    return None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduces `tensor` over every rank of the group, in place: each rank ends with the same result."""
    dist = _group_engine("all_reduce")
    names = (ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX, ReduceOp.AVG)
    if op not in names:
        raise ValueError(f"all_reduce: op must be one of ReduceOp.{', ReduceOp.'.join(n.upper() for n in names)}, "
                         f"got {op!r}")
    average = op == ReduceOp.AVG
    if average and not tensor.is_floating_point():
        raise TypeError(f"all_reduce: ReduceOp.AVG needs a floating-point tensor, got {tensor.dtype}")
    view, write_back = _shared(tensor, "all_reduce")
    work = dist.all_reduce(view, op=getattr(dist.ReduceOp, "SUM" if average else op.upper()), group=group,
                           async_op=True)

    def finish():
        if average:
            view.div_(dist.get_world_size(group))
        if write_back is not None:
            write_back()
    return _run("all_reduce", work, finish, async_op)


def broadcast(tensor, src=0, group=None, async_op=False):
    """Copies rank `src`'s `tensor` into `tensor` on every other rank of the group."""
    dist = _group_engine("broadcast")
    view, write_back = _shared(tensor, "broadcast")
    return _run("broadcast", dist.broadcast(view, src=src, group=group, async_op=True), write_back, async_op)


def barrier(group=None, async_op=False):
    """Returns (or, with async_op, completes) once every rank of the group has reached it."""
    return _run("barrier", _group_engine("barrier").barrier(group=group, async_op=True), None, async_op)
