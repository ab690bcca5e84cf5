"""LeNet-5 on scikit-learn's handwritten digits (1,797 8x8 images, shipped with scikit-learn: no download).

Each image is upscaled 3x to 24x24 and padded to 28x28, the input size LeNet-5 was drawn for, then
conv 5x5 -> max pool -> conv 5x5 -> max pool -> 120 -> 84 -> 10, trained with Adam on 80% of the images
and scored on the held-out 20%.

    python examples/lenet_digits.py [--device cuda] [--epochs 12] [--batch-size 32] [--seed 0]
"""
import argparse
import math
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import convlab as cl
import convlab.nn as nn
import convlab.nn.functional as F


def load_images(seed):
    """(N, 1, 28, 28) float32 images standardised with the training set's statistics, and labels."""
    digits = load_digits()
    images = np.kron(digits.images, np.ones((3, 3)))  # 8x8 -> 24x24, each pixel a 3x3 block
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))[:, None].astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.2, random_state=seed,
                                                        stratify=digits.target)
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def shifted(images, rng, max_shift=2):
    """Each image moved by up to max_shift pixels each way (the 2-pixel border is blank, so nothing is lost):
    cheap augmentation that keeps LeNet from memorising pixel positions."""
    out = np.empty_like(images)
    for i, (dy, dx) in enumerate(rng.integers(-max_shift, max_shift + 1, (len(images), 2))):
        out[i] = np.roll(images[i], (dy, dx), axis=(1, 2))
    return out


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),   # 28 -> 24 -> 12
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # 12 -> 8 -> 4
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10))


def accuracy(model, images, labels, device, batch_size=256):
    model.eval()
    correct = 0
    with cl.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(cl.tensor(images[start:start + batch_size], device=device))
            correct += int((logits.argmax(1).numpy() == labels[start:start + batch_size]).sum())
    model.train()
    return correct / len(images)


def train(epochs=12, batch_size=32, lr=3e-3, seed=0, device=None, progress=True):
    """Trains LeNet-5 and returns the held-out test accuracy."""
    device = device or cl.default_device()
    cl.manual_seed(seed)
    x_train, x_test, y_train, y_test = load_images(seed)
    model = lenet5().to(device)
    optimizer = cl.optim.Adam(model.parameters(), lr=lr)
    order_rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        for group in optimizer.param_groups:  # cosine decay: large steps first, fine ones at the end
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        order = order_rng.permutation(len(x_train))
        batches = range(0, len(order), batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for start in bar:
            idx = order[start:start + batch_size]
            batch = shifted(x_train[idx], order_rng)
            loss = F.cross_entropy(model(cl.tensor(batch, device=device)), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if progress:
            tqdm.write(f"epoch {epoch + 1}/{epochs}: test accuracy {accuracy(model, x_test, y_test, device):.4f}")
    return accuracy(model, x_test, y_test, device)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=cl.default_device())
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    acc = train(args.epochs, args.batch_size, seed=args.seed, device=args.device)
    print(f"test accuracy: {acc:.4f} ({acc * 100:.2f}%)")
    print(f"wall time: {time.perf_counter() - start:.1f} s on {args.device}")


if __name__ == "__main__":
    main()
