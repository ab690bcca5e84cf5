"""convlab.utils.data against torch.utils.data: batches, order, shuffling, collation of every sample kind,
random_split, Subset / ConcatDataset, and the argument errors."""
import collections

import numpy as np
import pytest

import convlab as cl
from convlab.utils.data import (ConcatDataset, DataLoader, Dataset, IterableDataset, Subset, TensorDataset,
                                default_collate, random_split)
from autograd_helpers import torch_or_skip


def as_numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def same_structure(ours, theirs):
    """Collated batches hold the same values in the same containers (tensors compared as arrays)."""
    torch = torch_or_skip()
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, cl.Tensor), type(ours)
        np.testing.assert_array_equal(as_numpy(ours), theirs.numpy())
        assert as_numpy(ours).dtype == theirs.numpy().dtype
        return
    assert type(ours) is type(theirs), (type(ours), type(theirs))
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs)
        for key in theirs:
            same_structure(ours[key], theirs[key])
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            same_structure(a, b)
    else:
        assert ours == theirs


def test_tensor_dataset_batches_in_order_like_torch():
    torch = torch_or_skip()
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10) % 3
    ours = TensorDataset(cl.tensor(x), cl.tensor(y.astype(np.float32)))
    theirs = torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y.astype(np.float32)))
    assert len(ours) == 10
    np.testing.assert_array_equal(ours[3][0].numpy(), x[3])
    for batch_size, drop_last in [(4, False), (4, True), (1, False), (10, False), (32, False)]:
        a = list(DataLoader(ours, batch_size=batch_size, drop_last=drop_last))
        b = list(torch.utils.data.DataLoader(theirs, batch_size=batch_size, drop_last=drop_last))
        assert len(a) == len(b) == len(DataLoader(ours, batch_size=batch_size, drop_last=drop_last))
        for batch, ref in zip(a, b):
            same_structure(list(batch), list(ref))


def test_shuffle_visits_every_sample_once_per_epoch_and_follows_manual_seed():
    data = TensorDataset(cl.arange(50))
    loader = DataLoader(data, batch_size=8, shuffle=True)
    epochs = [np.concatenate([b[0].numpy() for b in loader]) for _ in range(2)]
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), np.arange(50))
    assert not np.array_equal(epochs[0], epochs[1])  # a fresh permutation each epoch
    cl.manual_seed(7)
    first = np.concatenate([b[0].numpy() for b in loader])
    cl.manual_seed(7)
    np.testing.assert_array_equal(first, np.concatenate([b[0].numpy() for b in loader]))
    seeded = DataLoader(data, batch_size=50, shuffle=True, generator=np.random.default_rng(3))
    np.testing.assert_array_equal(next(iter(seeded))[0].numpy(), np.random.default_rng(3).permutation(50))


class Samples(Dataset):
    """One sample of every kind default_collate handles."""

    def __init__(self, make):
        self.make = make

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return self.make(i)


Point = collections.namedtuple("Point", ["x", "label"])


def sample_kinds(lib):
    return {
        "tuple_of_array_and_int": lambda i: (np.full((2, 3), i, dtype=np.float32), i),
        "float_and_bool": lambda i: [i * 0.5, i % 2 == 0],
        "dict": lambda i: {"image": np.full(4, i, dtype=np.float64), "name": f"s{i}", "id": np.int64(i)},
        "namedtuple": lambda i: Point(lib.ones(2) * i, i),
        "tensor": lambda i: lib.ones(3, 2) * i,
        "nested": lambda i: ({"a": (i, [i * 1.5, np.float32(i)])}, "text"),
    }


@pytest.mark.parametrize("kind", sorted(sample_kinds(cl)))
def test_default_collate_matches_torch(kind):
    torch = torch_or_skip()
    ours = DataLoader(Samples(sample_kinds(cl)[kind]), batch_size=3)
    theirs = torch.utils.data.DataLoader(Samples(sample_kinds(torch)[kind]), batch_size=3)
    for a, b in zip(ours, theirs):
        same_structure(a, b)
    assert default_collate([0.5, 1.0]).dtype == cl.float64  # Python floats collate to float64, as in PyTorch
    assert default_collate([1, 2]).dtype == cl.int64 and default_collate([True]).dtype == cl.bool


