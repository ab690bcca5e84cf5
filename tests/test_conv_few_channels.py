"""The forward path for few output channels per group (src/cpu/conv_forward_channels.cpp), also stride-1
backward-input's engine on the flipped weight. Its gate (few_out_channels): a kernel larger than 1x1 and
c_out/groups at most 3 vectors; at stride 1 with at most 16 channels per group and 48 outputs or more per
image, the pixel lanes (outputs of a flat padded band in lanes, channels in chunks of up to 8 tile rows),
also at strides where images x groups >= 16 (the group's channels split into stride phases); else the
channel lanes, for K = c_in/groups*kh*kw >= 64 and c_out/groups over one vector (fp32: 17-48 on
AVX-512, 9-24 on AVX2), or one vector or less at a stride or with fewer than 48 outputs per image. The cases
below pick shapes that the gate takes on both ISAs and in both dtypes where the comment says so, and compare
every pass with the reference (the spec), NumPy loops and PyTorch, as test_conv does."""
import numpy as np
import pytest

import convlab as cl
from conftest import DEVICES
from test_conv import TOL, case, make_data, passes, ref_backward_input, torch_passes

C = cl._C
R = cl._C.reference

CASES = {
    # Two or three vectors of output channels (fp32), ResNeXt stage 4 / DenseNet-like: padded (pad_input),
    # grouped, batch 1, odd sizes; 20 per group are 3 vectors of fp64 on AVX-512.
    "groups2_cog20_padded": case(2, 16, 40, (7, 9), (3, 3), pad=((1, 1), (1, 1)), groups=2),
    "cog33_batch1_asym_pad": case(1, 9, 33, (6, 11), (3, 3), pad=((2, 0), (1, 3))),
    "cog24_dilated_strided": case(3, 8, 24, (13, 12), (3, 2), s=(2, 1), pad=((1, 2), (0, 1)), d=(2, 3)),
    "cog17_unpadded_in_place": case(2, 12, 17, (8, 10), (3, 3)),
    "cog48_stride_gt_kernel": case(2, 20, 48, (11, 13), (2, 2), s=(3, 4), pad=((0, 1), (1, 0))),
    # One vector or less: strides, or few outputs per image (DCGAN's last layer: 4x4 -> 1x1, c_out 1).
    "cog1_output_1x1": case(3, 40, 1, (4, 4), (4, 4)),
    "cog3_output_2x3_padded": case(2, 10, 3, (3, 4), (3, 3), pad=((1, 0), (1, 1))),
    "grouped_cog4_stride2": case(2, 32, 16, (9, 10), (3, 3), s=(2, 2), pad=((1, 1), (1, 1)), groups=4),
    "grouped_cog8_stride2_1d": case(1, 16, 16, (1, 23), (1, 9), s=(1, 2), pad=((0, 0), (4, 3)), groups=2),
    # Stride-1 backward-input is this forward on the flipped weight: c_in/groups becomes its output channels
    # (40: 3 fp32 vectors; 20: 2 fp32, 3 fp64 vectors), c_out/groups*kh*kw its K.
    "backward_input_cig40": case(2, 40, 12, (10, 9), (3, 3), pad=((1, 1), (2, 0))),
    "backward_input_cig20_dilated": case(1, 20, 8, (9, 11), (3, 3), pad=((1, 1), (1, 1)), d=(1, 2)),
    # Over 2^19 multiply-adds: two threads share the tiles; 12-row tiles across image boundaries (49 = 4*12 + 1).
    "threads_grouped_7x7": case(4, 128, 128, (7, 7), (3, 3), pad=((1, 1), (1, 1)), groups=4),
    # Channel lanes by windows of live taps (x read in place, taps in the padding skipped): ResNeXt stage 4's
    # 7x7 with 32 per group at batch 3 (its 9 windows: 3 x 25, 3 x 5 and 3 x 1 outputs, tails of 2-12 rows).
    "windows_7x7_cog32_batch3": case(3, 64, 64, (7, 7), (3, 3), pad=((1, 1), (1, 1)), groups=2),
    # Outputs whose every tap reads padding (row 0 and column 0: stride 3 > kernel 2 past a padding of 2):
    # an empty window, bias alone.
    "windows_empty_cog20": case(2, 16, 20, (7, 8), (2, 2), s=(3, 3), pad=((2, 0), (2, 1))),
    # One image's outputs past 1/16 of L2 (32 x 40 x 24 fp32: 120 KiB): tasks of row bands; over 2^19
    # multiply-adds, so two threads share them (K = 576: the channel lanes at stride 1).
    "windows_bands_cog32": case(1, 64, 32, (40, 24), (3, 3), pad=((1, 1), (1, 1))),
    # A 15x9 kernel over 20x12 with padding 7 and 4: windows' tables of 8 x 169 x 61 entries (over 2^16), so
    # the zero-padded copy runs, as one window.
    "padded_copy_large_kernel": case(1, 8, 20, (20, 12), (15, 9), pad=((7, 7), (4, 4))),
    # Pixel lanes (stride 1, <= 16 channels per group): ResNeXt-like groups of 8 (one chunk of 8 rows).
    "pixel_groups4_cog8": case(2, 32, 32, (11, 13), (3, 3), pad=((1, 1), (1, 1)), groups=4),
    # 13 channels: chunks of 7 and 6 rows; batch 1, one group: bands of one output row; dilation and
    # asymmetric padding (the flat grid's row pitch is the padded width, 21).
    "pixel_cog13_dilated_asym_pad": case(1, 6, 13, (12, 17), (3, 2), pad=((2, 0), (1, 3)), d=(2, 3)),
    # Rows of 5 outputs (16-byte runs, the last overlapping), no padding (x's rows copied whole), 3 channels.
    "pixel_cog3_width5_unpadded": case(3, 4, 3, (20, 7), (3, 3)),
    # Rows of 2 outputs (element-wise runs), one input channel (K = 15, LeNet's first layer is K = 25).
    "pixel_cin1_width2": case(2, 1, 6, (40, 4), (5, 3), pad=((2, 2), (0, 0))),
    # 16 per group: two chunks of 8; two tasks' worth of images x groups, so bands of 2 rows, the last of 1.
    "pixel_cog16_bands": case(1, 16, 32, (9, 30), (3, 3), pad=((1, 1), (1, 1)), groups=2),
    # A 1-d kernel along the rows (kh = 1), 4 per group.
    "pixel_cog4_1d": case(2, 8, 8, (1, 70), (1, 5), pad=((0, 0), (2, 2)), groups=2),
    # 64 input channels of 302 padded columns: a band of one output row fits a quarter of a 1 MiB L2.
    "pixel_wide_rows_band_by_cache": case(1, 64, 2, (4, 300), (3, 3), pad=((1, 1), (1, 1))),
    # Pixel lanes at strides (images x groups >= 16: one band a task, the group's channels in stride phases):
    # stride 2 split in whole vectors, 9 columns a phase row (the vector spills into the next row's place).
    "pixel_stride2_groups8_cog8": case(2, 64, 64, (17, 15), (3, 3), s=(2, 2), pad=((1, 1), (1, 1)), groups=8),
    # Rows 3 phases, columns 2, every phase read through the dilation; asymmetric padding, 3 per group.
    "pixel_stride3x2_dilated_cog3": case(4, 16, 12, (20, 19), (3, 2), s=(3, 2), pad=((1, 2), (0, 1)), d=(2, 1),
                                         groups=4),
    # Column stride 4 > kernel (element-wise split, phases b = 2, 3 unused), 10 channels: chunks of 5 and 5.
    "pixel_stride_gt_kernel_cog10": case(16, 6, 10, (25, 26), (2, 2), s=(3, 4)),
    # Row stride only: the column phase is the padded row itself.
    "pixel_stride2x1_cog6": case(2, 24, 48, (15, 20), (3, 3), s=(2, 1), pad=((1, 1), (1, 1)), groups=8),
    # Backward-input of 8 input channels per group at stride 1: the flipped forward on the pixel lanes.
    "backward_input_pixel_cig8": case(2, 16, 32, (10, 12), (3, 3), pad=((1, 1), (1, 1)), groups=2),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,c", CASES.items(), ids=list(CASES))
def test_few_channels_passes(name, c, dtype, device):
    x, w, b, y_np, gy = make_data(c, dtype, seed=len(name))
    x0, w0 = x.copy(), w.copy()
    ours = passes(C, x, w, b, gy, c, device)
    geometry = (c["s"], c["pad"], c["d"], c["groups"])
    numpy = (y_np, y_np - b[None, :, None, None], ref_backward_input(gy, w, c["hw"], *geometry))
    for got, ref, want in zip(ours, passes(R, x, w, b, gy, c, "cpu"), numpy):
        assert got.dtype == np.dtype(dtype) and got.shape == want.shape
        np.testing.assert_allclose(got, ref, **TOL[dtype])
        np.testing.assert_allclose(got, want, **TOL[dtype])
    for got, want in zip(ours, torch_passes(x, w, b, gy, c)):
        np.testing.assert_allclose(got, want, **TOL[dtype])
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("seed", range(4))
def test_few_channels_random(seed):
    """Random shapes inside the gate (c_out/groups 17-48, K >= 64) and at strides with few channels."""
    rng = np.random.default_rng(seed)
    for _ in range(6):
        groups = int(rng.choice([1, 2, 3]))
        cog = int(rng.choice([int(rng.integers(17, 49)), int(rng.integers(1, 9))]))
        k = (int(rng.integers(2, 5)), int(rng.integers(1, 5)))
        cig = -(-64 // (k[0] * k[1])) + int(rng.integers(0, 5))
        s = (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
        d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pad = tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(2))
        hw = tuple(d[a] * (k[a] - 1) + 1 + int(rng.integers(0, 10)) for a in range(2))
        c = case(int(rng.integers(1, 4)), cig * groups, cog * groups, hw, k, s, pad, d, groups)
        x, w, b, y_np, gy = make_data(c, "float32", seed=seed)
        for got, ref in zip(passes(C, x, w, b, gy, c, "cpu")[:3], passes(R, x, w, b, gy, c, "cpu")[:3]):
            np.testing.assert_allclose(got, ref, **TOL["float32"])
