"""d2l's from-scratch chapters on image batches: softmax with keepdims, cross-entropy through
y_hat[list(range(len(y_hat))), y] (and the older y_hat[range(len(y_hat)), y]), an MLP with a hand-written ReLU
(torch.max against zeros_like) and d2l's dropout_layer (at dropout 0 its torch.rand mask keeps every unit),
parameters as leaf tensors, minibatch SGD written out under torch.no_grad(), d2l's Accumulator-style
accuracy. float64."""
import numpy as np
import torch

rng = np.random.default_rng(46)
num_inputs, num_hiddens, num_outputs = 64, 32, 10
W1 = torch.tensor(rng.normal(0, 0.1, (num_inputs, num_hiddens)), requires_grad=True)
b1 = torch.zeros(num_hiddens, dtype=torch.float64, requires_grad=True)
W2 = torch.tensor(rng.normal(0, 0.1, (num_hiddens, num_outputs)), requires_grad=True)
b2 = torch.zeros(num_outputs, dtype=torch.float64, requires_grad=True)
params = [W1, b1, W2, b2]


def softmax(X):
    X_exp = torch.exp(X)
    partition = X_exp.sum(1, keepdims=True)
    return X_exp / partition  # The broadcasting mechanism is applied here


def relu(X):
    a = torch.zeros_like(X)
    return torch.max(X, a)


def dropout_layer(X, dropout):
    assert 0 <= dropout <= 1
    if dropout == 1: return torch.zeros_like(X)
    mask = (torch.rand(X.shape) > dropout).float()
    return mask * X / (1.0 - dropout)


def net(X, training=True):
    X = X.reshape((-1, num_inputs))
    H = relu(X @ W1 + b1)
    if training:
        H = dropout_layer(H, 0.0)
    return softmax(H @ W2 + b2)


def cross_entropy(y_hat, y):
    return -torch.log(y_hat[list(range(len(y_hat))), y])


def sgd(params, lr, batch_size):
    """Minibatch stochastic gradient descent."""
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def accuracy(y_hat, y):
    """Compute the number of correct predictions."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


X = torch.tensor(rng.uniform(0, 1, (6, 1, 8, 8)))
y = torch.tensor(rng.integers(0, 10, size=6))
y_hat = net(X)
RESULTS = {"picked": y_hat[range(len(y_hat)), y].detach(), "softmax_rows": softmax(X.reshape(6, -1)).sum(1)}
metric = [0.0, 0.0, 0]
for step in range(2):
    y_hat = net(X)
    l = cross_entropy(y_hat, y)
    l.sum().backward()
    RESULTS[f"grads{step}"] = torch.cat([p.grad.reshape(-1) for p in params])
    sgd(params, lr=0.5, batch_size=X.shape[0])
    metric = [a + float(b) for a, b in zip(metric, (l.detach().sum(), accuracy(y_hat, y), y.numel()))]
    RESULTS[f"loss{step}"] = l
RESULTS["metric"] = metric
RESULTS.update({f"param{i}": p for i, p in enumerate(params)})
RESULTS["eval_acc"] = accuracy(net(X, training=False), y) / y.numel()
