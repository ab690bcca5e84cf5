"""A WaveNet-style stack: causal 1-D convolutions (left padding with F.pad) with dilations 1, 2, 4, 8, gated
tanh * sigmoid units, 1x1 residual and skip convolutions, the skips summed into a softmax over 16 quantised
levels; per-step cross-entropy on (N, C, L), gradient clipping, Adam. float64."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from _common import gradients, init_params, parameters


class CausalConv1d(nn.Conv1d):
    def __init__(self, in_channels, out_channels, kernel_size, dilation=1, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, **kwargs)
        self.left_padding = (kernel_size - 1) * dilation

    def forward(self, x):
        return super().forward(F.pad(x, (self.left_padding, 0)))


class ResidualLayer(nn.Module):
    def __init__(self, residual_channels, skip_channels, dilation):
        super().__init__()
        self.filter_conv = CausalConv1d(residual_channels, residual_channels, 2, dilation=dilation)
        self.gate_conv = CausalConv1d(residual_channels, residual_channels, 2, dilation=dilation)
        self.residual_conv = nn.Conv1d(residual_channels, residual_channels, 1)
        self.skip_conv = nn.Conv1d(residual_channels, skip_channels, 1)

    def forward(self, x):
        h = torch.tanh(self.filter_conv(x)) * torch.sigmoid(self.gate_conv(x))
        return x + self.residual_conv(h), self.skip_conv(h)


class WaveNet(nn.Module):
    def __init__(self, quantization=16, residual_channels=8, skip_channels=12, dilations=(1, 2, 4, 8)):
        super().__init__()
        self.start = CausalConv1d(quantization, residual_channels, 2)
        self.layers = nn.ModuleList([ResidualLayer(residual_channels, skip_channels, d) for d in dilations])
        self.end1 = nn.Conv1d(skip_channels, skip_channels, 1)
        self.end2 = nn.Conv1d(skip_channels, quantization, 1)
        self.receptive_field = 1 + sum(dilations) + 1

    def forward(self, x):
        x = self.start(x)
        skips = 0
        for layer in self.layers:
            x, skip = layer(x)
            skips = skips + skip
        return self.end2(F.relu(self.end1(F.relu(skips))))


def mu_law_encode(audio, quantization=16):
    mu = quantization - 1
    magnitude = np.log1p(mu * np.abs(audio)) / np.log1p(mu)
    signal = np.sign(audio) * magnitude
    return ((signal + 1) / 2 * mu + 0.5).astype(np.int64)


t = np.linspace(0, 1, 65)
audio = 0.8 * np.sin(2 * np.pi * 5 * t)[None, :] * np.array([[1.0], [0.5]])
codes = torch.from_numpy(mu_law_encode(audio))          # (N, L + 1) int64
inputs = F.one_hot(codes[:, :-1], 16).permute(0, 2, 1).double()
targets = codes[:, 1:]

model = WaveNet().double()
init_params(model, seed=27)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
RESULTS = {"receptive_field": model.receptive_field}
for step in range(2):
    optimizer.zero_grad()
    logits = model(inputs)
    loss = F.cross_entropy(logits, targets)
    loss.backward()
    total_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
    optimizer.step()
    RESULTS[f"loss{step}"] = loss.item()
    RESULTS[f"grad_norm{step}"] = total_norm
RESULTS.update(gradients(model))
RESULTS.update(parameters(model))
with torch.no_grad():
    logits = model(inputs)
    # causality: changing the last input step changes only the last output step
    changed = inputs.clone()
    changed[:, :, -1] = 0
    RESULTS["causal_diff"] = (model(changed) - logits).abs().sum(dim=1)
    RESULTS["predicted"] = logits.argmax(dim=1)
RESULTS["accuracy"] = (RESULTS["predicted"] == targets).float().mean()
