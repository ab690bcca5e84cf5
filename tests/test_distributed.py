"""convlab.distributed on torch.distributed (gloo): two processes on the loopback interface, each bounded in
time. Collectives against their definitions, DistributedDataParallel gradients against one process's
gradient of the concatenated batch (float64, 1e-12), replicas bit-identical after training, and clean errors
when a rank dies or no group was initialised. This file is also the worker: `python test_distributed.py
SCENARIO OUTDIR` with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, as torchrun sets them."""
import datetime
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

import convlab as cl
import convlab.nn as nn
import convlab.nn.functional as F

WORLD = 2
TIMEOUT_S = 90  # per scenario; a hung collective fails the test instead of hanging CI


def make_model(seed):
    cl.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 6), nn.Tanh(), nn.Linear(6, 5)).double()


def global_batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 2, 8, 8)), rng.integers(0, 5, 8)


# ---- what each rank runs ----
def collectives(dist, rank, out):
    x = cl.tensor(np.arange(12, dtype=np.float32).reshape(3, 4) * (rank + 1))
    dist.all_reduce(x)
    strided = cl.tensor(np.full((4, 6), rank + 1, np.int64))
    column = strided[:, 1::2]  # non-contiguous: reduced through a compact copy written back
    dist.all_reduce(column, op=dist.ReduceOp.MAX)
    mean = cl.tensor([float(rank), 10.0 * rank], dtype=cl.float64)
    work = dist.all_reduce(mean, op=dist.ReduceOp.AVG, async_op=True)
    work.wait()
    b = cl.tensor(np.full(5, 100 + rank, np.int32))
    dist.broadcast(b, src=1)
    dist.barrier()
    np.savez(out, sum=x.numpy(), strided=strided.numpy(), mean=mean.numpy(), bcast=b.numpy(),
             rank=dist.get_rank(), world=dist.get_world_size())


def ddp(dist, rank, out):
    model = make_model(seed=rank + 1)  # replicas start different: DDP must broadcast rank 0's values
    ddp_model = dist.DistributedDataParallel(model, bucket_cap_mb=0.001)  # ~1 KB: several buckets
    start = [p.numpy().copy() for p in model.parameters()]
    x, y = global_batch()
    half = slice(4 * rank, 4 * rank + 4)
    F.cross_entropy(ddp_model(cl.tensor(x[half])), cl.tensor(y[half])).backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    # Accumulation: a local backward under no_sync, then a synchronised one averages the sum.
    for p in model.parameters():
        p.grad = None
    with ddp_model.no_sync():
        F.cross_entropy(ddp_model(cl.tensor(x[half][:2])), cl.tensor(y[half][:2])).backward()
    F.cross_entropy(ddp_model(cl.tensor(x[half][2:])), cl.tensor(y[half][2:])).backward()
    accumulated = [p.grad.numpy().copy() for p in model.parameters()]
    opt = cl.optim.SGD(ddp_model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(rank)  # each rank its own data
    for _ in range(4):
        opt.zero_grad()
        loss = F.cross_entropy(ddp_model(cl.tensor(rng.standard_normal((3, 2, 8, 8)))),
                               cl.tensor(rng.integers(0, 5, 3)))
        loss.backward()
        opt.step()
    final = [p.numpy() for p in model.parameters()]
    np.savez(out, buckets=len(ddp_model._buckets), **{f"start{i}": a for i, a in enumerate(start)},
             **{f"grad{i}": a for i, a in enumerate(grads)}, **{f"acc{i}": a for i, a in enumerate(accumulated)},
             **{f"final{i}": a for i, a in enumerate(final)})


def rank_fails(dist, rank, out):
    if rank == 1:
        os._exit(3)  # dies without a word to the group
    try:
        dist.all_reduce(cl.ones(4))
    except RuntimeError as e:
        print(f"caught: {e}", flush=True)
        os._exit(0)
    os._exit(1)


# One launch runs several scenarios: starting a process (importing torch) costs more than its work.
SCENARIOS = {"group": [collectives, ddp], "rank_fails": [rank_fails]}


def worker(scenario, outdir):
    import convlab.distributed as dist
    cl.set_num_threads(1)  # two ranks share this machine's cores
    dist.init_process_group(timeout=datetime.timedelta(seconds=30))
    rank = dist.get_rank()
    for run in SCENARIOS[scenario]:
        run(dist, rank, os.path.join(outdir, f"{run.__name__}{rank}.npz"))
    dist.destroy_process_group()


# ---- the tests: start WORLD ranks, wait with a bound, read what they saved ----
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(scenario, outdir):
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(WORLD),
               GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, __file__, scenario, str(outdir)], env=dict(env, RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(WORLD)]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"{scenario}: the ranks did not finish within {TIMEOUT_S} s")
    return [p.returncode for p in procs], outputs


@pytest.fixture(scope="module", autouse=True)
def engine():
    pytest.importorskip("torch.distributed")


