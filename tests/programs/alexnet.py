"""AlexNet as in d2l 8.1 (lazy layers, ReLU, overlapping max-pooling, dropout in the classifier), narrowed
and on 96x96 inputs so it runs in a test; SGD with momentum and weight decay in float32."""
import numpy as np
import torch
from torch import nn

from _common import gradients, init_params, parameters


class AlexNet(nn.Module):
    def __init__(self, num_classes=10, dropout=0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.LazyConv2d(24, kernel_size=11, stride=4, padding=1),
            nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
            nn.LazyConv2d(64, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.LazyConv2d(96, kernel_size=3, padding=1), nn.ReLU(),
            nn.LazyConv2d(96, kernel_size=3, padding=1), nn.ReLU(),
            nn.LazyConv2d(64, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
            nn.LazyLinear(256), nn.ReLU(), nn.Dropout(p=dropout),
            nn.LazyLinear(256), nn.ReLU(), nn.Dropout(p=dropout),
            nn.LazyLinear(num_classes))

    def forward(self, X):
        return self.net(X)


rng = np.random.default_rng(2)
X = torch.tensor(rng.standard_normal((4, 1, 96, 96)), dtype=torch.float32)
y = torch.tensor(rng.integers(0, 10, size=4))

# dropout off for training: its random masks would differ between any two runs
model = AlexNet(dropout=0.0)
model(torch.zeros(1, 1, 96, 96))  # materialise the lazy layers
init_params(model, seed=3)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
criterion = nn.CrossEntropyLoss()

RESULTS = {"layers": [type(m).__name__ == "Conv2d" for m in model.net]}
losses = []
for step in range(2):
    optimizer.zero_grad()
    loss = criterion(model(X), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
RESULTS.update(gradients(model))

model.eval()
with torch.no_grad():
    logits = model(X)
RESULTS.update(parameters(model), losses=losses, logits=logits,
               acc=(logits.argmax(1) == y).float().mean(),
               n_params=sum(p.numel() for p in model.parameters()))
