"""LeNet-5 as in d2l 7.6: sigmoid activations, average pooling, minibatch SGD from a DataLoader, d2l's
accuracy count and the layer-by-layer shape walk."""
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _common import gradients, init_params, parameters

rng = np.random.default_rng(1)
features = torch.tensor(rng.standard_normal((8, 1, 28, 28)))
labels = torch.tensor(rng.integers(0, 10, size=8))

net = nn.Sequential(
    nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Flatten(),
    nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
    nn.Linear(120, 84), nn.Sigmoid(),
    nn.Linear(84, 10)).double()
init_params(net)

shapes = []
X = torch.rand(size=(1, 1, 28, 28), dtype=torch.float64)
for layer in net:
    X = layer(X)
    print(layer.__class__.__name__, 'output shape: \t', X.shape)
    shapes.append(str(tuple(X.shape)))


def accuracy(y_hat, y):
    """Compute the number of correct predictions."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


loss = nn.CrossEntropyLoss()
trainer = torch.optim.SGD(net.parameters(), lr=0.9)
train_iter = DataLoader(TensorDataset(features, labels), batch_size=4, shuffle=False)
RESULTS = {"shapes": shapes}
losses, correct = [], 0.0
for i, (X, y) in enumerate(train_iter):
    y_hat = net(X)
    l = loss(y_hat, y)
    trainer.zero_grad()
    l.backward()
    if i == 0:
        RESULTS.update(gradients(net))
    trainer.step()
    losses.append(l.item())
    correct += accuracy(y_hat, y)

net.eval()
with torch.no_grad():
    out = net(features)
RESULTS.update(parameters(net), losses=losses, train_correct=correct, output=out,
               test_acc=accuracy(out, labels) / labels.numel())
