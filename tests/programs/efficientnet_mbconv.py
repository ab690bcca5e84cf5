"""EfficientNet-style MBConv blocks: 1x1 expansion, depthwise conv, squeeze-and-excitation (global average
pool, reduce, SiLU, expand, sigmoid gate), 1x1 projection, residual; SiLU everywhere, a Module.apply that
sets BatchNorm and bias values through nn.init. float64, SGD under OneCycleLR (which cycles momentum)."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from _common import gradients, init_params, parameters


class SqueezeExcitation(nn.Module):
    def __init__(self, in_channels, squeeze_channels):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(in_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, in_channels, 1)
        self.activation = nn.SiLU()
        self.scale_activation = nn.Sigmoid()

    def _scale(self, x):
        scale = self.avgpool(x)
        scale = self.fc1(scale)
        scale = self.activation(scale)
        scale = self.fc2(scale)
        return self.scale_activation(scale)

    def forward(self, x):
        scale = self._scale(x)
        return scale * x


class MBConv(nn.Module):
    def __init__(self, in_ch, out_ch, expand_ratio, kernel_size, stride, se_ratio=0.25):
        super().__init__()
        self.use_res_connect = stride == 1 and in_ch == out_ch
        hidden = in_ch * expand_ratio
        layers = []
        if expand_ratio != 1:
            layers += [nn.Conv2d(in_ch, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, kernel_size, stride, padding=kernel_size // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.SiLU(inplace=True),
            SqueezeExcitation(hidden, max(1, int(in_ch * se_ratio))),
            nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result += x
        return result


class TinyEfficientNet(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.SiLU())
        self.blocks = nn.Sequential(
            MBConv(8, 8, 1, 3, 1),
            MBConv(8, 12, 4, 3, 2),
            MBConv(12, 12, 4, 5, 1),
        )
        self.head = nn.Sequential(nn.Conv2d(12, 32, 1, bias=False), nn.BatchNorm2d(32), nn.SiLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        x = self.pool(x).flatten(1)
        return self.classifier(x)


def init_norms(m):
    if isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.constant_(m.bias, 0.01)


model = TinyEfficientNet().double()
init_params(model, seed=22)
model.apply(init_norms)

rng = np.random.default_rng(23)
x = torch.tensor(rng.standard_normal((2, 3, 24, 24)))
target = torch.tensor(rng.integers(0, 4, size=2))
# SGD, not Adam: the gradient of blocks[0]'s last BatchNorm bias is zero (blocks[1] starts with a
# 1x1 conv and a BatchNorm, which cancel any per-channel shift), and Adam would scale its rounding
# noise up to steps of lr * noise / eps
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-2)
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=10)
RESULTS = {}
for step in range(2):
    optimizer.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, target)
    loss.backward()
    optimizer.step()
    scheduler.step()
    RESULTS[f"loss{step}"] = loss.item()
    RESULTS[f"lr{step}"] = scheduler.get_last_lr()[0]
    RESULTS[f"momentum{step}"] = optimizer.param_groups[0]["momentum"]
RESULTS.update(gradients(model))
RESULTS.update(parameters(model))
model.eval()
with torch.no_grad():
    se = model.blocks[1].block[6]
    RESULTS["se_gate"] = se._scale(torch.ones(1, 32, 6, 6, dtype=torch.float64))
    RESULTS["eval_logits"] = model(x)
