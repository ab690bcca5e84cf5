"""A small CNN with CBAM attention (Woo et al.) in its common PyTorch form: channel attention from
AdaptiveAvgPool2d and AdaptiveMaxPool2d through a shared 1x1 MLP, spatial attention from torch.mean and
torch.max over channels joined by torch.cat; input normalisation with register_buffer; activations picked
from an nn.ModuleDict; Dropout2d (eval mode); a classification and an auxiliary head split from one conv
with torch.split. float64, Adam with a weight-decayed and an undecayed parameter group."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from _common import gradients, init_params, parameters


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class ChannelAttention(nn.Module):
    def __init__(self, in_planes, ratio=4):
        super(ChannelAttention, self).__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)

        self.fc = nn.Sequential(nn.Conv2d(in_planes, in_planes // ratio, 1, bias=False),
                                nn.ReLU(),
                                nn.Conv2d(in_planes // ratio, in_planes, 1, bias=False))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        avg_out = self.fc(self.avg_pool(x))
        max_out = self.fc(self.max_pool(x))
        out = avg_out + max_out
        return self.sigmoid(out)


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size=7):
        super(SpatialAttention, self).__init__()

        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size//2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        avg_out = torch.mean(x, dim=1, keepdim=True)
        max_out, _ = torch.max(x, dim=1, keepdim=True)
        x = torch.cat([avg_out, max_out], dim=1)
        x = self.conv1(x)
        return self.sigmoid(x)


class ConvBlock(nn.Module):
    def __init__(self, in_ch, out_ch, act="relu"):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.activations = nn.ModuleDict([
            ["relu", nn.ReLU()],
            ["hardswish", nn.Hardswish()],
        ])
        self.act = act
        self.ca = ChannelAttention(out_ch)
        self.sa = SpatialAttention()

    def forward(self, x):
        x = self.activations[self.act](self.bn(self.conv(x)))
        x = self.ca(x) * x
        x = self.sa(x) * x
        return x


class Net(nn.Module):
    def __init__(self, num_classes=6):
        super().__init__()
        self.num_classes = num_classes
        self.normalize = Normalize([0.5, 0.4, 0.3], [0.25, 0.2, 0.3])
        self.block1 = ConvBlock(3, 8, act="relu")
        self.block2 = ConvBlock(8, 16, act="hardswish")
        self.drop = nn.Dropout2d(0.2)
        self.heads = nn.Conv2d(16, num_classes + 1, 1)

    def forward(self, x):
        x = self.block1(self.normalize(x))
        x = self.block2(F.max_pool2d(x, 2))
        x = self.heads(self.drop(x)).mean(dim=(2, 3))
        logits, aux = torch.split(x, [self.num_classes, 1], dim=1)
        return logits, aux.squeeze(1)


model = Net().double()
model.eval()  # Dropout2d off: its random channel masks would differ between any two runs
init_params(model, seed=56)
decay = [p for n, p in model.named_parameters() if p.dim() > 1]
no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
optimizer = torch.optim.Adam([{"params": decay, "weight_decay": 1e-3}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=5e-3)

rng = np.random.default_rng(57)
x = torch.tensor(rng.uniform(0, 1, (3, 3, 12, 12)))
y = torch.tensor(rng.integers(0, 6, size=3))
aux_target = torch.tensor(rng.standard_normal(3))
RESULTS = {"buffers": [name for name, _ in model.named_buffers()],
           "attention_modules": sum(isinstance(m, (ChannelAttention, SpatialAttention)) for m in model.modules())}
for step in range(2):
    optimizer.zero_grad()
    logits, aux = model(x)
    loss = F.cross_entropy(logits, y) + 0.5 * F.mse_loss(aux, aux_target)
    loss.backward()
    optimizer.step()
    RESULTS[f"loss{step}"] = loss.item()
RESULTS.update(gradients(model))
RESULTS.update(parameters(model))
with torch.no_grad():
    logits, aux = model(x)
    RESULTS["logits"] = logits
    RESULTS["aux"] = aux.clamp(-1, 1)
    RESULTS["spatial"] = model.block1.sa(torch.ones(1, 8, 4, 4, dtype=torch.float64))
