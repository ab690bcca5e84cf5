"""pytorch/examples' MNIST script on random 28x28 digits: the Net with Dropout, F.max_pool2d,
torch.flatten and F.log_softmax, train() with F.nll_loss and Adadelta under StepLR(gamma=0.7), test()
summing nll_loss(reduction='sum') and counting pred.eq(target.view_as(pred)). float32."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR

from _common import gradients, init_params, parameters


class Net(nn.Module):
    def __init__(self, dropout1=0.25, dropout2=0.5):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(dropout1)
        self.dropout2 = nn.Dropout(dropout2)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args["log_interval"] == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
    return loss.item()


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)

    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(test_loader.dataset),
        100. * correct / len(test_loader.dataset)))
    return test_loss, correct


args = {"log_interval": 1, "lr": 1.0, "gamma": 0.7, "epochs": 2}
use_cuda = torch.cuda.is_available()
device = torch.device("cuda" if use_cuda else "cpu")
rng = np.random.default_rng(35)
data = torch.tensor((rng.uniform(0, 1, size=(4, 1, 28, 28)) - 0.1307) / 0.3081, dtype=torch.float32)
target = torch.tensor(rng.integers(0, 10, size=4))
dataset = torch.utils.data.TensorDataset(data, target)
train_loader = torch.utils.data.DataLoader(dataset, batch_size=4)
test_loader = torch.utils.data.DataLoader(dataset, batch_size=2)

model = Net(dropout1=0.0, dropout2=0.0).to(device)
init_params(model, seed=36)
optimizer = optim.Adadelta(model.parameters(), lr=args["lr"])

scheduler = StepLR(optimizer, step_size=1, gamma=args["gamma"])
RESULTS = {}
for epoch in range(1, args["epochs"] + 1):
    RESULTS[f"train_loss{epoch}"] = train(args, model, device, train_loader, optimizer, epoch)
    RESULTS[f"test{epoch}"] = test(model, device, test_loader)
    scheduler.step()
RESULTS.update(gradients(model))
RESULTS.update(parameters(model))
RESULTS["lr"] = scheduler.get_last_lr()
