"""Learn an edge detector from an example: given an image x and its horizontal edge map
y[:, j] = x[:, j] - x[:, j+1], gradient descent on a 1x2 convolution kernel recovers [1, -1].

    python examples/learn_edge_kernel.py [--device cuda] [--steps 500] [--lr 0.5] [--seed 0]
Exits with status 1 if the kernel is not within 1e-3 of [1, -1].
"""
import argparse
import sys

import numpy as np

import convlab as cl
import convlab.nn.functional as F

TARGET = np.array([1.0, -1.0])


def make_example(seed, size=48):
    """A random image (a few bright rectangles over noise) and its edge map, both (1, 1, H, *)."""
    rng = np.random.default_rng(seed)
    image = rng.random((size, size)) * 0.2
    for _ in range(6):
        top, left = rng.integers(0, size - 8, 2)
        height, width = rng.integers(4, 16, 2)
        image[top:top + height, left:left + width] += rng.random()
    image = (image - image.mean()) / image.std()  # zero mean keeps the least-squares problem well conditioned
    edges = image[:, :-1] - image[:, 1:]
    return image[None, None], edges[None, None]


def learn(steps=500, lr=0.5, seed=0, device=None, tol=1e-3):
    """Returns the learned kernel (2,) and the step at which it came within tol of [1, -1] (None: never)."""
    device = device or cl.default_device()
    image, edges = make_example(seed)
    x, y = cl.tensor(image, dtype="float32", device=device), cl.tensor(edges, dtype="float32", device=device)
    cl.manual_seed(seed)
    kernel = cl.randn(1, 1, 1, 2, device=device, requires_grad=True)
    optimizer = cl.optim.SGD([kernel], lr=lr, momentum=0.5)
    for step in range(1, steps + 1):
        loss = F.mse_loss(F.conv2d(x, kernel), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if np.abs(kernel.numpy().ravel() - TARGET).max() < tol:
            return kernel.numpy().ravel(), step
    return kernel.numpy().ravel(), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=cl.default_device())
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    kernel, step = learn(args.steps, args.lr, args.seed, args.device)
    print(f"learned kernel: [{kernel[0]:.6f}, {kernel[1]:.6f}]")
    if step is None:
        print(f"FAILED: not within 1e-3 of [1, -1] after {args.steps} steps", file=sys.stderr)
        sys.exit(1)
    print(f"within 1e-3 of [1, -1] after {step} steps")


if __name__ == "__main__":
    main()
