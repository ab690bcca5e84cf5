"""Convolution and pooling from scratch as in d2l 7.2-7.5: corr2d with loops, a Conv2D module built on it,
learning the edge kernel [1, -1] with a LazyConv2d and manual updates through .data, padding and stride
shape checks (comp_conv2d), multiple input and output channels with sum and torch.stack, 1x1 convolution
as a matmul, pool2d max/avg from scratch against nn.MaxPool2d. float32, as d2l writes it."""
import numpy as np
import torch
from torch import nn

from _common import init_params


def corr2d(X, K):
    """Compute 2D cross-correlation."""
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


class Conv2D(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(kernel_size))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return corr2d(x, self.weight) + self.bias


RESULTS = {}
X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
RESULTS["corr2d"] = corr2d(X, K)

X = torch.ones((6, 8))
X[:, 2:6] = 0
K = torch.tensor([[1.0, -1.0]])
Y = corr2d(X, K)
RESULTS["edges"] = Y
RESULTS["edges_transposed"] = corr2d(X.t(), K)

scratch = Conv2D(kernel_size=(1, 2))
with torch.no_grad():
    scratch.weight.copy_(K)
RESULTS["scratch_conv"] = scratch(X)

# Construct a two-dimensional convolutional layer with 1 output channel and a
# kernel of shape (1, 2). For the sake of simplicity, we ignore the bias here
conv2d = nn.LazyConv2d(1, kernel_size=(1, 2), bias=False)

# The two-dimensional convolutional layer uses four-dimensional input and
# output in the format of (example, channel, height, width), where the batch
# size (number of examples in the batch) and the number of channels are both 1
X = X.reshape((1, 1, 6, 8))
Y = Y.reshape((1, 1, 6, 7))
conv2d(X)
init_params(conv2d, seed=31)
lr = 3e-2  # Learning rate

losses = []
for i in range(10):
    Y_hat = conv2d(X)
    l = (Y_hat - Y) ** 2
    conv2d.zero_grad()
    l.sum().backward()
    # Update the kernel
    conv2d.weight.data[:] -= lr * conv2d.weight.grad
    losses.append(l.sum())
RESULTS["edge_losses"] = torch.stack(losses).detach()
RESULTS["learned_kernel"] = conv2d.weight.data.reshape((1, 2))


# We define a helper function to calculate convolutions. It initializes the
# convolutional layer weights and performs corresponding dimensionality
# elevations and reductions on the input and output
def comp_conv2d(conv2d, X):
    # (1, 1) indicates that batch size and the number of channels are both 1
    X = X.reshape((1, 1) + X.shape)
    Y = conv2d(X)
    # Strip the first two dimensions: examples and channels
    return Y.reshape(Y.shape[2:])


X = torch.rand(size=(8, 8))
RESULTS["shape_same"] = tuple(comp_conv2d(nn.LazyConv2d(1, kernel_size=3, padding=1), X).shape)
RESULTS["shape_rect"] = tuple(comp_conv2d(nn.LazyConv2d(1, kernel_size=(5, 3), padding=(2, 1)), X).shape)
RESULTS["shape_stride"] = tuple(
    comp_conv2d(nn.LazyConv2d(1, kernel_size=(3, 5), padding=(0, 1), stride=(3, 4)), X).shape)


def corr2d_multi_in(X, K):
    # Iterate through the 0th dimension (channel) of K first, then add them up
    return sum(corr2d(x, k) for x, k in zip(X, K))


def corr2d_multi_in_out(X, K):
    # Iterate through the 0th dimension of K, and each time, perform
    # cross-correlation operations with input X. All of the results are
    # stacked together
    return torch.stack([corr2d_multi_in(X, k) for k in K], 0)


def corr2d_multi_in_out_1x1(X, K):
    c_i, h, w = X.shape
    c_o = K.shape[0]
    X = X.reshape((c_i, h * w))
    K = K.reshape((c_o, c_i))
    # Matrix multiplication in the fully connected layer
    Y = torch.matmul(K, X)
    return Y.reshape((c_o, h, w))


X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                  [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
RESULTS["multi_in"] = corr2d_multi_in(X, K)
K = torch.stack((K, K + 1, K + 2), 0)
RESULTS["multi_in_out"] = corr2d_multi_in_out(X, K)
rng = np.random.default_rng(32)
X = torch.tensor(rng.normal(0, 1, (3, 3, 3)), dtype=torch.float32)
K = torch.tensor(rng.normal(0, 1, (2, 3, 1, 1)), dtype=torch.float32)
Y1 = corr2d_multi_in_out_1x1(X, K)
Y2 = corr2d_multi_in_out(X, K)
assert float(torch.abs(Y1 - Y2).sum()) < 1e-6
RESULTS["one_by_one"] = Y1


def pool2d(X, pool_size, mode='max'):
    p_h, p_w = pool_size
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            if mode == 'max':
                Y[i, j] = X[i: i + p_h, j: j + p_w].max()
            elif mode == 'avg':
                Y[i, j] = X[i: i + p_h, j: j + p_w].mean()
    return Y


X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
RESULTS["pool_max"] = pool2d(X, (2, 2))
RESULTS["pool_avg"] = pool2d(X, (2, 2), 'avg')
X = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
RESULTS["maxpool_pad"] = nn.MaxPool2d(3, padding=1, stride=2)(X)
RESULTS["maxpool_rect"] = nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))(X)
X = torch.cat((X, X + 1), 1)
RESULTS["maxpool_channels"] = nn.MaxPool2d(3, padding=1, stride=2)(X)
