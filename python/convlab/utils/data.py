"""Datasets and the DataLoader, as torch.utils.data: a Dataset maps an index to a sample, a DataLoader
draws indices (in order, or shuffled by convlab's generator, which convlab.manual_seed seeds), groups them
into batches and collates each batch into convlab tensors.

Loading runs in the calling process: num_workers, pin_memory and the other worker options are accepted
for PyTorch code and change nothing.
"""
import bisect
import collections.abc
import math
import numbers

import numpy as np

from ..tensor import Tensor, generator, tensor


class Dataset:
    """A map-style dataset: __getitem__(index) and __len__."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} has no __getitem__()")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: __iter__ instead of indexing."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} has no __iter__()")


class TensorDataset(Dataset):
    """Sample i is (t[i] for t in tensors); every tensor must have the same first dimension."""

    def __init__(self, *tensors):
        if not tensors or not all(isinstance(t, Tensor) for t in tensors):
            raise TypeError(f"TensorDataset: expected one or more convlab Tensors, got "
                            f"{[type(t).__name__ for t in tensors]}")
        sizes = [t.shape[0] if t.ndim else None for t in tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: every tensor must have the same size in dim 0, got shapes "
                             f"{[tuple(t.shape) for t in tensors]}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of dataset at the given indices, in that order."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        if isinstance(index, list):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """The datasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self):
        return int(self.cumulative_sizes[-1]) if self.cumulative_sizes else 0

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise IndexError(f"ConcatDataset: index {index} is out of range for {len(self)} samples")
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def _permutation(n, rng):
    return [int(i) for i in (rng or generator()).permutation(n)]


def random_split(dataset, lengths, generator=None):
    """Subsets of the given lengths over one random permutation; lengths that are fractions summing to 1
    become floor(f * n), the remainder handed out one by one from the first, as PyTorch does. generator: a
    NumPy Generator, or None for convlab's."""
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths {lengths} sum to {sum(lengths)}, not to the dataset's length {n}")
    order = _permutation(n, generator)
    offsets = np.cumsum([0] + lengths)
    return [Subset(dataset, order[lo:hi]) for lo, hi in zip(offsets[:-1], offsets[1:])]


class SequentialSampler:
    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler:
    """A fresh permutation of the indices each epoch."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if replacement or num_samples is not None:
            raise ValueError("RandomSampler: replacement and num_samples are not supported")
        self.data_source, self.generator = data_source, generator

    def __iter__(self):
        return iter(_permutation(len(self.data_source), self.generator))

    def __len__(self):
        return len(self.data_source)


class BatchSampler:
    """Groups the sampler's indices into lists of batch_size (the last one shorter unless drop_last)."""

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size should be a positive integer, got {batch_size!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def default_convert(data):
    """A sample as it is, with NumPy arrays (of numbers) turned into tensors: what an unbatched loader yields."""
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf":
        return tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return type(data)({key: default_convert(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (tuple, list)):
        return type(data)(default_convert(d) for d in data)
    return data


def default_collate(batch):
    """PyTorch's rules: tensors and NumPy arrays are stacked along a new first dim (keeping dtype and
    device), Python floats become a float64 tensor, ints an int64 one, bools a bool one; strings stay as
    given; mappings, named tuples and sequences (into lists) are collated field by field."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        if any(not isinstance(b, Tensor) or b.shape != elem.shape for b in batch):
            raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, got "
                               f"{[tuple(b.shape) if isinstance(b, Tensor) else type(b).__name__ for b in batch]}")
        # batches are assembled on the host, as PyTorch's loader does; the result goes to elem's device
        return tensor(np.stack([b.numpy() for b in batch]), dtype=elem.dtype, device=elem.device)
    if isinstance(elem, (np.ndarray, np.generic)) and elem.dtype.kind in "biuf":
        return tensor(np.stack([np.asarray(b) for b in batch]))
    if isinstance(elem, bool):
        return tensor(np.array(batch, dtype=bool))
    if isinstance(elem, numbers.Integral):
        return tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, numbers.Real):
        return tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return type(elem)({key: default_collate([d[key] for d in batch]) for key in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(b) != len(elem) for b in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of equal size")
        return [default_collate(samples) for samples in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, NumPy arrays, numbers, dicts or lists; found "
                    f"{type(elem).__name__}")


class DataLoader:
    """Iterates over batches of dataset: batch_size samples (None: one unbatched sample at a time), in order
    or shuffled anew each epoch, the last short batch kept unless drop_last, collated by collate_fn."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be >= 0, got {num_workers}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                             "sampler, and drop_last")
        self.dataset, self.num_workers, self.drop_last, self.generator = dataset, num_workers, drop_last, generator
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable and (shuffle or sampler is not None or batch_sampler is not None):
            raise ValueError("DataLoader: an IterableDataset takes no shuffle, sampler or batch_sampler")
        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_sampler is None and batch_size is not None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        elif batch_sampler is not None:
            batch_size = None
        self.batch_size, self.sampler, self.batch_sampler = batch_size, sampler, batch_sampler
        self.collate_fn = collate_fn or (default_collate if batch_size is not None or batch_sampler is not None
                                         else default_convert)

    def __iter__(self):
        if self._iterable:
            return self._iterate_stream()
        if self.batch_sampler is None:
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        return (self._fetch(indices) for indices in self.batch_sampler)

    def _fetch(self, indices):
        if type(self.dataset) is TensorDataset and self.collate_fn is default_collate:
            # one gather per tensor gives the batch that len(indices) lookups and a stack would, ~5x faster
            index = tensor(np.asarray(indices, dtype=np.int64))
            return [t[index] for t in self.dataset.tensors]
        return self.collate_fn([self.dataset[i] for i in indices])

    def _iterate_stream(self):
        if self.batch_size is None:
            yield from (self.collate_fn(sample) for sample in self.dataset)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __len__(self):
        if self._iterable:
            raise TypeError("DataLoader: an IterableDataset has no length")
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)
