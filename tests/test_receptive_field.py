"""nn.utils.conv_output_shape (against the shapes PyTorch's layers produce), receptive_field (against values
computed by hand and published for LeNet-5, VGG-16 and ResNet-18, and against the support of a gradient),
and conv_matrix (against a NumPy reference from the definition, conv(x) == M @ x, transposed conv == M.T)."""
import numpy as np
import pytest

import convlab as cl
import convlab.nn as nn
from convlab.nn.utils import conv_matrix, conv_output_shape, receptive_field


# ---- conv_output_shape ----
@pytest.mark.parametrize("seed", range(6))
def test_conv_output_shape_matches_torch_layers(seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    size = tuple(int(v) for v in rng.integers(7, 20, 2))
    k, s, d = tuple(int(v) for v in rng.integers(1, 4, 2)), tuple(int(v) for v in rng.integers(1, 4, 2)), \
        tuple(int(v) for v in rng.integers(1, 3, 2))
    p = tuple(int(v) for v in rng.integers(0, 2, 2))
    x = torch.zeros(1, 1, *size)
    conv = torch.nn.functional.conv2d(x, torch.zeros(1, 1, *k), stride=s, padding=p, dilation=d)
    assert conv_output_shape(size, k, s, p, d) == tuple(conv.shape[2:])
    for padding in ("same", "valid"):
        same = torch.nn.functional.conv2d(x, torch.zeros(1, 1, *k), padding=padding, dilation=d)
        assert conv_output_shape(size, k, 1, padding, d) == tuple(same.shape[2:])
    out_pad = tuple(int(rng.integers(0, max(a, b))) for a, b in zip(s, d))
    up = torch.nn.functional.conv_transpose2d(x, torch.zeros(1, 1, *k), stride=s, padding=p,
                                              output_padding=out_pad, dilation=d)
    assert conv_output_shape(size, k, s, p, d, transposed=True, output_padding=out_pad) == tuple(up.shape[2:])
    pk = tuple(max(v, 2) for v in k)
    pp = tuple(min(a, b // 2) for a, b in zip(p, pk))
    for ceil in (False, True):
        pool = torch.nn.functional.max_pool2d(x, pk, s, pp, 1, ceil)
        assert conv_output_shape(size, pk, s, pp, ceil_mode=ceil) == tuple(pool.shape[2:])
    assert conv_output_shape(size[0], k[0], s[0], p[0], d[0]) == conv.shape[2]  # an int in, an int out


def test_conv_output_shape_bad_input():
    with pytest.raises(ValueError, match="kernel_size must be >= 1, got 0"):
        conv_output_shape(8, 0)
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1, got stride=\(2,\)"):
        conv_output_shape(8, 3, 2, "same")
    with pytest.raises(ValueError, match=r"the window \(kernel_size 9, dilation 1: span 9\) is larger than the "
                                         "padded input 8"):
        conv_output_shape(8, 9)
    with pytest.raises(ValueError, match="stride must be an int or a tuple of 2 ints, got"):
        conv_output_shape((8, 8), 3, (1, 1, 1))
    with pytest.raises(ValueError, match="a transposed convolution takes no string padding"):
        conv_output_shape(8, 3, padding="same", transposed=True)


# ---- receptive_field ----
def lenet5():
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 10))


def vgg16(width=4):
    """VGG-16's geometry (configuration D) with width/64 of its channels: receptive fields do not depend on them."""
    layers, c = [], 3
    for stage, convs in enumerate((2, 2, 3, 3, 3)):
        out = width * min(2 ** stage, 8)
        for _ in range(convs):
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU()]
            c = out
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x):
        y = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
        return (y + (x if self.downsample is None else self.downsample(x))).relu()


