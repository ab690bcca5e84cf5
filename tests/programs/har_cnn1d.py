"""A 1-D CNN for human-activity recognition on sensor windows (N, channels, time): LazyConv1d, BatchNorm1d,
MaxPool1d, AdaptiveAvgPool1d, an evaluate() under @torch.no_grad(), a confusion matrix in NumPy from
preds.tolist() and np.asarray(labels), named_modules to list the conv layers. float64, SGD under
ExponentialLR."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from _common import gradients, init_params, parameters

torch.manual_seed(0)
NUM_CLASSES = 4


class HARNet(nn.Module):
    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        self.features = nn.Sequential(
            nn.LazyConv1d(16, kernel_size=5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
            nn.MaxPool1d(2),
            nn.LazyConv1d(32, kernel_size=3, padding=1), nn.BatchNorm1d(32), nn.ReLU(),
            nn.MaxPool1d(2),
            nn.LazyConv1d(32, kernel_size=3, dilation=2, padding=2), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(32, num_classes))

    def forward(self, x):
        x = self.pool(self.features(x)).squeeze(-1)
        return self.classifier(x)


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    preds, labels = [], []
    for x, y in loader:
        preds += model(x).argmax(dim=1).tolist()
        labels.append(np.asarray(y))
    return preds, np.concatenate(labels)


rng = np.random.default_rng(58)
t = np.arange(32)
windows = np.stack([np.sin(2 * np.pi * (k % NUM_CLASSES + 1) * t / 32)[None, :] + 0.3 * rng.standard_normal((3, 32))
                    for k in range(8)])
labels = np.arange(8) % NUM_CLASSES
loader = DataLoader(TensorDataset(torch.from_numpy(windows), torch.from_numpy(labels)), batch_size=4, shuffle=False)

model = HARNet().double()
model.eval()
model(torch.zeros(2, 3, 32, dtype=torch.float64))
model.train()
init_params(model, seed=59)
model.requires_grad_(True)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
RESULTS = {"convs": [name for name, m in model.named_modules() if isinstance(m, nn.Conv1d)]}
for step, (x, y) in enumerate(loader):
    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    scheduler.step()
    RESULTS[f"loss{step}"] = loss.item()
RESULTS.update(gradients(model))
RESULTS.update(parameters(model))
preds, truth = evaluate(model, loader)
confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
for p, y in zip(preds, truth):
    confusion[y, p] += 1
RESULTS["confusion"] = confusion
RESULTS["preds"] = preds
RESULTS["lr"] = scheduler.get_last_lr()[0]
RESULTS["training_after_eval"] = model.training
