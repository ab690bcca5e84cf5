"""Backward-input's own paths (src/cpu/conv_backward_input.cpp). Strided kernels of several taps run each
stride phase of gx as its own stride-1 forward pass: the inputs y with (y + pad) % stride == a are reached only
by the taps k with k*dilation % stride == a, so phase a is a correlation of gy with that sub-kernel flipped
(dilation / gcd(stride, dilation), leading pad possibly negative), written into every stride-th element of gx.
It is taken where the adjoint GEMM would reduce over fewer than 64 output channels per group, or up to 256 with
1024 outputs or more and a phase of several taps, and the phases' forwards have 8 or more output channels per
group (phases_pay); every strided case here is such a layer. The last cases are stride 1 on small images with
enough outputs to run on the flipped weight.
The cases hit its edges: stride > kernel (phases no tap reaches are zeros), dilation with stride (gcd > 1:
whole phases without taps; gcd 1: taps spread over phases), asymmetric and large padding (a crop instead of a
pad), odd sizes (phases of different lengths), phases with one tap, groups of 8 channels and of more, one
output channel, batch 1, 1-D, transposed convs with output padding, and a batch cut into chunks of images.
Each is compared with the reference (the spec), the NumPy loops and PyTorch, as test_conv does."""
import numpy as np
import pytest

import convlab as cl
from conftest import DEVICES
from test_conv import TOL, case, make_data, nd, ref_backward_input

C = cl._C
R = cl._C.reference

CASES = {
    # ResNeXt's grouped 3x3/2 (8 per group), odd sizes: phases of 4 and 5 rows, 5 and 6 columns.
    "grouped_8_per_group_odd": case(2, 32, 32, (9, 11), (3, 3), s=(2, 2), pad=((1, 1), (1, 1)), groups=4),
    "grouped_batch1_asym": case(1, 48, 32, (10, 7), (3, 3), s=(2, 2), pad=((0, 2), (2, 1)), groups=2),
    # Stride > kernel: along h taps reach phases 0, 1 of 3, along w phases 0, 1 of 4; the rest of gx is 0.
    "stride_gt_kernel": case(2, 8, 6, (13, 17), (2, 2), s=(3, 4), pad=((1, 0), (0, 2))),
    # Stride 2, dilation 2 along h (gcd 2: only phase 0 has taps, 3 of them at dilation 1); dilation 3 along
    # w (gcd 1: taps 0, 2 on phase 0, tap 1 on phase 1, dilation 3 within each).
    "dilated_gcd": case(2, 9, 7, (15, 14), (3, 3), s=(2, 2), pad=((2, 1), (3, 2)), d=(2, 3)),
    # Stride 6, dilation 4 (gcd 2): taps 0, 3 of 5 share phase 0 at dilation 2; odd phases are empty.
    "dilated_gcd2_stride6": case(1, 8, 5, (29, 9), (5, 2), s=(6, 1), pad=((3, 1), (1, 0)), d=(4, 1)),
    # Padding larger than the kernel: some phases start past their first taps' reach (a crop, not a pad).
    "pad_bigger_than_kernel": case(2, 8, 4, (8, 9), (3, 2), s=(2, 3), pad=((5, 4), (6, 3))),
    # DeepSpeech2-like: a tall kernel strided along h only (2 phases of 11 and 10 taps), batch 1.
    "tall_kernel_stride_h": case(1, 8, 8, (21, 12), (11, 5), s=(2, 1), pad=((5, 5), (2, 2))),
    # One output channel: each phase's forward reduces over its taps alone.
    "one_output_channel": case(3, 8, 1, (23, 20), (7, 5), s=(2, 2), pad=((3, 3), (2, 2))),
    # Over 2^19 multiply-adds: two threads, the forward GEMM per phase (40 output channels per group).
    "dense_threads": case(2, 40, 48, (15, 13), (3, 3), s=(2, 2), pad=((1, 1), (1, 1))),
    # A 2x2 kernel at stride 2: every phase has exactly one tap (a 1x1 forward per phase).
    "one_tap_per_phase": case(2, 8, 10, (8, 7), (2, 2), s=(2, 2)),
    # A 1x1 image and outputs past it: phases of length 0 along h.
    "empty_phases": case(3, 8, 6, (1, 5), (3, 3), s=(2, 2), pad=((1, 1), (1, 1))),
    "conv1d_stride3": case(2, 24, 9, (1, 31), (1, 7), s=(1, 3), pad=((0, 0), (2, 4)), d=(1, 2), groups=3),
    # Dense: up to 256 output channels a group from 1024 outputs (n*oh*ow) on, when some phase has several taps;
    # 1088 outputs of 96 channels, odd sizes, asymmetric padding.
    "dense_96_from_1024_outputs": case(4, 16, 96, (33, 31), (3, 3), s=(2, 2), pad=((1, 0), (1, 2))),
    "dense_256_batch1": case(1, 24, 256, (64, 65), (3, 3), s=(2, 2), pad=((1, 1), (1, 1))),
    # Not strided: small images of 384 outputs or more (8 x 7x7 = 392; 6 x 8x8 = 384, the edge) with 64 or more
    # output channels run as a forward on the flipped weight instead of the column path.
    "stride1_small_images_flipped": case(8, 12, 70, (7, 7), (3, 3), pad=((1, 1), (1, 1))),
    "stride1_small_images_flipped_asym": case(6, 9, 66, (8, 9), (3, 2), pad=((1, 1), (0, 0))),
}


