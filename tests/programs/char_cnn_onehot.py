"""A character-level CNN whose input layer is one-hot rows picked from an identity matrix
(torch.eye(vocab)[indices]) times a learned matrix instead of nn.Embedding; two Conv1d layers, max over
time with .max(dim=2), a linear head; hand-written training loop with plain SGD. float64."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from _common import gradients, init_params, parameters

alphabet = "abcdefghijklmnopqrstuvwxyz "
char_to_idx = {c: i for i, c in enumerate(alphabet)}
texts = ["the cat sat on a mat", "a dog ate my homework", "convolutions slide", "kernels and strides"]
labels = torch.tensor([0, 1, 0, 1])
max_len = 20
indices = torch.tensor([[char_to_idx[c] for c in text.ljust(max_len)[:max_len]] for text in texts])


class CharCNN(nn.Module):
    def __init__(self, vocab_size, embed_dim=8, channels=10, num_classes=2):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Parameter(torch.empty(vocab_size, embed_dim))
        self.conv1 = nn.Conv1d(embed_dim, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=3, dilation=2, padding=2)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, idx):
        one_hot = torch.eye(self.vocab_size, dtype=self.embed.dtype)[idx]   # (N, L, V)
        x = (one_hot @ self.embed).transpose(1, 2)                         # (N, E, L)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x)) + x
        x, _ = x.max(dim=2)
        return self.fc(x)


model = CharCNN(len(alphabet)).double()
init_params(model, seed=30)
lr = 0.2
RESULTS = {"indices": indices}
for step in range(2):
    logits = model(indices)
    loss = F.cross_entropy(logits, labels)
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    RESULTS[f"loss{step}"] = loss.item()
RESULTS.update(gradients(model))
RESULTS.update(parameters(model))
with torch.no_grad():
    logits = model(indices)
    probs = logits.softmax(dim=-1)
RESULTS["probs"] = probs
RESULTS["confidence"] = probs.max(dim=1).values
RESULTS["correct"] = int((logits.argmax(dim=1) == labels).sum())
