"""DistributedSampler: each rank's share of a dataset's indices (PyTorch's torch.utils.data.distributed one)."""
import numpy as np

from .collectives import get_rank, get_world_size


class DistributedSampler:
    """Indices rank, rank + num_replicas, ... of a permutation of range(len(dataset)) that is the same on
    every rank (seeded by seed + epoch; call set_epoch(epoch) each epoch for a new one). The list is
    padded with its first indices to a multiple of num_replicas so every rank gets len(self) samples,
    or trimmed to one with drop_last. Pass it to DataLoader(sampler=...)."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        num_replicas = get_world_size() if num_replicas is None else int(num_replicas)
        rank = get_rank() if rank is None else int(rank)
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas - 1}], got {rank}")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        n = len(dataset)
        self.num_samples = n // num_replicas if drop_last else -(-n // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self):
        n = len(self.dataset)
        order = np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle else np.arange(n)
        order = order.tolist()
        if len(order) < self.total_size:
            order += (order * (-(-self.total_size // max(n, 1))))[:self.total_size - len(order)]
        return iter(order[:self.total_size][self.rank::self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        self.epoch = int(epoch)
