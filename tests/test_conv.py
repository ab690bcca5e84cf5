"""Convolution kernels (forward, backward-input, backward-weight, transposed) through convlab._C.

The first oracle is convlab._C.reference: the same ops computed by common/reference.h, the spec, one output
element at a time. Every fast pass on every device is compared with it; the reference itself is pinned to
a NumPy reference written from the definition (one strided window per kernel tap) and to PyTorch. Shapes
sweep the awkward corners: batch 1, odd sizes, stride > kernel, dilation, asymmetric padding, groups and
depthwise, channel counts not divisible by 8/16, 1x1, output 1."""
import numpy as np
import pytest

import convlab as cl
from conftest import DEVICES

C = cl._C
R = cl._C.reference
DTYPES = ["float32", "float64"]
TOL = {"float32": dict(rtol=1e-4, atol=1e-4), "float64": dict(rtol=1e-10, atol=1e-10)}


# ---- reference: y[n, co, oy, ox] = sum_{ci in group(co), i, j} x_pad[n, ci, oy*sh + i*dh, ox*sw + j*dw] w[co, ci, i, j]

def out_len(n, k, s, lo, hi, d):
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def window(xp, i, j, oh, ow, s, d):
    """x_pad[..., oy*sh + i*dh, ox*sw + j*dw] for all (oy, ox): the input tap (i, j) multiplies."""
    y0, x0 = i * d[0], j * d[1]
    return xp[:, :, y0:y0 + s[0] * (oh - 1) + 1:s[0], x0:x0 + s[1] * (ow - 1) + 1:s[1]]


def ref_forward(x, w, b, s, pad, d, groups):
    (pt, pb), (pl, pr) = pad
    n, c_in, h, wd = x.shape
    c_out, cig, kh, kw = w.shape
    cog = c_out // groups
    oh, ow = out_len(h, kh, s[0], pt, pb, d[0]), out_len(wd, kw, s[1], pl, pr, d[1])
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    y = np.zeros((n, c_out, oh, ow))
    for g in range(groups):
        xg, wg = xp[:, g * cig:(g + 1) * cig], w[g * cog:(g + 1) * cog]
        for i in range(kh):
            for j in range(kw):
                y[:, g * cog:(g + 1) * cog] += np.einsum("nchw,oc->nohw", window(xg, i, j, oh, ow, s, d), wg[:, :, i, j])
    if b is not None:
        y += b[None, :, None, None]
    return y


def ref_backward_input(gy, w, hw, s, pad, d, groups):
    (pt, pb), (pl, pr) = pad
    n, c_out, oh, ow = gy.shape
    _, cig, kh, kw = w.shape
    cog = c_out // groups
    gxp = np.zeros((n, cig * groups, hw[0] + pt + max(pb, 0), hw[1] + pl + max(pr, 0)))  # pb < 0: transposed conv's output_padding
    for g in range(groups):
        gyg, wg = gy[:, g * cog:(g + 1) * cog], w[g * cog:(g + 1) * cog]
        for i in range(kh):
            for j in range(kw):
                window(gxp[:, g * cig:(g + 1) * cig], i, j, oh, ow, s, d)[...] += np.einsum("nohw,oc->nchw", gyg, wg[:, :, i, j])
    return gxp[:, :, pt:pt + hw[0], pl:pl + hw[1]]


def ref_backward_weight(x, gy, k, s, pad, d, groups):
    (pt, pb), (pl, pr) = pad
    n, c_out, oh, ow = gy.shape
    cig, cog = x.shape[1] // groups, c_out // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    gw = np.zeros((c_out, cig, k[0], k[1]))
    for g in range(groups):
        xg, gyg = xp[:, g * cig:(g + 1) * cig], gy[:, g * cog:(g + 1) * cog]
        for i in range(k[0]):
            for j in range(k[1]):
                gw[g * cog:(g + 1) * cog, :, i, j] = np.einsum("nohw,nchw->oc", gyg, window(xg, i, j, oh, ow, s, d))
    return gw


# ---- cases ----------------------------------------------------------------------------------------

def case(n, c_in, c_out, hw, k, s=(1, 1), pad=((0, 0), (0, 0)), d=(1, 1), groups=1):
    return dict(n=n, c_in=c_in, c_out=c_out, hw=hw, k=k, s=s, pad=pad, d=d, groups=groups)


