"""LeNet-5 on the digits, data-parallel: examples/lenet_digits.py's training with every global batch split
across the processes, gradients averaged by convlab.distributed.DistributedDataParallel (torch.distributed's
gloo underneath, NCCL on GPUs).

    torchrun --nproc_per_node 2 examples/ddp_lenet.py [--epochs 12] [--batch-size 32] [--device cpu]
    python examples/ddp_lenet.py                      # one process, the same global batches: the reference

Every rank draws the same global batch (and its augmentation) and trains on its slice; each rank's loss is
its slice's summed loss over the global batch size times the world size, so the averaged gradient is the
gradient of the global batch's mean loss, as one process computes it. Rank 0 prints the test accuracy, the
time per step, and whether the parameters are bit-identical on all ranks after training.
"""
import argparse
import math
import os
import time

import numpy as np

import convlab as cl
import convlab.nn.functional as F
from lenet_digits import accuracy, lenet5, load_images, shifted


def train(epochs, batch_size, lr, seed, device):
    distributed = "RANK" in os.environ  # set by torchrun
    if distributed:
        import convlab.distributed as dist
        dist.init_process_group()
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    cl.manual_seed(seed)
    x_train, x_test, y_train, y_test = load_images(seed)
    model = lenet5().to(device)
    net = dist.DistributedDataParallel(model) if distributed else model
    optimizer = cl.optim.Adam(net.parameters(), lr=lr)
    order_rng = np.random.default_rng(seed)  # the same stream on every rank: the same global batches
    steps, start = 0, time.perf_counter()
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        order = order_rng.permutation(len(x_train))
        for first in range(0, len(order), batch_size):
            idx = order[first:first + batch_size]
            batch, labels = shifted(x_train[idx], order_rng)[rank::world], y_train[idx][rank::world]
            out = net(cl.tensor(batch, device=device))
            loss = F.cross_entropy(out, labels, reduction="sum") * (world / len(idx))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    step_ms = (time.perf_counter() - start) / steps * 1e3
    acc = accuracy(model, x_test, y_test, device)
    identical = True
    if distributed:  # max == min over the ranks, element by element, only where every rank holds the same bits
        for p in model.parameters():
            hi, lo = p.detach().clone(), p.detach().clone()
            dist.all_reduce(hi, op=dist.ReduceOp.MAX)
            dist.all_reduce(lo, op=dist.ReduceOp.MIN)
            identical &= hi.numpy().tobytes() == lo.numpy().tobytes() == p.numpy().tobytes()
        dist.destroy_process_group()
    if rank == 0:
        print(f"{world} process(es), global batch {batch_size}: test accuracy {acc:.4f}, {steps} steps, "
              f"{step_ms:.1f} ms/step")
        if distributed:
            print(f"parameters bit-identical on all {world} ranks: {identical}")
    return acc


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="OpenMP threads per process")
    args = parser.parse_args()
    if args.threads:
        cl.set_num_threads(args.threads)
    train(args.epochs, args.batch_size, args.lr, args.seed, args.device)


if __name__ == "__main__":
    main()
