"""Backward-to-weight's GEMM form (cpu/conv_backward_weight.cpp: 16 or more output channels per group, and
fewer where the dot products would waste most of their tile) on the shapes that reach each of its ways
through a batch: gy read in place one image at a time, or gathered across the images of a chunk (small
outputs); x read in place (1x1 convs); the batch's outputs cut into parts that cross image boundaries, summed
into copies of gw; and batches of several chunks, where a part continues in the next chunk. Each is checked
against the NumPy reference from the definition and convlab._C.reference, at 1, 2 and 3 threads (the thread
count changes the parts). Then the channel-minor form (ResNeXt-like groups of 16-32 output channels on small
images), the taps form (few input channels, many taps), the one-window matrix product, the dot products'
image parts and the dot products reading a 1x1 conv's x in place."""
import ctypes
import mmap
import sys

import numpy as np
import pytest

import convlab as cl
from test_conv import TOL, args, case, make_data, nd, ref_backward_weight

C = cl._C
R = cl._C.reference

CASES = {
    # 4x4 outputs, K >= 27: gathered on any cache size (the kc-deep slice is a multiple of 16, >= 64).
    "gathered": case(5, 3, 16, (4, 4), (3, 3), pad=((1, 1), (1, 1))),
    # 41 images of 16 outputs: parts of >= 256 outputs, so two, the second starting mid-image.
    "gathered_parts": case(41, 12, 24, (8, 8), (3, 3), s=(2, 2), pad=((1, 1), (1, 1))),
    "gathered_groups": case(9, 6, 32, (5, 4), (2, 3), pad=((1, 0), (1, 1)), d=(1, 2), groups=2),
    # 1x1, stride 1, no padding: x itself is the layout (no phased copy), gathered (K = 40) or not (K = 24).
    "identity_gathered": case(6, 40, 16, (4, 4), (1, 1)),
    "identity_in_place": case(2, 24, 16, (9, 13), (1, 1)),
    # 1x1 at column stride 2, no padding that an output reaches: x read in place, every other element of a
    # row (odd sizes: the last piece's second vector passes the row's end; row stride 3; bottom/right padding
    # beyond the last output's reach; groups; 4x4 outputs gathered). Padding reached, or column stride 3:
    # the phased copy.
    "strided_in_place": case(3, 20, 16, (9, 11), (1, 1), s=(2, 2)),
    "strided_in_place_rows3": case(2, 24, 32, (10, 37), (1, 1), s=(3, 2), pad=((0, 1), (0, 1))),
    "strided_in_place_groups_gathered": case(6, 40, 32, (8, 8), (1, 1), s=(2, 2), groups=2),
    "strided_padding_reached": case(2, 24, 16, (9, 9), (1, 1), s=(2, 2), pad=((0, 2), (0, 2))),
    "strided_by_3": case(2, 24, 16, (9, 10), (1, 1), s=(2, 3)),
    # Fewer than 16 output channels per group, on the GEMM where the dot products' tile would run mostly
    # empty: fewer channels than its rows (3 or 4), or an extended grid under half a vector (1x1 image).
    "few_channels": case(2, 10, 2, (11, 9), (3, 2), s=(2, 1), pad=((1, 0), (2, 1))),
    "one_pixel_grouped": case(4, 24, 12, (1, 1), (1, 1), groups=2),
    # 24x24 outputs, K = 36: read in place (a partial kc slice per image costs fewer C elements than the
    # gy copy); 1728 outputs in parts of 288 that start and end inside images.
    "in_place_parts": case(3, 4, 16, (24, 24), (3, 3), pad=((1, 1), (1, 1))),
}


def backward_weight_at_threads(x, gy, c, threads):
    old = C.get_num_threads()
    try:
        C.set_num_threads(threads)
        return C.conv_backward_weight(nd(x, "cpu"), nd(gy, "cpu"), list(c["k"]), *args(c)).numpy()
    finally:
        C.set_num_threads(old)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", CASES)