def run_backward_input(ops, gy, w, c):
    return ops.conv_backward_input(nd(gy, "cpu"), nd(w, "cpu"), list(c["hw"]), list(c["s"]),
                                   [tuple(p) for p in c["pad"]], list(c["d"]), c["groups"]).numpy()


def torch_backward_input(x, w, gy, c):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    (pt, pb), (pl, pr) = c["pad"]
    tx = torch.tensor(x, requires_grad=True)
    ty = F.conv2d(F.pad(tx, (pl, pr, pt, pb)), torch.tensor(w), stride=c["s"], dilation=c["d"], groups=c["groups"])
    return torch.autograd.grad(ty, tx, torch.tensor(gy))[0].numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,c", CASES.items(), ids=list(CASES))
def test_backward_input_paths(name, c, dtype):
    x, w, _, _, gy = make_data(c, dtype, seed=len(name))
    w0, gy0 = w.copy(), gy.copy()
    ours = run_backward_input(C, gy, w, c)
    assert ours.dtype == np.dtype(dtype) and ours.shape == x.shape
    np.testing.assert_allclose(ours, run_backward_input(R, gy, w, c), **TOL[dtype])
    np.testing.assert_allclose(ours, ref_backward_input(gy, w, c["hw"], c["s"], c["pad"], c["d"], c["groups"]),
                               **TOL[dtype])
    np.testing.assert_allclose(ours, torch_backward_input(x, w, gy, c), **TOL[dtype])
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(gy, gy0)


@pytest.mark.parametrize("seed", range(8))
def test_strided_backward_input_random(seed):
    """Random strides 2-4 with kernels and dilations on both sides of them, against the reference."""
    rng = np.random.default_rng(500 + seed)
    while True:
        groups = int(rng.choice([1, 2, 3]))
        k = (int(rng.integers(1, 6)), int(rng.integers(2, 6)))
        s = (int(rng.integers(1, 5)), int(rng.integers(2, 5)))
        d = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pad = tuple((int(rng.integers(0, 5)), int(rng.integers(0, 5))) for _ in range(2))
        hw = (int(rng.integers(1, 20)), int(rng.integers(1, 20)))
        if all(hw[a] + sum(pad[a]) >= d[a] * (k[a] - 1) + 1 for a in range(2)):
            break
    c = case(int(rng.integers(1, 4)), groups * int(rng.integers(8, 13)), groups * int(rng.integers(1, 20)), hw, k,
             s, pad, d, groups)
    x, w, _, _, gy = make_data(c, "float64", seed=seed)
    np.testing.assert_allclose(run_backward_input(C, gy, w, c), run_backward_input(R, gy, w, c), **TOL["float64"])
    np.testing.assert_allclose(run_backward_input(C, gy, w, c), torch_backward_input(x, w, gy, c), **TOL["float64"])