def test_custom_collate_batch_sampler_and_unbatched_loading():
    data = TensorDataset(cl.arange(6), cl.arange(6) * 2)
    sums = list(DataLoader(data, batch_size=4, collate_fn=lambda batch: sum(float(x) for x, _ in batch)))
    assert sums == [6.0, 9.0]
    picked = [b[0].numpy().tolist() for b in DataLoader(data, batch_sampler=[[5, 0], [2]])]
    assert picked == [[5.0, 0.0], [2.0]]
    unbatched = list(DataLoader(data, batch_size=None))
    assert len(unbatched) == 6 and unbatched[2][1].item() == 4.0
    assert len(list(DataLoader(data, batch_size=4, num_workers=2, pin_memory=True))) == 2  # accepted, in-process


def test_iterable_dataset():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(np.arange(7, dtype=np.float32))

    batches = [b.numpy().tolist() for b in DataLoader(Stream(), batch_size=3)]
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(list(DataLoader(Stream(), batch_size=3, drop_last=True))) == 2
    with pytest.raises(ValueError, match="IterableDataset takes no shuffle"):
        DataLoader(Stream(), shuffle=True)
    with pytest.raises(TypeError, match="no length"):
        len(DataLoader(Stream()))


def test_random_split_subset_and_concat_match_torch_sizes():
    torch = torch_or_skip()
    data = TensorDataset(cl.arange(10))
    for lengths in ([3, 7], [0.3, 0.3, 0.4], [0.25, 0.75], [1.0]):
        parts = random_split(data, lengths)
        ref = torch.utils.data.random_split(torch.utils.data.TensorDataset(torch.arange(10)), lengths)
        assert [len(p) for p in parts] == [len(r) for r in ref]
        seen = sorted(int(p[i][0].item()) for p in parts for i in range(len(p)))
        assert seen == list(range(10))
    a, b = random_split(data, [4, 6], generator=np.random.default_rng(0))
    assert isinstance(a, Subset) and a.indices == [int(i) for i in np.random.default_rng(0).permutation(10)[:4]]
    both = ConcatDataset([Subset(data, [9, 8]), data]) + Subset(data, [1])
    assert len(both) == 13
    assert [int(both[i][0].item()) for i in (0, 1, 2, 11, -1, -13)] == [9, 8, 0, 9, 1, 9]
    with pytest.raises(IndexError, match="index -14 is out of range for 13 samples"):
        both[-14]


def test_data_errors():
    with pytest.raises(ValueError, match=r"same size in dim 0, got shapes \[\(3,\), \(4,\)\]"):
        TensorDataset(cl.zeros(3), cl.zeros(4))
    with pytest.raises(TypeError, match=r"expected one or more convlab Tensors, got \['ndarray'\]"):
        TensorDataset(np.zeros(3))
    data = TensorDataset(cl.zeros(3))
    with pytest.raises(ValueError, match="batch_size should be a positive integer, got 0"):
        DataLoader(data, batch_size=0)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(data, shuffle=True, sampler=[0, 1])
    with pytest.raises(ValueError, match="sum to 2, not to the dataset's length 3"):
        random_split(data, [1, 1])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, got \[\(2,\), \(3,\)\]"):
        default_collate([cl.zeros(2), cl.zeros(3)])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object()])
    assert cl.utils.data.DataLoader is DataLoader


def test_tensor_dataset_fast_path_gives_the_general_paths_batches():
    data = TensorDataset(cl.randn(23, 2, 3), cl.tensor(np.arange(23) % 4))
    cl.manual_seed(1)
    fast = list(DataLoader(data, batch_size=5, shuffle=True))
    cl.manual_seed(1)
    general = list(DataLoader(data, batch_size=5, shuffle=True, collate_fn=lambda b: default_collate(b)))
    assert len(fast) == len(general) == 5
    for a, b in zip(fast, general):
        assert isinstance(a, list) and len(a) == 2
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x.numpy(), y.numpy())
