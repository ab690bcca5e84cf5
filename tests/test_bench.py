"""The benchmark script end to end on a tiny suite: one run per op kind, checked through the JSON it writes."""
import json

import pytest

import convlab as cl
from convlab import bench

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
