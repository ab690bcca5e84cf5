"""Float64 finite-difference gradient checks that complete test_functional.py's: every function of
convlab.nn.functional has one somewhere (checked below), and here the geometries sit at the extremes
(stride larger than the kernel, a dilated kernel spanning the whole input, "same" with an even kernel,
groups = channels, output_padding >= stride) with inputs that are non-contiguous views."""
import inspect

import numpy as np
import pytest

import convlab as cl
from autograd_helpers import gradcheck

F = cl.nn.functional

# Functions whose gradcheck lives in test_functional.py (test_*_gradcheck there).
GRADCHECKED_IN_TEST_FUNCTIONAL = {
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d",
    "avg_pool2d", "adaptive_avg_pool2d", "pad", "linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax",
    "log_softmax", "batch_norm", "cross_entropy", "nll_loss", "mse_loss",
}


# Functions whose output is integer-valued: nothing to differentiate.
NOT_DIFFERENTIABLE = {"one_hot"}


def long(values):
    return cl.Tensor(cl.NDArray.from_numpy(np.asarray(values, dtype=np.int64)))


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape)


def seeded(dropout, t):
    cl.manual_seed(3)  # the same mask on every evaluation, so the function is differentiable
    return dropout(t, 0.4)


# name -> (function of float64 tensors, input arrays). Names start with the function they check.
CASES = {
    "conv2d_stride_over_kernel_transposed_view": (
        lambda x, w, b: F.conv2d(x.transpose(2, 3), w, b, stride=(3, 4), padding=(1, 2), groups=2),
        [randn(1, 2, 6, 7), randn(4, 1, 2, 2, seed=1), randn(4, seed=2)]),
    "conv2d_dilated_span_equals_input": (
        lambda x, w: F.conv2d(x, w, dilation=2), [randn(1, 1, 5, 5), randn(2, 1, 3, 3, seed=1)]),
    "conv2d_same_even_kernel": (
        lambda x, w: F.conv2d(x, w, padding="same", dilation=(1, 2)), [randn(1, 3, 4, 5), randn(2, 3, 2, 4, seed=1)]),
    "conv1d_depthwise_sliced_view": (
        lambda x, w: F.conv1d(x[:, :, ::2], w, stride=2, padding=1, groups=3), [randn(1, 3, 15), randn(3, 1, 3, seed=1)]),
    "conv_transpose2d_output_padding_over_stride": (
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride=(1, 2), output_padding=(2, 1), dilation=(3, 1), groups=2),
        [randn(1, 2, 3, 3), randn(2, 2, 2, 2, seed=1), randn(4, seed=2)]),
    "conv_transpose1d_groups_equal_channels": (
        lambda x, w: F.conv_transpose1d(x, w, stride=3, padding=2, groups=3), [randn(2, 3, 4), randn(3, 1, 4, seed=1)]),
    "max_pool2d_dilated_ceil_stride_over_kernel": (
        lambda x: F.max_pool2d(x.permute(0, 1, 3, 2), 2, stride=3, padding=1, dilation=2, ceil_mode=True),
        [randn(1, 2, 7, 8)]),
    "avg_pool1d_exclude_pad_ceil": (
        lambda x: F.avg_pool1d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), [randn(2, 2, 8)]),
    "adaptive_avg_pool1d_upsampling": (lambda x: F.adaptive_avg_pool1d(x, 7), [randn(2, 2, 5)]),
    "adaptive_avg_pool2d_uneven": (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [randn(1, 2, 7, 5)]),
    "pad_replicate_of_view": (lambda x: F.pad(x[:, 1:, ::-1], (2, 0, 1, 3), mode="replicate"), [randn(1, 3, 4, 3)]),
    "dropout_fixed_mask": (lambda x: seeded(F.dropout, x), [randn(3, 4, 5)]),
    "flatten_middle_dims": (lambda x: F.flatten(x.transpose(0, 2), 1, 2) * 2.0, [randn(2, 3, 4)]),
    "hardtanh_both_ends": (lambda x: F.hardtanh(x, -0.5, 1.5), [randn(3, 5)]),
    "relu6_spanning_both_ends": (F.relu6, [randn(4, 5) * 5]),
    "hardsigmoid_spanning_the_ramp": (F.hardsigmoid, [randn(4, 5) * 3]),
    "hardswish_spanning_the_ramp": (F.hardswish, [randn(4, 5) * 3]),
    "elu_alpha": (lambda x: F.elu(x, 0.7), [randn(3, 5) * 2]),
    "silu_view": (lambda x: F.silu(x.transpose(0, 1)), [randn(3, 5) * 3]),
    "dropout1d_fixed_mask": (lambda x: seeded(F.dropout1d, x), [randn(3, 4, 5)]),
    "dropout2d_fixed_mask": (lambda x: seeded(F.dropout2d, x), [randn(3, 4, 2, 3)]),
    "layer_norm_two_trailing_dims": (lambda x, w, b: F.layer_norm(x, (3, 4), w, b, eps=1e-3),
                                     [randn(2, 3, 4), randn(3, 4, seed=1), randn(3, 4, seed=2)]),
    "instance_norm_affine": (lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
                             [randn(2, 3, 2, 3), randn(3, seed=1), randn(3, seed=2)]),
    "group_norm_of_view": (lambda x, w, b: F.group_norm(x.transpose(2, 3), 2, w, b),
                           [randn(2, 4, 3, 2), randn(4, seed=1), randn(4, seed=2)]),
    "adaptive_max_pool1d_overlapping_windows": (lambda x: F.adaptive_max_pool1d(x, 4), [randn(2, 3, 7)]),
    "adaptive_max_pool2d_uneven": (lambda x: F.adaptive_max_pool2d(x, (3, 2)), [randn(1, 2, 7, 5)]),
    "adaptive_max_pool2d_even": (lambda x: F.adaptive_max_pool2d(x, (2, 1)), [randn(1, 2, 6, 5)]),
    "interpolate_bilinear_of_view": (
        lambda x: F.interpolate(x[:, :, ::-1], size=(5, 7), mode="bilinear"), [randn(1, 2, 3, 4)]),
    "interpolate_bilinear_align_corners_down": (
        lambda x: F.interpolate(x, scale_factor=(0.6, 1.5), mode="bilinear", align_corners=True), [randn(2, 1, 5, 3)]),
    "gelu_exact": (F.gelu, [randn(3, 4) * 2]),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), [randn(3, 4) * 2]),
    "logsigmoid_wide": (F.logsigmoid, [randn(3, 4) * 10]),
    "softplus_beta_threshold": (lambda x: F.softplus(x, 1.5, 4.0), [randn(3, 4) * 3]),
    "mish_wide": (F.mish, [randn(3, 4) * 3]),
    "prelu_per_channel": (F.prelu, [randn(2, 3, 4), randn(3, seed=1)]),
    "l1_loss_sum": (lambda x, y: F.l1_loss(x, y, reduction="sum"), [randn(3, 4), randn(3, 4, seed=1)]),
    "smooth_l1_loss_beta": (lambda x, y: F.smooth_l1_loss(x, y, beta=0.7), [randn(3, 4), randn(3, 4, seed=1)]),
    "huber_loss_none": (lambda x, y: F.huber_loss(x, y, reduction="none", delta=0.5), [randn(3, 4), randn(3, 4, seed=1)]),
    "binary_cross_entropy_weighted": (
        lambda x, y, w: F.binary_cross_entropy(x.sigmoid(), y, w), [randn(3, 4), rand(3, 4, seed=1), rand(3, 4, seed=2)]),
    "binary_cross_entropy_with_logits_pos_weight": (
        lambda x, y, p: F.binary_cross_entropy_with_logits(x * 3, y, pos_weight=p),
        [randn(3, 4), rand(3, 4, seed=1), rand(4, seed=2) * 3]),
    "embedding_repeated_rows": (lambda w: F.embedding(long([[0, 3, 3], [1, 0, 2]]), w) * 2.0, [randn(4, 5)]),
    "interpolate_nearest_linear": (
        lambda x: F.interpolate(x, scale_factor=3, mode="nearest") + F.interpolate(x, size=15, mode="linear"),
        [randn(2, 2, 5)]),
    "pixel_shuffle_strided_view": (lambda x: F.pixel_shuffle(x[..., ::2], 3), [randn(1, 9, 2, 6)]),
    "pixel_unshuffle_unbatched_transposed": (lambda x: F.pixel_unshuffle(x.transpose(1, 2), 2), [randn(2, 4, 6)]),
    "unfold_strided_view_dilated_stride_over_kernel": (
        lambda x: F.unfold(x[..., ::2], (2, 3), dilation=(2, 1), padding=1, stride=(1, 4)), [randn(1, 2, 5, 10)]),
    "fold_unbatched_overlaps_cropped_by_padding": (lambda c: F.fold(c[:, ::2], (5, 4), 2, padding=1),
                                                  [randn(8, 60)]),
    "local_response_norm_window_wider_than_channels": (
        lambda x: F.local_response_norm(x, 6, alpha=0.8, beta=0.6, k=0.5), [randn(2, 3, 4)]),
    "normalize_p3_dim0": (lambda x: F.normalize(x, 3.0, 0), [randn(4, 3)]),
    "cosine_similarity_broadcast": (lambda a, b: F.cosine_similarity(a, b, dim=-1),
                                    [randn(1, 3, 5), randn(4, 1, 5, seed=1)]),
    "pairwise_distance_p1_keepdim": (lambda a, b: F.pairwise_distance(a, b, 1.0, keepdim=True),
                                     [randn(3, 5), randn(3, 5, seed=1)]),
    "locally_connected2d_transposed_view_strided_dilated": (
        lambda x, w, b: F.locally_connected2d(x.transpose(2, 3), w, b, stride=(2, 1), padding=1, dilation=(1, 2)),
        [randn(1, 2, 5, 6), randn(3, 3, 2, 2, 3, 3, seed=1), randn(3, 3, 2, seed=2)]),
    "locally_connected1d_stride_over_kernel": (lambda x, w, b: F.locally_connected1d(x, w, b, stride=3),
                                               [randn(2, 3, 10), randn(3, 2, 3, 2, seed=1), randn(3, 2, seed=2)]),
    "tiled_conv2d_tile_not_dividing_output": (lambda x, w, b: F.tiled_conv2d(x, w, b, padding=1),
                                              [randn(1, 2, 5, 4), randn(4, 2, 2, 2, 2, 2, seed=1),
                                               randn(4, 2, 2, seed=2)]),
}


def test_every_function_has_a_gradcheck():
    public = {n for n, f in vars(F).items() if inspect.isfunction(f) and not n.startswith("_")
              and f.__module__ == F.__name__}
    here = {n for n in public for case in CASES if case.startswith(n + "_")}
    missing = public - here - GRADCHECKED_IN_TEST_FUNCTIONAL - NOT_DIFFERENTIABLE
    assert not missing, f"functions without a finite-difference gradcheck: {sorted(missing)}"


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(device, name):
    fn, arrays = CASES[name]
    gradcheck(fn, arrays, device)
