"""ResNeXt blocks as in d2l 8.6.5: 1x1 reduce, grouped 3x3, 1x1 expand, each with BatchNorm, and a 1x1
projection shortcut where the shape changes; a stem and three blocks. float64, AdamW: in float32 Adam's first
steps turn gradients within rounding of zero (biases that a BatchNorm cancels, nearly dead channels) into
lr-sized steps of either sign, which no two implementations can agree on."""
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from _common import gradients, init_params, parameters


class ResNeXtBlock(nn.Module):
    """The ResNeXt block."""
    def __init__(self, num_channels, groups, bot_mul, use_1x1conv=False,
                 strides=1):
        super().__init__()
        bot_channels = int(round(num_channels * bot_mul))
        self.conv1 = nn.LazyConv2d(bot_channels, kernel_size=1, stride=1)
        self.conv2 = nn.LazyConv2d(bot_channels, kernel_size=3,
                                   stride=strides, padding=1,
                                   groups=bot_channels//groups)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=1)
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()
        self.bn3 = nn.LazyBatchNorm2d()
        if use_1x1conv:
            self.conv4 = nn.LazyConv2d(num_channels, kernel_size=1,
                                       stride=strides)
            self.bn4 = nn.LazyBatchNorm2d()
        else:
            self.conv4 = None

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = F.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        if self.conv4:
            X = self.bn4(self.conv4(X))
        return F.relu(Y + X)


net = nn.Sequential(
    nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
    ResNeXtBlock(16, 4, 1),
    ResNeXtBlock(32, 4, 0.5, use_1x1conv=True, strides=2),
    ResNeXtBlock(32, 8, 1),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5)).double()

rng = np.random.default_rng(16)
X = torch.tensor(rng.standard_normal((3, 3, 16, 16)))
y = torch.tensor(rng.integers(0, 5, size=3))
net.eval()  # the shape check and the lazy layers' first call leave the running statistics alone
blk = net[3]
print(blk(torch.rand(4, 16, 8, 8, dtype=torch.float64)).shape)  # d2l's shape check; it also materialises the block
net(X)
net.train()
init_params(net, seed=17)

optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.05)
RESULTS = {"groups": [m.groups for m in net.modules() if isinstance(m, nn.Conv2d)]}
for step in range(2):
    optimizer.zero_grad()
    loss = F.cross_entropy(net(X), y, label_smoothing=0.1)
    loss.backward()
    optimizer.step()
    RESULTS[f"loss{step}"] = loss.item()
RESULTS.update(gradients(net))
RESULTS.update(parameters(net))
net.eval()
with torch.no_grad():
    probs = F.softmax(net(X), dim=1)
RESULTS["probs"] = probs
RESULTS["top2"] = probs.topk(2, dim=1).indices
