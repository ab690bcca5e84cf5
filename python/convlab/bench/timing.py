"""Timing one layer-pass on both sides, and the summaries over many. The machines are noisy, so the sides run
interleaved (a convlab window, a PyTorch window, again) and each keeps its best window."""
import math
import time

import numpy as np

WINDOW_S = 0.02  # each timing window repeats the call until it lasts about this long


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


def time_pass(layer, name, device, ours, sync, theirs, torch_sync, args, peak=None):
    """One result row: the best time of convlab's call `ours` (and of PyTorch's `theirs`, when given) for
    pass `name` of `layer`, with each side's share of the machine's peak GFLOP/s when `peak` is given. A
    kernel that raises (say, not on this device yet) gives a row with an error."""
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
    if peak:
        row["peak_pct"] = 100 * row["gflops"] / peak
        if "torch_gflops" in row:
            row["torch_peak_pct"] = 100 * row["torch_gflops"] / peak
    return row


def max_rel_err(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), 1e-30))


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarize(results, devices):
    """Per device and family (conv, pool: kept apart so adding pools to a suite does not move the convolution
    figure): the geometric mean and worst ratio over all layer-passes, and the geometric mean per pass."""
    summary = {}
    for device in devices:
        for family in ("conv", "pool"):
            rows = [r for r in results if r["device"] == device and r["family"] == family and r.get("ratio")]
            if rows:
                worst = max(rows, key=lambda r: r["ratio"])
                passes = dict.fromkeys(r["pass"] for r in rows)
                summary.setdefault(device, {})[family] = {
                    "geomean_ratio": geomean([r["ratio"] for r in rows]),
                    "worst_ratio": worst["ratio"],
                    "worst": f"{worst['layer']} {worst['pass']}",
                    "passes": len(rows),
                    "geomean_per_pass": {p: geomean([r["ratio"] for r in rows if r["pass"] == p]) for p in passes},
                }
    return summary


def worst(results, n=10):
    """The n layer-passes with the highest ratio convlab / PyTorch, worst first."""
    return sorted((r for r in results if r.get("ratio")), key=lambda r: -r["ratio"])[:n]
