"""The Module machinery PyTorch programs lean on: Lazy modules, ModuleList / ModuleDict, Sequential editing,
forward hooks, apply / get_submodule / buffers, and printing, each against torch.nn where it has the same."""
import numpy as np
import pytest

import convlab as cl
import convlab.nn as nn
from autograd_helpers import assert_close, torch_or_skip

# name -> (our lazy module, the plain torch module it must equal, input shape)
LAZY = {
    "conv2d": (lambda: nn.LazyConv2d(4, 3, stride=2, padding=1, groups=2), "Conv2d(6, 4, 3, stride=2, padding=1, groups=2)",
               (2, 6, 7, 5)),
    "conv2d_unbatched": (lambda: nn.LazyConv2d(3, (2, 3), bias=False), "Conv2d(2, 3, (2, 3), bias=False)", (2, 5, 6)),
    "conv1d": (lambda: nn.LazyConv1d(5, 3, dilation=2, padding_mode="reflect", padding=2),
               "Conv1d(3, 5, 3, dilation=2, padding_mode='reflect', padding=2)", (2, 3, 9)),
    "conv_transpose2d": (lambda: nn.LazyConvTranspose2d(4, 3, stride=2, output_padding=1),
                         "ConvTranspose2d(3, 4, 3, stride=2, output_padding=1)", (2, 3, 4, 5)),
    "conv_transpose1d": (lambda: nn.LazyConvTranspose1d(2, 4, stride=3, groups=2),
                         "ConvTranspose1d(4, 2, 4, stride=3, groups=2)", (1, 4, 6)),
    "linear": (lambda: nn.LazyLinear(3), "Linear(7, 3)", (2, 5, 7)),
    "linear_no_bias": (lambda: nn.LazyLinear(2, bias=False), "Linear(4, 2, bias=False)", (3, 4)),
    "batchnorm2d": (lambda: nn.LazyBatchNorm2d(momentum=0.3), "BatchNorm2d(3, momentum=0.3)", (4, 3, 2, 5)),
    "batchnorm1d": (lambda: nn.LazyBatchNorm1d(affine=False), "BatchNorm1d(5, affine=False)", (6, 5)),
    "batchnorm1d_3d": (lambda: nn.LazyBatchNorm1d(eps=1e-3), "BatchNorm1d(3, eps=1e-3)", (4, 3, 6)),
}


@pytest.mark.parametrize("name", sorted(LAZY))
def test_lazy_module_becomes_the_plain_one(device, name):
    torch = torch_or_skip()
    make, plain_expr, shape = LAZY[name]
    cl.manual_seed(0)
    lazy = make().to(device=device, dtype="float64")
    reference = eval("torch.nn." + plain_expr, {"torch": torch}).double()
    plain_class = getattr(nn, type(reference).__name__)
    assert type(lazy) is not plain_class and lazy.has_uninitialized_params()
    x = np.random.default_rng(0).standard_normal(shape)
    out = lazy(cl.tensor(x, device=device, requires_grad=True))
    assert type(lazy) is plain_class and not hasattr(lazy, "_lazy_args")
    assert repr(lazy) == repr(reference)
    assert list(lazy.state_dict()) == list(reference.state_dict())
    for key, value in reference.state_dict().items():
        assert lazy.state_dict()[key].shape == tuple(value.shape), key
        assert lazy.state_dict()[key].dtype == str(value.dtype).split(".")[-1], key  # float64, int64 counter
        assert lazy.state_dict()[key].device == device
    # the materialised module computes what the plain torch module with the same state computes
    reference.load_state_dict({k: torch.tensor(v.numpy()) for k, v in lazy.state_dict().items()})
    assert_close(out, reference(torch.tensor(x)), "float64")
    lazy(cl.tensor(x, device=device))  # a second call is the plain forward


