"""GoogLeNet as in d2l 8.4: Inception blocks of four parallel paths joined by torch.cat on the channel
axis, five stages, global average pooling; widths divided by 8 and 64x64 inputs. float64, Adam."""
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from _common import gradients, init_params, parameters


class Inception(nn.Module):
    # c1--c4 are the number of output channels for each branch
    def __init__(self, c1, c2, c3, c4, **kwargs):
        super(Inception, self).__init__(**kwargs)
        # Branch 1
        self.b1_1 = nn.LazyConv2d(c1, kernel_size=1)
        # Branch 2
        self.b2_1 = nn.LazyConv2d(c2[0], kernel_size=1)
        self.b2_2 = nn.LazyConv2d(c2[1], kernel_size=3, padding=1)
        # Branch 3
        self.b3_1 = nn.LazyConv2d(c3[0], kernel_size=1)
        self.b3_2 = nn.LazyConv2d(c3[1], kernel_size=5, padding=2)
        # Branch 4
        self.b4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.b4_2 = nn.LazyConv2d(c4, kernel_size=1)

    def forward(self, x):
        b1 = F.relu(self.b1_1(x))
        b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))
        b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))
        b4 = F.relu(self.b4_2(self.b4_1(x)))
        return torch.cat((b1, b2, b3, b4), dim=1)


def b1():
    return nn.Sequential(
        nn.LazyConv2d(8, kernel_size=7, stride=2, padding=3), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def b2():
    return nn.Sequential(
        nn.LazyConv2d(8, kernel_size=1), nn.ReLU(),
        nn.LazyConv2d(24, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def b3():
    return nn.Sequential(Inception(8, (12, 16), (2, 4), 4),
                         Inception(16, (16, 24), (4, 12), 8),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def b4():
    return nn.Sequential(Inception(24, (12, 26), (2, 6), 8),
                         Inception(20, (14, 28), (3, 8), 8),
                         Inception(32, (20, 40), (4, 16), 16),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def b5():
    return nn.Sequential(Inception(32, (20, 40), (4, 16), 16),
                         Inception(48, (24, 48), (6, 16), 16),
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())


net = nn.Sequential(b1(), b2(), b3(), b4(), b5(), nn.LazyLinear(10)).to(torch.float64)
rng = np.random.default_rng(8)
X = torch.tensor(rng.standard_normal((2, 1, 64, 64)), dtype=torch.float64)
y = torch.tensor(rng.integers(0, 10, size=2))
net(X)
init_params(net, seed=9)
sizes = [tuple(blk(torch.zeros(1, 1, 64, 64, dtype=torch.float64)).shape) for blk in [net[0]]]

optimizer = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-6)
RESULTS = {"stem_shape": sizes[0], "n_inception": sum(isinstance(m, Inception) for m in net.modules())}
for epoch in range(2):
    net.train()
    optimizer.zero_grad()
    y_hat = net(X)
    l = F.cross_entropy(y_hat, y, reduction='mean')
    l.backward()
    optimizer.step()
    RESULTS[f"loss{epoch}"] = l.item()
    RESULTS[f"y_hat{epoch}"] = y_hat.detach().clone()
RESULTS.update(gradients(net))
RESULTS.update(parameters(net))
