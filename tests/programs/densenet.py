"""DenseNet as in d2l 8.7: conv_block = BN, ReLU, 3x3 conv; DenseBlock concatenates each block's output onto
its input with torch.cat; transition blocks halve channels (1x1 conv) and size (average pooling).
float64, SGD."""
import numpy as np
import torch
from torch import nn

from _common import gradients, init_params, parameters


def conv_block(num_channels):
    return nn.Sequential(
        nn.LazyBatchNorm2d(), nn.ReLU(),
        nn.LazyConv2d(num_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    def __init__(self, num_convs, num_channels):
        super(DenseBlock, self).__init__()
        layer = []
        for i in range(num_convs):
            layer.append(conv_block(num_channels))
        self.net = nn.Sequential(*layer)

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            # Concatenate input and output of each block along the channels
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(num_channels):
    return nn.Sequential(
        nn.LazyBatchNorm2d(), nn.ReLU(),
        nn.LazyConv2d(num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    def __init__(self, num_channels=16, growth_rate=8, arch=(3, 3, 3),
                 num_classes=10):
        super(DenseNet, self).__init__()
        self.net = nn.Sequential(self.b1())
        for i, num_convs in enumerate(arch):
            self.net.add_module(f'dense_blk{i+1}', DenseBlock(num_convs,
                                                              growth_rate))
            # The number of output channels in the previous dense block
            num_channels += num_convs * growth_rate
            # A transition layer that halves the number of channels is added
            # between the dense blocks
            if i != len(arch) - 1:
                num_channels //= 2
                self.net.add_module(f'tran_blk{i+1}', transition_block(
                    num_channels))
        self.net.add_module('last', nn.Sequential(
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.LazyLinear(num_classes)))

    def b1(self):
        return nn.Sequential(
            nn.LazyConv2d(16, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def forward(self, X):
        return self.net(X)


blk = DenseBlock(2, 10)
X = torch.randn(4, 3, 8, 8)
Y = blk(X)
shapes = [tuple(Y.shape), tuple(transition_block(10)(Y).shape)]

model = DenseNet().double()
rng = np.random.default_rng(18)
X = torch.tensor(rng.standard_normal((2, 1, 32, 32)))
y = torch.tensor(rng.integers(0, 10, size=2))
model.eval()  # materialise the lazy layers without touching the running statistics
model(X)
model.train()
init_params(model, seed=19)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.CrossEntropyLoss()
RESULTS = {"shapes": shapes, "names": [name for name, _ in model.net.named_children()]}
for step in range(2):
    optimizer.zero_grad()
    pred = model(X)
    loss = loss_fn(pred, y)
    loss.backward()
    optimizer.step()
    RESULTS[f"loss{step}"] = loss.detach()
RESULTS.update(gradients(model))
RESULTS.update(parameters(model))
model.eval()
with torch.no_grad():
    RESULTS["output"] = model(X)
