"""ResNet-18 as in d2l 8.6 (Residual blocks with an optional 1x1 shortcut, four stages of two blocks), widths
divided by 8 on 32x32 inputs; SGD with momentum under a StepLR schedule, then a state_dict round trip
through torch.save / torch.load into a fresh model. float64."""
import os
import tempfile

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from _common import gradients, init_params, parameters


class Residual(nn.Module):
    """The Residual block of ResNet models."""
    def __init__(self, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1,
                                   stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1,
                                       stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


class ResNet18(nn.Module):
    def __init__(self, arch, num_classes=10):
        super().__init__()
        self.net = nn.Sequential(self.b1())
        for i, b in enumerate(arch):
            self.net.add_module(f'b{i+2}', self.block(*b, first_block=(i == 0)))
        self.net.add_module('last', nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.LazyLinear(num_classes)))

    def b1(self):
        return nn.Sequential(
            nn.LazyConv2d(8, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def block(self, num_residuals, num_channels, first_block=False):
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(Residual(num_channels, use_1x1conv=True, strides=2))
            else:
                blk.append(Residual(num_channels))
        return nn.Sequential(*blk)

    def forward(self, X):
        return self.net(X)


def make_model():
    model = ResNet18(((2, 8), (2, 16), (2, 32), (2, 64)))
    model.double()
    model.eval()  # materialise the lazy layers without touching the running statistics
    with torch.no_grad():
        model(torch.zeros((2, 3, 32, 32), dtype=torch.float64))
    return model.train()


rng = np.random.default_rng(14)
X = torch.tensor(rng.standard_normal((2, 3, 32, 32)))
y = torch.tensor(rng.integers(0, 10, size=2))

model = make_model()
init_params(model, seed=15)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)
criterion = nn.CrossEntropyLoss()
RESULTS = {}
lrs = []
for epoch in range(2):
    model.train()
    optimizer.zero_grad()
    outputs = model(X)
    loss = criterion(outputs, y)
    loss.backward()
    optimizer.step()
    scheduler.step()
    lrs.append(scheduler.get_last_lr()[0])
    RESULTS[f"loss{epoch}"] = loss.item()
RESULTS.update(gradients(model))
RESULTS.update(parameters(model))
RESULTS["lrs"] = lrs

fd, path = tempfile.mkstemp(suffix=".pt")
os.close(fd)
try:
    torch.save(model.state_dict(), path)
    restored = make_model()
    restored.load_state_dict(torch.load(path))
finally:
    os.remove(path)
model.eval()
restored.eval()
with torch.no_grad():
    RESULTS["eval_output"] = model(X)
    RESULTS["restored_output"] = restored(X)
RESULTS["same_after_reload"] = torch.equal(model(X), restored(X))