def test_lazy_initialisation_is_pytorchs_default_and_drawn_at_the_first_call():
    """The materialised weights are what the plain class draws for the same sizes, from the generator's
    state at the first call (so a network with Lazy modules initialises in call order, as in PyTorch)."""
    cl.manual_seed(5)
    lazy = nn.LazyConv2d(6, 3)
    lazy(cl.zeros(1, 4, 5, 5))
    cl.manual_seed(5)
    plain = nn.Conv2d(4, 6, 3)
    for key, value in plain.state_dict().items():
        np.testing.assert_array_equal(lazy.state_dict()[key].numpy(), value.numpy())
    cl.manual_seed(5)
    linear = nn.LazyLinear(10)
    linear(cl.zeros(2, 300))
    bound = 1 / np.sqrt(300)  # kaiming_uniform(a=sqrt(5)) and the bias rule both give 1/sqrt(fan_in)
    weights = linear.weight.numpy()
    assert weights.shape == (10, 300) and np.abs(weights).max() <= bound and np.abs(weights).max() > 0.9 * bound
    assert abs(weights.std() - bound / np.sqrt(3)) < 0.05 * bound


def test_optimizer_built_before_the_first_call_trains_the_materialised_parameters():
    net = nn.Sequential(nn.LazyConv2d(2, 3), nn.Flatten(), nn.LazyLinear(1))
    params = list(net.parameters())
    assert [p.shape for p in params] == [(2, 0, 3, 3), (2,), (1, 0), (1,)]  # placeholders, zero-sized
    opt = cl.optim.SGD(net.parameters(), lr=0.1)
    net(cl.randn(2, 3, 5, 5)).sum().backward()
    assert [p.shape for p in net.parameters()] == [(2, 3, 3, 3), (2,), (1, 18), (1,)]
    assert all(a is b for a, b in zip(params, net.parameters()))  # the same Parameter objects
    before = net[2].weight.numpy()
    opt.step()
    assert not np.array_equal(before, net[2].weight.numpy())


def test_lazy_errors_name_the_expected_input():
    with pytest.raises(ValueError, match=r"LazyConv2d: expected a 3-D \(unbatched\) or 4-D \(batched\) input, got"):
        nn.LazyConv2d(2, 3)(cl.zeros(2, 3))
    with pytest.raises(ValueError, match=r"LazyBatchNorm2d: expected a 4-D input, got shape"):
        nn.LazyBatchNorm2d()(cl.zeros(2, 3))


# ---- containers ----
def test_module_list_matches_torch_names():
    torch = torch_or_skip()
    ours = nn.ModuleList([nn.Linear(2, 3), nn.ReLU()])
    theirs = torch.nn.ModuleList([torch.nn.Linear(2, 3), torch.nn.ReLU()])
    for lib, blocks in ((nn, ours), (torch.nn, theirs)):
        blocks.append(lib.Linear(3, 1))
        blocks.extend([lib.Identity()])
        blocks.insert(1, lib.Tanh())
        blocks += [lib.Sigmoid()]
        del blocks[0]
        blocks[0] = lib.Linear(2, 3)
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert repr(ours) == repr(theirs)
    assert len(ours) == 5 and isinstance(ours[1:3], nn.ModuleList) and ours[-1] is list(ours)[4]
    with pytest.raises(IndexError, match="index 5 is out of range for 5 modules"):
        ours[5]


