"""The PyTorch 60-minute blitz CIFAR-10 classifier on random 32x32 images: the Net with F.max_pool2d,
torch.flatten(x, 1), CrossEntropyLoss, SGD(momentum=0.9), running loss, torch.save / torch.load of the
state_dict (weights_only=True), overall and per-class accuracy with torch.max(outputs, 1). float32."""
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

from _common import gradients, init_params, parameters

classes = ('plane', 'car', 'bird', 'cat',
           'deer', 'dog', 'frog', 'horse', 'ship', 'truck')


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1) # flatten all dimensions except batch
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


net = Net()
init_params(net, seed=33)
rng = np.random.default_rng(34)
images = rng.uniform(-1, 1, size=(8, 3, 32, 32)).astype(np.float32)
targets = rng.integers(0, 10, size=8)
trainloader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(targets)), batch_size=4)

criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

RESULTS = {}
for epoch in range(1):  # loop over the dataset multiple times
    running_loss = 0.0
    for i, data in enumerate(trainloader, 0):
        # get the inputs; data is a list of [inputs, labels]
        inputs, labels = data

        # zero the parameter gradients
        optimizer.zero_grad()

        # forward + backward + optimize
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()

        # print statistics
        running_loss += loss.item()
        print(f'[{epoch + 1}, {i + 1:5d}] loss: {running_loss / (i + 1):.3f}')
RESULTS["running_loss"] = running_loss
RESULTS.update(gradients(net))

fd, PATH = tempfile.mkstemp(suffix=".pth")
os.close(fd)
torch.save(net.state_dict(), PATH)
net = Net()
net.load_state_dict(torch.load(PATH, weights_only=True))
os.remove(PATH)
RESULTS.update(parameters(net))

correct = 0
total = 0
# since we're not training, we don't need to calculate the gradients for our outputs
with torch.no_grad():
    for data in trainloader:
        images, labels = data
        # calculate outputs by running images through the network
        outputs = net(images)
        # the class with the highest energy is what we choose as prediction
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
print(f'Accuracy of the network on the {total} test images: {100 * correct // total} %')
RESULTS["correct"] = correct
RESULTS["total"] = total

# prepare to count predictions for each class
correct_pred = {classname: 0 for classname in classes}
total_pred = {classname: 0 for classname in classes}

# again no gradients needed
with torch.no_grad():
    for data in trainloader:
        images, labels = data
        outputs = net(images)
        _, predictions = torch.max(outputs, 1)
        # collect the correct predictions for each class
        for label, prediction in zip(labels, predictions):
            if label == prediction:
                correct_pred[classes[label]] += 1
            total_pred[classes[label]] += 1

RESULTS["total_pred"] = [total_pred[c] for c in classes]
RESULTS["correct_pred"] = [correct_pred[c] for c in classes]
RESULTS["outputs"] = outputs
