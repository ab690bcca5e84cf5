"""convlab.nn modules: registration, traversal, state dicts, placement, initialisation, and each layer's
output and gradients against the torch.nn layer holding the same weights."""
import math

import numpy as np
import pytest

import convlab as cl
import convlab.nn as nn
from autograd_helpers import assert_close, torch_or_skip


def copy_into_torch(ours, theirs):
    """Loads our module's parameters and buffers into the torch module of the same layout."""
    torch = torch_or_skip()
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    return theirs


def run_both(ours, theirs, x, device, dtype, target=None):
    """Forward + backward through both modules; compares outputs, input gradients and parameter gradients."""
    torch = torch_or_skip()
    x_ours = cl.tensor(x.astype(dtype), device=device, requires_grad=True)
    x_ref = torch.tensor(x.astype(dtype), requires_grad=True)
    out, ref = ours(x_ours), theirs(x_ref)
    assert_close(out, ref, dtype)
    g = np.random.default_rng(1).standard_normal(ref.shape).astype(dtype)
    out.backward(cl.tensor(g, device=device))
    ref.backward(torch.tensor(g))
    assert_close(x_ours.grad, x_ref.grad, dtype)
    ref_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, ref_params[name].grad, dtype)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4, 2)
        self.shared = self.head  # the same module twice: its parameters count once

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


# ---- the Module machinery ----
def test_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias", "head.weight",
                     "head.bias"]
    assert len(list(net.parameters())) == 6
    assert [n for n, _ in net.named_children()] == ["features", "head", "shared"]
    assert len(list(net.modules())) == 6  # net, features, conv, bn, relu, head (shared is the same object)
    assert [n for n, _ in net.named_buffers()] == ["features.1.running_mean", "features.1.running_var",
                                                   "features.1.num_batches_tracked"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert "Conv2d(1, 4, kernel_size=(3, 3)" in repr(net)


def test_train_eval_zero_grad():
    net = Net()
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    out = net(cl.randn(2, 1, 5, 5)).sum()
    out.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_to_double_float_keeps_parameter_objects():
    net = Net()
    weight = net.head.weight
    net.double()
    assert net.head.weight is weight and weight.dtype == "float64"
    assert net.features[1].running_var.dtype == "float64"
    assert net(cl.randn(2, 1, 5, 5, dtype="float64")).dtype == "float64"
    net.to(dtype="float32")
    assert weight.dtype == "float32"
    assert net.float() is net and net.to("cpu") is net


def test_state_dict_round_trips_through_savez(tmp_path):
    cl.manual_seed(0)
    a = Net()
    a(cl.randn(3, 1, 5, 5))  # moves the running stats
    path = tmp_path / "net.npz"
    np.savez(path, **{k: v.numpy() for k, v in a.state_dict().items()})
    cl.manual_seed(1)
    b = Net()
    result = b.load_state_dict(np.load(path))
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=name)
    assert b.features[1].num_batches_tracked.item() == 1
    a.eval(), b.eval()
    x = cl.randn(2, 1, 5, 5)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_load_state_dict_errors_name_the_key_and_shapes():
    net = Net()
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    before = net.head.weight.numpy()
    missing = dict(state)
    del missing["head.bias"]
    with pytest.raises(RuntimeError, match="missing.*'head.bias'"):
        net.load_state_dict(missing)
    with pytest.raises(ValueError, match="unexpected.*'extra'"):
        net.load_state_dict({**state, "extra": np.zeros(1)})
    bad = {**state, "head.weight": np.zeros((3, 4))}
    with pytest.raises(nn.LoadStateDictError, match=r"'head.weight'.*\(3, 4\).*\(2, 4\)"):
        net.load_state_dict(bad)
    np.testing.assert_array_equal(net.head.weight.numpy(), before)  # a failed load changes nothing
    result = net.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["head.bias"]


def test_deepcopy_makes_an_independent_model():
    import copy

    net = Net()
    twin = copy.deepcopy(net)
    assert isinstance(twin.head.weight, nn.Parameter) and twin.head.weight is not net.head.weight
    assert twin.shared is twin.head  # shared modules stay shared in the copy
    np.testing.assert_array_equal(twin.head.weight.numpy(), net.head.weight.numpy())
    nn.init.zeros_(twin.head.weight)
    assert np.abs(net.head.weight.numpy()).sum() > 0


def test_setattr_rules():
    m = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="weight"):
        m.weight = cl.zeros(3, 2)
    m.weight = nn.Parameter(cl.zeros(3, 2))
    assert m.weight.numpy().sum() == 0
    assert [n for n, _ in nn.Linear(2, 3, bias=False).named_parameters()] == ["weight"]


