"""The benchmark: times convlab's kernels (convlab._C, not the autograd layer) on every layer of a suite, for
the forward pass, backward-to-input and backward-to-weight (pooling layers: the first two), next to PyTorch
measured in the same process when it is installed; on the CPU each GFLOP/s is also given as a % of the
machine's FMA peak, measured once per run.

    python -m convlab.bench [--device cpu|cuda|cpu,cuda] [--threads N] [--layers a,b] [--json PATH]
                            [--repeat R] [--warmup W] [--suite shapes|sweep|models|PATH]
    python -m convlab.bench --peak        # the FMA peak, float32 and float64, 1 and N threads
    python -m convlab.bench --profile [MODEL]  # where convlab's time goes in a training step (default ResNet-18)
    python -m convlab.bench --signal      # cl.signal.convolve2d vs scipy.signal's convolve2d and fftconvolve

Suites (python/convlab/bench/suites/, linked from bench/ in the checkout): shapes, the default (the public
layers, a few of ours, pooling); sweep, 370+ layers of well-known networks (scripts/make_sweep.py writes it);
models, whole networks (see models.py). ratio = convlab time / PyTorch time: below 1 convlab is faster.
"""
import argparse
import datetime
import importlib.resources
import json
import platform
import sys
import time
from pathlib import Path

from .. import _C
from . import machine
from .layers import PASSES, make_layer
from .timing import summarize, time_pass, worst

__all__ = ["PASSES", "default_suite", "main", "make_layer", "suite_path"]

SUITES = ("shapes", "sweep")


def suite_path(name):
    """A packaged suite by name (shapes, sweep), else the path given."""
    if name in SUITES:
        return importlib.resources.files(__name__).joinpath("suites").joinpath(f"{name}.json")
    return Path(name)


def default_suite():
    return suite_path("shapes")


def select_layers(layers, wanted):
    """Layers named by a token of `wanted`; a token that is no exact name selects every name containing it."""
    if not wanted:
        return layers
    names = {spec["name"] for spec in layers}
    tokens = [t.strip() for t in wanted.split(",") if t.strip()]

    def picked(name):
        return any(name == t if t in names else t in name for t in tokens)

    chosen = [spec for spec in layers if picked(spec["name"])]
    if not chosen:
        names = ", ".join(spec["name"] for spec in layers)
        raise SystemExit(f"bench: --layers {wanted!r} matches no layer; the suite has: {names}")
    return chosen


def check_device(device):
    if device == "cuda" and not (_C.cuda_compiled() and _C.cuda_device_count() > 0):
        why = "was built without the CUDA backend" if not _C.cuda_compiled() else "sees no GPU"
        raise SystemExit(f"bench: --device cuda asked for, but convlab {why}")
    if device not in ("cpu", "cuda"):
        raise SystemExit(f"bench: unknown device {device!r} (expected cpu, cuda or cpu,cuda)")


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


