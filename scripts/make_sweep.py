"""Writes the layer sweep, python/convlab/bench/suites/sweep.json (bench/sweep.json links to it): the conv layers
of well-known networks, each written down once here as the network's own layer list, then de-duplicated.

    python scripts/make_sweep.py [--check]     # --check: fail if the file on disk differs from what it would write

A layer runs at batch 8 when one pass of it costs at most CAP_GFLOP, else at batch 1; when even batch 1 costs
more, its image is shrunk (each side halved, then cut by 1/8 steps) until it fits, and the entry records the
original size in "scaled_from". Some networks also run at batch 1 on purpose (inference): those in BATCH_ONE
get a batch-1 copy of every layer, and a network made with Net(name, batch=1) runs at batch 1 only.
"""
import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "python" / "convlab" / "bench" / "suites" / "sweep.json"
CAP_GFLOP = 2.0  # per pass: keeps the whole sweep near 15 minutes on 2 threads
BATCH_ONE = ("resnet18", "mobilenetv2", "dcgan_g")


def out_len(i, k, s, p, d):
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


class Net:
    """Collects one network's layers while its shapes are walked through like a forward pass."""

    def __init__(self, name, batch=None):
        self.name, self.layers, self.batch = name, [], batch

    def conv(self, tag, c_in, c_out, hw, k, stride=1, padding=None, dilation=1, groups=1):
        """A 2-D conv on images of size hw; returns the output size. padding None means 'same' for odd k."""
        k = [k, k] if isinstance(k, int) else list(k)
        stride = [stride] * 2 if isinstance(stride, int) else list(stride)
        dilation = [dilation] * 2 if isinstance(dilation, int) else list(dilation)
        padding = [d * (kk - 1) // 2 for kk, d in zip(k, dilation)] if padding is None else padding
        padding = [padding] * 2 if isinstance(padding, int) else list(padding)
        self.layers.append(dict(name=f"{self.name}_{tag}", op="conv2d", c_in=c_in, c_out=c_out, hw=list(hw), k=k,
                                stride=stride, padding=padding, dilation=dilation, groups=groups))
        return [out_len(*a) for a in zip(hw, k, stride, padding, dilation)]

    def up(self, tag, c_in, c_out, hw, k, stride, padding=0):
        """A 2-D transposed conv (an up-sampler); returns the output size."""
        self.layers.append(dict(name=f"{self.name}_{tag}", op="conv_transpose2d", c_in=c_in, c_out=c_out,
                                hw=list(hw), k=[k, k], stride=[stride] * 2, padding=[padding] * 2, dilation=[1, 1],
                                groups=1))
        return [(i - 1) * stride - 2 * padding + k for i in hw]

    def conv1d(self, tag, c_in, c_out, length, k, stride=1, padding=None, dilation=1, groups=1):
        padding = dilation * (k - 1) // 2 if padding is None else padding
        self.layers.append(dict(name=f"{self.name}_{tag}", op="conv1d", c_in=c_in, c_out=c_out, hw=[length], k=[k],
                                stride=[stride], padding=[padding], dilation=[dilation], groups=groups))
        return out_len(length, k, stride, padding, dilation)


def half(hw):
    return [(i + 1) // 2 for i in hw]


def resnet18(hw=(224, 224), name="resnet18"):
    net = Net(name)
    hw = half(net.conv("stem", 3, 64, hw, 7, 2))  # then a stride-2 max-pool
    c = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        s = 1 if stage == 0 else 2
        out = net.conv(f"l{stage + 1}_conv1", c, width, hw, 3, s)
        net.conv(f"l{stage + 1}_conv2", width, width, out, 3)
        if s == 2:
            net.conv(f"l{stage + 1}_down", c, width, hw, 1, 2)
        c, hw = width, out
    return net


def bottleneck_resnet(name, blocks, groups=1, width_per_group=64, hw=(224, 224)):
    """ResNet-50 (groups 1) and ResNeXt-50 32x4d (groups 32, 4 channels per group): stride on the 3x3."""
    net = Net(name)
    hw = half(net.conv("stem", 3, 64, hw, 7, 2))
    c = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        width, out_c = planes * width_per_group // 64 * groups, planes * 4
        for b in range(n):
            s = 2 if stage > 0 and b == 0 else 1
            tag = f"l{stage + 1}_b{b}"
            net.conv(f"{tag}_conv1", c, width, hw, 1)
            out = net.conv(f"{tag}_conv2", width, width, hw, 3, s, groups=groups)
            net.conv(f"{tag}_conv3", width, out_c, out, 1)
            if b == 0:
                net.conv(f"{tag}_down", c, out_c, hw, 1, s)
            c, hw = out_c, out
    return net


def inverted_residuals(net, hw, c, config, se=False):
    """MobileNetV2 / EfficientNet blocks: 1x1 expand, k x k depthwise (stride on it), [squeeze-excite on a 1x1
    image], 1x1 project. config rows: (expand ratio, kernel, stride, out channels, repeats)."""
    for i, (t, k, s, c_out, n) in enumerate(config):
        for b in range(n):
            tag, stride, hidden = f"b{i}_{b}", s if b == 0 else 1, c * t
            if t != 1:
                net.conv(f"{tag}_expand", c, hidden, hw, 1)
            out = net.conv(f"{tag}_dw{k}x{k}", hidden, hidden, hw, k, stride, groups=hidden)
            if se:
                squeezed = max(1, c // 4)
                net.conv(f"{tag}_se_reduce", hidden, squeezed, [1, 1], 1)
                net.conv(f"{tag}_se_expand", squeezed, hidden, [1, 1], 1)
            net.conv(f"{tag}_project", hidden, c_out, out, 1)
            c, hw = c_out, out
    return c, hw


def mobilenetv2(hw=(224, 224)):
    net = Net("mobilenetv2")
    hw = net.conv("stem", 3, 32, hw, 3, 2)
    config = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 3, 2, 32, 3), (6, 3, 2, 64, 4), (6, 3, 1, 96, 3),
              (6, 3, 2, 160, 3), (6, 3, 1, 320, 1)]
    c, hw = inverted_residuals(net, hw, 32, config)
    net.conv("head", c, 1280, hw, 1)
    return net


def efficientnet_b0(hw=(224, 224), name="efficientnet_b0", batch=None):
    net = Net(name, batch)
    hw = net.conv("stem", 3, 32, hw, 3, 2)
    config = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
              (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    c, hw = inverted_residuals(net, hw, 32, config, se=True)
    net.conv("head", c, 1280, hw, 1)
    return net


def inception_v3():
    net = Net("inception_v3")
    hw = net.conv("stem1", 3, 32, [299, 299], 3, 2, padding=0)
    hw = net.conv("stem2", 32, 32, hw, 3, padding=0)
    hw = net.conv("stem3", 32, 64, hw, 3)
    hw = [(i - 3) // 2 + 1 for i in hw]  # max-pool 3x3 stride 2
    hw = net.conv("stem4", 64, 80, hw, 1)
    hw = net.conv("stem5", 80, 192, hw, 3, padding=0)
    hw = [(i - 3) // 2 + 1 for i in hw]
    for tag, c, pool_c in (("5b", 192, 32), ("5c", 256, 64), ("5d", 288, 64)):  # 35x35
        net.conv(f"{tag}_1x1", c, 64, hw, 1)
        net.conv(f"{tag}_5x5_reduce", c, 48, hw, 1)
        net.conv(f"{tag}_5x5", 48, 64, hw, 5)
        net.conv(f"{tag}_3x3dbl_1", 64, 96, hw, 3)
        net.conv(f"{tag}_3x3dbl_2", 96, 96, hw, 3)
        net.conv(f"{tag}_pool_proj", c, pool_c, hw, 1)
    out = net.conv("6a_3x3", 288, 384, hw, 3, 2, padding=0)
    net.conv("6a_3x3dbl_2", 64, 96, hw, 3)
    net.conv("6a_3x3dbl_3", 96, 96, hw, 3, 2, padding=0)
    hw = out  # 17x17, 768 channels
    for tag, c7 in (("6b", 128), ("6c", 160), ("6e", 192)):
        net.conv(f"{tag}_7x7_reduce", 768, c7, hw, 1)
        net.conv(f"{tag}_1x7", c7, c7, hw, (1, 7))
        net.conv(f"{tag}_7x1_out", c7, 192, hw, (7, 1))
        net.conv(f"{tag}_7x1", c7, c7, hw, (7, 1))
        net.conv(f"{tag}_1x7_out", c7, 192, hw, (1, 7))
        net.conv(f"{tag}_1x1", 768, 192, hw, 1)
    out = net.conv("7a_3x3", 192, 320, hw, 3, 2, padding=0)
    net.conv("7a_7x7x3_4", 192, 192, hw, 3, 2, padding=0)
    hw = out  # 8x8
    for tag, c in (("7b", 1280), ("7c", 2048)):
        net.conv(f"{tag}_1x1", c, 320, hw, 1)
        net.conv(f"{tag}_3x3_reduce", c, 384, hw, 1)
        net.conv(f"{tag}_1x3", 384, 384, hw, (1, 3))
        net.conv(f"{tag}_3x1", 384, 384, hw, (3, 1))
        net.conv(f"{tag}_3x3dbl_reduce", c, 448, hw, 1)
        net.conv(f"{tag}_3x3dbl", 448, 384, hw, 3)
        net.conv(f"{tag}_pool_proj", c, 192, hw, 1)
    return net


def densenet121():
    """Growth 32, bottleneck 128. Every third dense layer is kept (their 1x1 convs differ only in C_in)."""
    net = Net("densenet121")
    hw = half(net.conv("stem", 3, 64, [224, 224], 7, 2))
    c = 64
    for block, n in enumerate((6, 12, 24, 16)):
        for i in range(n):
            if i % 3 == 0:
                net.conv(f"d{block + 1}_{i}_1x1", c + 32 * i, 128, hw, 1)
        net.conv(f"d{block + 1}_3x3", 128, 32, hw, 3)
        c += 32 * n
        if block < 3:
            net.conv(f"t{block + 1}", c, c // 2, hw, 1)
            c, hw = c // 2, [i // 2 for i in hw]
    return net


def unet(hw=(160, 240)):
    """The UNet of Ronneberger et al. with padded 3x3 convs, on rectangular images; stride-2 2x2 up-samplers."""
    net = Net("unet")
    c, sizes = 3, []
    for level, width in enumerate((64, 128, 256, 512, 1024)):
        net.conv(f"enc{level}_a", c, width, hw, 3)
        net.conv(f"enc{level}_b", width, width, hw, 3)
        sizes.append(hw)
        c, hw = width, [i // 2 for i in hw]
    hw = sizes[-1]
    for level, width in zip((3, 2, 1, 0), (512, 256, 128, 64)):
        hw = net.up(f"up{level}", c, width, hw, 2, 2)
        net.conv(f"dec{level}_a", 2 * width, width, hw, 3)
        net.conv(f"dec{level}_b", width, width, hw, 3)
        c = width
    net.conv("classify", 64, 2, hw, 1)
    return net


def deeplabv3():
    """ResNet-50 backbone at output stride 16 on 513x513 images: dilated layer4, then ASPP (rates 6/12/18)."""
    net = Net("deeplabv3")
    hw = [33, 33]
    net.conv("layer4_conv2_d2", 512, 512, hw, 3, dilation=2)
    net.conv("aspp_1x1", 2048, 256, hw, 1)
    for rate in (6, 12, 18):
        net.conv(f"aspp_3x3_r{rate}", 2048, 256, hw, 3, dilation=rate)
    net.conv("aspp_pool_1x1", 2048, 256, [1, 1], 1)
    net.conv("aspp_project", 1280, 256, hw, 1)
    net.conv("head_3x3", 256, 256, hw, 3)
    net.conv("head_classify", 256, 21, hw, 1)
    return net


def dcgan():
    """The 64x64 DCGAN: a transposed-conv generator from a 100-d code, a strided-conv discriminator."""
    g, d = Net("dcgan_g"), Net("dcgan_d")
    hw = g.up("1", 100, 512, [1, 1], 4, 1)
    for i, (c_in, c_out) in enumerate(((512, 256), (256, 128), (128, 64), (64, 3))):
        hw = g.up(str(i + 2), c_in, c_out, hw, 4, 2, 1)
    for i, (c_in, c_out) in enumerate(((3, 64), (64, 128), (128, 256), (256, 512))):
        hw = d.conv(str(i + 1), c_in, c_out, hw, 4, 2, 1)
    d.conv("5", 512, 1, hw, 4, 1, 0)
    return [g, d]


def wavenet(length=16000):
    """64 residual channels, k=2 dilated convs (dilation 1..512, gated: 128 outputs), 1x1 residual/skip."""
    net = Net("wavenet")
    net.conv1d("causal", 1, 64, length, 2, padding=1)
    for d in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512):
        net.conv1d(f"dil{d}", 64, 128, length, 2, padding=d, dilation=d)
    net.conv1d("residual_1x1", 64, 64, length, 1)
    net.conv1d("skip_1x1", 64, 256, length, 1)
    net.conv1d("out_1x1", 256, 256, length, 1)
    return net


def speech():
    """Speech front ends on one second of 16 kHz audio: wav2vec 2.0's strided 1-D feature encoder, QuartzNet
    5x5's 1-D depthwise-separable blocks on 80 mel frames per 10 ms (kernels 33-87), DeepSpeech2's 2-D
    convolutions over a 161 x 100 spectrogram (41x11 and 21x11 kernels)."""
    w2v = Net("wav2vec2")
    length = w2v.conv1d("conv0", 1, 512, 16000, 10, 5, 0)
    for i, k in enumerate((3, 3, 3, 3, 2, 2)):
        length = w2v.conv1d(f"conv{i + 1}_k{k}", 512, 512, length, k, 2, 0)
    qn = Net("quartznet")
    frames = qn.conv1d("c1_dw", 80, 80, 400, 33, 2, groups=80)
    qn.conv1d("c1_pw", 80, 256, frames, 1)
    c = 256
    for i, (k, c_out) in enumerate(((33, 256), (39, 256), (51, 512), (63, 512), (75, 512))):
        qn.conv1d(f"b{i + 1}_dw", c, c, frames, k, groups=c)
        qn.conv1d(f"b{i + 1}_pw", c, c_out, frames, 1)
        c = c_out
    qn.conv1d("c2_dw_d2", 512, 512, frames, 87, dilation=2, groups=512)
    qn.conv1d("c2_pw", 512, 512, frames, 1)
    qn.conv1d("c3", 512, 1024, frames, 1)
    qn.conv1d("c4", 1024, 29, frames, 1)
    ds2 = Net("deepspeech2")
    hw = ds2.conv("conv1", 1, 32, [161, 100], (41, 11), (2, 2), padding=(20, 5))
    ds2.conv("conv2", 32, 32, hw, (21, 11), (2, 1), padding=(10, 5))
    return [w2v, qn, ds2]


def flops(layer, batch):
    """Multiply-adds x 2 of one pass; a transposed layer costs what the conv it is the adjoint of costs."""
    per_pixel = layer["c_out"] * layer["c_in"] // layer["groups"] * math.prod(layer["k"]) * 2
    if layer["op"].startswith("conv_transpose"):
        return batch * per_pixel * math.prod(layer["hw"])
    out = [out_len(*a) for a in zip(layer["hw"], layer["k"], layer["stride"], layer["padding"], layer["dilation"])]
    return batch * per_pixel * math.prod(out)


def fit(layer, batch):
    """The layer at this batch, its image shrunk (1/8 of the side at a time) while one pass costs > CAP_GFLOP."""
    layer = dict(layer, cpu_batch=batch, gpu_batch=batch)
    original = layer["hw"]
    while flops(layer, batch) > CAP_GFLOP * 1e9:
        layer["hw"] = [max(1, i - max(1, i // 8)) for i in layer["hw"]]
    if layer["hw"] != original:
        layer["scaled_from"] = original
    return layer


def key(layer):
    return json.dumps({k: v for k, v in layer.items() if k not in ("name", "scaled_from")}, sort_keys=True)


def public_layers():
    """The conv layers of the default suite (python/convlab/bench/suites/shapes.json), kept in the sweep too."""
    suite = json.loads((OUT.parent / "shapes.json").read_text())
    per_dim = lambda v, n: v if isinstance(v, list) else [v] * n
    layers = []
    for spec in suite["layers"]:
        if spec["op"].startswith("conv"):
            n = len(spec["hw"])
            layers.append(dict(spec, stride=per_dim(spec["stride"], n), padding=per_dim(spec["padding"], n),
                               dilation=per_dim(spec["dilation"], n), gpu_batch=spec["cpu_batch"]))
    return layers


def sweep():
    nets = [resnet18(), resnet18((256, 384), "resnet18_rect"), bottleneck_resnet("resnet50", (3, 4, 6, 3)),
            bottleneck_resnet("resnext50", (3, 4, 6, 3), groups=32, width_per_group=4), mobilenetv2(),
            efficientnet_b0(), efficientnet_b0((240, 320), "efficientnet_b0_rect", batch=1), inception_v3(),
            densenet121(), unet(), deeplabv3(), *dcgan(), wavenet(), *speech()]
    layers, seen = [], set()

    def add(layer):
        if key(layer) not in seen:
            seen.add(key(layer))
            layers.append(layer)

    for layer in public_layers():
        add(layer)
    for net in nets:
        for layer in net.layers:
            batch = net.batch or (8 if flops(layer, 8) <= CAP_GFLOP * 1e9 else 1)
            add(fit(layer, batch))
            if batch == 8 and net.name.startswith(BATCH_ONE):
                add(dict(fit(layer, 1), name=layer["name"] + "_n1"))
    return layers


def render(layers):
    about = ("Layer sweep for convlab's benchmark, written by scripts/make_sweep.py (edit that, not this): the "
             "conv layers of ResNet-18 (also on 256x384 images), ResNet-50, ResNeXt-50 32x4d, MobileNetV2, "
             "EfficientNet-B0 (also 240x320 at batch 1), Inception-v3, DenseNet-121 (every third dense layer), UNet "
             "(160x240, transposed up-samplers), DeepLabv3 (dilated layer4 and ASPP), DCGAN (transposed generator), WaveNet (dilated 1-D), "
             "wav2vec 2.0 / QuartzNet / DeepSpeech2 speech front ends, and the conv layers of shapes.json, each "
             f"once. A layer runs at batch 8 when one pass costs <= {CAP_GFLOP:g} GFLOP, else at batch 1 (names "
             "ending _n1 are batch-1 copies on purpose); where batch 1 still costs more, the image was shrunk and "
             "'scaled_from' gives the network's real size. Same conventions as shapes.json.")
    lines = [json.dumps(layer) for layer in layers]
    return '{\n"about": ' + json.dumps(about) + ',\n"layers": [\n' + ",\n".join(lines) + "\n]}\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if the file on disk is not what would be written")
    args = ap.parse_args(argv)
    layers = sweep()
    text = render(layers)
    if args.check:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run python scripts/make_sweep.py")
        return
    OUT.write_text(text)
    total = sum(flops(layer, layer["cpu_batch"]) for layer in layers) / 1e9
    scaled = sum("scaled_from" in layer for layer in layers)
    print(f"wrote {OUT}: {len(layers)} layers ({scaled} shrunk), {total:.0f} GFLOP per pass in all")


if __name__ == "__main__":
    main()