def test_module_dict_and_owner_sees_the_parameters():
    torch = torch_or_skip()

    def build(lib):
        owner = lib.Module()
        owner.heads = lib.ModuleDict({"a": lib.Linear(2, 2), "b": lib.Linear(2, 1)})
        owner.heads["c"] = lib.Linear(2, 3)
        owner.blocks = lib.ModuleList(lib.Linear(2, 2) for _ in range(2))
        return owner

    ours, theirs = build(nn), build(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    heads = ours.heads
    assert list(heads) == ["a", "b", "c"] and "b" in heads and len(heads) == 3
    assert [k for k, _ in heads.items()] == list(heads.keys())
    assert heads.pop("b").out_features == 1 and list(heads) == ["a", "c"]
    heads.update([("d", nn.ReLU())])
    del heads["a"]
    assert list(heads) == ["c", "d"]


def test_sequential_editing_matches_torch():
    torch = torch_or_skip()
    seqs = [lib.Sequential(lib.Linear(2, 3), lib.ReLU(), lib.Linear(3, 1)) for lib in (nn, torch.nn)]
    for lib, seq in zip((nn, torch.nn), seqs):
        seq[1] = lib.Tanh()
        seq.append(lib.Sigmoid())
        del seq[0]
    assert repr(seqs[0]) == repr(seqs[1])
    assert [n for n, _ in seqs[0].named_parameters()] == [n for n, _ in seqs[1].named_parameters()]
    assert repr(seqs[0][1:]) == repr(seqs[1][1:]) and len(seqs[0]) == 3


# ---- hooks and traversal ----
def test_forward_hooks_run_in_order_replace_values_and_remove():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    calls = []
    pre = net[0].register_forward_pre_hook(lambda m, args: calls.append(("pre", args[0].shape)))
    double_input = net[0].register_forward_pre_hook(lambda m, args: (args[0] * 2.0,))
    seen = net.register_forward_hook(lambda m, args, out: calls.append(("post", out.shape)))
    negate = net.register_forward_hook(lambda m, args, out: -out)
    x = cl.randn(4, 3)
    out = net(x)
    expected = -(net[1](net[0].forward(x * 2.0)))
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    assert calls == [("pre", (4, 3)), ("post", (4, 2))]
    for handle in (pre, double_input, seen, negate):
        handle.remove()
    np.testing.assert_array_equal(net(x).numpy(), net[1](net[0].forward(x)).numpy())
    assert len(calls) == 2
    with net.register_forward_hook(lambda m, a, o: o * 0.0):
        assert np.all(net(x).numpy() == 0)
    assert not np.all(net(x).numpy() == 0)


def test_feature_extraction_hook_sees_what_torch_sees():
    torch = torch_or_skip()
    ours = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2)).double()
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(18, 2)).double()
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    features = {}
    ours[1].register_forward_hook(lambda m, a, out: features.__setitem__("ours", out))
    theirs[1].register_forward_hook(lambda m, a, out: features.__setitem__("theirs", out))
    x = np.random.default_rng(0).standard_normal((2, 1, 5, 5))
    ours(cl.tensor(x)), theirs(torch.tensor(x))
    assert_close(features["ours"], features["theirs"], "float64")


def test_apply_get_submodule_buffers_and_requires_grad():
    torch = torch_or_skip()
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.BatchNorm2d(2), nn.Linear(2, 2)))
    ref = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Sequential(torch.nn.BatchNorm2d(2),
                                                                             torch.nn.Linear(2, 2)))
    order = []
    net.apply(lambda m: order.append(type(m).__name__))
    ref_order = []
    ref.apply(lambda m: ref_order.append(type(m).__name__))
    assert order == ref_order  # children first, as PyTorch
    assert [n for n, _ in net.named_modules()] == [n for n, _ in ref.named_modules()]
    assert net.get_submodule("1.0") is net[1][0] and net.get_submodule("") is net
    with pytest.raises(AttributeError, match="has no submodule 'x'"):
        net.get_submodule("1.x")

    def init_weights(m):
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.constant_(m.weight, 0.5)

    net.apply(init_weights)
    assert np.all(net[0].weight.numpy() == 0.5) and np.all(net[1][1].weight.numpy() == 0.5)
    net[1][0].register_buffer("scratch", cl.zeros(3), persistent=False)
    assert "1.0.scratch" in dict(net.named_buffers()) and "1.0.scratch" not in net.state_dict()
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net[0].requires_grad_()
    assert [p.requires_grad for p in net.parameters()] == [True, True, False, False, False, False]


def test_repr_puts_extra_repr_and_children_on_their_own_lines():
    torch = torch_or_skip()

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def extra_repr(self):
            return "depth=1"

    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)

        def extra_repr(self):
            return "depth=1"

    Block.__name__ = TorchBlock.__name__ = "B"
    assert repr(nn.Sequential(Block(), nn.ReLU())) == repr(torch.nn.Sequential(TorchBlock(), torch.nn.ReLU()))


def test_batchnorm_counter_is_int64_and_casts_leave_it_alone():
    torch = torch_or_skip()
    ours, theirs = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    for module in (ours.double(), theirs.double()):
        module(module.weight.new_ones((2, 3, 2, 2)) if module is theirs else cl.ones(2, 3, 2, 2, dtype="float64"))
    assert ours.num_batches_tracked.dtype == "int64" and ours.num_batches_tracked.item() == 1
    assert str(ours.num_batches_tracked.dtype).endswith(str(theirs.num_batches_tracked.dtype).split(".")[-1])
    assert ours.running_mean.dtype == "float64"
    ours.float()
    assert ours.num_batches_tracked.dtype == "int64" and ours.weight.dtype == "float32"
    momentum_none = nn.BatchNorm1d(2, momentum=None)
    for _ in range(3):
        momentum_none(cl.randn(4, 2))
    assert momentum_none.num_batches_tracked.item() == 3
    with pytest.raises(TypeError, match="only accepts floating point dtypes, got convlab.int64"):
        ours.to(cl.int64)