def test_gemm_form_matches_reference(name, dtype):
    c = CASES[name]
    x, _, _, _, gy = make_data(c, dtype, seed=7)
    want = ref_backward_weight(x, gy, c["k"], c["s"], c["pad"], c["d"], c["groups"])
    np.testing.assert_allclose(R.conv_backward_weight(nd(x, "cpu"), nd(gy, "cpu"), list(c["k"]), *args(c)).numpy(),
                               want, **TOL[dtype])
    for threads in (1, 2, 3):
        np.testing.assert_allclose(backward_weight_at_threads(x, gy, c, threads), want, **TOL[dtype])


def test_gemm_form_across_chunks():
    """8195 images of 64 channels of 4x4 outputs: the gathered gy (1024 elements an image) is cut into chunks
    of 8192 images (the 2^23-element workspace bound), so the last part of the batch runs on in the second
    chunk."""
    c = case(8195, 3, 64, (4, 4), (3, 3), pad=((1, 1), (1, 1)))
    x, _, _, _, gy = make_data(c, "float64", seed=3)
    want = ref_backward_weight(x, gy, c["k"], c["s"], c["pad"], c["d"], c["groups"])
    for threads in (1, 2):
        np.testing.assert_allclose(backward_weight_at_threads(x, gy, c, threads), want, rtol=1e-10, atol=1e-9)


# The channel-minor form: one or two vectors of output channels per group (float32 on AVX-512: 5-32), a
# kernel of several taps, at least a tile's rows of input channels (8 for two vectors, 16 for one), small
# images. Padding on every side, strides, dilation, a last partial vector of channels, a last partial
# tile of rows and bands of output rows; on other ISAs and in float64 some of these run the GEMM form
# instead, with the same results.
MINOR_CASES = {
    "resnext_like_s2": case(3, 64, 128, (9, 9), (3, 3), s=(2, 2), pad=((1, 1), (1, 1)), groups=4),
    "partial_vector_dilated": case(2, 26, 40, (7, 6), (2, 3), s=(1, 2), pad=((1, 0), (2, 1)), d=(2, 2), groups=2),
    "one_vector_batch1": case(1, 51, 48, (5, 5), (3, 3), pad=((1, 1), (1, 1)), groups=3),
    "stride_gt_kernel": case(2, 16, 32, (11, 10), (2, 2), s=(3, 3), pad=((0, 2), (1, 0))),
    # 5-8 channels a group: half-width vectors (float32 on AVX-512), the dot products elsewhere.
    "half_width": case(2, 27, 24, (10, 9), (3, 3), s=(2, 1), pad=((1, 1), (0, 2)), groups=3),
    "half_width_partial_dilated": case(3, 18, 10, (6, 7), (2, 3), pad=((0, 1), (1, 1)), d=(1, 2), groups=2),
    # Wide rows: the output rows run in bands whose window fits half of L1d (here 2 rows a band on 32 KiB,
    # the last one short; 1 row where not even one band's window fits), and kernel rows of 4 taps (3 taps a
    # pass on the half-width tile, then one).
    "half_width_bands_4_taps": case(2, 16, 16, (13, 120), (3, 4), pad=((1, 1), (2, 1)), groups=2),
    "one_vector_bands_too_wide": case(1, 32, 32, (9, 200), (3, 3), s=(2, 2), pad=((1, 1), (1, 1)), groups=2),
    # 4 output channels a group: half-width vectors (3 taps a pass) in float64 on AVX-512, the dots in float32.
    "half_width_float64": case(2, 16, 8, (7, 9), (3, 3), s=(1, 2), pad=((1, 1), (1, 0)), groups=2),
}