class ResNet18(nn.Module):
    """torchvision's ResNet-18 geometry with a quarter of its channels."""

    def __init__(self, width=16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c = width
        for i in range(4):
            out = width * 2 ** i
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(c, out, 1 if i == 0 else 2),
                                                         BasicBlock(out, out, 1)))
            c = out
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.maxpool(self.bn1(self.conv1(x)).relu())
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def test_lenet5_by_hand():
    """32x32 input: conv 5 -> 28 (rf 5, start 2), pool 2 -> 14 (jump 2, rf 6, start 2.5), conv 5 -> 10 (rf 6 + 4*2
    = 14, start 2.5 + 2*2 = 6.5), pool 2 -> 5 (jump 4, rf 16, start 7.5); the Linear layers are not listed."""
    rows = receptive_field(lenet5(), (1, 32, 32))
    assert [r.name for r in rows] == ["0", "2", "3", "5"]
    assert [r.kind for r in rows] == ["Conv2d", "AvgPool2d", "Conv2d", "AvgPool2d"]
    assert [r.output_size for r in rows] == [(28, 28), (14, 14), (10, 10), (5, 5)]
    assert [r.jump for r in rows] == [(1, 1), (2, 2), (2, 2), (4, 4)]
    assert [r.size for r in rows] == [(5, 5), (6, 6), (14, 14), (16, 16)]
    assert [r.start for r in rows] == [(2, 2), (2.5, 2.5), (6.5, 6.5), (7.5, 7.5)]


def test_vgg16_published_values():
    """Published: conv5_3 rf 196, pool5 rf 212 with effective stride 32 and effective padding 90 (Araujo et al.,
    "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019, table of vgg_16), i.e. pool5's
    output 0 centred at -90 + (212 - 1) / 2 = 15.5."""
    rows = receptive_field(vgg16(), (3, 224, 224))
    assert len(rows) == 18
    conv5_3, pool5 = rows[-2], rows[-1]
    assert conv5_3.kind == "Conv2d" and conv5_3.size == (196, 196) and conv5_3.jump == (16, 16)
    assert pool5.kind == "MaxPool2d" and pool5.size == (212, 212) and pool5.jump == (32, 32)
    assert pool5.output_size == (7, 7) and pool5.start == (15.5, 15.5)
    assert [r.size[0] for r in rows if r.kind == "MaxPool2d"] == [6, 16, 44, 100, 212]


def test_resnet18_published_values():
    """Per stage (samson-wang's "ResNet Receptive Field Size" table, resnet18 column, which the recurrences give
    by hand): conv1 7, maxpool 11, layer1 43, layer2 99, layer3 211, layer4 435; the global average pool over
    the 7x7 map adds (7 - 1) * 32. The 1x1 downsample shortcuts have smaller fields, inside the main path's."""
    rows = {r.name: r for r in receptive_field(ResNet18(), (3, 224, 224))}
    for name, size in [("conv1", 7), ("maxpool", 11), ("layer1.1.conv2", 43), ("layer2.1.conv2", 99),
                       ("layer3.1.conv2", 211), ("layer4.1.conv2", 435), ("avgpool", 435 + 6 * 32)]:
        assert rows[name].size == (size, size), name
    assert rows["layer4.1.conv2"].jump == (32, 32) and rows["layer4.1.conv2"].output_size == (7, 7)
    assert rows["layer2.0.downsample.0"].size == (43, 43)  # the 1x1 conv adds nothing to layer1's field
    assert rows["layer4.1.conv2"].start == (0, 0)  # every pad is (k - 1) / 2: fields stay centred on pixel 0
    table = str(receptive_field(ResNet18(), (3, 224, 224)))
    assert table.splitlines()[0].split() == ["layer", "type", "output", "jump", "rf", "size", "rf", "start"]
    assert "layer4.1.conv2" in table and "435" in table


def test_field_is_the_support_of_the_gradient():
    """With positive weights and no max, output (i, j) depends on exactly its receptive field: the input
    pixels where its gradient is non-zero span size, centred at start + i * jump."""
    model = nn.Sequential(nn.Conv2d(1, 2, (3, 2), stride=(2, 1), padding=(2, 0), dilation=(1, 2)),
                          nn.AvgPool2d(2, 1, 1), nn.Conv2d(2, 1, 3, stride=(1, 3), dilation=2, padding=1))
    for p in model.parameters():
        p.data = cl.ones(*p.shape) + 0.0
    rows = receptive_field(model, (1, 40, 41))
    last = rows[-1]
    x = cl.zeros(1, 1, 40, 41, requires_grad=True)
    y = model(x)
    i, j = y.shape[2] // 2, y.shape[3] // 2
    y[0, 0, i, j].backward()
    support = np.nonzero(x.grad.numpy()[0, 0])
    for axis, idx in enumerate((i, j)):
        lo, hi = support[axis].min(), support[axis].max()
        assert hi - lo + 1 == last.size[axis]
        assert (lo + hi) / 2 == last.start[axis] + idx * last.jump[axis]


