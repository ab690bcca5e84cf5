"""The benchmark: times convlab's kernels (convlab._C, not the autograd layer) on every layer of the suite,
for the forward pass, backward-to-input and backward-to-weight (pooling layers: the first two), next to
PyTorch measured in the same process when it is installed.

    python -m convlab.bench [--device cpu|cuda|cpu,cuda] [--threads N] [--layers a,b] [--json PATH]
                            [--repeat R] [--warmup W] [--suite PATH]

The two sides run interleaved (a convlab window, a PyTorch window, again) and each keeps its best window,
because the machines are noisy. ratio = convlab time / PyTorch time: below 1 convlab is faster.
"""
import argparse
import datetime
import importlib.resources
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from . import _C

PASSES = ("forward", "backward_input", "backward_weight")
WINDOW_S = 0.02  # each timing window repeats the call until it lasts about this long


def default_suite():
    """The packaged copy of the suite when installed, else bench/shapes.json of the checkout."""
    packaged = importlib.resources.files("convlab").joinpath("bench_shapes.json")
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "bench" / "shapes.json"


def per_dim(value, dims):
    return list(value) if isinstance(value, (list, tuple)) else [value] * dims


CONV_OPS = ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d")
POOL_OPS = ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")


def random_arrays(seed, **shapes):
    """name -> standard-normal float32 array of that shape, the same for every run with one seed."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def make_layer(spec, device):
    if spec["op"] in CONV_OPS:
        return Layer(spec, device)
    if spec["op"] in POOL_OPS:
        return PoolLayer(spec, device)
    raise ValueError(f"layer {spec['name']}: unknown op {spec['op']!r} (expected one of {CONV_OPS + POOL_OPS})")


class Layer:
    """One convolution entry in PyTorch's conventions, resolved into per-dim lists and array shapes. A
    transposed layer's flops are those of the forward conv it is the adjoint of (the same multiply-adds)."""

    family, passes = "conv", PASSES

    def __init__(self, spec, device):
        self.name, self.op = spec["name"], spec["op"]
        self.transposed = self.op.startswith("conv_transpose")
        self.size = list(spec["hw"])
        self.k = list(spec["k"])
        dims = len(self.size)
        self.stride = per_dim(spec.get("stride", 1), dims)
        self.padding = per_dim(spec.get("padding", 0), dims)
        self.dilation = per_dim(spec.get("dilation", 1), dims)
        self.output_padding = per_dim(spec.get("output_padding", 0), dims)
        self.groups = spec.get("groups", 1)
        self.batch = spec["gpu_batch" if device == "cuda" else "cpu_batch"]
        self.c_in, self.c_out = spec["c_in"], spec["c_out"]
        g = self.groups
        if self.transposed:
            self.out_size = [(i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, s, p, d, k, op in
                             zip(self.size, self.stride, self.padding, self.dilation, self.k, self.output_padding)]
            self.w_shape = [self.c_in, self.c_out // g, *self.k]
            macs_per_out = (self.c_out // g) * math.prod(self.k)  # per input element of the adjoint conv
            self.flops = 2.0 * self.batch * self.c_in * math.prod(self.size) * macs_per_out
        else:
            self.out_size = [(i + 2 * p - d * (k - 1) - 1) // s + 1 for i, s, p, d, k in
                             zip(self.size, self.stride, self.padding, self.dilation, self.k)]
            self.w_shape = [self.c_out, self.c_in // g, *self.k]
            self.flops = 2.0 * self.batch * self.c_out * math.prod(self.out_size) * (self.c_in // g) * math.prod(self.k)
        self.x_shape = [self.batch, self.c_in, *self.size]
        self.y_shape = [self.batch, self.c_out, *self.out_size]

    def arrays(self, seed=0):
        return random_arrays(seed, x=self.x_shape, w=self.w_shape, gy=self.y_shape)

    def convlab_calls(self, arrays, device):
        """pass name -> a call of the convlab kernel on device-resident NDArrays."""
        x, w, gy = (_C.NDArray.from_numpy(arrays[n], device=device) for n in ("x", "w", "gy"))
        pads = [(p, p) for p in self.padding]
        s, d, g = self.stride, self.dilation, self.groups
        if self.transposed:  # its backward passes are the conv forward and the conv weight gradient
            return {
                "forward": lambda: _C.conv_transpose_forward(x, w, None, s, pads, self.output_padding, d, g),
                "backward_input": lambda: _C.conv_forward(gy, w, None, s, pads, d, g),
                "backward_weight": lambda: _C.conv_backward_weight(gy, x, self.k, s, pads, d, g),
            }
        return {
            "forward": lambda: _C.conv_forward(x, w, None, s, pads, d, g),
            "backward_input": lambda: _C.conv_backward_input(gy, w, self.size, s, pads, d, g),
            "backward_weight": lambda: _C.conv_backward_weight(x, gy, self.k, s, pads, d, g),
        }

    def torch_calls(self, torch, arrays, device):
        """pass name -> the same computation through PyTorch's own kernels (aten convolution and
        convolution_backward, which is what autograd runs)."""
        x, w, gy = (torch.from_numpy(arrays[n]).to(device) for n in ("x", "w", "gy"))
        args = (self.stride, self.padding, self.dilation, self.transposed, self.output_padding, self.groups)
        backward = torch.ops.aten.convolution_backward

        def grad(mask, which):
            return lambda: backward(gy, x, w, None, *args, mask)[which]

        return {
            "forward": lambda: torch.ops.aten.convolution(x, w, None, *args),
            "backward_input": grad([True, False, False], 0),
            "backward_weight": grad([False, True, False], 1),
        }


class PoolLayer:
    """One 2-D pooling entry: "c" channels of "hw" images, "k"/"stride"/"padding" (max and avg; stride
    defaults to k) or "output_size" (adaptive). Pools have no weight: passes forward and backward-to-input.
    "gflop" counts one compare or add per window element, the forward's work."""

    family, passes = "pool", PASSES[:2]

    def __init__(self, spec, device):
        self.name, self.op = spec["name"], spec["op"]
        self.batch, self.c, self.size = spec["gpu_batch" if device == "cuda" else "cpu_batch"], spec["c"], list(spec["hw"])
        if self.op == "adaptive_avg_pool2d":
            self.out_size = per_dim(spec["output_size"], 2)
            window = math.prod(math.ceil(i / o) for i, o in zip(self.size, self.out_size))
        else:
            self.k = per_dim(spec["k"], 2)
            self.stride = per_dim(spec.get("stride", spec["k"]), 2)
            self.padding = per_dim(spec.get("padding", 0), 2)
            self.out_size = [(i + 2 * p - k) // s + 1 for i, k, s, p in zip(self.size, self.k, self.stride, self.padding)]
            window = math.prod(self.k)
        self.x_shape = [self.batch, self.c, *self.size]
        self.y_shape = [self.batch, self.c, *self.out_size]
        self.flops = float(math.prod(self.y_shape) * window)

    def arrays(self, seed=0):
        return random_arrays(seed, x=self.x_shape, gy=self.y_shape)

    def convlab_calls(self, arrays, device):
        x, gy = (_C.NDArray.from_numpy(arrays[n], device=device) for n in ("x", "gy"))
        if self.op == "adaptive_avg_pool2d":
            return {"forward": lambda: _C.adaptive_avg_pool_forward(x, self.out_size),
                    "backward_input": lambda: _C.adaptive_avg_pool_backward(gy, self.size)}
        k, s, p = self.k, self.stride, self.padding
        if self.op == "max_pool2d":  # convlab's backward recomputes each window's argmax from x
            return {"forward": lambda: _C.max_pool_forward(x, k, s, p, [1, 1], False),
                    "backward_input": lambda: _C.max_pool_backward(x, gy, k, s, p, [1, 1], False)}
        return {"forward": lambda: _C.avg_pool_forward(x, k, s, p, False, True),
                "backward_input": lambda: _C.avg_pool_backward(gy, self.size, k, s, p, False, True)}

    def torch_calls(self, torch, arrays, device):
        """PyTorch's pooling kernels as autograd runs them (max-pool backward reads the indices its forward
        saved, computed here once outside the timing)."""
        x, gy = (torch.from_numpy(arrays[n]).to(device) for n in ("x", "gy"))
        aten = torch.ops.aten
        if self.op == "adaptive_avg_pool2d":
            return {"forward": lambda: aten._adaptive_avg_pool2d(x, self.out_size),
                    "backward_input": lambda: aten._adaptive_avg_pool2d_backward(gy, x)}
        k, s, p = self.k, self.stride, self.padding
        if self.op == "max_pool2d":
            indices = aten.max_pool2d_with_indices(x, k, s, p, [1, 1], False)[1]
            return {"forward": lambda: aten.max_pool2d_with_indices(x, k, s, p, [1, 1], False)[0],
                    "backward_input": lambda: aten.max_pool2d_with_indices_backward(gy, x, k, s, p, [1, 1], False,
                                                                                    indices)}
        return {"forward": lambda: aten.avg_pool2d(x, k, s, p, False, True, None),
                "backward_input": lambda: aten.avg_pool2d_backward(gy, x, k, s, p, False, True, None)}


def best_window_times(calls, syncs, repeat, warmup):
    """Interleaves the timed sides window by window; returns each side's best seconds per call."""
    reps = []
    for call, sync in zip(calls, syncs):
        for _ in range(warmup):
            call()
        sync()
        start = time.perf_counter()
        call()
        sync()
        reps.append(max(1, int(WINDOW_S / max(time.perf_counter() - start, 1e-9))))
    best = [math.inf] * len(calls)
    for _ in range(repeat):
        for i, (call, sync) in enumerate(zip(calls, syncs)):
            start = time.perf_counter()
            for _ in range(reps[i]):
                call()
            sync()
            best[i] = min(best[i], (time.perf_counter() - start) / reps[i])
    return best


def time_pass(layer, name, device, ours, sync, theirs, torch_sync, args):
    """One result row: the best time of convlab's call `ours` (and of PyTorch's `theirs`, when given) for
    pass `name` of `layer`. A kernel that raises (say, not on this device yet) gives a row with an error."""
    row = {"layer": layer.name, "op": layer.op, "family": layer.family, "pass": name, "device": device,
           "batch": layer.batch, "gflop": layer.flops / 1e9}
    try:
        if theirs is None:
            (t,) = best_window_times([ours], [sync], args.repeat, args.warmup)
        else:
            t, t_torch = best_window_times([ours, theirs], [sync, torch_sync], args.repeat, args.warmup)
            row.update(torch_ms=t_torch * 1e3, torch_gflops=layer.flops / t_torch / 1e9, ratio=t / t_torch,
                       max_rel_err=max_rel_err(ours().numpy(), theirs().cpu().numpy()))
        row.update(ms=t * 1e3, gflops=layer.flops / t / 1e9)
    except (RuntimeError, ValueError) as e:
        row["error"] = f"{type(e).__name__}: {e}"
    return row


def max_rel_err(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), 1e-30))


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


def fmt(value, spec):
    return format(value, spec) if value is not None else "-"


def row_text(r):
    if "error" in r:
        return f"{r['layer']:<18} {r['pass']:<15} {r['device']:<4} {r['batch']:>5}  {r['error']}"
    return (f"{r['layer']:<18} {r['pass']:<15} {r['device']:<4} {r['batch']:>5} {r['ms']:>10.3f} "
            f"{r['gflops']:>9.1f} {fmt(r.get('torch_ms'), '>10.3f'):>10} {fmt(r.get('torch_gflops'), '>9.1f'):>9} "
            f"{fmt(r.get('ratio'), '>6.2f'):>6} {fmt(r.get('max_rel_err'), '>8.1e'):>8}")


HEADER = (f"{'layer':<18} {'pass':<15} {'dev':<4} {'batch':>5} {'ms':>10} {'GFLOP/s':>9} {'torch ms':>10} "
          f"{'torch GF/s':>9} {'ratio':>6} {'rel err':>8}")


def summarize(results, devices):
    """Per device: geometric mean and worst ratio over the convolution rows (the headline), and the same
    over the pooling rows, kept apart so adding pools to a suite does not move the convolution figure."""
    summary = {}
    for device in devices:
        for family in ("conv", "pool"):
            ratios = [r for r in results if r["device"] == device and r["family"] == family and r.get("ratio")]
            if ratios:
                worst = max(ratios, key=lambda r: r["ratio"])
                summary.setdefault(device, {})[family] = {
                    "geomean_ratio": math.exp(sum(math.log(r["ratio"]) for r in ratios) / len(ratios)),
                    "worst_ratio": worst["ratio"],
                    "worst": f"{worst['layer']} {worst['pass']}",
                    "passes": len(ratios),
                }
    return summary


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m convlab.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cpu,cuda (default cpu)")
    ap.add_argument("--threads", type=int, help="threads for convlab's CPU kernels and for PyTorch")
    ap.add_argument("--layers", help="comma-separated layer names or substrings of them (default: all)")
    ap.add_argument("--json", help="write every result to this file")
    ap.add_argument("--repeat", type=int, default=5, help="timing windows per side (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls per side first (default 2)")
    ap.add_argument("--suite", help="suite JSON (default: the packaged or the checkout's bench/shapes.json)")
    ap.add_argument("--no-torch", action="store_true", help="time convlab alone")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        ap.error("--repeat must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    devices = [d.strip() for d in args.device.split(",") if d.strip()]
    for device in devices:
        check_device(device)
    suite_path = Path(args.suite) if args.suite else default_suite()
    suite = json.loads(suite_path.read_text())
    specs = select_layers(suite["layers"], args.layers)
    torch = None if args.no_torch else load_torch()
    if args.threads is not None:
        _C.set_num_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)

    print(f"convlab bench: {len(specs)} layers (up to {len(PASSES)} passes each) on {','.join(devices)}, "
          f"{_C.get_num_threads()} CPU threads, float32, PyTorch {torch.__version__ if torch else 'not used'}",
          flush=True)
    print(HEADER, flush=True)
    results = []
    for device in devices:
        sync = _C.cuda_synchronize if device == "cuda" else (lambda: None)
        torch_here = torch is not None and (device == "cpu" or torch.cuda.is_available())
        torch_sync = (torch.cuda.synchronize if device == "cuda" else (lambda: None)) if torch_here else None
        for spec in specs:
            layer = make_layer(spec, device)
            arrays = layer.arrays()
            ours = layer.convlab_calls(arrays, device)
            theirs = layer.torch_calls(torch, arrays, device) if torch_here else None
            for name in layer.passes:
                row = time_pass(layer, name, device, ours[name], sync, theirs[name] if theirs else None,
                                 torch_sync, args)
                results.append(row)
                print(row_text(row), flush=True)

    print("\nsummary")
    print(HEADER)
    for r in results:
        print(row_text(r))
    summary = summarize(results, devices)
    for device, families in summary.items():
        for family, s in families.items():
            what = "convolution" if family == "conv" else "pooling"
            print(f"{device} {what} ({s['passes']} layer-passes): geometric mean ratio convlab/PyTorch "
                  f"{s['geomean_ratio']:.2f}, worst {s['worst_ratio']:.2f} ({s['worst']})")
    sys.stdout.flush()

    if args.json:
        meta = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": platform.node(), "processor": platform.processor() or platform.machine(),
            "devices": devices, "threads": _C.get_num_threads(), "dtype": "float32",
            "repeat": args.repeat, "warmup": args.warmup, "suite": str(suite_path),
            "torch": torch.__version__ if torch else None,
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results, "summary": summary}, indent=1))
    failed = sum("error" in r for r in results)
    if failed:
        print(f"{failed} layer-passes raised (see the rows above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
