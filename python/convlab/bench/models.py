"""Whole networks, convlab against PyTorch: a training step (forward, cross-entropy, backward, SGD with
momentum) or an inference pass, timed interleaved in one process, and each side's peak RSS measured in a
fresh subprocess of its own so that the two libraries' memory does not mix.

Each network is written once, against the `nn` module it is handed (convlab.nn mirrors torch.nn), so both
sides build the same layers; the weights are each library's default initialisation.

This module imports no library at the top: the RSS subprocess loads it by path and imports only its side.
"""
import importlib.util
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def conv_bn(nn, c_in, c_out, k, stride=1, groups=1, act=None):
    """Conv (no bias) -> BatchNorm, then the activation module `act` if given: the unit both networks use."""
    layers = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return layers + ([act()] if act else [])


def resnet18(nn, num_classes, cifar_stem):
    """torchvision's ResNet-18; cifar_stem swaps the 7x7/2 conv and max-pool for one 3x3/1 conv, the usual
    change for 32x32 images (so the last stage still sees 4x4)."""

    class BasicBlock(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(nn, c_in, c_out, 3, stride, act=nn.ReLU), *conv_bn(nn, c_out, c_out, 3))
            downsample = stride != 1 or c_in != c_out
            self.shortcut = nn.Sequential(*conv_bn(nn, c_in, c_out, 1, stride)) if downsample else nn.Identity()
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.body(x) + self.shortcut(x))

    stem = conv_bn(nn, 3, 64, 3, act=nn.ReLU) if cifar_stem else [*conv_bn(nn, 3, 64, 7, 2, act=nn.ReLU),
                                                                   nn.MaxPool2d(3, 2, 1)]
    blocks, c = [], 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        blocks += [BasicBlock(c, width, stride), BasicBlock(width, width, 1)]
        c = width
    return nn.Sequential(*stem, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))


def mobilenet_v2(nn, num_classes):
    """torchvision's MobileNetV2 (width 1.0): inverted residuals of 1x1 expand, 3x3 depthwise, 1x1 project."""

    class InvertedResidual(nn.Module):
        def __init__(self, c_in, c_out, stride, expand):
            super().__init__()
            hidden = c_in * expand
            layers = conv_bn(nn, c_in, hidden, 1, act=nn.ReLU6) if expand != 1 else []
            layers += conv_bn(nn, hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6)
            self.body = nn.Sequential(*layers, *conv_bn(nn, hidden, c_out, 1))
            self.residual = stride == 1 and c_in == c_out

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    layers, c = conv_bn(nn, 3, 32, 3, 2, act=nn.ReLU6), 32
    for expand, c_out, repeats, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(repeats):
            layers.append(InvertedResidual(c, c_out, stride if i == 0 else 1, expand))
            c = c_out
    layers += conv_bn(nn, c, 1280, 1, act=nn.ReLU6)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, num_classes))


# name -> what is timed: the network (given an nn module), its batch and image side, training step or inference
CASES = {
    "resnet18_train_32px": dict(build=lambda nn: resnet18(nn, 10, cifar_stem=True), batch=32, size=32, train=True),
    "mobilenetv2_train_64px": dict(build=lambda nn: mobilenet_v2(nn, 10), batch=16, size=64, train=True),
    "resnet18_infer_224px": dict(build=lambda nn: resnet18(nn, 1000, cifar_stem=False), batch=1, size=224,
                                 train=False),
}


def make_step(lib, case, seed=0, nn=None):
    """A no-argument function running one step of `case` with library `lib` (the convlab or torch module),
    the network built from `nn` (default lib.nn)."""
    rng = np.random.default_rng(seed)
    x = lib.from_numpy(rng.standard_normal((case["batch"], 3, case["size"], case["size"])).astype(np.float32))
    model = case["build"](nn or lib.nn)
    if not case["train"]:
        model.eval()

        def infer():
            with lib.no_grad():
                model(x)

        return infer
    y = lib.from_numpy(rng.integers(0, 10, case["batch"]))
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train():
        opt.zero_grad()
        lib.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return train


