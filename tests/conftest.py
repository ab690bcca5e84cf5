import numpy as np
import pytest

import convlab as cl

CUDA_SKIP = pytest.mark.skipif(
    not cl.cuda.is_available(),
    reason="CUDA backend not compiled in or no GPU visible"
    if not cl._C.cuda_compiled()
    else "CUDA backend compiled, but no GPU is visible",
)

# Every device-parametrised test runs on the CPU and, where a GPU is usable, on CUDA.
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA_SKIP)]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)
