"""Saving and loading a general checkpoint as in the PyTorch recipe: model and optimizer state_dicts, the
epoch and the loss in one dict through torch.save / torch.load; training resumes in a fresh model and
optimizer and must continue exactly as an uninterrupted run. A small conv net with BatchNorm1d in its
head. float64, Adam (whose moment estimates must survive the round trip)."""
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

from _common import init_params, parameters


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2)
        self.fc1 = nn.Linear(8 * 3 * 3, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = x.view(-1, 8 * 3 * 3)
        x = F.relu(self.bn(self.fc1(x)))
        return self.fc2(x)


def make():
    net = Net().double()
    init_params(net, seed=44)
    return net, optim.Adam(net.parameters(), lr=0.01)


def train_step(net, optimizer, inputs, labels):
    optimizer.zero_grad()
    loss = F.cross_entropy(net(inputs), labels)
    loss.backward()
    optimizer.step()
    return loss


rng = np.random.default_rng(45)
batches = [(torch.tensor(rng.standard_normal((4, 1, 10, 10))), torch.tensor(rng.integers(0, 3, size=4)))
           for _ in range(3)]

# uninterrupted
net, optimizer = make()
for inputs, labels in batches:
    train_step(net, optimizer, inputs, labels)
RESULTS = parameters(net, "straight.")

# interrupted after the first step
net, optimizer = make()
EPOCH = 0
LOSS = train_step(net, optimizer, *batches[0])
fd, PATH = tempfile.mkstemp(suffix=".pt")
os.close(fd)
torch.save({
            'epoch': EPOCH,
            'model_state_dict': net.state_dict(),
            'optimizer_state_dict': optimizer.state_dict(),
            'loss': LOSS,
            }, PATH)

model, optimizer = Net().double(), None
optimizer = optim.Adam(model.parameters(), lr=0.01)
checkpoint = torch.load(PATH, weights_only=True)
os.remove(PATH)
model.load_state_dict(checkpoint['model_state_dict'])
optimizer.load_state_dict(checkpoint['optimizer_state_dict'])
epoch = checkpoint['epoch']
loss = checkpoint['loss']
model.train()
for inputs, labels in batches[1:]:
    train_step(model, optimizer, inputs, labels)
RESULTS.update(parameters(model, "resumed."))
RESULTS["epoch"] = epoch
RESULTS["loss"] = loss
RESULTS["exp_avg_sq"] = optimizer.state_dict()["state"][0]["exp_avg_sq"]
RESULTS["same"] = all(torch.allclose(RESULTS["straight." + k], v, rtol=0, atol=1e-12)
                      for k, v in model.state_dict().items())