def step_seconds(step, repeat=3):
    """The best of `repeat` timed steps, after one untimed."""
    step()
    return min(best_step_times([step], repeat, 0)[0])


def best_step_times(steps, repeat, warmup):
    """Each side's step times, the sides interleaved step by step after `warmup` untimed steps each."""
    for step in steps:
        for _ in range(warmup):
            step()
    times = [[] for _ in steps]
    for _ in range(repeat):
        for step, t in zip(steps, times):
            start = time.perf_counter()
            step()
            t.append(time.perf_counter() - start)
    return times


def peak_rss_mib():
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: a child made by fork + exec
    starts that at the parent's size, so both sides would read the same."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("bench: /proc/self/status has no VmHWM line (peak RSS is measured on Linux only)")


def rss_child(name, lib_name, threads, steps):
    """Run in the RSS subprocess: import one library, run `steps` steps of case `name`, print the peak RSS
    (MiB) after the imports and after the steps as JSON."""
    lib = importlib.import_module(lib_name)
    lib.set_num_threads(threads)
    after_import = peak_rss_mib()
    step = make_step(lib, CASES[name])
    for _ in range(steps):
        step()
    print(json.dumps({"after_import_mib": after_import, "peak_mib": peak_rss_mib()}))


def peak_rss(name, lib_name, threads, steps=3):
    code = (f"import importlib.util as u, sys; s = u.spec_from_file_location('bench_models', {__file__!r}); "
            f"m = u.module_from_spec(s); s.loader.exec_module(m); m.rss_child({name!r}, {lib_name!r}, {threads}, "
            f"{steps})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"RSS subprocess for {name} ({lib_name}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args, torch):
    """--suite models: every case (or those --layers names), convlab against PyTorch."""
    import convlab

    from . import write_json

    names = [n for n in CASES if not args.layers or any(t.strip() in n for t in args.layers.split(","))]
    if not names:
        raise SystemExit(f"bench: --layers {args.layers!r} matches no model; there are: {', '.join(CASES)}")
    threads = convlab.get_num_threads()
    print(f"convlab bench: models {', '.join(names)}; {threads} CPU threads, float32, "
          f"PyTorch {torch.__version__ if torch else 'not used'}; best of {args.repeat} interleaved steps per side, "
          f"peak RSS from a fresh process per side")
    print(f"{'model':<24} {'batch':>5} {'convlab ms':>10} {'torch ms':>9} {'ratio':>6}  {'RSS MiB: convlab':>16} "
          f"{'torch':>6}  {'step only: convlab':>18} {'torch':>6}", flush=True)
    results = []
    for name in names:
        case = CASES[name]
        steps = [make_step(convlab, case)] + ([make_step(torch, case)] if torch else [])
        times = best_step_times(steps, max(args.repeat, 1), max(args.warmup, 1))
        row = {"model": name, "batch": case["batch"], "size": case["size"], "train": case["train"],
               "ms": min(times[0]) * 1e3, "median_ms": float(np.median(times[0])) * 1e3,
               "rss": peak_rss(name, "convlab", threads)}
        if torch:
            row.update(torch_ms=min(times[1]) * 1e3, torch_median_ms=float(np.median(times[1])) * 1e3,
                       torch_rss=peak_rss(name, "torch", threads))
            row["ratio"] = row["ms"] / row["torch_ms"]
            row["rss_ratio"] = row["rss"]["peak_mib"] / row["torch_rss"]["peak_mib"]
        results.append(row)
        print(row_text(row), flush=True)
    ratios = [r["ratio"] for r in results if "ratio" in r]
    summary = {"geomean_ratio": math.exp(sum(map(math.log, ratios)) / len(ratios))} if ratios else {}
    if ratios:
        print(f"geometric mean ratio convlab/PyTorch over {len(ratios)} models: {summary['geomean_ratio']:.2f}")
    if args.json:
        write_json(args.json, results, summary, suite="models", repeat=args.repeat, warmup=args.warmup,
                   torch=torch.__version__ if torch else None)
    return 0


def row_text(r):
    def step_only(rss):
        return rss["peak_mib"] - rss["after_import_mib"]

    text = (f"{r['model']:<24} {r['batch']:>5} {r['ms']:>10.1f} {r.get('torch_ms', math.nan):>9.1f} "
            f"{r.get('ratio', math.nan):>6.2f}  {r['rss']['peak_mib']:>16.0f} ")
    if "torch_rss" not in r:
        return text + f"{'-':>6}  {step_only(r['rss']):>18.0f} {'-':>6}"
    return text + f"{r['torch_rss']['peak_mib']:>6.0f}  {step_only(r['rss']):>18.0f} {step_only(r['torch_rss']):>6.0f}"


class WithoutBatchNorm:
    """An nn module whose BatchNorm2d is Identity: the network without batch norm, for the ablation."""

    def __init__(self, nn):
        self.nn = nn

    def __getattr__(self, name):
        return getattr(self.nn, name)

    def BatchNorm2d(self, channels):
        return self.nn.Identity()


class KernelTimer:
    """While active, times every call into convlab._C: its functions and the NDArray methods, operators
    included (cProfile does not see an operator's C call). Calls nested in a timed one count once."""

    UNTIMED = ("__repr__", "__len__", "_pybind11_conduit_v1_")

    def __init__(self, _C):
        self.owners = [(_C, name) for name, f in vars(_C).items() if type(f).__name__ == "builtin_function_or_method"]
        self.owners += [(_C.NDArray, name) for name, f in vars(_C.NDArray).items()
                        if type(f).__name__ == "instancemethod" and name not in self.UNTIMED]
        self.seconds, self.conv_layers, self.depth = {}, {}, 0

    def __enter__(self):
        self.originals = [getattr(owner, name) for owner, name in self.owners]
        for (owner, name), original in zip(self.owners, self.originals):
            setattr(owner, name, self.timed(name.strip("_"), original))
        return self

    def __exit__(self, *exc):
        for (owner, name), original in zip(self.owners, self.originals):
            setattr(owner, name, original)

    def timed(self, name, original):
        def call(*args, **kwargs):
            if self.depth:
                return original(*args, **kwargs)
            self.depth += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
                seconds = time.perf_counter() - start
                self.seconds[name] = self.seconds.get(name, 0.0) + seconds
                if name in CONV_PASSES:
                    layer = (name, *conv_layer(name, args))
                    self.conv_layers[layer] = self.conv_layers.get(layer, 0.0) + seconds

        return call


# The conv passes the profile splits by layer, and where each finds the layer in its _C arguments:
# conv_forward(x, w, ...), conv_backward_input(gy, w, input_size, ...), conv_backward_weight(x, gy, kernel_size, ...);
# all end in stride, padding, dilation, groups.
CONV_PASSES = ("conv_forward", "conv_backward_input", "conv_backward_weight")


def conv_layer(name, args):
    """(kind, description) of the conv layer a _C conv pass runs: kind is depthwise (groups = c_in > 1), 1x1
    or kxk (any other kernel); the description reads c_in->c_out HxW kernel/stride g groups b batch."""
    a, b, third, stride, groups = args[0], args[1], args[2], args[3], args[6]
    batch = a.shape[0]
    if name == "conv_forward":
        c_in, c_out, size, kernel = a.shape[1], b.shape[0], a.shape[2:], b.shape[2:]
    elif name == "conv_backward_input":
        c_in, c_out, size, kernel = b.shape[1] * groups, b.shape[0], third, b.shape[2:]
    else:
        c_in, c_out, size, kernel = a.shape[1], b.shape[1], a.shape[2:], third
    kind = "depthwise" if groups == c_in > 1 else "1x1" if all(k == 1 for k in kernel) else "kxk"
    dims = "x".join(map(str, size))
    taps = "x".join(map(str, kernel)) + "/" + "x".join(map(str, stride))
    return kind, f"{c_in}->{c_out} {dims} {taps} g{groups} b{batch}"


def case_named(part):
    """The models-suite case whose name contains `part` (its name, or e.g. "mobilenet")."""
    names = [n for n in CASES if part in n]
    if not names:
        raise SystemExit(f"bench: --profile {part!r} matches no model; there are: {', '.join(CASES)}")
    return names[0]


def profile(args, steps=3):
    """--profile [MODEL]: where convlab's time goes in one step of a models-suite case (default the ResNet-18
    training step, 32x32, batch 32). A KernelTimer gives the time inside each _C kernel, the conv kernels
    split by pass and kind of layer (depthwise, 1x1, other) with the costliest layer-passes named; the rest
    of the step is Python (modules, functional, autograd, optimizer); cProfile then splits that Python time
    by file (its own overhead inflates it, so only the shares are read); batch norm's whole cost (its kernels
    and its Python) comes from an ablation: the same network with BatchNorm2d replaced by Identity."""
    import cProfile
    import pstats

    import convlab

    name = case_named(args.profile)
    case = CASES[name]
    step = make_step(convlab, case)
    plain = step_seconds(step)
    without_bn = step_seconds(make_step(convlab, case, nn=WithoutBatchNorm(convlab.nn)))
    with KernelTimer(convlab._C) as timer:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        total = (time.perf_counter() - start) / steps
    kernels = {k: t / steps for k, t in timer.seconds.items()}
    prof = cProfile.Profile()
    prof.enable()
    step()
    prof.disable()
    python_by_file = {}
    for (file, _, _), (_, _, tottime, _, _) in pstats.Stats(prof).stats.items():
        if file != "~":
            where = "/".join(Path(file).parts[-2:])
            python_by_file[where] = python_by_file.get(where, 0.0) + tottime
    python_total = sum(python_by_file.values())
    conv = {k: t for k, t in kernels.items() if k.startswith("conv")}
    other = {k: t for k, t in kernels.items() if k not in conv}
    conv_by_kind, conv_by_layer = {}, {}
    for (pass_name, kind, layer), t in timer.conv_layers.items():
        short = pass_name.replace("conv_", "").replace("backward_", "bwd_")
        conv_by_kind[f"{kind} {short}"] = conv_by_kind.get(f"{kind} {short}", 0.0) + t / steps
        conv_by_layer[f"{short} {layer}"] = conv_by_layer.get(f"{short} {layer}", 0.0) + t / steps

    def share(seconds, base=total):
        return f"{seconds * 1e3:8.1f} ms {100 * seconds / base:5.1f}%"

    def top(times, n=8, scale=1e3):
        return ", ".join(f"{k} {t * scale:.1f}" for k, t in sorted(times.items(), key=lambda kv: -kv[1])[:n])

    what = "training step" if case["train"] else "inference pass"
    print(f"convlab {name} {what}, batch {case['batch']}, {case['size']}x{case['size']}, "
          f"{convlab.get_num_threads()} threads: {plain * 1e3:.1f} ms per step ({total * 1e3:.1f} ms with every "
          f"_C call timed, the base of the shares below)")
    print(f"  conv kernels                   {share(sum(conv.values()))}   ms: {top(conv)}")
    print(f"    by kind of layer and pass    ms: {top(conv_by_kind, 9)}")
    print(f"    costliest layer-passes       ms: {top(conv_by_layer, 10)} (summed over the layers of that shape)")
    print(f"  other _C kernels               {share(sum(other.values()))}   ms: {top(other, 10)}")
    print(f"  Python (the rest)              {share(total - sum(kernels.values()))}   % of it by file (cProfile): "
          f"{top(python_by_file, 6, 100 / python_total)}")
    print(f"  batch norm, by ablation        {share(plain - without_bn, plain)}   (of the untimed step; without it: "
          f"{without_bn * 1e3:.1f} ms; its kernels are among the other _C kernels, its Python in the Python)")
    return 0