# ---- initialisation ----
@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Conv2d(6, 8, (3, 5), groups=2), 3 * 3 * 5),
    (lambda: nn.ConvTranspose2d(6, 8, 3, groups=2), 4 * 3 * 3),  # PyTorch's fan_in for transposed: C_out/g * k
    (lambda: nn.Conv1d(4, 5, 7), 4 * 7),
    (lambda: nn.Linear(30, 20), 30),
])
def test_default_init_bounds(make, fan_in):
    cl.manual_seed(0)
    m = make()
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) gives the same bound as the bias init
    w, b = m.weight.numpy(), m.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.8 * bound  # actually spread over the range
    assert w.dtype == np.float32


def test_init_functions():
    cl.manual_seed(0)
    t = cl.zeros(200, 300)
    nn.init.kaiming_normal_(t, nonlinearity="relu")
    assert abs(t.numpy().std() - math.sqrt(2 / 300)) < 0.01 * math.sqrt(2 / 300) * 5
    nn.init.xavier_uniform_(t)
    assert np.abs(t.numpy()).max() <= math.sqrt(6 / 500)
    nn.init.constant_(t, 0.25)
    assert np.all(t.numpy() == 0.25)
    nn.init.xavier_normal_(t, gain=2.0)
    assert abs(t.numpy().std() - 2.0 * math.sqrt(2 / 500)) < 0.05 * 2.0 * math.sqrt(2 / 500)
    nn.init.kaiming_uniform_(t, a=1.0, mode="fan_out")  # gain sqrt(2 / (1 + a^2)) = 1, fan_out = 200
    assert 0.95 * math.sqrt(3 / 200) < np.abs(t.numpy()).max() <= math.sqrt(3 / 200)


def test_batchnorm_reset_running_stats():
    bn = nn.BatchNorm2d(3)
    bn(cl.randn(4, 3, 5, 5) * 3.0 + 1.0)
    assert np.abs(bn.running_mean.numpy()).max() > 0 and float(bn.num_batches_tracked.item()) == 1
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0.0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1.0)
    assert float(bn.num_batches_tracked.item()) == 0


