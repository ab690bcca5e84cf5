"""VGG as in d2l 8.2: vgg_block builds each stage from a list of layers, an architecture tuple sets the
stages, lazy layers everywhere; a forward hook records what each block hands on. float64, plain SGD."""
import numpy as np
import torch
from torch import nn

from _common import gradients, init_params, parameters


def vgg_block(num_convs, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.LazyConv2d(out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, arch, num_classes=10, dropout=0.5):
        super().__init__()
        conv_blks = []
        for (num_convs, out_channels) in arch:
            conv_blks.append(vgg_block(num_convs, out_channels))
        self.net = nn.Sequential(
            *conv_blks, nn.Flatten(),
            nn.LazyLinear(64), nn.ReLU(), nn.Dropout(dropout),
            nn.LazyLinear(64), nn.ReLU(), nn.Dropout(dropout),
            nn.LazyLinear(num_classes))

    def forward(self, X):
        return self.net(X)


arch = ((1, 8), (1, 16), (2, 16), (2, 32))
model = VGG(arch, dropout=0.0).double()
model(torch.zeros((1, 1, 32, 32), dtype=torch.float64))
init_params(model, seed=4)

block_outputs = {}


def save_output(name):
    def hook(module, inputs, output):
        block_outputs[name] = output.detach()
    return hook


handles = [model.net[i].register_forward_hook(save_output(f"block{i}")) for i in range(len(arch))]

rng = np.random.default_rng(5)
X = torch.from_numpy(rng.standard_normal((2, 1, 32, 32)))
y = torch.tensor([3, 7])
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
RESULTS = {}
for step in range(2):
    y_hat = model(X)
    loss = nn.functional.cross_entropy(y_hat, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    RESULTS[f"loss{step}"] = loss
RESULTS.update(gradients(model))
RESULTS.update({name: out for name, out in block_outputs.items()})
for handle in handles:
    handle.remove()
block_outputs.clear()
with torch.no_grad():
    RESULTS["output"] = model(X)
RESULTS.update(parameters(model), hooks_removed=len(block_outputs))
