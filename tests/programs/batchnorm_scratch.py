"""Batch normalization from scratch as in d2l 8.5: the batch_norm function with moving statistics kept as
plain tensors (not buffers), in a LeNet with lazy layers; float64 model, float32 moving statistics (so they
meet the float64 activations through type promotion), SGD."""
import numpy as np
import torch
from torch import nn

from _common import gradients, init_params, parameters


def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
    # Use is_grad_enabled to determine whether we are in training mode
    if not torch.is_grad_enabled():
        # In prediction mode, use mean and variance obtained by moving average
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            # When using a fully connected layer, calculate the mean and
            # variance on the feature dimension
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
        else:
            # When using a two-dimensional convolutional layer, calculate the
            # mean and variance on the channel dimension (axis=1). Here we
            # need to maintain the shape of X, so that the broadcasting
            # operation can be carried out later
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        # In training mode, the current mean and variance are used
        X_hat = (X - mean) / torch.sqrt(var + eps)
        # Update the mean and variance using moving average
        moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
        moving_var = (1.0 - momentum) * moving_var + momentum * var
    Y = gamma * X_hat + beta  # Scale and shift
    return Y, moving_mean.data, moving_var.data


class BatchNorm(nn.Module):
    # num_features: the number of outputs for a fully connected layer or the
    # number of output channels for a convolutional layer. num_dims: 2 for a
    # fully connected layer and 4 for a convolutional layer
    def __init__(self, num_features, num_dims):
        super().__init__()
        if num_dims == 2:
            shape = (1, num_features)
        else:
            shape = (1, num_features, 1, 1)
        # The scale parameter and the shift parameter (model parameters) are
        # initialized to 1 and 0, respectively
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        # The variables that are not model parameters are initialized to 0 and
        # 1
        self.moving_mean = torch.zeros(shape)
        self.moving_var = torch.ones(shape)

    def forward(self, X):
        # If X is not on the main memory, copy moving_mean and moving_var to
        # the device where X is located
        if self.moving_mean.device != X.device:
            self.moving_mean = self.moving_mean.to(X.device)
            self.moving_var = self.moving_var.to(X.device)
        # Save the updated moving_mean and moving_var
        Y, self.moving_mean, self.moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean,
            self.moving_var, eps=1e-5, momentum=0.1)
        return Y


net = nn.Sequential(
    nn.LazyConv2d(6, kernel_size=5), BatchNorm(6, num_dims=4),
    nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
    nn.LazyConv2d(16, kernel_size=5), BatchNorm(16, num_dims=4),
    nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Flatten(), nn.LazyLinear(120),
    BatchNorm(120, num_dims=2), nn.Sigmoid(), nn.LazyLinear(84),
    BatchNorm(84, num_dims=2), nn.Sigmoid(),
    nn.LazyLinear(10))

rng = np.random.default_rng(10)
X = torch.tensor(rng.standard_normal((4, 1, 28, 28)))
y = torch.tensor(rng.integers(0, 10, size=4))
with torch.no_grad():
    net(X.float())  # materialise the lazy layers in float32, then move everything to float64
net = net.double()
init_params(net, seed=11)

trainer = torch.optim.SGD(net.parameters(), lr=0.5)
loss = nn.CrossEntropyLoss()
RESULTS = {}
for step in range(2):
    l = loss(net(X), y)
    trainer.zero_grad()
    l.backward()
    trainer.step()
    RESULTS[f"loss{step}"] = l
RESULTS.update(gradients(net))
RESULTS.update(parameters(net))
with torch.no_grad():
    RESULTS["predict"] = net(X)
RESULTS["moving_mean"] = net[1].moving_mean.reshape((-1,))
RESULTS["moving_var"] = net[13].moving_var.reshape((-1,))
RESULTS["gamma"] = net[1].gamma.reshape((-1,))