def test_load_state_dict_into_a_lazy_network_materialises_it_at_the_saved_sizes(tmp_path):
    """d2l's file-I/O pattern: save a trained Lazy network's parameters, load them into a fresh one."""
    torch = torch_or_skip()

    def net():
        return nn.Sequential(nn.LazyConv2d(4, 3, groups=2), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Flatten(),
                             nn.LazyLinear(3), nn.Identity())

    trained = net()
    x = cl.randn(2, 6, 5, 5)
    trained(x)
    path = tmp_path / "net.npz"
    np.savez(path, **{k: v.numpy() for k, v in trained.state_dict().items()})
    fresh = net()
    assert fresh.load_state_dict(np.load(path)).missing_keys == []
    assert [type(m).__name__ for m in fresh] == ["Conv2d", "BatchNorm2d", "ReLU", "Flatten", "Linear", "Identity"]
    trained.eval(), fresh.eval()
    np.testing.assert_array_equal(fresh(x).numpy(), trained(x).numpy())
    transposed = nn.LazyConvTranspose2d(3, 2, groups=1)
    transposed.load_state_dict({"weight": np.zeros((5, 3, 2, 2)), "bias": np.zeros(3)})
    assert transposed.in_channels == 5 and type(transposed) is nn.ConvTranspose2d
    theirs = torch.nn.LazyLinear(3)
    theirs.load_state_dict({"weight": torch.zeros(3, 7), "bias": torch.zeros(3)})
    ours = nn.LazyLinear(3)
    ours.load_state_dict({"weight": np.zeros((3, 7)), "bias": np.zeros(3)})
    assert type(ours) is nn.Linear  # PyTorch switches the class at the first call; the state is the same
    theirs(torch.zeros(1, 7)), ours(cl.zeros(1, 7))
    assert repr(ours) == repr(theirs)
    with pytest.raises(ValueError, match="non-empty and hold no '.', got 'a.b'"):
        nn.Module().add_module("a.b", nn.ReLU())
    with pytest.raises(TypeError, match="the name must be a str, got int"):
        nn.Module().register_module(3, nn.ReLU())


def test_sequential_insert_extend_pop_and_parameter_containers_match_torch():
    torch = torch_or_skip()
    seqs = [lib.Sequential(lib.Linear(2, 3), lib.ReLU()) for lib in (nn, torch.nn)]
    for lib, seq in zip((nn, torch.nn), seqs):
        seq.insert(1, lib.Tanh())
        seq.extend([lib.Linear(3, 1), lib.Sigmoid()])
        assert type(seq.pop(2)).__name__ == "ReLU"
    assert repr(seqs[0]) == repr(seqs[1])
    assert list(seqs[0].state_dict()) == list(seqs[1].state_dict())

    def owner(lib):
        m = lib.nn.Module()
        m.scales = lib.nn.ParameterList([lib.nn.Parameter(lib.ones(2)), lib.nn.Parameter(lib.zeros(3))])
        m.scales.append(lib.nn.Parameter(lib.ones(1)))
        m.table = lib.nn.ParameterDict({"a": lib.nn.Parameter(lib.ones(2, 2))})
        m.table["b"] = lib.nn.Parameter(lib.zeros(4))
        return m

    ours, theirs = owner(cl), owner(torch)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.scales[-1].shape == (1,) and len(ours.scales) == 3 and list(ours.table) == ["a", "b"]
    assert "(1): Parameter containing: [convlab.float32 of size 3]" in repr(ours)
    plain = nn.ParameterList([cl.ones(2)])  # a tensor is wrapped as a Parameter
    assert isinstance(plain[0], nn.Parameter) and plain[0].requires_grad
    with pytest.raises(IndexError, match="index 3 is out of range for 3 parameters"):
        ours.scales[3]
    assert nn.Linear(2, 2).cpu().weight.device == "cpu"
