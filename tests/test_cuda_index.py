"""CUDA scatter kernels in every dtype, with int32 and int64 indices, against the CPU kernels: put (the
unique-positions kernel and the in-order one) and scatter_, writing or accumulating. The gcov coverage of
src/cuda (scripts/cuda_emulator/select_profile.py) found these instances run by no other test. Skipped as
a whole when no GPU is usable."""
import numpy as np
import pytest

import convlab as cl
from conftest import CUDA_SKIP

pytestmark = CUDA_SKIP

DTYPES = ["bool", "int32", "int64", "float32", "float64"]


def values(rng, shape, dtype):
    return np.round(rng.standard_normal(shape) * 3).astype(dtype)


def both(a, device_fn):
    """device_fn(NDArray on device) for a CPU and a CUDA copy of a; returns the two results as NumPy arrays."""
    return [device_fn(cl.NDArray.from_numpy(a, device=d), d).numpy() for d in ("cpu", "cuda")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
@pytest.mark.parametrize("unique", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_put_matches_cpu(dtype, index_dtype, unique, accumulate):
    if accumulate and dtype == "bool":
        pytest.skip("bool does not accumulate")
    rng = np.random.default_rng(30)
    base, src = values(rng, (3, 7, 4), dtype), values(rng, (3, 5, 4), dtype)
    index = (rng.permutation(7)[:5] - 3).astype(index_dtype)  # distinct positions, some from the end

    def put(a, device):
        a.put(1, cl.NDArray.from_numpy(index, device=device), cl.NDArray.from_numpy(src, device=device),
              accumulate=accumulate, unique_indices=unique)
        return a

    cpu, cuda = both(base, put)
    np.testing.assert_array_equal(cuda, cpu)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
def test_scatter_matches_cpu(dtype, index_dtype):
    rng = np.random.default_rng(31)
    base, src = values(rng, (5, 6), dtype), values(rng, (4, 6), dtype)
    index = rng.integers(0, 5, (4, 6)).astype(index_dtype)  # repeated positions: the last one stays
    for accumulate in [False] if dtype == "bool" else [False, True]:
        def scatter(a, device):
            return a.scatter_(0, cl.NDArray.from_numpy(index, device=device),
                              cl.NDArray.from_numpy(src, device=device), accumulate=accumulate) or a

        cpu, cuda = both(base, scatter)
        np.testing.assert_array_equal(cuda, cpu)
