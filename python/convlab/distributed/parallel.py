"""DistributedDataParallel: one model replica per process, gradients averaged over the ranks in buckets.

At construction rank 0's parameters and buffers are broadcast, so every replica starts equal. During
backward each parameter's post-accumulate-grad hook copies its gradient into a bucket (a flat array of
about bucket_cap_mb, parameters in reverse registration order, the order backward reaches them); a full
bucket's all-reduce starts at once, asynchronously, and runs in the engine's threads while backward goes on
computing the earlier layers' gradients. The last hook of the backward waits for every bucket, divides by
the world size and hands each parameter a .grad viewing its slice of the averaged bucket. Equal
gradients and the same optimizer keep the replicas bit-identical."""
import contextlib

from .. import nn
from .._C import NDArray
from ..tensor import Tensor
from .collectives import Work, _group_engine, broadcast, torch


class _Bucket:
    def __init__(self, params):
        self.params = params
        self.starts, n = [], 0
        for p in params:
            self.starts.append(n)
            n += p.numel()
        self.flat = NDArray.empty((n,), params[0]._data.dtype, params[0]._data.device)
        self.view = torch.from_dlpack(self.flat)  # the engine's handle on the same memory
        self.ready = set()  # ids of the parameters whose gradient is in `flat` in this backward
        self.work = None

    def full(self):
        return len(self.ready) == len(self.params)


class DistributedDataParallel(nn.Module):
    """PyTorch's DistributedDataParallel over convlab.distributed's process group. device_ids and
    output_device are accepted and unused (a convlab process drives one device); init_sync=False skips the
    first broadcast (the replicas must then start equal by themselves); every parameter that requires grad
    must take part in each backward (find_unused_parameters=True is not supported). Move the module to its
    device and dtype before wrapping it: the buckets are made here."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True, init_sync=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False):
        super().__init__()
        dist = _group_engine("DistributedDataParallel")
        if dim != 0:
            raise ValueError(f"DistributedDataParallel: dim must be 0 (the batch axis), got {dim}")
        if find_unused_parameters:
            raise ValueError("DistributedDataParallel: find_unused_parameters=True is not supported; every "
                             "parameter that requires grad must take part in each backward")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.process_group = process_group
        self._world = dist.get_world_size(process_group)
        for t in list(module.parameters()) + list(module.buffers()) if init_sync else []:
            broadcast(t, 0, process_group)
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ValueError("DistributedDataParallel: the module has no parameter that requires grad")
        cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * 2**20)
        self._buckets, self._slot = [], {}
        current, size = [], 0
        for p in reversed(params):
            same_kind = not current or (p.dtype, p.device) == (current[0].dtype, current[0].device)
            if current and (size >= cap or not same_kind):
                self._buckets.append(_Bucket(current))
                current, size = [], 0
            current.append(p)
            size += p.numel() * p.element_size()
        self._buckets.append(_Bucket(current))
        for bucket in self._buckets:
            for p, start in zip(bucket.params, bucket.starts):
                self._slot[id(p)] = (bucket, start)
        self._next = 0  # the first bucket whose all-reduce has not started in this backward
        self._sync = True
        self._hooks = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]

    def forward(self, *inputs, **kwargs):
        waiting = [p for b in self._buckets if b.ready for p in b.params if id(p) not in b.ready]
        if waiting:
            raise RuntimeError(f"DistributedDataParallel: the last backward gave no gradient to {len(waiting)} "
                               f"parameter(s) of shapes {[tuple(p.shape) for p in waiting][:5]}, so their buckets "
                               f"were never averaged; every parameter that requires grad must take part in the "
                               f"loss")
        if self.broadcast_buffers and self._world > 1:
            for b in self.module.buffers():
                broadcast(b, 0, self.process_group)
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward inside accumulates local gradients only; the next backward outside averages the sum."""
        old, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = old

    def _grad_ready(self, p):
        if not self._sync:
            return
        bucket, start = self._slot[id(p)]
        bucket.flat[start:start + p.numel()] = p.grad._data.reshape(-1)
        bucket.ready.add(id(p))
        # Buckets start in the same order on every rank, as collectives must.
        while self._next < len(self._buckets) and self._buckets[self._next].full():
            b = self._buckets[self._next]
            b.work = Work("DistributedDataParallel all_reduce",
                          _group_engine("DistributedDataParallel").all_reduce(b.view, group=self.process_group,
                                                                              async_op=True))
            self._next += 1
        if self._next == len(self._buckets):
            self._average()

    def _average(self):
        for b in self._buckets:
            b.work.wait()
            b.view.div_(self._world)
            for p, start in zip(b.params, b.starts):
                p.grad = Tensor(b.flat[start:start + p.numel()].view(tuple(p.shape)))
            b.ready, b.work = set(), None
        self._next = 0