class Progress:
    """A one-line progress bar on stderr; write() prints a line to stdout without tearing the bar. When stderr
    is not a terminal it prints a plain line at every tenth of the way instead."""

    def __init__(self, total):
        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.tty = sys.stderr.isatty()

    def write(self, line):
        if self.tty:
            sys.stderr.write("\r\033[K")
        print(line, flush=True)

    def step(self, what):
        self.done += 1
        if self.tty or self.done * 10 // self.total != (self.done - 1) * 10 // self.total:
            self.draw(what)

    def draw(self, what):
        left = (time.perf_counter() - self.start) / self.done * (self.total - self.done)
        bar = "#" * (30 * self.done // self.total)
        text = f"[{bar:<30}] {self.done}/{self.total} layer-passes, {left / 60:.1f} min left ({what})"
        sys.stderr.write(f"\r\033[K{text}" if self.tty else text + "\n")
        sys.stderr.flush()

    def close(self):
        if self.tty:
            sys.stderr.write("\n")


def fmt(value, spec):
    return format(value, spec) if value is not None else "-"


def header(width):
    return (f"{'layer':<{width}} {'pass':<15} {'dev':<4} {'batch':>5} {'ms':>9} {'GFLOP/s':>8} {'%pk':>4} "
            f"{'torch ms':>9} {'torch GF/s':>10} {'%pk':>4} {'ratio':>6} {'rel err':>8}")


def row_text(r, width):
    if "error" in r:
        return f"{r['layer']:<{width}} {r['pass']:<15} {r['device']:<4} {r['batch']:>5}  {r['error']}"
    return (f"{r['layer']:<{width}} {r['pass']:<15} {r['device']:<4} {r['batch']:>5} {r['ms']:>9.3f} "
            f"{r['gflops']:>8.1f} {fmt(r.get('peak_pct'), '>4.0f'):>4} {fmt(r.get('torch_ms'), '>9.3f'):>9} "
            f"{fmt(r.get('torch_gflops'), '>10.1f'):>10} {fmt(r.get('torch_peak_pct'), '>4.0f'):>4} "
            f"{fmt(r.get('ratio'), '>6.2f'):>6} {fmt(r.get('max_rel_err'), '>8.1e'):>8}")


def print_summary(results, devices, width):
    summary = summarize(results, devices)
    slowest = worst(results)
    if slowest:
        print(f"\nworst {len(slowest)} layer-passes by ratio convlab / PyTorch")
        print(header(width))
        for r in slowest:
            print(row_text(r, width))
    print("\nsummary")
    for device, families in summary.items():
        for family, s in families.items():
            what = "convolution" if family == "conv" else "pooling"
            per_pass = ", ".join(f"{p} {g:.2f}" for p, g in s["geomean_per_pass"].items())
            print(f"{device} {what} ({s['passes']} layer-passes): geometric mean ratio convlab/PyTorch "
                  f"{s['geomean_ratio']:.2f} ({per_pass}), worst {s['worst_ratio']:.2f} ({s['worst']})")
    sys.stdout.flush()
    return summary


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m convlab.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cpu,cuda (default cpu)")
    ap.add_argument("--threads", type=int, help="threads for convlab's CPU kernels and for PyTorch")
    ap.add_argument("--layers", help="comma-separated layer (or model) names or substrings of them (default: all)")
    ap.add_argument("--json", help="write every result to this file")
    ap.add_argument("--repeat", type=int, default=5, help="timing windows per side (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls per side first (default 2)")
    ap.add_argument("--suite", default="shapes",
                    help="shapes (default), sweep, models, or the path of a suite JSON file")
    ap.add_argument("--no-torch", action="store_true", help="time convlab alone")
    ap.add_argument("--peak", action="store_true", help="measure the FMA peak (1 and N threads) and stop")
    ap.add_argument("--profile", nargs="?", const="resnet18_train_32px", metavar="MODEL",
                    help="profile convlab's step of a model of the models suite (a name or part of one; default "
                         "resnet18_train_32px) and stop")
    ap.add_argument("--signal", action="store_true",
                    help="time cl.signal.convolve2d against SciPy on a 1024x1024 image, 15x15 kernel, and stop")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        ap.error("--repeat must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    return args


def write_json(path, results, summary, **meta):
    meta.update(date=datetime.datetime.now().isoformat(timespec="seconds"), machine=platform.node(),
                cpu=machine.cpu_name(), threads=_C.get_num_threads(), dtype="float32")
    Path(path).write_text(json.dumps({"meta": meta, "results": results, "summary": summary}, indent=1))


def main(argv=None):
    args = parse_args(argv)
    torch = None if args.no_torch else load_torch()
    if args.threads is not None:
        _C.set_num_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    threads = _C.get_num_threads()
    if args.peak:
        print(machine.peak_table(threads)[0])
        return 0
    if args.signal:
        from . import signal
        return signal.run(args)
    if args.profile or args.suite == "models":
        from . import models
        return models.profile(args) if args.profile else models.run(args, torch)
    return run_layers(args, torch, threads)


def run_layers(args, torch, threads):
    devices = [d.strip() for d in args.device.split(",") if d.strip()]
    for device in devices:
        check_device(device)
    path = suite_path(args.suite)
    specs = select_layers(json.loads(path.read_text())["layers"], args.layers)
    described, peak = machine.describe(threads)
    print(f"convlab bench: {len(specs)} layers of {args.suite} (up to {len(PASSES)} passes each) on "
          f"{','.join(devices)}, {threads} CPU threads, float32, PyTorch {torch.__version__ if torch else 'not used'}")
    print(f"machine: {described} (%pk = GFLOP/s as a % of it)", flush=True)
    width = max(18, *(len(spec["name"]) for spec in specs))
    print(header(width), flush=True)
    results = []
    progress = Progress(sum(len(make_layer(spec, "cpu").passes) for spec in specs) * len(devices))
    try:
        for device in devices:
            for row in device_rows(specs, device, torch, args, peak if device == "cpu" else None):
                results.append(row)
                progress.write(row_text(row, width))
                progress.step(f"{row['layer']} {row['pass']}")
        interrupted = False
    except KeyboardInterrupt:  # a long sweep stopped by Ctrl-C still reports the layer-passes it timed
        interrupted = True
        print(f"\ninterrupted after {len(results)} of {progress.total} layer-passes")
    progress.close()
    summary = print_summary(results, devices, width)
    if args.json:
        write_json(args.json, results, summary, devices=devices, repeat=args.repeat, warmup=args.warmup,
                   suite=str(path), torch=torch.__version__ if torch else None, peak_gflops=peak,
                   interrupted=interrupted)
    failed = sum("error" in r for r in results)
    if failed:
        print(f"{failed} layer-passes raised (see the rows above)")
    return 130 if interrupted else 1 if failed else 0


def device_rows(specs, device, torch, args, peak):
    """Times every pass of every layer on one device; yields one result row per layer-pass."""
    sync = _C.cuda_synchronize if device == "cuda" else (lambda: None)
    torch_here = torch is not None and (device == "cpu" or torch.cuda.is_available())
    torch_sync = (torch.cuda.synchronize if device == "cuda" else (lambda: None)) if torch_here else None
    for spec in specs:
        layer = make_layer(spec, device)
        arrays = layer.arrays()
        ours = layer.convlab_calls(arrays, device)
        theirs = layer.torch_calls(torch, arrays, device) if torch_here else None
        for name in layer.passes:
            yield time_pass(layer, name, device, ours[name], sync, theirs[name] if theirs else None, torch_sync,
                            args, peak)
