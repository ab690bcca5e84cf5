"""Network in Network as in d2l 8.3: nin_block = one spatial conv and two 1x1 convs, global average
pooling instead of dense layers, dropout before the last block (kept, and switched off by eval()).
float32, Adam."""
import numpy as np
import torch
from torch import nn

from _common import gradients, init_params, parameters


def nin_block(out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.LazyConv2d(out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU())


class NiN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.net = nn.Sequential(
            nin_block(24, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2d(3, stride=2),
            nin_block(64, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            nin_block(96, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout(0.5),
            nin_block(num_classes, kernel_size=3, strides=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten())

    def forward(self, X):
        return self.net(X)


model = NiN()
rng = np.random.default_rng(6)
X = torch.tensor(rng.uniform(0, 1, size=(3, 1, 80, 80)).astype(np.float32))
y = torch.tensor(rng.integers(0, 10, size=3))
model.eval()  # dropout is the identity in eval mode, so the two runs see the same numbers
model(X[:1])
init_params(model, seed=7)

optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss(reduction="sum")
RESULTS = {"training": model.training}
for step in range(2):
    optimizer.zero_grad()
    logits = model(X)
    loss = loss_fn(logits, y)
    loss.backward()
    optimizer.step()
    RESULTS[f"logits{step}"] = logits.detach()
RESULTS.update(gradients(model))
RESULTS.update(parameters(model), dropout_in_eval=model.net[6](X).sub(X).abs().max())