def assert_matches_reference_at_threads(c, dtype, seed):
    """gw of case c against the NumPy reference, on 1, 2 and 3 threads (the task splits differ)."""
    x, _, _, _, gy = make_data(c, dtype, seed=seed)
    want = ref_backward_weight(x, gy, c["k"], c["s"], c["pad"], c["d"], c["groups"])
    for threads in (1, 2, 3):
        np.testing.assert_allclose(backward_weight_at_threads(x, gy, c, threads), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", MINOR_CASES)
def test_channel_minor_form_matches_reference(name, dtype):
    assert_matches_reference_at_threads(MINOR_CASES[name], dtype, seed=5)


def test_channel_minor_form_across_chunks():
    """7300 images of 32 input channels on 4x4 (a 6x6 window each: 1152 elements an image) are cut into
    chunks of 7281 images by the 2^23-element workspace bound: the second chunk adds to the first's sums."""
    c = case(7300, 32, 32, (4, 4), (3, 3), pad=((1, 1), (1, 1)), groups=2)
    x, _, _, _, gy = make_data(c, "float64", seed=4)
    want = ref_backward_weight(x, gy, c["k"], c["s"], c["pad"], c["d"], 2)
    np.testing.assert_allclose(backward_weight_at_threads(x, gy, c, 2), want, rtol=1e-10, atol=1e-9)


# The taps form: one or two vectors of output channels per group (float32 on AVX-512: 9-32, float64: 5-16)
# over fewer input channels than the channel-minor tile's rows, the flattened kernel cut into tiles of R taps
# (24 with one vector, 12 with two) whose last one is mostly full. Strides larger than the kernel, dilation,
# padding on every side, a last partial vector of channels, a last partial tile of taps, tiles across
# input channels and kernel rows, groups, batch 1, output rows in bands (the last one short); on other ISAs
# and dtypes some of these run another form instead, with the same results.
TAPS_CASES = {
    "deepspeech_like": case(2, 1, 32, (23, 17), (9, 11), s=(2, 2), pad=((4, 4), (5, 5))),
    "partial_vector_dilated": case(2, 2, 20, (12, 15), (4, 7), s=(1, 2), pad=((3, 0), (1, 2)), d=(2, 1)),
    "groups_stride_gt_kernel_batch1": case(1, 6, 24, (17, 23), (4, 4), s=(5, 5), pad=((0, 2), (1, 0)), groups=2),
    # 90 rows of 100 outputs: 81 rows a band in half of a 1 MiB L2 (float32, 64 bytes a pixel), 40 in float64,
    # each summed in registers 5 rows at a time.
    "bands": case(1, 1, 12, (90, 103), (3, 8), pad=((1, 1), (2, 2))),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", TAPS_CASES)
def test_taps_form_matches_reference(name, dtype):
    assert_matches_reference_at_threads(TAPS_CASES[name], dtype, seed=13)


def test_taps_form_across_chunks():
    """7300 images of 9x7 outputs with 12 channels (two vectors of float64) and a 12x12 window (1152
    elements an image) are cut into chunks of 7281 images by the 2^23-element workspace bound: the second
    chunk adds to the first's sums."""
    c = case(7300, 1, 12, (12, 12), (4, 6))
    x, _, _, _, gy = make_data(c, "float64", seed=14)
    want = ref_backward_weight(x, gy, c["k"], c["s"], c["pad"], c["d"], 1)
    np.testing.assert_allclose(backward_weight_at_threads(x, gy, c, 2), want, rtol=1e-10, atol=1e-9)


# A kernel as large as its input with no leading padding (one output, whose window is the whole image): a
# matrix product reading x in place. Bottom/right padding under the stride leaves the one output; the last
# case is large enough to run in parallel blocks.
WHOLE_WINDOW = {
    "dcgan_d_5_like": case(5, 24, 1, (4, 4), (4, 4)),
    "groups_padded_after": case(3, 12, 9, (3, 5), (3, 5), s=(2, 3), pad=((0, 1), (0, 2)), groups=3),
    "one_pixel": case(2, 7, 5, (1, 1), (1, 1)),
    "parallel_blocks": case(16, 64, 96, (7, 7), (7, 7)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", WHOLE_WINDOW)
def test_whole_window_matches_reference(name, dtype):
    c = WHOLE_WINDOW[name]
    x, _, _, _, gy = make_data(c, dtype, seed=6)
    assert gy.shape[2:] == (1, 1)
    want = ref_backward_weight(x, gy, c["k"], c["s"], c["pad"], c["d"], c["groups"])
    for threads in (1, 2, 3):
        np.testing.assert_allclose(backward_weight_at_threads(x, gy, c, threads), want, **TOL[dtype])


@pytest.mark.parametrize("nonfinite", [False, True])
def test_dot_form_image_parts(nonfinite):
    """LeNet's first layer (one input channel, 6 output channels, 25 taps) is one task of the dot products:
    at 2 and 3 threads its images are cut into parts summed into copies of gw. With an inf in x the NaN
    redo runs after the parts are added (in one part), and gives the definition's NaNs and values."""
    c = case(7, 1, 6, (9, 8), (5, 5), pad=((2, 2), (2, 2)))
    x, _, _, _, gy = make_data(c, "float64", seed=9)
    if nonfinite:
        x[3, 0, 4, 2] = np.inf
    want = R.conv_backward_weight(nd(x, "cpu"), nd(gy, "cpu"), list(c["k"]), *args(c)).numpy()
    if not nonfinite:
        np.testing.assert_allclose(want, ref_backward_weight(x, gy, c["k"], c["s"], c["pad"], c["d"], 1), **TOL["float64"])
    for threads in (1, 2, 3):
        np.testing.assert_allclose(backward_weight_at_threads(x, gy, c, threads), want, equal_nan=True, **TOL["float64"])


# Under 16 output channels, a 1x1 conv on planes of whole vectors runs the dot products on x in place
# (fewer channels than the tile's rows, or more); on other planes they copy x.
DOTS_IN_PLACE = {
    "two_channels": case(3, 40, 2, (4, 8), (1, 1)),
    "nine_channels_grouped": case(2, 48, 18, (8, 6), (1, 1), groups=2),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", DOTS_IN_PLACE)
def test_dot_form_in_place_matches_reference(name, dtype):
    assert_matches_reference_at_threads(DOTS_IN_PLACE[name], dtype, seed=12)


# 1x1 convs that read x in place (the GEMM's last row pieces shorter than a vector, at stride 1 and 2; the dots
# on whole-vector planes) or must not (the dots on planes of 12: whole-vector loads would pass the end).
GUARDED = {
    "gemm": case(3, 40, 16, (4, 3), (1, 1)),
    "gemm_stride2": case(3, 40, 16, (5, 7), (1, 1), s=(2, 2)),
    "dots_in_place": case(3, 40, 2, (4, 4), (1, 1)),
    "dots_copied": case(3, 40, 2, (4, 3), (1, 1)),
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect through libc")
@pytest.mark.parametrize("name", GUARDED)
def test_reads_nothing_past_x(name):
    """x here ends exactly where an inaccessible page begins (shared through DLPack, so convlab reads this
    memory itself), and a load past it would crash."""
    c = GUARDED[name]
    x, _, _, _, gy = make_data(c, "float32", seed=11)
    page = mmap.PAGESIZE
    size = -(-x.nbytes // page) * page  # whole pages holding x, then the guard page
    buf = mmap.mmap(-1, size + page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert ctypes.CDLL(None, use_errno=True).mprotect(ctypes.c_void_p(base + size), page, 0) == 0  # PROT_NONE
    guarded = np.frombuffer(buf, np.float32, count=x.size, offset=size - x.nbytes).reshape(x.shape)
    guarded[...] = x
    got = C.conv_backward_weight(C.NDArray.from_dlpack(guarded.__dlpack__()), nd(gy, "cpu"), [1, 1], *args(c))
    np.testing.assert_allclose(got.numpy(), ref_backward_weight(x, gy, c["k"], c["s"], c["pad"], c["d"], 1),
                               **TOL["float32"])
    del guarded, got
