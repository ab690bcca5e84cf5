"""Bad input across the public API (API.md): every wrong call raises the documented exception type with a
message that names the argument, never crashes, hangs or allocates an absurd size. The wrong calls run in
child processes (a crash fails exactly the case that caused it). Also here: NaN/inf propagate as in
PyTorch, empty tensors work, and no op modifies its inputs."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import convlab as cl
from convlab import NDArray, _C
from conftest import DEVICES

HUGE = 1 << 40

# (id, code, expected exception type names (any of), fragments the message must contain, case-insensitive).
# Setup names available to the code: cl, np, NDArray, _C, F (cl.nn.functional), nn (cl.nn), x4 (a float32
# (2, 4, 8, 8) NDArray), w4 (a (6, 4, 3, 3) weight), t4 / tw (the same as Tensors), c1 (the convolution
# args for 2-D: stride, padding, dilation, groups).
CASES = [
    # NDArray
    ("from_numpy_int8", "NDArray.from_numpy(np.arange(6, dtype=np.int8))", ["TypeError"], ["dtype", "int8"]),
    ("from_numpy_bad_device", "NDArray.from_numpy(np.zeros(3, np.float32), device='tpu')",
     ["ValueError", "RuntimeError"], ["device", "tpu"]),
    ("empty_negative_dim", "NDArray.empty((2, -3))", ["ValueError"], ["shape", "-3"]),
    ("empty_bad_dtype", "NDArray.empty((2, 3), dtype='int16')", ["TypeError", "ValueError"], ["dtype", "int16"]),
    ("empty_overflowing_size", f"NDArray.empty(({HUGE}, {HUGE}, {HUGE}))", ["ValueError", "MemoryError"],
     ["shape"]),
    ("full_absurd_size", f"NDArray.full(({HUGE}, {HUGE}), 1.0)", ["ValueError", "MemoryError"], []),
    ("reshape_mismatch", "x4.reshape((5, 7))", ["ValueError"], ["reshape", "(5, 7)"]),
    ("tensor_reshape_two_unknowns", "t4.reshape(-1, 2, -1)", ["ValueError"], ["reshape", "(-1, 2, -1)"]),
    ("tensor_reshape_negative", "t4.reshape(-2, -256)", ["ValueError"], ["reshape", "(-2, -256)"]),
    ("tensor_view_indivisible", "t4.view(3, -1)", ["ValueError"], ["reshape", "(3, -1)"]),
    ("view_of_permuted", "x4.permute((0, 2, 3, 1)).view((2, -1))", ["ValueError"], ["view"]),
    ("permute_not_a_permutation", "x4.permute((0, 1, 1, 2))", ["ValueError"], ["permute"]),
    ("index_out_of_bounds", "x4[2]", ["ValueError", "IndexError"], ["index", "2"]),
    ("broadcast_mismatch", "x4 + NDArray.full((3,), 1.0)", ["ValueError"], ["broadcast"]),
    ("bitwise_on_floats", "x4 & x4.astype('float64')", ["TypeError"], ["bitwise_and", "float64"]),
    ("matmul_inner_mismatch", "NDArray.full((3, 4), 1.0) @ NDArray.full((5, 2), 1.0)", ["ValueError"],
     ["matmul"]),
    ("sum_axis_out_of_range", "x4.sum(7)", ["ValueError", "IndexError"], ["axis", "7"]),
    ("pad_negative", "x4.pad([(0, 0), (0, 0), (-1, 0), (0, 0)])", ["ValueError"], ["pad"]),
    ("pad_bad_mode", "x4.pad([(1, 1)], mode='mirror')", ["ValueError"], ["mode", "mirror"]),
    ("pad_reflect_too_wide", "x4.pad([(9, 0)], mode='reflect')", ["ValueError"], ["reflect"]),
    ("setitem_string", "x4[0] = 'a'", ["TypeError"], ["str"]),
    # convolution kernels
    ("conv_rank2_input", "_C.conv_forward(x4.reshape((8, 64)), w4, None, *c1)", ["ValueError"], ["input", "rank"]),
    ("conv_channel_mismatch", "_C.conv_forward(x4, NDArray.full((6, 3, 3, 3), 1.0), None, *c1)", ["ValueError"],
     ["channels", "4"]),
    ("conv_groups_not_dividing", "_C.conv_forward(x4, NDArray.full((6, 2, 3, 3), 1.0), None, [1, 1], "
     "[(0, 0), (0, 0)], [1, 1], 3)", ["ValueError"], ["groups"]),
    ("conv_groups_zero", "_C.conv_forward(x4, w4, None, [1, 1], [(0, 0), (0, 0)], [1, 1], 0)", ["ValueError"],
     ["groups"]),
    ("conv_stride_zero", "_C.conv_forward(x4, w4, None, [0, 1], [(0, 0), (0, 0)], [1, 1], 1)", ["ValueError"],
     ["stride"]),
    ("conv_dilation_zero", "_C.conv_forward(x4, w4, None, [1, 1], [(0, 0), (0, 0)], [1, 0], 1)", ["ValueError"],
     ["dilation"]),
    ("conv_negative_padding", "_C.conv_forward(x4, w4, None, [1, 1], [(0, -1), (0, 0)], [1, 1], 1)",
     ["ValueError"], ["padding"]),
    ("conv_kernel_larger_than_input", "_C.conv_forward(x4, NDArray.full((6, 4, 9, 3), 1.0), None, *c1)",
     ["ValueError"], ["kernel"]),
    ("conv_stride_list_length", "_C.conv_forward(x4, w4, None, [1], [(0, 0), (0, 0)], [1, 1], 1)",
     ["ValueError"], ["stride"]),
    ("conv_bias_shape", "_C.conv_forward(x4, w4, NDArray.full((5,), 1.0), *c1)", ["ValueError"], ["bias"]),
    ("conv_dtype_mismatch", "_C.conv_forward(x4, w4.astype('float64'), None, *c1)", ["TypeError"],
     ["weight", "float64"]),
    ("conv_backward_input_grad_shape", "_C.conv_backward_input(NDArray.full((2, 6, 5, 5), 1.0), w4, [8, 8], *c1)",
     ["ValueError"], ["grad_output"]),
    ("conv_dilation_overflow", f"_C.conv_forward(x4, w4, None, [1, 1], [(0, 0), (0, 0)], [{1 << 62}, 1], 1)",
     ["ValueError"], ["dilation"]),
    ("conv_padding_absurd", f"_C.conv_forward(x4, w4, None, [1, 1], [({HUGE}, {HUGE}), (0, 0)], [1, 1], 1)",
     ["ValueError", "MemoryError"], []),
    ("conv_transpose_absurd_output", f"_C.conv_transpose_forward(x4, NDArray.full((4, 2, 3, 3), 1.0), None, "
     f"[{HUGE}, {HUGE}], [(0, 0), (0, 0)], [0, 0], [1, 1], 1)", ["ValueError", "MemoryError"], []),
    ("conv_transpose_output_padding", "_C.conv_transpose_forward(x4, NDArray.full((4, 2, 3, 3), 1.0), None, "
     "[2, 2], [(0, 0), (0, 0)], [2, 0], [1, 1], 1)", ["ValueError"], ["output_padding"]),
    ("conv_of_broadcast_giant", f"_C.conv_forward(NDArray.full((1, 1, 1, 1), 1.0).broadcast_to(({HUGE}, 1, "
     f"{1 << 12}, {1 << 12})), NDArray.full((1, 1, 1, 1), 1.0), None, *c1)", ["ValueError", "MemoryError"], []),
    # pooling kernels
    ("max_pool_padding_over_half", "_C.max_pool_forward(x4, [3, 3], [1, 1], [2, 0], [1, 1], False)",
     ["ValueError"], ["padding"]),
    ("max_pool_kernel_zero", "_C.max_pool_forward(x4, [0, 3], [1, 1], [0, 0], [1, 1], False)", ["ValueError"],
     ["kernel_size"]),
    ("max_pool_kernel_overflow", f"_C.max_pool_forward(x4, [{1 << 62}, 3], [1, 1], [0, 0], [4, 1], False)",
     ["ValueError"], ["kernel_size"]),
    ("pool_of_broadcast_giant_length", f"_C.max_pool_forward(NDArray.full((1, 1, 1), 1.0).broadcast_to((1, 1, "
     f"{1 << 62})), [2], [2], [0], [1], False)", ["ValueError", "MemoryError"], ["input size"]),
    ("avg_pool_input_too_small", "_C.avg_pool_forward(x4, [9, 9], [1, 1], [0, 0], False, True)", ["ValueError"],
     ["input"]),
    ("adaptive_output_zero", "_C.adaptive_avg_pool_forward(x4, [0, 2])", ["ValueError"], ["output_size"]),
    # tensors and autograd
    ("tensor_from_string", "cl.tensor('abc')", ["TypeError", "ValueError"], ["data"]),
    ("tensor_bad_dtype", "cl.tensor([1.0], dtype='int16')", ["TypeError", "ValueError"], ["dtype"]),
    ("tensor_bad_device", "cl.tensor([1.0], device='tpu')", ["ValueError", "RuntimeError"], ["device"]),
    ("backward_non_scalar", "(t4 * 2).backward()", ["RuntimeError"], ["gradient"]),
    ("backward_without_grad", "cl.tensor([1.0]).sum().backward()", ["RuntimeError"], ["grad"]),
    ("backward_gradient_shape", "(t4 * 2).backward(cl.ones(3))", ["ValueError", "RuntimeError"], ["shape"]),
    # nn.functional
    ("conv2d_numpy_input", "F.conv2d(np.zeros((1, 4, 8, 8), np.float32), tw)", ["TypeError"], ["input"]),
    ("conv2d_same_strided", "F.conv2d(t4, tw, padding='same', stride=2)", ["ValueError"], ["same", "stride"]),
    ("conv2d_bad_padding_string", "F.conv2d(t4, tw, padding='full')", ["ValueError"], ["padding", "full"]),
    ("conv2d_rank5_input", "F.conv2d(t4.reshape(1, 2, 4, 8, 8), tw)", ["ValueError"], ["input"]),
    ("conv2d_weight_rank", "F.conv2d(t4, tw.reshape(6, 4, 9))", ["ValueError"], ["weight"]),
    ("conv2d_stride_tuple_length", "F.conv2d(t4, tw, stride=(1, 1, 1))", ["ValueError"], ["stride"]),
    ("conv1d_channel_mismatch", "F.conv1d(cl.ones(2, 3, 10), cl.ones(4, 2, 3))", ["ValueError"], ["channels"]),
    ("conv_transpose2d_weight_channels", "F.conv_transpose2d(t4, cl.ones(3, 2, 3, 3))", ["ValueError"],
     ["channels"]),
    ("max_pool2d_kernel_zero", "F.max_pool2d(t4, 0)", ["ValueError"], ["kernel_size"]),
    ("max_pool2d_negative_stride", "F.max_pool2d(t4, 2, stride=-1)", ["ValueError"], ["stride"]),
    ("avg_pool2d_kernel_too_big", "F.avg_pool2d(t4, 9)", ["ValueError"], ["input"]),
    ("adaptive_pool_bad_size", "F.adaptive_avg_pool2d(t4, (2, 2, 2))", ["ValueError"], ["output_size"]),
    ("functional_pad_bad_mode", "F.pad(t4, (1, 1), mode='mirror')", ["ValueError", "NotImplementedError"], ["mode"]),
    ("pad_odd_length", "F.pad(t4, (1, 1, 1))", ["ValueError"], ["pad"]),
    ("linear_shape_mismatch", "F.linear(cl.ones(2, 5), cl.ones(3, 4))", ["ValueError", "RuntimeError"],
     ["weight"]),
    ("cross_entropy_target_range", "F.cross_entropy(cl.ones(2, 3), np.array([0, 3]))", ["ValueError", "IndexError"],
     ["target", "3"]),
    ("cross_entropy_bad_reduction", "F.cross_entropy(cl.ones(2, 3), np.array([0, 1]), reduction='avg')",
     ["ValueError"], ["reduction"]),
    ("cross_entropy_target_shape", "F.cross_entropy(cl.ones(2, 3), np.array([0, 1, 2]))", ["ValueError"],
     ["target"]),
    ("dropout_p_out_of_range", "F.dropout(t4, p=1.5)", ["ValueError"], ["p"]),
    # non-tensor where a tensor (or None) belongs: a TypeError naming it, not an AttributeError from inside
    ("conv2d_bias_number", "F.conv2d(t4, tw, bias=1.0)", ["TypeError"], ["bias"]),
    ("linear_bias_list", "F.linear(cl.ones(2, 4), cl.ones(3, 4), [1.0, 2.0, 3.0])", ["TypeError"], ["bias"]),
    ("batch_norm_running_mean_number", "F.batch_norm(t4, 0.5, cl.ones(4))", ["TypeError"], ["running_mean"]),
    ("cross_entropy_weight_list", "F.cross_entropy(cl.ones(2, 3), np.array([0, 1]), weight=[1.0, 2.0, 3.0])",
     ["TypeError"], ["weight"]),
    ("dropout_p_tensor", "F.dropout(t4, p=cl.tensor(0.5))", ["TypeError"], ["p"]),
    ("matmul_with_number", "cl.ones(2, 2) @ 2.0", ["TypeError"], ["matmul"]),
    ("softmax_dim_out_of_range", "F.softmax(t4, dim=4)", ["ValueError", "IndexError"], ["dim"]),
    ("batch_norm_one_value", "F.batch_norm(cl.ones(1, 3), None, None, training=True)", ["ValueError"],
     ["value"]),
    ("mixed_dtypes_conv", "F.conv2d(t4, tw.double())", ["TypeError", "RuntimeError"], ["float64"]),
    ("cuda_without_gpu", "cl.ones(2, device='cuda') if not cl.cuda.is_available() else "
     "(cl.ones(2, device='cpu') + cl.ones(2, device='cuda'))", ["RuntimeError"], ["cuda"]),
    # nn modules
    ("conv2d_module_groups", "nn.Conv2d(3, 4, 3, groups=2)", ["ValueError"], ["groups"]),
    ("conv2d_module_zero_kernel", "nn.Conv2d(3, 4, 0)", ["ValueError"], ["kernel_size"]),
    ("conv_transpose2d_module_groups", "nn.ConvTranspose2d(4, 6, 3, groups=4)", ["ValueError"],
     ["out_channels", "groups"]),
    ("conv1d_module_zero_stride", "nn.Conv1d(3, 4, 3, stride=0)", ["ValueError"], ["stride", "0"]),
    ("conv2d_module_padding_mode", "nn.Conv2d(3, 4, 3, padding_mode='zero')", ["ValueError"], ["padding_mode"]),
    ("linear_module_negative", "nn.Linear(-1, 3)", ["ValueError", "RuntimeError"], ["in_features"]),
    ("conv2d_module_wrong_input", "nn.Conv2d(3, 4, 3)(t4)", ["ValueError"], ["channels"]),
    ("load_state_dict_missing", "m = nn.Linear(2, 3); m.load_state_dict({'weight': m.weight.numpy()})",
     ["RuntimeError"], ["bias"]),
    ("load_state_dict_shape", "m = nn.Linear(2, 3); m.load_state_dict({'weight': np.zeros((2, 2), np.float32), "
     "'bias': np.zeros(3, np.float32)})", ["RuntimeError"], ["weight", "shape"]),
    # optim
    ("sgd_negative_lr", "cl.optim.SGD(nn.Linear(2, 2).parameters(), lr=-0.1)", ["ValueError"], ["lr"]),
    ("sgd_empty_params", "cl.optim.SGD([], lr=0.1)", ["ValueError"], ["empty"]),
    ("sgd_nesterov_no_momentum", "cl.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, nesterov=True)",
     ["ValueError"], ["nesterov"]),
    ("sgd_non_tensor", "cl.optim.SGD([np.zeros(3)], lr=0.1)", ["TypeError"], ["ndarray"]),
    ("adam_bad_betas", "cl.optim.Adam(nn.Linear(2, 2).parameters(), betas=(1.5, 0.9))", ["ValueError"], ["betas"]),
]

CHILD = r"""
import json, sys
import numpy as np
import convlab as cl
from convlab import NDArray, _C