@pytest.mark.parametrize("device", DEVICES)
def test_strided_transposed_with_output_padding(device):
    """A transposed conv runs these kernels with an output one longer than the stride grid covers along h
    (output_padding): the last phase row reads no gy along h and is a crop of the forward there."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 12, 5, 6))
    w = rng.standard_normal((12, 8, 3, 4))
    s, p, op, d = (3, 2), (1, 2), (2, 1), (1, 1)
    pads = [(p[0], p[0]), (p[1], p[1])]

    def run(ops, device):
        return ops.conv_transpose_forward(nd(x, device), nd(w, device), None, list(s), pads, list(op), list(d),
                                          3).numpy()

    ours = run(C, device)
    np.testing.assert_allclose(ours, run(R, "cpu"), **TOL["float64"])
    ty = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w), stride=s, padding=p, output_padding=op,
                                              groups=3, dilation=d)
    np.testing.assert_allclose(ours, ty.numpy(), **TOL["float64"])


# Batches cut into chunks of images (backward_input_phases: as many images as L2 holds of gx, so that the
# interleave reads the phases' outputs from cache): 64 x 130 x 131 (4.4 MB an image) runs one image a chunk;
# 16 x 30 x 31 (60 KB) 17 a chunk with a 1 MiB L2 (8 with 512 KiB, 35 with 2 MiB). The images listed are both
# ends of chunks at one of those sizes.
CHUNKED = {
    "image_a_chunk": (case(9, 64, 2, (130, 131), (3, 3), s=(2, 2), pad=((1, 1), (1, 1))), (0, 6, 7, 8)),
    "images_a_chunk": (case(40, 16, 8, (30, 31), (3, 3), s=(2, 2), pad=((1, 1), (1, 1))),
                       (0, 7, 8, 16, 17, 33, 34, 35, 39)),
}


@pytest.mark.parametrize("name", CHUNKED)
def test_phases_in_image_chunks(name):
    """The batch must equal image by image, and PyTorch on its last image."""
    c, images = CHUNKED[name]
    rng = np.random.default_rng(3)
    w = rng.standard_normal((c["c_out"], c["c_in"], 3, 3)).astype("float32")
    out = [(i + sum(p) - d * (k - 1) - 1) // st + 1
           for i, p, d, k, st in zip(c["hw"], c["pad"], c["d"], c["k"], c["s"])]
    gy = rng.standard_normal((c["n"], c["c_out"], *out)).astype("float32")
    whole = run_backward_input(C, gy, w, c)
    for i in images:
        one = run_backward_input(C, gy[i:i + 1], w, dict(c, n=1))
        np.testing.assert_allclose(whole[i], one[0], rtol=1e-6, atol=1e-6)
    x = np.zeros((1, c["c_in"], *c["hw"]), "float32")
    np.testing.assert_allclose(whole[-1:], torch_backward_input(x, w, gy[-1:], dict(c, n=1)), rtol=1e-4, atol=1e-4)


# Stride 2 with both column phases reached: interleave_row writes pairs of columns lanes/2 at a time, its last
# vector whole past the row into later rows of the same plane, and pair by pair on a plane's last row. Rows
# shorter than half a vector (spilling over several rows), an odd width (one more even column), an even first
# column at pad 0; over 2^19 multiply-adds, so that 2 and 3 threads split the planes (a spill into another
# thread's plane would race).
INTERLEAVED = {
    "rows_shorter_than_half_vector": case(4, 64, 32, (12, 5), (3, 3), s=(2, 2), pad=((1, 1), (1, 1))),
    "odd_width_two_vectors": case(2, 32, 32, (17, 33), (3, 3), s=(2, 2), pad=((1, 1), (1, 1))),
    "even_first_column_pad0": case(3, 24, 40, (9, 20), (3, 3), s=(2, 2), pad=((0, 1), (0, 1))),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", INTERLEAVED)
def test_interleaved_phases_at_threads(name, dtype):
    c = INTERLEAVED[name]
    x, w, _, _, gy = make_data(c, dtype, seed=7)
    want = ref_backward_input(gy, w, c["hw"], c["s"], c["pad"], c["d"], c["groups"])
    old = C.get_num_threads()
    try:
        for threads in (1, 2, 3):
            C.set_num_threads(threads)
            np.testing.assert_allclose(run_backward_input(C, gy, w, c), want, **TOL[dtype])
    finally:
        C.set_num_threads(old)
