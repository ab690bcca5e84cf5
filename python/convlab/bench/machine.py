"""What the numbers are read against: the CPU's name, the vector instructions convlab was built for, and the
machine's FMA peak measured by a register-only loop (convlab._C.fma_peak), so that a GFLOP/s figure becomes a
fraction of what this machine can do at all, the same on Intel and AMD."""
import platform
from pathlib import Path

from .. import _C


def cpu_name():
    """The model name /proc/cpuinfo gives, with the family and model numbers (a virtual machine often shows
    only 'AMD EPYC': family 25 is Zen 3/4, 26 is Zen 5), else what platform knows."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.machine())
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def fma_peak(threads, dtype="float32", window_s=0.03, windows=5):
    """Best GFLOP/s of `windows` runs of the FMA loop on `threads` threads, each sized to last ~window_s; also
    returns the loop's report (isa, vector_bits). The best run is the one least disturbed by other processes."""
    probe = _C.fma_peak(dtype, threads, 20000)
    iters = max(20000, int(20000 * window_s / max(probe["seconds"], 1e-6)))
    best = max((_C.fma_peak(dtype, threads, iters) for _ in range(windows)), key=lambda r: r["flops"] / r["seconds"])
    return best["flops"] / best["seconds"] / 1e9, best


def describe(threads):
    """One line naming the machine and the float32 peak at `threads` threads; returns (line, peak GFLOP/s)."""
    peak, run = fma_peak(threads)
    return (f"{cpu_name()}, convlab built for {run['isa']} ({run['vector_bits']}-bit vectors); "
            f"float32 FMA peak {peak:.0f} GFLOP/s on {threads} thread{'s' * (threads != 1)}"), peak


def peak_table(threads):
    """The --peak report: float32 and float64 peaks on 1 and on `threads` threads."""
    counts = sorted({1, threads})
    lines = [f"{cpu_name()}: convlab built for {_C.fma_peak('float32', 1, 1)['isa']}",
             f"{'dtype':<8} " + " ".join(f"{f'{n} thread' + 's' * (n != 1):>12}" for n in counts) + "  (GFLOP/s)"]
    peaks = {}
    for dtype in ("float32", "float64"):
        for n in counts:
            peaks[dtype, n] = fma_peak(n, dtype, windows=10)[0]
        lines.append(f"{dtype:<8} " + " ".join(f"{peaks[dtype, n]:>12.1f}" for n in counts))
    return "\n".join(lines), peaks
