"""The benchmark end to end on tiny suites: one run per op kind, checked through the JSON it writes and the
text it prints; the FMA peak loop; the sweep file's layers; the whole-network models and the profile."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convlab as cl
from convlab import bench
from convlab.bench import models

TINY_SUITE = {"layers": [
    {"name": "tiny_conv2d", "op": "conv2d", "c_in": 3, "c_out": 4, "hw": [9, 7], "k": [3, 3], "stride": 2,
     "padding": 1, "dilation": 1, "groups": 1, "cpu_batch": 2, "gpu_batch": 2},
    {"name": "tiny_conv1d_grouped", "op": "conv1d", "c_in": 4, "c_out": 6, "hw": [11], "k": [3], "stride": 1,
     "padding": 2, "dilation": 2, "groups": 2, "cpu_batch": 1, "gpu_batch": 1},
    {"name": "tiny_transposed", "op": "conv_transpose2d", "c_in": 4, "c_out": 2, "hw": [5, 5], "k": [4, 4],
     "stride": 2, "padding": 1, "dilation": 1, "groups": 1, "cpu_batch": 2, "gpu_batch": 2},
    {"name": "tiny_maxpool", "op": "max_pool2d", "c": 3, "hw": [9, 8], "k": [3, 3], "stride": 2, "padding": 1,
     "cpu_batch": 2, "gpu_batch": 2},
    {"name": "tiny_avgpool", "op": "avg_pool2d", "c": 2, "hw": [7, 9], "k": [2, 3], "cpu_batch": 1, "gpu_batch": 1},
    {"name": "tiny_global_pool", "op": "adaptive_avg_pool2d", "c": 4, "hw": [6, 5], "output_size": [1, 1],
     "cpu_batch": 2, "gpu_batch": 2},
]}
POOLS = {"tiny_maxpool", "tiny_avgpool", "tiny_global_pool"}


def run_bench(tmp_path, *extra):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(TINY_SUITE))
    out = tmp_path / "out.json"
    assert bench.main(["--suite", str(suite), "--repeat", "1", "--warmup", "0", "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_bench_writes_results(device, tmp_path, capsys):
    report = run_bench(tmp_path, "--device", device, "--threads", "1")
    torch_used = report["meta"]["torch"] is not None
    rows = report["results"]
    assert [(r["layer"], r["pass"]) for r in rows] == [
        (layer["name"], p) for layer in TINY_SUITE["layers"]
        for p in (bench.PASSES[:2] if layer["name"] in POOLS else bench.PASSES)]
    for r in rows:
        assert r["device"] == device and r["ms"] > 0 and r["gflops"] > 0 and r["gflop"] > 0
        if torch_used and device == "cpu":
            assert r["torch_ms"] > 0 and r["ratio"] > 0
            assert r["max_rel_err"] < 1e-4, r  # both sides computed the same pass
    if torch_used and device == "cpu":
        assert report["summary"]["cpu"]["conv"]["passes"] == 9 and report["summary"]["cpu"]["pool"]["passes"] == 6
        assert report["summary"]["cpu"]["conv"]["geomean_ratio"] > 0 < report["summary"]["cpu"]["pool"]["geomean_ratio"]
    assert report["meta"]["threads"] == 1
    printed = capsys.readouterr().out
    assert "tiny_transposed" in printed and "summary" in printed


def test_bench_layer_selection(tmp_path):
    report = run_bench(tmp_path, "--layers", "tiny_conv2d,transposed", "--no-torch")
    assert {r["layer"] for r in report["results"]} == {"tiny_conv2d", "tiny_transposed"}
    with pytest.raises(SystemExit, match="matches no layer"):
        run_bench(tmp_path, "--layers", "resnet", "--no-torch")


@pytest.mark.skipif(cl.cuda.is_available(), reason="checks the error raised when CUDA is unavailable")
def test_bench_cuda_unavailable_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="--device cuda"):
        run_bench(tmp_path, "--device", "cpu,cuda")


def test_default_suite_holds_the_public_layers():
    suite = json.loads(bench.default_suite().read_text())
    names = [layer["name"] for layer in suite["layers"]]
    for name in ("lenet_c1", "resnet_stem", "mobilenet_dw", "audio_conv1d", "dcgan_transposed"):
        assert name in names
    for layer in suite["layers"]:
        bench.make_layer(layer, "cpu")  # every entry resolves to shapes


def test_bench_records_a_raising_pass_and_fails(tmp_path):
    bad = {"layers": [{"name": "bad_groups", "op": "conv2d", "c_in": 4, "c_out": 3, "hw": [5, 5], "k": [3, 3],
                       "groups": 2, "cpu_batch": 1, "gpu_batch": 1}]}
    suite, out = tmp_path / "bad.json", tmp_path / "out.json"
    suite.write_text(json.dumps(bad))
    assert bench.main(["--suite", str(suite), "--repeat", "1", "--json", str(out), "--no-torch"]) == 1
    rows = json.loads(out.read_text())["results"]
    assert len(rows) == 3 and all("groups" in r["error"] for r in rows)


def test_fma_peak_counts_its_flops_and_refuses_bad_arguments():
    for dtype, size in (("float32", 4), ("float64", 8)):
        r = cl._C.fma_peak(dtype, 2, 1000)
        assert r["vector_bits"] in (128, 256, 512) and r["seconds"] > 0 and math.isfinite(r["checksum"])
        assert r["flops"] == 2 * 2 * 1000 * 12 * (r["vector_bits"] // 8 // size)  # threads x iters x 12 chains
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got float16"):
        cl._C.fma_peak("float16", 1, 10)
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        cl._C.fma_peak("float32", 0, 10)
    with pytest.raises(ValueError, match="iters must be >= 1, got 0"):
        cl._C.fma_peak("float32", 1, 0)


def test_peak_report(capsys):
    assert bench.main(["--peak", "--threads", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "convlab built for" in lines[0] and "1 thread" in lines[1] and "2 threads" in lines[1]
    peaks = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[2:]}
    assert set(peaks) == {"float32", "float64"} and all(len(v) == 2 and min(v) > 0 for v in peaks.values())


def test_percent_of_peak_is_gflops_over_the_printed_peak(tmp_path, capsys):
    report = run_bench(tmp_path, "--threads", "1", "--layers", "tiny_conv2d,tiny_maxpool")
    peak = report["meta"]["peak_gflops"]
    assert peak > 0
    for r in report["results"]:
        assert r["peak_pct"] == pytest.approx(100 * r["gflops"] / peak)
        if "torch_gflops" in r:
            assert r["torch_peak_pct"] == pytest.approx(100 * r["torch_gflops"] / peak)
    out = capsys.readouterr().out
    printed_peak = float(re.search(r"float32 FMA peak (\d+) GFLOP/s on 1 thread", out).group(1))
    assert abs(printed_peak - peak) <= 0.5
    for line in out.splitlines():
        if line.startswith(("tiny_conv2d ", "tiny_maxpool ")):
            gflops, pct = float(line.split()[5]), float(line.split()[6])
            # printed GFLOP/s to 0.1, the peak to 1 and the % to 1: the error each rounding allows
            rounding = 0.5 + 100 * (0.05 + gflops * 0.5 / printed_peak) / printed_peak
            assert abs(pct - 100 * gflops / printed_peak) <= rounding
    if report["meta"]["torch"]:
        assert "worst 5 layer-passes" in out and "(forward " in out  # the worst ones, the geomean per pass


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    run_bench(tmp_path, "--no-torch")
    captured = capsys.readouterr()
    assert "[#" not in captured.out  # not a terminal here: a line at every tenth of the way, the last one full
    assert captured.err.strip().splitlines()[-1].startswith("[" + "#" * 30 + "] 15/15 layer-passes")


SWEEP = json.loads(bench.suite_path("sweep").read_text())


def geometry(spec):
    return json.dumps({k: v for k, v in spec.items() if k not in ("name", "scaled_from", "gpu_batch")}, sort_keys=True)


def test_sweep_has_150_distinct_valid_layers():
    layers = SWEEP["layers"]
    assert len({geometry(spec) for spec in layers}) == len(layers) >= 150
    assert len({spec["name"] for spec in layers}) == len(layers)
    for spec in layers:
        layer = bench.make_layer(spec, "cpu")
        assert layer.family == "conv" and min(layer.out_size) >= 1, spec
        assert spec["c_in"] % spec["groups"] == 0 and spec["c_out"] % spec["groups"] == 0, spec
        assert len(spec["k"]) == len(spec["hw"]) == len(layer.stride) == len(layer.padding) == len(layer.dilation)
        assert layer.flops <= 4e9, spec  # each pass small enough for the whole sweep to run in minutes
    for net in ("resnet18", "resnet50", "mobilenetv2", "efficientnet_b0", "inception_v3", "resnext50",
                "densenet121", "unet", "deeplabv3", "dcgan", "wavenet", "wav2vec2", "quartznet"):
        assert any(spec["name"].startswith(net) for spec in layers), net
    assert {spec["cpu_batch"] for spec in layers} >= {1, 8}
    kinds = {
        "1x7": lambda s: s["k"] == [1, 7], "7x1": lambda s: s["k"] == [7, 1],
        "grouped, few channels per group": lambda s: 1 < s["groups"] < s["c_in"] and s["c_in"] // s["groups"] <= 8,
        "depthwise 5x5 stride 2": lambda s: s["groups"] == s["c_in"] and s["k"] == [5, 5] and s["stride"] == [2, 2],
        "transposed stride 2": lambda s: s["op"] == "conv_transpose2d" and s["stride"] == [2, 2],
        "dilated 2-D": lambda s: s["op"] == "conv2d" and max(s["dilation"]) > 1,
        "dilated 1-D": lambda s: s["op"] == "conv1d" and max(s["dilation"]) > 1,
        "rectangular image": lambda s: len(s["hw"]) == 2 and s["hw"][0] != s["hw"][1],
    }
    for kind, test in kinds.items():
        assert any(test(spec) for spec in layers), kind


def test_sweep_keeps_the_public_conv_layers_and_is_what_the_script_writes():
    public = [spec for spec in json.loads(bench.default_suite().read_text())["layers"] if spec["op"].startswith("conv")]
    sweep = {spec["name"]: bench.make_layer(spec, "cpu") for spec in SWEEP["layers"]}
    for spec in public:
        ours, theirs = bench.make_layer(spec, "cpu"), sweep[spec["name"]]
        assert (ours.x_shape, ours.w_shape, ours.y_shape, ours.stride) == (theirs.x_shape, theirs.w_shape,
                                                                           theirs.y_shape, theirs.stride)
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_sweep.py"
    subprocess.run([sys.executable, str(script), "--check"], check=True)


def test_sweep_runs_by_name(capsys):
    assert bench.main(["--suite", "sweep", "--layers", "resnet18_l4_down_n1,quartznet_b1_dw", "--repeat", "1",
                       "--warmup", "0", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 layers of sweep" in out and "quartznet_b1_dw" in out and "resnet18_l4_down_n1" in out


@pytest.mark.parametrize("name", list(models.CASES))
def test_models_are_the_same_network_in_both_libraries(name):
    torch = pytest.importorskip("torch")
    build = models.CASES[name]["build"]
    ours, theirs = build(cl.nn), build(torch.nn)
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    ours.eval(), theirs.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with cl.no_grad():
        shape = ours(cl.from_numpy(x)).shape
    assert tuple(shape) == tuple(theirs(torch.from_numpy(x)).shape)


def test_models_suite_reports_time_ratio_and_rss(tmp_path, capsys):
    out = tmp_path / "models.json"
    assert bench.main(["--suite", "models", "--layers", "resnet18_infer", "--repeat", "1", "--warmup", "1",
                       "--threads", "1", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["model"] == "resnet18_infer_224px" and 0 < row["ms"] <= row["median_ms"]
    assert 0 < row["rss"]["after_import_mib"] < row["rss"]["peak_mib"]
    if "torch_ms" in row:
        assert row["ratio"] == pytest.approx(row["ms"] / row["torch_ms"])
        assert row["rss_ratio"] == pytest.approx(row["rss"]["peak_mib"] / row["torch_rss"]["peak_mib"])
    assert "resnet18_infer_224px" in capsys.readouterr().out


def test_profile_splits_the_step(monkeypatch, capsys):
    small = dict(models.CASES["resnet18_train_32px"], batch=2, size=8)
    monkeypatch.setitem(models.CASES, "resnet18_train_32px", small)
    assert bench.main(["--profile", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    conv_ms = float(re.search(r"conv kernels +([\d.]+) ms", out).group(1))
    assert conv_ms > 0 and "conv_backward_weight" in out and "batch norm, by ablation" in out


def test_profile_takes_a_model_and_splits_conv_by_kind(monkeypatch, capsys):
    small = dict(models.CASES["mobilenetv2_train_64px"], batch=2, size=16)
    monkeypatch.setitem(models.CASES, "mobilenetv2_train_64px", small)
    assert bench.main(["--profile", "mobilenet", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "mobilenetv2_train_64px training step" in out
    kinds = re.search(r"by kind of layer and pass +ms: (.*)", out).group(1)
    for kind in ("depthwise forward", "1x1 bwd_input", "kxk bwd_weight"):
        assert kind in kinds
    # layer-passes named by their shape, e.g. "forward 96->96 8x8 3x3/2x2 g96 b2"
    assert re.search(r"costliest layer-passes +ms: (forward|bwd_input|bwd_weight) \d+->\d+ \d+x\d+ \dx\d/\dx\d g\d+ b2 ", out)
    with pytest.raises(SystemExit, match="matches no model"):
        bench.main(["--profile", "vgg", "--threads", "1"])


def test_an_interrupted_run_reports_what_it_timed(tmp_path, monkeypatch):
    timed = bench.time_pass

    def stop_at_the_fourth(*args, **kwargs):
        if stop_at_the_fourth.calls == 3:
            raise KeyboardInterrupt
        stop_at_the_fourth.calls += 1
        return timed(*args, **kwargs)

    stop_at_the_fourth.calls = 0
    monkeypatch.setattr(bench, "time_pass", stop_at_the_fourth)
    suite, out = tmp_path / "suite.json", tmp_path / "out.json"
    suite.write_text(json.dumps(TINY_SUITE))
    assert bench.main(["--suite", str(suite), "--repeat", "1", "--json", str(out), "--no-torch"]) == 130
    report = json.loads(out.read_text())
    assert report["meta"]["interrupted"] and len(report["results"]) == 3