# ---- layers against torch.nn ----
LAYERS = {
    "conv2d": (lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1), "Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1)",
               (2, 3, 7, 6)),
    "conv2d_same": (lambda: nn.Conv2d(4, 6, 4, padding="same", dilation=2, groups=2),
                    "Conv2d(4, 6, 4, padding='same', dilation=2, groups=2)", (1, 4, 7, 9)),
    "conv2d_reflect": (lambda: nn.Conv2d(2, 3, 3, padding=(2, 1), padding_mode="reflect"),
                       "Conv2d(2, 3, 3, padding=(2, 1), padding_mode='reflect')", (2, 2, 5, 6)),
    "conv2d_replicate": (lambda: nn.Conv2d(2, 3, 3, padding=1, stride=2, padding_mode="replicate"),
                         "Conv2d(2, 3, 3, padding=1, stride=2, padding_mode='replicate')", (2, 2, 5, 6)),
    "conv2d_circular": (lambda: nn.Conv2d(2, 3, 4, padding="same", padding_mode="circular", bias=False),
                        "Conv2d(2, 3, 4, padding='same', padding_mode='circular', bias=False)", (2, 2, 5, 6)),
    "conv1d_circular": (lambda: nn.Conv1d(3, 2, 3, padding=2, padding_mode="circular"),
                        "Conv1d(3, 2, 3, padding=2, padding_mode='circular')", (2, 3, 8)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
                         "ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)", (2, 4, 3, 5)),
    "conv_transpose1d": (lambda: nn.ConvTranspose1d(3, 2, 4, stride=3, dilation=2),
                         "ConvTranspose1d(3, 2, 4, stride=3, dilation=2)", (2, 3, 5)),
    "maxpool2d": (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), "MaxPool2d(3, 2, 1, ceil_mode=True)", (2, 3, 8, 7)),
    "maxpool1d": (lambda: nn.MaxPool1d(2), "MaxPool1d(2)", (2, 3, 9)),
    "avgpool2d": (lambda: nn.AvgPool2d((2, 3), padding=1, count_include_pad=False),
                  "AvgPool2d((2, 3), padding=1, count_include_pad=False)", (2, 3, 8, 7)),
    "avgpool1d": (lambda: nn.AvgPool1d(3, 2), "AvgPool1d(3, 2)", (2, 3, 9)),
    "adaptive": (lambda: nn.AdaptiveAvgPool2d((3, None)), "AdaptiveAvgPool2d((3, None))", (2, 3, 8, 7)),
    "linear": (lambda: nn.Linear(5, 3), "Linear(5, 3)", (4, 5)),
    "relu": (lambda: nn.ReLU(), "ReLU()", (3, 4)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), "LeakyReLU(0.2)", (3, 4)),
    "sigmoid": (lambda: nn.Sigmoid(), "Sigmoid()", (3, 4)),
    "tanh": (lambda: nn.Tanh(), "Tanh()", (3, 4)),
    "flatten": (lambda: nn.Flatten(), "Flatten()", (2, 3, 4)),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3, momentum=0.2), "BatchNorm2d(3, momentum=0.2)", (4, 3, 5, 5)),
    "batchnorm1d": (lambda: nn.BatchNorm1d(3), "BatchNorm1d(3)", (6, 3)),
    "sequential": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 2)),
                   "Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 2))", (2, 2, 5, 5)),
    "batchnorm1d_3d": (lambda: nn.BatchNorm1d(3, affine=False), "BatchNorm1d(3, affine=False)", (4, 3, 5)),
    "layernorm": (lambda: nn.LayerNorm((4, 5), eps=1e-3), "LayerNorm((4, 5), eps=1e-3)", (2, 3, 4, 5)),
    "layernorm_no_bias": (lambda: nn.LayerNorm(5, bias=False), "LayerNorm(5, bias=False)", (3, 5)),
    "groupnorm": (lambda: nn.GroupNorm(2, 6), "GroupNorm(2, 6)", (2, 6, 3, 4)),
    "groupnorm_no_affine": (lambda: nn.GroupNorm(3, 3, affine=False), "GroupNorm(3, 3, affine=False)", (2, 3, 5)),
    "relu6": (lambda: nn.ReLU6(), "ReLU6()", (3, 4)),
    "hardtanh": (lambda: nn.Hardtanh(-0.5, 2.0), "Hardtanh(-0.5, 2.0)", (3, 4)),
    "hardswish": (lambda: nn.Hardswish(), "Hardswish()", (3, 4)),
    "hardsigmoid": (lambda: nn.Hardsigmoid(), "Hardsigmoid()", (3, 4)),
    "elu": (lambda: nn.ELU(0.3), "ELU(0.3)", (3, 4)),
    "silu": (lambda: nn.SiLU(), "SiLU()", (3, 4)),
    "softmax": (lambda: nn.Softmax(dim=1), "Softmax(dim=1)", (3, 4)),
    "log_softmax": (lambda: nn.LogSoftmax(-1), "LogSoftmax(-1)", (2, 3, 4)),
    "identity": (lambda: nn.Identity(54, unused=True), "Identity(54, unused=True)", (2, 3)),
    "adaptive_max": (lambda: nn.AdaptiveMaxPool2d((3, 2)), "AdaptiveMaxPool2d((3, 2))", (2, 3, 7, 5)),
    "adaptive_max1d": (lambda: nn.AdaptiveMaxPool1d(4), "AdaptiveMaxPool1d(4)", (2, 3, 9)),
    "adaptive_avg1d": (lambda: nn.AdaptiveAvgPool1d(4), "AdaptiveAvgPool1d(4)", (2, 3, 9)),
    "upsample_nearest": (lambda: nn.Upsample(scale_factor=2), "Upsample(scale_factor=2)", (2, 3, 4, 5)),
    "upsample_bilinear": (lambda: nn.Upsample(size=(7, 3), mode="bilinear"), "Upsample(size=(7, 3), mode='bilinear')",
                          (2, 3, 4, 5)),
    "upsampling_bilinear2d": (lambda: nn.UpsamplingBilinear2d(scale_factor=2), "UpsamplingBilinear2d(scale_factor=2)",
                              (1, 2, 3, 4)),
    "upsampling_nearest2d": (lambda: nn.UpsamplingNearest2d(size=(5, 6)), "UpsamplingNearest2d(size=(5, 6))",
                             (1, 2, 3, 4)),
    "dropout2d_eval": (lambda: nn.Dropout2d(0.3).eval(), "Dropout2d(0.3).eval()", (2, 3, 4, 4)),
    "dropout1d_eval": (lambda: nn.Dropout1d(0.3).eval(), "Dropout1d(0.3).eval()", (2, 3, 4)),
    "instancenorm2d": (lambda: nn.InstanceNorm2d(3, affine=True), "InstanceNorm2d(3, affine=True)", (2, 3, 4, 5)),
    "instancenorm2d_unbatched": (lambda: nn.InstanceNorm2d(3), "InstanceNorm2d(3)", (3, 4, 5)),
    "instancenorm1d": (lambda: nn.InstanceNorm1d(4, eps=1e-3), "InstanceNorm1d(4, eps=1e-3)", (2, 4, 6)),
    "unflatten": (lambda: nn.Unflatten(1, (2, -1)), "Unflatten(1, (2, -1))", (3, 8, 2)),
    "prelu": (lambda: nn.PReLU(3, init=0.1), "PReLU(3, init=0.1)", (2, 3, 4)),
    "prelu_shared": (lambda: nn.PReLU(), "PReLU()", (2, 3, 4, 2)),
    "softplus": (lambda: nn.Softplus(beta=2, threshold=3), "Softplus(beta=2, threshold=3)", (3, 4)),
    "mish": (lambda: nn.Mish(), "Mish()", (3, 4)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_repr_and_state_keys_match_torch(name):
    torch = torch_or_skip()
    make, torch_expr, _ = LAYERS[name]
    ours, theirs = make(), eval("torch.nn." + torch_expr, {"torch": torch, "nn": torch.nn})
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_layer_matches_torch(device, name, dtype):
    torch = torch_or_skip()
    make, torch_expr, shape = LAYERS[name]
    cl.manual_seed(0)
    ours = make().to(device=device, dtype=dtype)
    theirs = eval("torch.nn." + torch_expr, {"torch": torch, "nn": torch.nn})
    theirs = copy_into_torch(ours, theirs.to(getattr(torch, dtype)))
    x = np.random.default_rng(0).standard_normal(shape)
    run_both(ours, theirs, x, device, dtype)
    for key, value in theirs.state_dict().items():  # running stats and counters moved the same way
        assert_close(ours.state_dict()[key], value.numpy().astype(dtype), dtype)


def test_batchnorm_running_stats_and_eval_match_torch(device):
    torch = torch_or_skip()
    for momentum in (0.1, None):
        ours = nn.BatchNorm2d(3, momentum=momentum).to(device=device, dtype="float64")
        theirs = torch.nn.BatchNorm2d(3, momentum=momentum).double()
        for step in range(3):
            x = np.random.default_rng(step).standard_normal((4, 3, 3, 2)) * (step + 1) + step
            ours(cl.tensor(x, device=device))
            theirs(torch.tensor(x))
        for key, value in theirs.state_dict().items():
            assert_close(ours.state_dict()[key], value.numpy().astype(np.float64), "float64")
        ours.eval(), theirs.eval()
        run_both(ours, theirs, np.random.default_rng(9).standard_normal((2, 3, 3, 2)), device, "float64")


def test_conv_transpose_output_size_matches_torch(device):
    torch = torch_or_skip()
    ours = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).to(device=device, dtype="float64")
    theirs = copy_into_torch(ours, torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double())
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5))
    out = ours(cl.tensor(x, device=device), output_size=(8, 10))
    assert out.shape == (1, 3, 8, 10)
    assert_close(out, theirs(torch.tensor(x), output_size=(8, 10)), "float64")
    with pytest.raises(ValueError, match="output_size"):
        ours(cl.tensor(x, device=device), output_size=(12, 10))


