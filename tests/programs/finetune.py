"""Fine-tuning as in d2l 14.2: a pretrained network's weights arrive through torch.save / torch.load, the
output layer is replaced with a fresh nn.Linear of fan-in in_features, the stem is frozen with
requires_grad_(False), and the new head learns ten times faster through optimiser parameter groups.
float64, SGD with weight decay."""
import os
import tempfile

import numpy as np
import torch
from torch import nn

from _common import gradients, init_params, parameters


class SmallResNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                    nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(x + self.layer1(x))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


# "download" the pretrained weights
pretrained_net = SmallResNet().double()
init_params(pretrained_net, seed=41)
fd, weights_path = tempfile.mkstemp(suffix=".params")
os.close(fd)
torch.save(pretrained_net.state_dict(), weights_path)

finetune_net = SmallResNet().double()
finetune_net.load_state_dict(torch.load(weights_path))
os.remove(weights_path)
finetune_net.fc = nn.Linear(finetune_net.fc.in_features, 2).double()
init_params(finetune_net.fc, seed=42)
finetune_net.conv1.requires_grad_(False)
finetune_net.bn1.requires_grad_(False)

rng = np.random.default_rng(43)
X = torch.tensor(rng.standard_normal((4, 3, 12, 12)))
y = torch.tensor([0, 1, 1, 0])
learning_rate = 5e-2
params_1x = [param for name, param in finetune_net.named_parameters()
             if name not in ["fc.weight", "fc.bias"] and param.requires_grad]
trainer = torch.optim.SGD([{'params': params_1x},
                           {'params': finetune_net.fc.parameters(),
                            'lr': learning_rate * 10}],
                          lr=learning_rate, weight_decay=0.001)
loss = nn.CrossEntropyLoss(reduction="none")
RESULTS = {"trainable": [name for name, p in finetune_net.named_parameters() if p.requires_grad],
           "group_lrs": [group["lr"] for group in trainer.param_groups]}
for step in range(2):
    trainer.zero_grad()
    l = loss(finetune_net(X), y)
    l.sum().backward()
    trainer.step()
    RESULTS[f"loss{step}"] = l.detach()
RESULTS.update(gradients(finetune_net))
RESULTS.update(parameters(finetune_net))
RESULTS["frozen_grad_is_none"] = finetune_net.conv1.weight.grad is None
RESULTS["stem_unchanged"] = torch.equal(finetune_net.conv1.weight, pretrained_net.conv1.weight)
finetune_net.eval()
with torch.no_grad():
    RESULTS["probs"] = torch.softmax(finetune_net(X), dim=1)
