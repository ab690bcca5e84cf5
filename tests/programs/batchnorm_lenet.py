"""The concise batch-norm LeNet of d2l 8.5 (LazyBatchNorm2d / LazyBatchNorm1d after each layer), trained in
float32 for two steps, then run in eval mode on the running statistics; BatchNorm's learned scale printed
the way d2l inspects it."""
import numpy as np
import torch
from torch import nn

from _common import gradients, init_params, parameters

net = nn.Sequential(
    nn.LazyConv2d(6, kernel_size=5), nn.LazyBatchNorm2d(),
    nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
    nn.LazyConv2d(16, kernel_size=5), nn.LazyBatchNorm2d(),
    nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Flatten(), nn.LazyLinear(120), nn.LazyBatchNorm1d(),
    nn.Sigmoid(), nn.LazyLinear(84), nn.LazyBatchNorm1d(),
    nn.Sigmoid(), nn.LazyLinear(10))

rng = np.random.default_rng(12)
X = torch.tensor(rng.standard_normal((4, 1, 28, 28)), dtype=torch.float32)
y = torch.tensor(rng.integers(0, 10, size=4))
net.eval()
net(X)  # eval mode: materialising leaves the running statistics alone
net.train()
init_params(net, seed=13)
print(net)

trainer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.5)
loss = nn.CrossEntropyLoss()
RESULTS = {"types": [type(m).__name__ for m in net]}
for step in range(2):
    trainer.zero_grad()
    l = loss(net(X), y)
    l.backward()
    trainer.step()
    RESULTS[f"loss{step}"] = l.detach()
RESULTS.update(gradients(net))
RESULTS.update(parameters(net))

net.eval()
with torch.no_grad():
    y_hat = net(X)
RESULTS["eval_output"] = y_hat
RESULTS["acc"] = (y_hat.argmax(1) == y).float().mean()
RESULTS["gamma_flat"] = net[1].weight.reshape((-1,))
RESULTS["beta_flat"] = net[1].bias.reshape((-1,))
RESULTS["num_batches_tracked"] = net[1].num_batches_tracked
