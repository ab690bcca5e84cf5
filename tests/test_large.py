"""Arrays of more than 2^31 elements: offsets, strides and loop counters are 64-bit all the way down.
Needs ~9 GB of memory and a minute, so it runs only when asked: CONVLAB_BIG=1 python -m pytest tests/test_large.py"""
import os

import numpy as np
import pytest

from convlab import NDArray

pytestmark = pytest.mark.skipif(os.environ.get("CONVLAB_BIG") != "1",
                                reason="allocates 2^31 + 40 float32 elements (~8.6 GB): set CONVLAB_BIG=1")

SIZE = 2**31 + 40


def test_more_than_2_31_elements():
    a = NDArray.full((SIZE,), 1.0, "float32")
    tail = a[2**31 + 8:]  # a view whose offset does not fit in 32 bits
    assert tail.offset == 2**31 + 8 and tail.shape == (32,)
    tail[::3] = 5.0  # setitem through the strided high view
    np.testing.assert_array_equal(a[2**31:].numpy(), np.r_[np.ones(8), np.tile([5.0, 1, 1], 11)[:32]])
    assert a[2**31 + 11].numpy() == 5.0 and a[2**31 + 12].numpy() == 1.0 and a[0].numpy() == 1.0
    # a reduction over all of it (float32 pairwise sum: exact enough to see every element)
    np.testing.assert_allclose(float(a.sum().numpy()), SIZE + 4 * 11, rtol=1e-6)
    # an element-wise kernel over all of it, then the elements at the far end
    b = a * 2.0
    np.testing.assert_array_equal(b[SIZE - 4:].numpy(), [2.0, 2.0, 10.0, 2.0])  # 2^31 + 38 was set
    c = a.reshape((2, SIZE // 2)).max(axes=1)  # rows of 2^30 + 20 elements
    np.testing.assert_array_equal(c.numpy(), [1.0, 5.0])