def test_dropout_module_train_and_eval():
    cl.manual_seed(0)
    drop = nn.Dropout(0.5)
    x = cl.ones(1000)
    assert 0.4 < (drop(x).numpy() == 0).mean() < 0.6
    drop.eval()
    assert drop(x) is x


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules_match_torch(device, reduction):
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal((5, 4))
    target = np.array([0, 3, 1, 1, 2])
    weight = np.array([1.0, 0.5, 2.0, 1.5])
    ours = nn.CrossEntropyLoss(cl.tensor(weight, device=device), reduction=reduction, label_smoothing=0.1)
    theirs = torch.nn.CrossEntropyLoss(torch.tensor(weight), reduction=reduction, label_smoothing=0.1)
    assert_close(ours(cl.tensor(x, device=device), target), theirs(torch.tensor(x), torch.tensor(target)), "float64")
    y = np.random.default_rng(1).standard_normal((5, 4))
    assert_close(nn.MSELoss(reduction=reduction)(cl.tensor(x, device=device), cl.tensor(y, device=device)),
                 torch.nn.MSELoss(reduction=reduction)(torch.tensor(x), torch.tensor(y)), "float64")


def test_layer_construction_errors():
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="same"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="4-D"):
        nn.BatchNorm2d(3)(cl.zeros(2, 3))
    with pytest.raises(ValueError, match="channels"):
        nn.BatchNorm2d(3)(cl.zeros(2, 4, 2, 2))
