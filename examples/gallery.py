"""A gallery of convolution pictures, written as PNGs into a folder that is printed at the end:

  filters.png          a photo (matplotlib's sample of Grace Hopper, shipped with matplotlib: no download)
                       through box blur, Gaussian, Sobel and Laplacian kernels, cl.signal.convolve2d beside
                       correlate2d (the same for the symmetric kernels, opposite signs for Sobel)
  edge_kernel.png      the 1x2 kernel examples/learn_edge_kernel.py learns next to the true [1, -1]
  lenet.png            LeNet-5's first-layer kernels and their feature maps on a test digit after a short
                       training on scikit-learn's digits (skipped, and said so, without scikit-learn)
  receptive_field.png  receptive-field size and jump per layer of ResNet-18 (nn.utils.receptive_field)
  parameters.png       weights of shared, tiled and locally connected layers of one geometry

    python examples/gallery.py [--out DIR] [--device cuda] [--quick]
--quick (used by the tests) trains and filters less; the pictures are the same kinds.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.cbook as cbook  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import convlab as cl  # noqa: E402
import convlab.nn as nn  # noqa: E402
import convlab.signal as signal  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learn_edge_kernel  # noqa: E402


def photo(size):
    """Grace Hopper in grey, float64 in [0, 1], downsampled by block means to about size pixels high."""
    rgb = plt.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).astype(np.float64) / 255
    grey = rgb[..., :3] @ np.array([0.299, 0.587, 0.114])
    f = max(1, grey.shape[0] // size)
    h, w = grey.shape[0] // f * f, grey.shape[1] // f * f
    return grey[:h, :w].reshape(h // f, f, w // f, f).mean((1, 3))


def kernels():
    g = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
    return {
        "box blur 5x5": np.full((5, 5), 1 / 25),
        "Gaussian 7x7 (sigma 1.5)": np.outer(g, g) / np.outer(g, g).sum(),
        "Sobel x": np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]),
        "Laplacian": np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    }


def filters_figure(path, size, device):
    image = photo(size)
    x = cl.tensor(image, device=device)
    ks = kernels()
    fig, axes = plt.subplots(len(ks), 4, figsize=(10, 2.6 * len(ks)))
    for row, (name, k) in zip(axes, ks.items()):
        w = cl.tensor(k, device=device)
        conv = signal.convolve2d(x, w, mode="same", boundary="symm").numpy()
        corr = signal.correlate2d(x, w, mode="same", boundary="symm").numpy()
        lim = np.percentile(np.abs(conv), 99.5)  # a few strong edges would wash the rest out
        k_max = np.abs(k).max()  # a smoothing kernel's weights in light reds, where its numbers stay legible
        row[0].imshow(k, **(dict(cmap="Reds", vmin=0, vmax=2 * k_max) if k.min() >= 0 else
                            dict(cmap="RdBu_r", vmin=-k_max, vmax=k_max)))
        row[0].set_title(name)
        if k.size <= 25:
            for (r, c), v in np.ndenumerate(k):
                row[0].text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7)
        style = dict(cmap="gray", vmin=0, vmax=1) if k.min() >= 0 else dict(cmap="RdBu_r", vmin=-lim, vmax=lim)
        row[1].imshow(conv, **style), row[1].set_title("convolve2d")
        row[2].imshow(corr, **style), row[2].set_title("correlate2d")
        row[3].imshow(conv - corr, cmap="RdBu_r", vmin=-lim, vmax=lim)
        row[3].set_title(f"convolve2d - correlate2d\nmax |.| = {np.abs(conv - corr).max():.2g}")
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("True convolution flips the kernel: the same for symmetric kernels, the sign flips for Sobel")
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)


def edge_kernel_figure(path, steps, device):
    learned, step = learn_edge_kernel.learn(steps=steps, device=device)
    image, edges = learn_edge_kernel.make_example(0)
    x = cl.tensor(image, device=device)
    found = cl.nn.functional.conv2d(x, cl.tensor(learned.reshape(1, 1, 1, 2).astype(np.float64),
                                                 device=device)).numpy()[0, 0]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.5), gridspec_kw=dict(width_ratios=[1, 1, 1.6, 1.6]))
    for ax, k, title in [(axes[0], learn_edge_kernel.TARGET, "true kernel"), (axes[1], learned,
                         f"learned ({'step ' + str(step) if step else f'{steps} steps, not converged'})")]:
        ax.imshow(k[None], cmap="RdBu_r", vmin=-1.2, vmax=1.2)
        for j, v in enumerate(k):
            ax.text(j, 0, f"{v:+.4f}", ha="center", va="center")
        ax.set_title(title), ax.set_xticks([]), ax.set_yticks([])
    lim = np.abs(edges).max()
    axes[2].imshow(edges[0, 0], cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[2].set_title("target edge map x[:, j] - x[:, j+1]")
    axes[3].imshow(found, cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[3].set_title("conv2d(x, learned kernel)")
    for ax in axes[2:]:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def lenet_figure(path, epochs, limit, device):
    import lenet_digits

    cl.manual_seed(0)
    x_train, x_test, y_train, y_test = lenet_digits.load_images(0)
    x_train, y_train = x_train[:limit], y_train[:limit]
    model = lenet_digits.lenet5().to(device)
    opt = cl.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        for start in range(0, len(x_train), 32):
            idx = order[start:start + 32]
            loss = cl.nn.functional.cross_entropy(model(cl.tensor(x_train[idx], device=device)), y_train[idx])
            opt.zero_grad(), loss.backward(), opt.step()
    accuracy = lenet_digits.accuracy(model, x_test, y_test, device)
    conv1 = model[0]
    w = conv1.weight.numpy()[:, 0]
    with cl.no_grad():
        maps = model[1](conv1(cl.tensor(x_test[:1], device=device))).numpy()[0]
    fig, axes = plt.subplots(2, len(w) + 1, figsize=(2 * len(w) + 2, 4.6))
    axes[0, 0].imshow(x_test[0, 0], cmap="gray")
    axes[0, 0].set_title(f"input (label {y_test[0]})")
    axes[1, 0].axis("off")
    for i in range(len(w)):
        lim = np.abs(w[i]).max()
        axes[0, i + 1].imshow(w[i], cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[0, i + 1].set_title(f"kernel {i}")
        axes[1, i + 1].imshow(maps[i], cmap="magma")
        axes[1, i + 1].set_title(f"ReLU(conv) {i}")
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"LeNet-5 first layer after {epochs} epoch(s) on {len(x_train)} digits "
                 f"(test accuracy {accuracy:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return accuracy


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


def resnet18(width=16):
    """torchvision's ResNet-18 geometry (channels scaled by width / 64: the receptive field does not see them)."""
    layers = [nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    c = width
    for i, out in enumerate([width, 2 * width, 4 * width, 8 * width]):
        layers += [BasicBlock(c, out, 1 if i == 0 else 2), BasicBlock(out, out, 1)]
        c = out
    return nn.Sequential(*layers)


def receptive_field_figure(path):
    rows = list(nn.utils.receptive_field(resnet18(), (3, 224, 224)))
    size = [r.size[0] for r in rows]
    jump = [r.jump[0] for r in rows]
    labels = [f"{r.name} ({r.kind})" for r in rows]
    fig, ax = plt.subplots(figsize=(12, 5))
    ax.plot(size, "o-", label="receptive-field size (pixels)")
    ax.plot(jump, "s-", label="jump (effective stride)")
    ax.axhline(224, color="gray", ls=":", label="input size 224")
    ax.set_yscale("log", base=2)
    ax.set_xticks(range(len(rows)), labels, rotation=90, fontsize=7)
    ax.set_title(f"ResNet-18 on 224x224: the last layer sees {size[-1]:.0f} pixels, one step every "
                 f"{jump[-1]:.0f}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return size[-1]


def parameters_figure(path):
    c_in, c_out, k, size = 3, 16, 5, 32
    layers = {"Conv2d (shared)": nn.Conv2d(c_in, c_out, k),
              "TiledConv2d tile 2x2": nn.TiledConv2d(c_in, c_out, k, tile=2),
              "TiledConv2d tile 7x7": nn.TiledConv2d(c_in, c_out, k, tile=7),
              "LocallyConnected2d": nn.LocallyConnected2d(c_in, c_out, size, k)}
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in layers.items()}
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bars = ax.bar(list(counts), list(counts.values()), color=["tab:blue", "tab:orange", "tab:orange", "tab:red"])
    ax.bar_label(bars, [f"{v:,}" for v in counts.values()])
    ax.set_yscale("log")
    ax.set_ylabel("parameters (weights + biases)")
    ax.set_title(f"{c_in} -> {c_out} channels, {k}x{k} kernels, {size}x{size} input: one kernel, one per tile\n"
                 f"position, or one per output position ({size - k + 1}x{size - k + 1})")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="folder for the PNGs (default: a new temporary one)")
    parser.add_argument("--device", default=cl.default_device())
    parser.add_argument("--quick", action="store_true", help="smaller image, shorter training (for tests)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="convlab-gallery-"))
    out.mkdir(parents=True, exist_ok=True)
    filters_figure(out / "filters.png", 96 if args.quick else 160, args.device)
    edge_kernel_figure(out / "edge_kernel.png", 500, args.device)
    try:
        import lenet_digits  # noqa: F401
    except ImportError as e:  # scikit-learn or tqdm, the examples' extras
        print(f"lenet.png skipped: {e.name} is not installed (pip install \".[examples]\")")
    else:
        acc = lenet_figure(out / "lenet.png", 1 if args.quick else 4, 300 if args.quick else None, args.device)
        print(f"lenet.png: test accuracy {acc:.3f}")
    print(f"receptive_field.png: ResNet-18's last layer sees {receptive_field_figure(out / 'receptive_field.png'):.0f}"
          " pixels")
    print("parameters.png:", ", ".join(f"{k} {v:,}" for k, v in parameters_figure(out / "parameters.png").items()))
    print(f"wrote the gallery to {out}")


if __name__ == "__main__":
    main()