FIXED = {
    "basic3x3": case(2, 3, 5, (7, 9), (3, 3), pad=((1, 1), (1, 1))),
    "batch1_1x1": case(1, 17, 9, (5, 6), (1, 1)),
    "1x1_stride2": case(2, 6, 10, (9, 8), (1, 1), s=(2, 2)),
    "stride_gt_kernel": case(2, 4, 3, (11, 13), (2, 2), s=(3, 4)),
    "dilated_asym_pad": case(1, 5, 7, (10, 9), (3, 2), s=(2, 1), pad=((2, 0), (1, 3)), d=(2, 3)),
    "output_1x1": case(3, 4, 6, (5, 5), (5, 5)),
    "groups3": case(2, 9, 12, (8, 7), (3, 3), s=(1, 2), pad=((1, 2), (0, 1)), groups=3),
    "depthwise": case(2, 11, 11, (9, 10), (3, 3), pad=((1, 1), (1, 1)), groups=11),
    "depthwise_mult3_s2": case(1, 5, 15, (12, 11), (3, 5), s=(2, 2), pad=((1, 0), (2, 2)), groups=5),
    "depthwise_dil": case(2, 6, 6, (13, 12), (3, 3), pad=((2, 2), (2, 2)), d=(2, 2), groups=6),
    "grouped_8_per_group": case(1, 32, 32, (9, 9), (3, 3), pad=((1, 1), (1, 1)), groups=4),
    "pad_bigger_than_kernel": case(1, 2, 3, (4, 5), (2, 2), pad=((3, 2), (2, 4))),
    "conv1d_like": case(3, 7, 5, (1, 23), (1, 4), s=(1, 2), pad=((0, 0), (3, 1)), d=(1, 2)),
    # Past one GEMM panel (960 columns), one K slice (128) and one row block (256): every blocking edge.
    "medium_stem": case(1, 3, 19, (61, 64), (7, 7), s=(2, 2), pad=((3, 3), (3, 3))),
    "medium_deep": case(2, 37, 270, (12, 11), (3, 3), pad=((1, 1), (1, 1))),
    "medium_1x1": case(2, 150, 40, (33, 35), (1, 1)),
    # Stride-2 phase rows of whole vectors (build_phased's deinterleave) and tails; 31 wide: the last row of a
    # plane ends one element short of a vector pair, so it is copied element by element.
    "stride2_wide": case(2, 3, 4, (9, 71), (3, 3), s=(2, 2), pad=((1, 0), (0, 1))),
    "stride2_row_of_one_vector": case(1, 2, 3, (5, 31), (3, 3), s=(2, 2)),
    # The per-image forward GEMM over the real outputs only: garbage columns x rows per task large enough
    # (8 images give whole-image tasks up to 2 threads).
    "real_columns_dilated": case(8, 4, 96, (20, 20), (3, 3), pad=((2, 2), (2, 2)), d=(2, 2)),
    "real_columns_asym": case(8, 3, 112, (19, 23), (3, 3), pad=((2, 1), (2, 3)), d=(2, 2)),
    # Small images (extended grid under 4 GEMM tiles) run one GEMM over the real outputs of all images of a
    # chunk: forward (B packed from the runs, output rows as segments; also stride-1 backward-input) and
    # strided backward-input (W^T gy into columns, then col2im); with >= 8 output channels per group, the
    # GEMM form of backward-weight.
    "small_images_batch5": case(5, 24, 16, (7, 7), (3, 3), pad=((1, 1), (1, 1))),
    "small_grouped_16_per_group": case(3, 16, 32, (5, 6), (3, 3), pad=((1, 0), (0, 1)), groups=2),
    "small_strided": case(4, 10, 9, (7, 8), (3, 3), s=(2, 2), pad=((1, 1), (1, 1))),
    "grid_224_columns": case(2, 8, 12, (14, 14), (3, 3), pad=((1, 1), (1, 1))),
    "small_dilated_1x1_out": case(3, 9, 8, (5, 5), (3, 3), d=(2, 2)),
    "small_1x1_image_1x1": case(2, 24, 6, (1, 1), (1, 1)),  # squeeze-excite: x itself would be the layout
    "small_strided_grouped_dilated": case(3, 12, 18, (9, 10), (3, 2), s=(2, 3), pad=((2, 1), (0, 2)), d=(2, 1), groups=3),
    "small_one_column": case(5, 5, 7, (9, 1), (3, 1), s=(2, 1), pad=((1, 1), (0, 0))),
    # Taps wholly in the padding (dilation as large as the image): forward and backward-input drop them.
    "dead_taps_aspp": case(2, 6, 5, (5, 6), (3, 3), pad=((6, 6), (6, 6)), d=(6, 6)),
    "dead_taps_asym": case(1, 4, 3, (5, 7), (3, 2), s=(1, 2), pad=((7, 7), (1, 9)), d=(6, 8)),
    # Taps partly in the padding (a third or more of the tap-output products): one GEMM per tap over the outputs
    # it reaches (ASPP-like, strided and grouped, asymmetric, a 3x3 image; the threaded one spans several row
    # panels and input-channel slices of w, so taps accumulate across slices).
    "partly_dead_taps_aspp": case(2, 20, 24, (9, 10), (3, 3), pad=((4, 4), (4, 4)), d=(4, 4)),
    "partly_dead_taps_strided_grouped": case(3, 12, 18, (8, 9), (3, 3), s=(2, 2), pad=((5, 4), (3, 6)), d=(4, 5), groups=3),
    "partly_dead_taps_asym": case(1, 5, 7, (11, 9), (3, 2), pad=((6, 2), (4, 5)), d=(5, 4)),
    "partly_dead_taps_3x3_image": case(2, 8, 10, (3, 3), (3, 3), pad=((1, 1), (1, 1))),
    "partly_dead_taps_threads": case(1, 240, 136, (10, 10), (3, 3), pad=((5, 5), (5, 5)), d=(5, 5)),
    "all_taps_in_padding": case(2, 3, 4, (4, 4), (1, 1), s=(10, 10), pad=((2, 2), (2, 2))),
    # Fewer output columns than vector lanes and a K of at least 2 vectors per column: dot products along K.
    "few_columns_dots_1x1": case(1, 40, 70, (1, 1), (1, 1)),
    "few_columns_dots_grouped": case(2, 100, 112, (4, 3), (3, 3), pad=((1, 0), (0, 1)), groups=2),
    # Most cases here are under 2^19 multiply-adds and run on the calling thread; these small images do not.
    "small_strided_threads": case(4, 64, 48, (9, 9), (3, 3), s=(2, 2), pad=((1, 1), (1, 1))),
    "small_7x7_threads": case(1, 64, 80, (7, 7), (3, 3), pad=((1, 1), (1, 1))),
    # Stride-1 backward-input: as a forward pass on the flipped weight only with n*oh*ow >= 640; with fewer,
    # the adjoint GEMM without a flip, its columns stored transposed (outputs as rows) when P = n*oh*ow would
    # waste over 1/8 in whole slivers of 48 (7x7: 49), or as C rows scattered into a phased gx (not small).
    "stride1_flipped": case(2, 5, 6, (20, 19), (3, 3), pad=((1, 2), (0, 1)), d=(1, 2)),
    "stride1_scattered": case(1, 6, 7, (16, 24), (3, 3), pad=((1, 1), (1, 1))),
    "small_outputs_as_rows_grouped": case(1, 12, 18, (7, 7), (3, 3), pad=((1, 1), (1, 1)), groups=3),
    "padded_1x1": case(2, 7, 9, (6, 5), (1, 1), pad=((1, 0), (2, 1))),
    "1x1_stride2_not_small": case(1, 5, 6, (40, 37), (1, 1), s=(2, 2)),  # backward-input: the column path
    "one_output_grouped": case(1, 6, 9, (4, 5), (4, 5), groups=3),  # backward-input: rows of w added
    # Stride 1 on the extended grid with the runs read in place by the GEMM tiles (runs_in_place): K over one
    # slice (fp32 512, fp64 256), rows not a multiple of the 8-row strip, a last sliver of fewer than 48
    # columns packed (512 = 10 x 48 + 32; with 2 threads, column blocks of 144 end in one too); dilated with
    # asymmetric padding; a 5x5 kernel; backward-input of the first one runs the same path flipped.
    "in_place_runs": case(2, 60, 53, (16, 30), (3, 3), pad=((1, 1), (1, 1))),
    "in_place_runs_dilated_asym": case(1, 70, 66, (18, 27), (3, 3), pad=((2, 1), (0, 3)), d=(2, 1)),
    "in_place_runs_5x5": case(1, 24, 50, (20, 26), (5, 5), pad=((2, 2), (2, 2))),
    # K = 2070 over the in-place GEMM's deepest slice (4 kc: fp32 2048, fp64 1024): equal slices of 1035 / 690.
    "in_place_runs_k_slices": case(1, 230, 53, (16, 30), (3, 3), pad=((1, 1), (1, 1))),
    # Small images at stride 1 with the images innermost (forward_image_minor): one GEMM per output row over
    # ow*n columns, read in place; 112 = 2 x 48 + 16 (fp64: 4 x 24 + 16) ends in a packed last sliver; rows
    # not a multiple of 8; dilated with asymmetric padding and groups; a 1x5 kernel, whose backward-input
    # (flipped) takes the path too.
    "image_minor_rows": case(14, 9, 50, (7, 8), (3, 3), pad=((1, 1), (1, 1))),
    "image_minor_dilated_asym_grouped": case(20, 12, 100, (6, 7), (3, 2), pad=((2, 1), (0, 1)), d=(2, 1), groups=2),
    "image_minor_1x5": case(8, 50, 60, (9, 13), (1, 5), pad=((0, 0), (2, 2))),
}