def test_receptive_field_bad_input():
    with pytest.raises(TypeError, match="model must be a convlab nn.Module"):
        receptive_field(lambda x: x, (1, 8, 8))
    with pytest.raises(ValueError, match=r"input_shape must be \(C, L\) or \(C, H, W\)"):
        receptive_field(lenet5(), (1, 1, 32, 32))
    with pytest.raises(ValueError, match="ConvTranspose2d is a transposed convolution"):
        receptive_field(nn.Sequential(nn.ConvTranspose2d(1, 1, 3)), (1, 8, 8))


# ---- conv_matrix ----
def conv_matrix_reference(w, input_shape, stride, padding, dilation):
    """M[(co, oh, ow), (ci, ih, iw)] = sum of w[co, ci, kh, kw] over the taps with ih = oh*s + kh*d - p."""
    c_out, c_in, kh_, kw_ = w.shape
    _, h, wd = input_shape
    oh_ = (h + 2 * padding - dilation * (kh_ - 1) - 1) // stride + 1
    ow_ = (wd + 2 * padding - dilation * (kw_ - 1) - 1) // stride + 1
    m = np.zeros((c_out, oh_, ow_, c_in, h, wd))
    for co, ci, kh, kw, oh, ow in np.ndindex(c_out, c_in, kh_, kw_, oh_, ow_):
        ih, iw = oh * stride + kh * dilation - padding, ow * stride + kw * dilation - padding
        if 0 <= ih < h and 0 <= iw < wd:
            m[co, oh, ow, ci, ih, iw] += w[co, ci, kh, kw]
    return m.reshape(c_out * oh_ * ow_, c_in * h * wd)


def test_conv_matrix_reference_and_transpose(device):
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(2, 3, (3, 2), stride=2, padding=1, dilation=2).double().to(device)
    shape = (2, 7, 6)
    m = conv_matrix(conv, shape)
    np.testing.assert_allclose(m.numpy(), conv_matrix_reference(conv.weight.numpy(), shape, 2, 1, 2), rtol=1e-12,
                               atol=1e-14)
    x = cl.tensor(rng.standard_normal((1,) + shape), device=device)
    y = conv(x)
    np.testing.assert_allclose((m @ x.flatten()).numpy() + conv.bias.numpy().repeat(y.shape[2] * y.shape[3]),
                               y.flatten().numpy(), rtol=1e-12, atol=1e-12)
    # the transposed conv with this weight and geometry maps the (3, 4, 3) output back onto (2, 7, 6)
    up = nn.ConvTranspose2d(3, 2, (3, 2), stride=2, padding=1, dilation=2, output_padding=(0, 1),
                            bias=False).double().to(device)
    up.weight.data = conv.weight.data
    mt = conv_matrix(up, tuple(y.shape[1:]))
    np.testing.assert_allclose(mt.numpy(), m.numpy().T, rtol=1e-12, atol=1e-14)


def test_conv_matrix_weight_groups_1d_and_padding_modes():
    rng = np.random.default_rng(1)
    w = cl.tensor(rng.standard_normal((4, 1, 3)))
    m = conv_matrix(w, (2, 9), stride=2, padding=1, groups=2)
    x = cl.tensor(rng.standard_normal((1, 2, 9)))
    np.testing.assert_allclose((m @ x.flatten()).numpy(),
                               cl.nn.functional.conv1d(x, w, None, 2, 1, 1, 2).flatten().numpy(), rtol=1e-12)
    circular = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular").double()
    mc = conv_matrix(circular, (1, 5, 5))
    x = cl.tensor(rng.standard_normal((1, 1, 5, 5)))
    np.testing.assert_allclose((mc @ x.flatten()).numpy() + circular.bias.numpy(), circular(x).flatten().numpy(),
                               rtol=1e-12)
    assert np.count_nonzero(mc.numpy()) == 25 * 9  # circular padding: every output reads 9 distinct pixels


def test_conv_matrix_bad_input():
    with pytest.raises(ValueError, match=r"input_shape must be \(C, L\) or \(C, H, W\)"):
        conv_matrix(nn.Conv2d(1, 1, 3), (1, 1, 5, 5))
    with pytest.raises(ValueError, match=r"must be 4-D \(C_out, C_in/groups, \*kernel\), got shape \(1, 1, 3\)"):
        conv_matrix(cl.ones(1, 1, 3), (1, 5, 5))
    with pytest.raises(TypeError, match="conv must be a convlab nn.Module or a weight Tensor"):
        conv_matrix(np.ones((1, 1, 3, 3)), (1, 5, 5))