@pytest.fixture(scope="module")
def group_results(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("group")
    codes, outputs = run_ranks("group", outdir)
    assert codes == [0, 0], outputs
    return outdir


def test_collectives(group_results):
    for rank in range(WORLD):
        r = np.load(group_results / f"collectives{rank}.npz")
        assert (int(r["rank"]), int(r["world"])) == (rank, WORLD)
        np.testing.assert_array_equal(r["sum"], np.arange(12, dtype=np.float32).reshape(3, 4) * 3)  # x*1 + x*2
        expected = np.full((4, 6), rank + 1, np.int64)
        expected[:, 1::2] = WORLD  # the max over ranks, only in the strided columns
        np.testing.assert_array_equal(r["strided"], expected)
        np.testing.assert_array_equal(r["mean"], [0.5, 5.0])
        np.testing.assert_array_equal(r["bcast"], np.full(5, 101, np.int32))


def test_ddp_gradients_equal_single_process_on_the_whole_batch(group_results):
    r0, r1 = (np.load(group_results / f"ddp{rank}.npz") for rank in range(WORLD))
    model = make_model(seed=1)  # rank 0's initial values, which DDP broadcast
    params = list(model.parameters())
    assert int(r0["buckets"]) > 1
    x, y = global_batch()
    F.cross_entropy(model(cl.tensor(x)), cl.tensor(y)).backward()
    full = [p.grad.numpy() for p in params]
    for p in params:
        p.grad = None
    for part in (slice(0, 2), slice(4, 6), slice(2, 4), slice(6, 8)):  # what the accumulation step saw
        F.cross_entropy(model(cl.tensor(x[part])), cl.tensor(y[part])).backward()
    accumulated = [p.grad.numpy() / 2 for p in params]  # two halves of a batch of 4 per rank, averaged
    for i, p in enumerate(params):
        for r in (r0, r1):
            np.testing.assert_array_equal(r[f"start{i}"], p.numpy())
            np.testing.assert_allclose(r[f"grad{i}"], full[i], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(r[f"acc{i}"], accumulated[i], rtol=1e-12, atol=1e-12)
        assert r0[f"final{i}"].tobytes() == r1[f"final{i}"].tobytes()  # replicas bit-identical
        assert not np.array_equal(r0[f"final{i}"], r0[f"start{i}"])


def test_a_failing_rank_is_an_error_not_a_hang(tmp_path):
    codes, outputs = run_ranks("rank_fails", tmp_path)
    assert codes == [0, 3], outputs
    assert "caught: convlab.distributed.all_reduce on rank 0: another rank failed" in outputs[0], outputs[0]


def test_ddp_lenet_example_matches_one_process():
    """examples/ddp_lenet.py under torchrun (2 ranks, one epoch) against its one-process run on the same
    global batches: the same test accuracy, and the two replicas hold the same bits."""
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "ddp_lenet.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    runs = [subprocess.Popen(cmd + [example, "--epochs", "1", "--threads", "1"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for cmd in ([sys.executable], [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                           "--master_addr", "127.0.0.1", "--master_port", str(free_port())])]
    try:
        single, parallel = (p.communicate(timeout=TIMEOUT_S)[0] for p in runs)
    except subprocess.TimeoutExpired:
        for p in runs:
            p.kill()
        pytest.fail(f"ddp_lenet.py did not finish within {TIMEOUT_S} s")
    assert [p.returncode for p in runs] == [0, 0], single + parallel
    accuracy = [re.search(r"(\d) process\(es\), global batch 32: test accuracy ([0-9.]+)", out).groups()
                for out in (single, parallel)]
    assert accuracy[0][0] == "1" and accuracy[1][0] == "2"
    # The same mathematics up to the rounding of the average: at most one of the 360 test images may differ.
    assert abs(float(accuracy[0][1]) - float(accuracy[1][1])) <= 1 / 360 + 1e-9, (single, parallel)
    assert float(accuracy[0][1]) > 0.8, single
    assert "parameters bit-identical on all 2 ranks: True" in parallel, parallel


def test_no_process_group_is_a_clear_error():
    import convlab.distributed as dist
    assert not dist.is_initialized()
    for call in (lambda: dist.all_reduce(cl.ones(2)), lambda: dist.broadcast(cl.ones(2)), dist.barrier,
                 dist.get_rank, lambda: dist.DistributedDataParallel(make_model(0))):
        with pytest.raises(RuntimeError, match="process group is not initialised; call "
                                               "convlab.distributed.init_process_group"):
            call()


def test_distributed_sampler_partitions_like_pytorch():
    from torch.utils.data.distributed import DistributedSampler as TorchSampler
    from convlab.distributed import DistributedSampler
    for n, replicas, drop_last in [(10, 3, False), (10, 3, True), (7, 2, False), (8, 4, True), (2, 3, False)]:
        data = list(range(n))
        ours = [list(DistributedSampler(data, replicas, r, shuffle=False, drop_last=drop_last))
                for r in range(replicas)]
        theirs = [list(TorchSampler(data, replicas, r, shuffle=False, drop_last=drop_last)) for r in range(replicas)]
        assert ours == theirs
        shuffled = [DistributedSampler(data, replicas, r, seed=5, drop_last=drop_last) for r in range(replicas)]
        for s in shuffled:
            s.set_epoch(3)
        shares = [list(s) for s in shuffled]
        assert all(len(s) == len(shuffled[0]) for s in shares)
        flat = sorted(i for s in shares for i in s)
        assert set(flat) <= set(data) and (drop_last or set(flat) == set(data))
        assert len(set(flat)) == len(flat) or not drop_last
    with pytest.raises(ValueError, match=r"rank must be in \[0, 1\], got 2"):
        DistributedSampler(range(4), num_replicas=2, rank=2)


def test_post_accumulate_grad_hook_runs_once_per_backward_with_the_sum():
    w = cl.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    ((w * w).sum() + (3 * w).sum()).backward()  # two paths into w: one hook call, after both are summed
    np.testing.assert_array_equal(seen, [[5.0, 7.0]])
    (w * w).sum().backward()
    np.testing.assert_array_equal(seen[-1], [7.0, 11.0])  # accumulated into the existing .grad
    handle.remove()
    (w * w).sum().backward()
    assert len(seen) == 2
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 2).register_post_accumulate_grad_hook(print)


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2])