def random_cases(count, seed):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        groups = int(rng.choice([1, 1, 2, 3]))
        cig, cog = int(rng.integers(1, 6)), int(rng.integers(1, 7))
        k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pad = tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(2))
        hw = (int(rng.integers(1, 14)), int(rng.integers(1, 14)))
        if any(hw[a] + sum(pad[a]) < d[a] * (k[a] - 1) + 1 for a in range(2)):
            continue
        out.append(case(int(rng.integers(1, 4)), cig * groups, cog * groups, hw, k, s, pad, d, groups))
    return out


RANDOM = [(f"random{i}", c) for i, c in enumerate(random_cases(40, 1234))]
CASES = list(FIXED.items()) + RANDOM
# A third of the cases for the slower tests: every third fixed and every third random case, each list sliced
# on its own so that a fixed case added at the end does not shift which random cases run (their pytest ids
# are named in tests/cuda_profile.txt).
SOME_CASES = list(FIXED.items())[::3] + RANDOM[::3]


def make_data(c, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c["n"], c["c_in"], *c["hw"])).astype(dtype)
    w = rng.standard_normal((c["c_out"], c["c_in"] // c["groups"], *c["k"])).astype(dtype)
    b = rng.standard_normal(c["c_out"]).astype(dtype)
    y = ref_forward(x, w, b, c["s"], c["pad"], c["d"], c["groups"])
    gy = rng.standard_normal(y.shape).astype(dtype)
    return x, w, b, y, gy


def nd(a, device):
    return cl.NDArray.from_numpy(np.ascontiguousarray(a), device=device)


def args(c):
    return [list(c["s"]), [tuple(p) for p in c["pad"]], list(c["d"]), c["groups"]]


def passes(ops, x, w, b, gy, c, device):
    """y, y without bias, gx and gw of case c by one set of ops (convlab._C or its reference)."""
    a = args(c)
    return (ops.conv_forward(nd(x, device), nd(w, device), nd(b, device), *a).numpy(),
            ops.conv_forward(nd(x, device), nd(w, device), None, *a).numpy(),
            ops.conv_backward_input(nd(gy, device), nd(w, device), list(c["hw"]), *a).numpy(),
            ops.conv_backward_weight(nd(x, device), nd(gy, device), list(c["k"]), *a).numpy())


def torch_passes(x, w, b, gy, c):
    """What PyTorch gives for passes(): y, y without bias, gx and gw."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    (pt, pb), (pl, pr) = c["pad"]
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    conv = lambda bias: F.conv2d(F.pad(tx, (pl, pr, pt, pb)), tw, bias, stride=c["s"], dilation=c["d"],  # noqa: E731
                                 groups=c["groups"])
    ty = conv(torch.tensor(b))
    tgx, tgw = torch.autograd.grad(ty, (tx, tw), torch.tensor(gy))
    return ty.detach().numpy(), conv(None).detach().numpy(), tgx.numpy(), tgw.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,c", CASES, ids=[n for n, _ in CASES])
def test_reference_is_the_definition(name, c, dtype):
    """The spec itself: convlab._C.reference against the NumPy loops over kernel taps and against PyTorch."""
    x, w, b, y_np, gy = make_data(c, dtype, seed=len(name))
    ref = passes(R, x, w, b, gy, c, "cpu")
    geometry = (c["s"], c["pad"], c["d"], c["groups"])
    numpy = (y_np, y_np - b[None, :, None, None], ref_backward_input(gy, w, c["hw"], *geometry),
             ref_backward_weight(x, gy, c["k"], *geometry))
    for ours, theirs in zip(ref, numpy):
        np.testing.assert_allclose(ours, theirs, **TOL[dtype])
    assert all(r.dtype == np.dtype(dtype) for r in ref)
    for ours, theirs in zip(ref, torch_passes(x, w, b, gy, c)):
        np.testing.assert_allclose(ours, theirs, **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,c", CASES, ids=[n for n, _ in CASES])
def test_conv2d_passes_match_reference(name, c, dtype, device):
    x, w, b, _, gy = make_data(c, dtype, seed=len(name))
    for ours, ref in zip(passes(C, x, w, b, gy, c, device), passes(R, x, w, b, gy, c, "cpu")):
        np.testing.assert_allclose(ours, ref, **TOL[dtype])
        assert ours.dtype == np.dtype(dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(6))
def test_conv1d_passes(seed, dtype, device):
    """1-D ops arrive at the kernels as H = KH = OH = 1: the fast passes against the reference, and the
    reference against the 2-D NumPy loops on a height-1 image and against PyTorch's conv1d."""
    rng = np.random.default_rng(100 + seed)
    groups = int(rng.choice([1, 2]))
    n, cig, cog = int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 6))
    k, s, d = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    lo, hi = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    length = int(rng.integers(d * (k - 1) + 1, 40))
    x = rng.standard_normal((n, cig * groups, length)).astype(dtype)
    w = rng.standard_normal((cog * groups, cig, k)).astype(dtype)
    a = [[s], [(lo, hi)], [d], groups]
    a2 = ((1, s), ((0, 0), (lo, hi)), (1, d), groups)
    gy = rng.standard_normal((n, cog * groups, out_len(length, k, s, lo, hi, d))).astype(dtype)
    run = lambda ops, device: (ops.conv_forward(nd(x, device), nd(w, device), None, *a).numpy(),  # noqa: E731
                               ops.conv_backward_input(nd(gy, device), nd(w, device), [length], *a).numpy(),
                               ops.conv_backward_weight(nd(x, device), nd(gy, device), [k], *a).numpy())
    ref = run(R, "cpu")
    for ours, theirs in zip(run(C, device), ref):
        np.testing.assert_allclose(ours, theirs, **TOL[dtype])
    numpy = (ref_forward(x[:, :, None], w[:, :, None], None, *a2)[:, :, 0],
             ref_backward_input(gy[:, :, None], w[:, :, None], (1, length), *a2)[:, :, 0],
             ref_backward_weight(x[:, :, None], gy[:, :, None], (1, k), *a2)[:, :, 0])
    for ours, theirs in zip(ref, numpy):
        np.testing.assert_allclose(ours, theirs, **TOL[dtype])
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = F.conv1d(F.pad(tx, (lo, hi)), tw, stride=s, dilation=d, groups=groups)
    tgx, tgw = torch.autograd.grad(ty, (tx, tw), torch.tensor(gy))
    for ours, theirs in zip(ref, (ty.detach(), tgx, tgw)):
        np.testing.assert_allclose(ours, theirs.numpy(), **TOL[dtype])