x4 = NDArray.from_numpy(np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float32))
w4 = NDArray.from_numpy(np.random.default_rng(1).standard_normal((6, 4, 3, 3)).astype(np.float32))
setup = dict(cl=cl, np=np, NDArray=NDArray, _C=_C, F=cl.nn.functional, nn=cl.nn, x4=x4, w4=w4,
             t4=cl.tensor(x4.numpy(), requires_grad=True), tw=cl.tensor(w4.numpy(), requires_grad=True),
             c1=([1, 1], [(0, 0), (0, 0)], [1, 1], 1))
for case_id, code in json.load(sys.stdin):
    print(json.dumps({"id": case_id, "started": True}), flush=True)
    try:
        exec(code, dict(setup))
        result = {"id": case_id, "raised": None}
    except BaseException as e:
        result = {"id": case_id, "raised": [c.__name__ for c in type(e).__mro__], "message": str(e)}
    print(json.dumps(result), flush=True)
"""


def run_cases(cases):
    """Runs the cases in as few child processes as possible: a child that dies takes the case it had
    started with it (reported as a crash); the rest go to a fresh child."""
    outcomes, pending = {}, list(cases)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    while pending:
        proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps([[c[0], c[1]] for c in pending]),
                              capture_output=True, text=True, timeout=300, env=env)
        started = None
        for line in proc.stdout.splitlines():
            msg = json.loads(line)
            if msg.get("started"):
                started = msg["id"]
            else:
                outcomes[msg["id"]], started = msg, None
        if started is not None:
            outcomes[started] = {"id": started, "crashed": proc.returncode, "stderr": proc.stderr[-3000:]}
        elif proc.returncode != 0 and len(outcomes) == 0:
            pytest.fail(f"the child process failed before running any case:\n{proc.stderr[-3000:]}")
        pending = [c for c in pending if c[0] not in outcomes]
    return outcomes


@pytest.fixture(scope="module")
def outcomes():
    return run_cases(CASES)


def test_table_is_big_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case_id, code, expected, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_call_raises(outcomes, case_id, code, expected, fragments):
    got = outcomes[case_id]
    assert "crashed" not in got, f"`{code}` crashed the process (exit {got.get('crashed')}):\n{got.get('stderr')}"
    assert got["raised"] is not None, f"`{code}` raised nothing; expected {' or '.join(expected)}"
    assert set(expected) & set(got["raised"]), (
        f"`{code}` raised {got['raised'][0]}: {got['message']!r}; expected {' or '.join(expected)}")
    missing = [f for f in fragments if f.lower() not in got["message"].lower()]
    assert not missing, f"`{code}` message {got['message']!r} does not name {missing}"


# ---- NaN and inf propagate exactly as in PyTorch ---------------------------------------------------------

def poisoned(shape, seed=0):
    """Random values with a NaN, a +inf and a -inf far enough apart that no small window holds two."""
    x = np.random.default_rng(seed).standard_normal(shape)
    flat = x.reshape(-1)
    flat[1], flat[flat.size // 2], flat[-2] = np.nan, np.inf, -np.inf
    return x


NONFINITE_CASES = {
    "conv2d": lambda F, x, w: F.conv2d(x, w, padding=1),
    "conv2d_strided_dilated": lambda F, x, w: F.conv2d(x, w, stride=2, dilation=2, padding=2),
    "conv_transpose2d": lambda F, x, w: F.conv_transpose2d(x, w.transpose(0, 1), stride=2),
    "max_pool2d": lambda F, x, w: F.max_pool2d(x, 3, 2, 1),
    "avg_pool2d": lambda F, x, w: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
    "adaptive_avg_pool2d": lambda F, x, w: F.adaptive_avg_pool2d(x, (3, 5)),
    "linear": lambda F, x, w: F.linear(x.reshape(12, 49), w.reshape(6, 27)[:, :1].expand(6, 49)),
    "activations": lambda F, x, w: F.relu(x) + F.leaky_relu(x, 0.1) + F.sigmoid(x) * F.tanh(x),
    "softmax": lambda F, x, w: F.softmax(x, 1) + F.log_softmax(x, 3),
    "pad_reflect": lambda F, x, w: F.pad(x, (2, 1, 0, 3), mode="reflect"),
    "batch_norm_eval": lambda F, x, w: F.batch_norm(x, w[0, 0, 0, :3].detach() * 0, w[1, 0, 0, :3].detach() ** 2,
                                                    training=False),
    "reductions": lambda F, x, w: x.sum(3) + x.mean(3) + x.max(3).values,
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(NONFINITE_CASES))
def test_nan_and_inf_propagate_like_torch(device, name):
    """Forward values and input gradients with NaN/inf inputs: same NaN and inf positions (and the same
    finite values) as PyTorch. A kernel that skips zero weights or treats padding by multiplying masks
    would lose or invent NaNs here."""
    torch = pytest.importorskip("torch")
    x, w = poisoned((4, 3, 7, 7)), np.random.default_rng(1).standard_normal((6, 3, 3, 3))
    ours = [cl.tensor(a, dtype="float64", device=device, requires_grad=True) for a in (x, w)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w)]
    fn = NONFINITE_CASES[name]
    out, ref = fn(cl.nn.functional, *ours), fn(torch.nn.functional, *theirs)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-10, equal_nan=True)
    gy = np.random.default_rng(2).standard_normal(ref.shape)
    out.backward(cl.tensor(gy, dtype="float64", device=device))
    ref.backward(torch.tensor(gy))
    for ours_t, theirs_t in zip(ours, theirs):
        if theirs_t.grad is not None:
            np.testing.assert_allclose(ours_t.grad.numpy(), theirs_t.grad.numpy(), rtol=1e-10, atol=1e-10,
                                       equal_nan=True)


# ---- empty tensors --------------------------------------------------------------------------------------

EMPTY_CASES = {
    "conv2d_batch0": ((0, 3, 6, 6), lambda F, x, w: F.conv2d(x, w, padding=1)),
    "conv_transpose2d_batch0": ((0, 6, 4, 4), lambda F, x, w: F.conv_transpose2d(x, w, stride=2)),
    "conv1d_batch0": ((0, 3, 9), lambda F, x, w: F.conv1d(x, w[:, :, 0], stride=2)),
    "max_pool2d_batch0": ((0, 3, 6, 6), lambda F, x, w: F.max_pool2d(x, 2)),
    "avg_pool2d_batch0": ((0, 3, 6, 6), lambda F, x, w: F.avg_pool2d(x, 3, 1, 1)),
    "adaptive_avg_pool2d_batch0": ((0, 3, 6, 6), lambda F, x, w: F.adaptive_avg_pool2d(x, 2)),
    "linear_rows0": ((0, 3), lambda F, x, w: F.linear(x, w[:, :, 0, 0])),
    "relu_empty": ((0, 5), lambda F, x, w: F.relu(x) * 2),
    "sum_of_empty": ((0, 4), lambda F, x, w: x.sum() + x.sum(0)),
    "softmax_batch0": ((0, 4), lambda F, x, w: F.softmax(x, 1)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(EMPTY_CASES))
def test_empty_tensors_like_torch(device, name):
    torch = pytest.importorskip("torch")
    shape, fn = EMPTY_CASES[name]
    x, w = np.zeros(shape), np.random.default_rng(1).standard_normal((6, 3, 3, 3))
    ours = [cl.tensor(a, dtype="float64", device=device, requires_grad=True) for a in (x, w)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w)]
    out, ref = fn(cl.nn.functional, *ours), fn(torch.nn.functional, *theirs)
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), equal_nan=True)
    out.backward(cl.tensor(np.ones(ref.shape), dtype="float64", device=device))
    ref.backward(torch.ones(ref.shape, dtype=torch.float64))
    for ours_t, theirs_t in zip(ours, theirs):
        if theirs_t.grad is not None:
            np.testing.assert_allclose(ours_t.grad.numpy(), theirs_t.grad.numpy())


# ---- no op modifies its inputs --------------------------------------------------------------------------

def functional_calls(F):
    """name -> fn(x, w) over a (2, 4, 9, 9) input x and a (6, 2, 3, 3) weight w, each op differentiable."""
    target = np.array([[0, 1], [2, 1]])
    return {
        "conv2d": lambda x, w: F.conv2d(x, w, w[:, 0, 0, 0], stride=2, padding="valid", groups=2),
        "conv2d_same": lambda x, w: F.conv2d(x, w, padding="same", dilation=2, groups=2),
        "conv1d": lambda x, w: F.conv1d(x[:, :, 0], w[:, :, 0], padding=1, groups=2),
        "conv_transpose2d": lambda x, w: F.conv_transpose2d(x, w.reshape(4, 3, 3, 3), stride=2, output_padding=1),
        "conv_transpose1d": lambda x, w: F.conv_transpose1d(x[:, :, 1], w.reshape(4, 3, 9)[:, :, :2], groups=1),
        "max_pool2d": lambda x, w: F.max_pool2d(x, 3, 2, 1, dilation=1, ceil_mode=True),
        "max_pool1d": lambda x, w: F.max_pool1d(x[:, :, 2], 2),
        "avg_pool2d": lambda x, w: F.avg_pool2d(x, 2, 1, 1, count_include_pad=False),
        "avg_pool1d": lambda x, w: F.avg_pool1d(x[:, :, 2], 3),
        "adaptive_avg_pool2d": lambda x, w: F.adaptive_avg_pool2d(x, 4),
        "adaptive_avg_pool1d": lambda x, w: F.adaptive_avg_pool1d(x[:, :, 0], 5),
        "pad": lambda x, w: F.pad(x, (1, 2, 2, 1), mode="circular") + F.pad(x, (1, 2, 2, 1), value=3.0),
        "linear": lambda x, w: F.linear(x, w.reshape(6, 18)[:, :9], w[:, 0, 0, 0]),
        "activations": lambda x, w: F.relu(x) + F.leaky_relu(x) + F.sigmoid(x) + F.tanh(x),
        "softmax": lambda x, w: F.softmax(x, 1) + F.log_softmax(x, 2),
        "dropout": lambda x, w: F.dropout(x, 0.3),
        "flatten": lambda x, w: F.flatten(x, 1),
        "batch_norm": lambda x, w: F.batch_norm(x, None, None, w[:4, 0, 0, 0], w[:4, 0, 0, 1], training=True),
        "cross_entropy": lambda x, w: F.cross_entropy(x[:, :, :2, 0], target, label_smoothing=0.1),
        "nll_loss": lambda x, w: F.nll_loss(x[:, :, :2, 0], target, reduction="sum"),
        "mse_loss": lambda x, w: F.mse_loss(x, x.detach() * 0.5),
        "activations_piecewise": lambda x, w: (
            F.relu6(x) + F.hardtanh(x, -0.5, 0.5) + F.hardsigmoid(x) + F.hardswish(x) + F.elu(x) + F.silu(x)
            + F.gelu(x) + F.logsigmoid(x) + F.softplus(x) + F.mish(x) + F.prelu(x, w[:4, 0, 0, 0])),
        "dropout1d": lambda x, w: F.dropout1d(x[:, :, 0], 0.3),
        "dropout2d": lambda x, w: F.dropout2d(x, 0.3),
        "layer_norm": lambda x, w: F.layer_norm(x, (9, 9), w.reshape(12, 9)[:9], w.reshape(12, 9)[3:]),
        "group_norm": lambda x, w: F.group_norm(x, 2, w[:4, 0, 0, 0], w[:4, 0, 0, 1]),
        "instance_norm": lambda x, w: F.instance_norm(x, weight=w[:4, 0, 0, 0], bias=w[:4, 0, 0, 1]),
        "adaptive_max_pool2d": lambda x, w: F.adaptive_max_pool2d(x, (4, 5)),
        "adaptive_max_pool1d": lambda x, w: F.adaptive_max_pool1d(x[:, :, 0], 4),
        "interpolate": lambda x, w: F.interpolate(x, scale_factor=1.5, mode="bilinear"),
        "l1_loss": lambda x, w: F.l1_loss(x, x.detach() * 0.5),
        "smooth_l1_loss": lambda x, w: F.smooth_l1_loss(x, x.detach() * 0.5, beta=0.5),
        "huber_loss": lambda x, w: F.huber_loss(x, x.detach() * 0.5, delta=0.5),
        "binary_cross_entropy": lambda x, w: F.binary_cross_entropy(x.sigmoid(), x.detach().sigmoid()),
        "binary_cross_entropy_with_logits": lambda x, w: F.binary_cross_entropy_with_logits(
            x, x.detach().sigmoid(), w.reshape(12, 9)[1], pos_weight=w.reshape(12, 9)[0]),
        "pixel_shuffle": lambda x, w: F.pixel_shuffle(x, 2) + F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2).sum(),
        "local_response_norm": lambda x, w: F.local_response_norm(x, 3, alpha=0.5, k=2.0),
        "unfold": lambda x, w: F.fold(F.unfold(x, (2, 3), padding=1, stride=2), (9, 9), (2, 3), padding=1, stride=2),
        "normalize": lambda x, w: F.normalize(x, dim=2) + F.cosine_similarity(x, x.flip(3), dim=1).unsqueeze(1)
        + F.pairwise_distance(x, x.detach() * 0.5, keepdim=True),
        "locally_connected2d": lambda x, w: F.locally_connected2d(
            x, w[:2].reshape(1, 1, 1, 4, 3, 3).expand(3, 3, 1, 4, 3, 3), w[0, 0].reshape(3, 3, 1), stride=3),
        "locally_connected1d": lambda x, w: F.locally_connected1d(
            x[:, :, 0], w[:2].reshape(1, 1, 4, 9)[..., :3].expand(7, 1, 4, 3), w.reshape(108)[:7].reshape(7, 1)),
        "tiled_conv2d": lambda x, w: F.tiled_conv2d(x, w.reshape(1, 3, 1, 4, 3, 3), w[0, 0, 0].reshape(1, 3, 1),
                                                    padding=1, dilation=2),
        "embedding": lambda x, w: F.embedding(cl.tensor([[0, 3], [11, 2]], device=x.device), w.reshape(12, 9))
        + F.one_hot(cl.tensor([1, 0], device=x.device), 9),  # one_hot: its index tensor alone, as a constant
    }


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(functional_calls(None)))
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_functional_ops_leave_inputs_unchanged(device, name, layout):
    """Forward and backward; the inputs' values (and for a strided view, its whole base storage) stay as they
    were. Every public function appears in the table (checked in test_every_function_is_checked)."""
    rng = np.random.default_rng(5)
    base_x = rng.standard_normal((2, 4, 9, 18) if layout == "strided" else (2, 4, 9, 9))
    leaf_x = cl.tensor(base_x, device=device, requires_grad=True)
    x = leaf_x[..., ::2] if layout == "strided" else leaf_x
    w = cl.tensor(rng.standard_normal((6, 2, 3, 3)), device=device, requires_grad=True)
    before_x, before_w = leaf_x.numpy(), w.numpy()
    out = functional_calls(cl.nn.functional)[name](x, w)
    out.backward(cl.tensor(np.ones(out.shape), device=device))
    np.testing.assert_array_equal(leaf_x.numpy(), before_x, err_msg=f"{name} changed its input")
    np.testing.assert_array_equal(w.numpy(), before_w, err_msg=f"{name} changed its weight")


def test_every_function_is_checked():
    import inspect
    F = cl.nn.functional
    public = {n for n, f in vars(F).items() if inspect.isfunction(f) and not n.startswith("_")
              and f.__module__ == F.__name__}
    checked = set(functional_calls(F)) | {"relu", "leaky_relu", "sigmoid", "tanh", "log_softmax",  # in groups
                                          "relu6", "hardtanh", "hardsigmoid", "hardswish", "elu", "silu", "gelu",
                                          "logsigmoid", "softplus", "mish", "prelu", "one_hot",
                                          "pixel_unshuffle", "cosine_similarity", "pairwise_distance", "fold"}
    assert public <= checked, f"functions without an input-unchanged check: {sorted(public - checked)}"


def ndarray_calls():
    """name -> fn(a, b) over NDArrays a (3, 4, 5) and b (5, 4): every kind of NDArray op and _C kernel."""
    return {
        "binary": lambda a, b: (a + 1.0) * a - a / 2.0 + a ** 2.0 + 3.0 - a,
        "broadcast_binary": lambda a, b: a.maximum(b.transpose(0, 1)[:, :].reshape((1, 4, 5))),
        "compare": lambda a, b: (a < 0.5) + (a == a) + (a >= 0.1),
        "unary": lambda a, b: a.exp() + a.abs().log() + a.abs().sqrt() + a.tanh() + a.sigmoid() + a.relu() + a.sign(),
        "reductions": lambda a, b: a.sum((0, 2)) + a.max(2).sum(0) + a.mean(),
        "argmax": lambda a, b: a.argmax(1),
        "matmul": lambda a, b: a @ b,
        "pad": lambda a, b: a.pad([(1, 1), (0, 2)], mode="reflect"),
        "copies": lambda a, b: a.compact() + a.copy() + a.astype("float32").astype("float64") + a.reshape((60,)).reshape((3, 4, 5)),
        "conv": lambda a, b: _C.conv_forward(a, b.reshape((4, 1, 5)), None, [1], [(2, 2)], [1], 4),
        "conv_backward": lambda a, b: _C.conv_backward_weight(a, a, [1], [1], [(0, 0)], [1], 1),
        "pool": lambda a, b: _C.max_pool_forward(a, [2], [1], [1], [1], True),
    }


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(ndarray_calls()))
def test_ndarray_ops_leave_inputs_unchanged(device, name):
    rng = np.random.default_rng(6)
    base = NDArray.from_numpy(rng.standard_normal((3, 4, 10)), device)
    a, b = base[:, :, 1::2], NDArray.from_numpy(rng.standard_normal((5, 4)), device)
    before_base, before_b = base.numpy(), b.numpy()
    ndarray_calls()[name](a, b)
    np.testing.assert_array_equal(base.numpy(), before_base, err_msg=f"{name} changed its input's storage")
    np.testing.assert_array_equal(b.numpy(), before_b, err_msg=f"{name} changed its second input")
