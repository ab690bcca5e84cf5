"""Fully convolutional segmentation as in d2l 14.11: a backbone's children without its last two layers
(list(net.children())[:-2]), a 1x1 classifier and a stride-16 transposed convolution initialised by d2l's
bilinear_kernel (built with arange, reshape and an advanced-index write), a check that it upsamples like
bilinear interpolation, per-pixel cross-entropy with reduction='none' averaged over pixels. float32, SGD."""
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from _common import gradients, init_params, parameters


class Backbone(nn.Module):
    """Stands in for the pretrained ResNet-18: stride 16 overall, then a pooling layer and a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.layer3 = nn.Sequential(nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32, 1000)


def bilinear_kernel(in_channels, out_channels, kernel_size):
    factor = (kernel_size + 1) // 2
    if kernel_size % 2 == 1:
        center = factor - 1
    else:
        center = factor - 0.5
    og = (torch.arange(kernel_size).reshape(-1, 1),
          torch.arange(kernel_size).reshape(1, -1))
    filt = (1 - torch.abs(og[0] - center) / factor) * \
           (1 - torch.abs(og[1] - center) / factor)
    weight = torch.zeros((in_channels, out_channels,
                          kernel_size, kernel_size))
    weight[range(in_channels), range(out_channels), :, :] = filt
    return weight


RESULTS = {}
conv_trans = nn.ConvTranspose2d(3, 3, kernel_size=4, padding=1, stride=2,
                                bias=False)
conv_trans.weight.data.copy_(bilinear_kernel(3, 3, 4))
rng = np.random.default_rng(51)
img = torch.tensor(rng.uniform(0, 1, (1, 3, 6, 5)), dtype=torch.float32)
Y = conv_trans(img)
RESULTS["upsampled"] = Y.detach()
RESULTS["kernel"] = bilinear_kernel(2, 2, 4)

pretrained_net = Backbone()
init_params(pretrained_net, seed=52)
net = nn.Sequential(*list(pretrained_net.children())[:-2])
num_classes = 5
net.add_module('final_conv', nn.Conv2d(32, num_classes, kernel_size=1))
net.add_module('transpose_conv', nn.ConvTranspose2d(num_classes, num_classes,
                                    kernel_size=32, padding=8, stride=16))
init_params(net.final_conv, seed=53)
W = bilinear_kernel(num_classes, num_classes, 32)
net.transpose_conv.weight.data.copy_(W)
nn.init.zeros_(net.transpose_conv.bias)

X = torch.tensor(rng.standard_normal((2, 3, 32, 48)), dtype=torch.float32)
labels = torch.tensor(rng.integers(0, num_classes, size=(2, 32, 48)))
RESULTS["out_shape"] = list(net(X).shape)


def loss(inputs, targets):
    return F.cross_entropy(inputs, targets, reduction='none').mean(1).mean(1)


trainer = torch.optim.SGD(net.parameters(), lr=0.05, weight_decay=1e-3)
for step in range(2):
    trainer.zero_grad()
    l = loss(net(X), labels)
    l.sum().backward()
    trainer.step()
    RESULTS[f"loss{step}"] = l.detach()
RESULTS.update(gradients(net))
RESULTS.update(parameters(net))
net.eval()
with torch.no_grad():
    pred = net(X).argmax(dim=1)
RESULTS["pred"] = pred