TRANSPOSED = [  # (n, c_in, c_out, hw, k, stride, padding, output_padding, dilation, groups)
    (2, 4, 6, (5, 6), (3, 3), (2, 2), (1, 1), (1, 0), (1, 1), 1),
    (1, 6, 4, (4, 4), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 2),
    (2, 3, 5, (3, 7), (2, 3), (3, 1), (0, 1), (2, 0), (2, 1), 1),
    (1, 8, 8, (6, 5), (3, 3), (1, 1), (1, 1), (0, 0), (1, 1), 8),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t", TRANSPOSED)
def test_conv_transpose2d(t, dtype, device):
    """Transposed conv = backward-input of the forward conv; its backward passes are conv forward (to the
    input) and conv backward-weight with input and grad swapped (to the weight). Fast passes against the
    reference; the reference against the NumPy adjoint and PyTorch."""
    n, c_in, c_out, hw, k, s, p, op, d, groups = t
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, c_in, *hw)).astype(dtype)
    w = rng.standard_normal((c_in, c_out // groups, *k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    pads = [(p[0], p[0]), (p[1], p[1])]
    a = [list(s), pads, list(d), groups]

    def run(ops, device):
        y = ops.conv_transpose_forward(nd(x, device), nd(w, device), nd(b, device), list(s), pads, list(op),
                                       list(d), groups).numpy()
        gy = np.random.default_rng(8).standard_normal(y.shape).astype(dtype)
        return (y, ops.conv_forward(nd(gy, device), nd(w, device), None, *a).numpy(),
                ops.conv_backward_weight(nd(gy, device), nd(x, device), list(k), *a).numpy(), gy)

    y, gx, gw, gy = run(R, "cpu")
    for ours, theirs in zip(run(C, device)[:3], (y, gx, gw)):
        np.testing.assert_allclose(ours, theirs, **TOL[dtype])
    # The NumPy adjoint of the forward conv from y's shape to x's shape; its trailing pad absorbs output_padding.
    fwd_pad = ((p[0], p[0] - op[0]), (p[1], p[1] - op[1]))
    np.testing.assert_allclose(y, ref_backward_input(x, w, y.shape[2:], s, fwd_pad, d, groups) + b[None, :, None, None],
                               **TOL[dtype])
    torch = pytest.importorskip("torch")
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv_transpose2d(tx, tw, torch.tensor(b), stride=s, padding=p, output_padding=op, groups=groups, dilation=d)
    tgx, tgw = torch.autograd.grad(ty, (tx, tw), torch.tensor(gy))
    for ours, theirs in zip((y, gx, gw), (ty.detach(), tgx, tgw)):
        np.testing.assert_allclose(ours, theirs.numpy(), **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
def test_conv_transpose1d(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 9))
    w = rng.standard_normal((4, 3, 5))

    def run(ops, device):
        return ops.conv_transpose_forward(nd(x, device), nd(w, device), None, [3], [(2, 2)], [1], [2], 1).numpy()

    ref = run(R, "cpu")
    np.testing.assert_allclose(run(C, device), ref, rtol=1e-10, atol=1e-10)
    ty = torch.nn.functional.conv_transpose1d(torch.tensor(x), torch.tensor(w), stride=3, padding=2, output_padding=1, dilation=2)
    np.testing.assert_allclose(ref, ty.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_inputs_unchanged_and_threads(device):
    """Kernels never write their inputs, and the result does not depend on the thread count."""
    c = FIXED["medium_deep"]
    x, w, b, y_ref, gy = make_data(c, "float32", seed=5)
    xs, ws, gys = nd(x, device), nd(w, device), nd(gy, device)
    old = C.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            C.set_num_threads(threads)
            outs.append((C.conv_forward(xs, ws, None, *args(c)).numpy(),
                         C.conv_backward_input(gys, ws, list(c["hw"]), *args(c)).numpy(),
                         C.conv_backward_weight(xs, gys, list(c["k"]), *args(c)).numpy()))
    finally:
        C.set_num_threads(old)
    for o in outs[1:]:
        for a, r in zip(o, outs[0]):
            np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(xs.numpy(), x)
    np.testing.assert_array_equal(ws.numpy(), w)
    np.testing.assert_array_equal(gys.numpy(), gy)


def test_tiny_passes_keep_the_thread_count():
    """Passes under 2^19 multiply-adds run on the calling thread (cpu/conv_layout.h, SerialScope); the thread
    count is the caller's again afterwards."""
    c = FIXED["small_1x1_image_1x1"]
    x, w, b, _, gy = make_data(c, "float32", seed=3)
    old = C.get_num_threads()
    try:
        C.set_num_threads(2)
        ours = passes(C, x, w, b, gy, c, "cpu")
        assert C.get_num_threads() == 2
    finally:
        C.set_num_threads(old)
    for a, r in zip(ours, passes(R, x, w, b, gy, c, "cpu")):
        np.testing.assert_allclose(a, r, **TOL["float32"])


# ---- NaN / inf: an input element no output reads must not influence any result ---------------------

def read_along(size, k, s, lo, d, out):
    """Which of `size` input positions (one dimension) some output window reads; the 2-D set is the product."""
    hit = np.zeros(size, bool)
    for o in range(out):
        for t in range(k):
            if 0 <= o * s + t * d - lo < size:
                hit[o * s + t * d - lo] = True
    return hit


def padding_only_along(size, k, s, lo, d, out):
    """Which outputs (one dimension) read nothing but padding."""
    return np.array([all(not 0 <= o * s + t * d - lo < size for t in range(k)) for o in range(out)], bool)


def as_2d(c):
    """A 1-D case as the 2-D case on a height-1 image (what the reference functions take)."""
    if len(c["hw"]) == 2:
        return c
    return case(c["n"], c["c_in"], c["c_out"], (1, *c["hw"]), (1, *c["k"]), (1, *c["s"]), ((0, 0), *c["pad"]),
                (1, *c["d"]), c["groups"])


UNREAD = {  # each leaves input elements that no window reads
    "stride_gt_kernel": case(2, 4, 6, (11, 13), (2, 2), s=(3, 4)),
    "trailing_rows_cols": case(1, 3, 5, (10, 9), (3, 2), s=(2, 2)),
    "dilation_gaps": case(2, 3, 4, (9, 11), (3, 3), s=(2, 2), pad=((2, 2), (1, 2)), d=(2, 2)),
    "groups": case(1, 6, 9, (10, 12), (2, 3), s=(3, 2), pad=((0, 1), (1, 0)), d=(1, 2), groups=3),
    "depthwise": case(2, 5, 10, (11, 10), (2, 2), s=(3, 3), pad=((1, 0), (0, 1)), groups=5),
    "pad_beyond_window": case(1, 2, 3, (5, 7), (2, 2), s=(2, 3), pad=((3, 3), (3, 2))),
    # taps of one stride phase further apart than the output is wide: unread elements between their runs
    "dilation_wider_than_output": case(1, 2, 3, (16, 17), (3, 3), s=(2, 2), pad=((0, 1), (0, 0)), d=(5, 5)),
    "conv1d_dilation_wider_than_output": case(2, 3, 4, (16,), (3,), s=(2,), pad=((0, 0),), d=(5,)),
    "conv1d_stride_gt_kernel": case(2, 4, 6, (17,), (3,), s=(5,), pad=((1, 0),), d=(1,)),
    "conv1d_depthwise_dilated": case(1, 4, 8, (20,), (2,), s=(3,), pad=((0, 2),), d=(2,), groups=4),
    # >= 16 output channels per group: backward-weight's GEMM over real outputs (packed from the runs)
    "stride_gt_kernel_gemm": case(2, 4, 32, (11, 13), (2, 2), s=(3, 4)),
    "groups_gemm_dilated": case(2, 6, 48, (14, 21), (3, 3), s=(2, 2), pad=((2, 2), (1, 2)), d=(2, 2), groups=3),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", ["unread", "read"])
@pytest.mark.parametrize("name,c", UNREAD.items(), ids=list(UNREAD))
def test_nonfinite_inputs_like_torch(name, c, where, dtype, device):
    """NaN, +inf and -inf in x at all positions no window reads ("unread"): every pass gives what the
    reference gives, which is what it gives with those elements zeroed (the NumPy loops) and what PyTorch gives. At read positions ("read":
    the leftmost read column of a row, where other taps' garbage columns of the extended output grid wrap
    to) NaN and inf appear exactly where PyTorch has them. gy also holds NaN/inf at outputs whose window
    is all padding, which no input gradient element depends on."""
    c2 = as_2d(c)
    per_dim = [(c2["hw"][a], c2["k"][a], c2["s"][a], c2["pad"][a][0], c2["d"][a]) for a in range(2)]
    oh, ow = (out_len(size, k, s, lo, c2["pad"][a][1], d) for a, (size, k, s, lo, d) in enumerate(per_dim))
    read = read_along(*per_dim[0], oh)[:, None] & read_along(*per_dim[1], ow)[None, :]
    pad_only = padding_only_along(*per_dim[0], oh)[:, None] | padding_only_along(*per_dim[1], ow)[None, :]
    rng = np.random.default_rng(len(name) + len(where))
    n, c_in, c_out, groups = c["n"], c["c_in"], c["c_out"], c["groups"]
    x = rng.standard_normal((n, c_in, *c2["hw"])).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, *c2["k"])).astype(dtype)
    gy = rng.standard_normal((n, c_out, oh, ow)).astype(dtype)
    poison = [np.nan, np.inf, -np.inf]
    if where == "unread":
        x[:, :, ~read] = np.resize(poison, x[:, :, ~read].shape)
    else:
        rows = np.flatnonzero(read.any(axis=1))
        for value, r in zip(poison, rng.choice(rows, 3)):
            x[rng.integers(n), rng.integers(c_in), r, np.flatnonzero(read[r])[0]] = value
    for value, spot in zip([np.nan, np.inf], np.argwhere(pad_only)):
        gy[(rng.integers(n), rng.integers(c_out), *spot)] = value

    nd_shape = lambda v: v if len(c["hw"]) == 2 else v[:, :, 0]  # the kernels' own rank
    a = [list(c["s"]), [tuple(p) for p in c["pad"]], list(c["d"]), groups]

    def run(ops, device):
        xs, ws, gys = nd(nd_shape(x), device), nd(nd_shape(w), device), nd(nd_shape(gy), device)
        return (ops.conv_forward(xs, ws, None, *a).numpy(), ops.conv_backward_input(gys, ws, list(c["hw"]), *a).numpy(),
                ops.conv_backward_weight(xs, gys, list(c["k"]), *a).numpy())

    y, gx, gw = run(R, "cpu")
    for ours, ref in zip(run(C, device), (y, gx, gw)):
        np.testing.assert_allclose(ours, ref, equal_nan=True, **TOL[dtype])
    if where == "unread":
        x0, geometry = np.where(read, x, 0), (c2["s"], c2["pad"], c2["d"], groups)
        assert np.isfinite(y).all() and np.isfinite(gx).all()
        np.testing.assert_allclose(y, nd_shape(ref_forward(x0, w, None, *geometry)), **TOL[dtype])
        np.testing.assert_allclose(gx, nd_shape(ref_backward_input(gy, w, c2["hw"], *geometry)), **TOL[dtype])
        np.testing.assert_allclose(gw, nd_shape(ref_backward_weight(x0, gy, c2["k"], *geometry)), **TOL[dtype])
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tx, tw = torch.tensor(nd_shape(x), requires_grad=True), torch.tensor(nd_shape(w), requires_grad=True)
    conv = F.conv2d if len(c["hw"]) == 2 else F.conv1d
    ty = conv(F.pad(tx, [p for pair in reversed(c["pad"]) for p in pair]), tw, stride=c["s"], dilation=c["d"],
              groups=groups)
    tgx, tgw = torch.autograd.grad(ty, (tx, tw), torch.tensor(nd_shape(gy)))
    for ours, theirs in ((y, ty.detach()), (gx, tgx), (gw, tgw)):
        np.testing.assert_allclose(ours, theirs.numpy(), equal_nan=True, **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,c", SOME_CASES, ids=[n for n, _ in SOME_CASES])
def test_nonfinite_weights_grad_input_like_torch(name, c, dtype, device):
    """An inf, -inf or NaN in w: grad-input (and so the transposed conv) is NaN or inf only where a term of
    its sum holds them. The kernels' stand-in zeros for taps outside gy (padding, off the stride grid) must
    not turn into 0 * inf = NaN; the reference and PyTorch's col2im have no such terms."""
    x, w, _, _, gy = make_data(c, dtype, seed=len(name))
    rng = np.random.default_rng(len(name))
    w[tuple(rng.integers(0, size) for size in w.shape)] = (np.inf, -np.inf, np.nan)[len(name) % 3]
    gx = R.conv_backward_input(nd(gy, "cpu"), nd(w, "cpu"), list(c["hw"]), *args(c)).numpy()
    fast = C.conv_backward_input(nd(gy, device), nd(w, device), list(c["hw"]), *args(c)).numpy()
    np.testing.assert_allclose(fast, gx, equal_nan=True, **TOL[dtype])
    geometry = (c["s"], c["pad"], c["d"], c["groups"])
    with np.errstate(invalid="ignore"):
        numpy = ref_backward_input(gy, w, c["hw"], *geometry)
    np.testing.assert_allclose(gx, numpy, equal_nan=True, **TOL[dtype])
    if dtype == "float32":
        return  # PyTorch's float32 (oneDNN) path writes NaN at unread elements when stride > kernel
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tx = torch.tensor(x, requires_grad=True)
    ty = F.conv2d(F.pad(tx, [p for pair in reversed(c["pad"]) for p in pair]), torch.tensor(w), stride=c["s"],
                  dilation=c["d"], groups=c["groups"])
    (tgx,) = torch.autograd.grad(ty, tx, torch.tensor(gy))
    np.testing.assert_allclose(gx, tgx.numpy(), equal_nan=True, **TOL[dtype])


# ---- matmul: the same GEMM ------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 7, 2), (2, 9, 130, 49), (1, 300, 17, 1000), (4, 33, 0, 5)])
def test_matmul_batched(shape, dtype, device):
    b, m, k, n = shape
    rng = np.random.default_rng(m * n + k)
    x, y = rng.standard_normal((b, m, k)).astype(dtype), rng.standard_normal((b, k, n)).astype(dtype)
    ref = np.einsum("bmk,bkn->bmn", x.astype(np.float64), y.astype(np.float64))
    np.testing.assert_allclose((nd(x, device) @ nd(y, device)).numpy(), ref, **TOL[dtype])


# ---- bad arguments: ValueError naming the argument and both values --------------------------------

BAD = [
    ("kernel larger than padded input", (1, 2, 4, 4), (3, 2, 5, 5), [1, 1], [(0, 0), (0, 0)], [1, 1], 1, "kernel"),
    ("channels not divisible by groups", (1, 6, 5, 5), (4, 2, 3, 3), [1, 1], [(0, 0), (0, 0)], [1, 1], 4, "groups"),
    ("stride 0", (1, 2, 5, 5), (3, 2, 3, 3), [0, 1], [(0, 0), (0, 0)], [1, 1], 1, "stride"),
    ("negative padding", (1, 2, 5, 5), (3, 2, 3, 3), [1, 1], [(-1, 0), (0, 0)], [1, 1], 1, "padding"),
    ("dilation 0", (1, 2, 5, 5), (3, 2, 3, 3), [1, 1], [(0, 0), (0, 0)], [0, 1], 1, "dilation"),
    ("channel mismatch", (1, 3, 5, 5), (3, 2, 3, 3), [1, 1], [(0, 0), (0, 0)], [1, 1], 1, "channels"),
    ("weight rank", (1, 2, 5, 5), (3, 2, 3), [1, 1], [(0, 0), (0, 0)], [1, 1], 1, "weight"),
    ("input rank", (5, 5), (3, 2, 3, 3), [1, 1], [(0, 0), (0, 0)], [1, 1], 1, "input"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bad", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_raise_value_error(bad, device):
    _, xs, ws, s, p, d, groups, word = bad
    x, w = nd(np.zeros(xs, np.float32), device), nd(np.zeros(ws, np.float32), device)
    for ops in (C, R) if device == "cpu" else (C,):  # the reference runs the same frontend checks
        with pytest.raises(ValueError, match=word) as e:
            ops.conv_forward(x, w, None, s, p, d, groups)
        assert any(ch.isdigit() for ch in str(e.value)), str(e.value)
