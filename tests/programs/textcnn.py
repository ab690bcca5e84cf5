"""TextCNN as in d2l 16.3: a trainable and a frozen nn.Embedding concatenated, several Conv1d widths, max
over time with AdaptiveMaxPool1d, dropout, a linear head; token batches from a DataLoader. float32, Adam.
Needs nn.Embedding and AdaptiveMaxPool1d (d2l uses AdaptiveAvgPool1d; max over time is the paper's)."""
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _common import gradients, init_params, parameters


class TextCNN(nn.Module):
    def __init__(self, vocab_size, embed_size, kernel_sizes, num_channels,
                 dropout=0.5, **kwargs):
        super(TextCNN, self).__init__(**kwargs)
        self.embedding = nn.Embedding(vocab_size, embed_size)
        # The embedding layer not to be trained
        self.constant_embedding = nn.Embedding(vocab_size, embed_size)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(sum(num_channels), 2)
        # The max-over-time pooling layer has no parameters, so this instance
        # can be shared
        self.pool = nn.AdaptiveMaxPool1d(1)
        self.relu = nn.ReLU()
        # Create multiple one-dimensional convolutional layers
        self.convs = nn.ModuleList()
        for c, k in zip(num_channels, kernel_sizes):
            self.convs.append(nn.Conv1d(2 * embed_size, c, k))

    def forward(self, inputs):
        # Concatenate two embedding layer outputs with shape (batch size, no.
        # of tokens, token vector dimension) along vectors
        embeddings = torch.cat((
            self.embedding(inputs), self.constant_embedding(inputs)), dim=2)
        # Per the input format of one-dimensional convolutional layers,
        # rearrange the tensor so that the second dimension stores channels
        embeddings = embeddings.permute(0, 2, 1)
        # For each one-dimensional convolutional layer, after max-over-time
        # pooling, a tensor of shape (batch size, no. of channels, 1) is
        # obtained. Remove the last dimension and concatenate on channels
        encoding = torch.cat([
            torch.squeeze(self.relu(self.pool(conv(embeddings))), dim=-1)
            for conv in self.convs], dim=1)
        outputs = self.decoder(self.dropout(encoding))
        return outputs


vocab_size, embed_size, kernel_sizes, nums_channels = 50, 6, [3, 4, 5], [5, 5, 5]
net = TextCNN(vocab_size, embed_size, kernel_sizes, nums_channels, dropout=0.0)
init_params(net, seed=28)
net.constant_embedding.weight.requires_grad = False

rng = np.random.default_rng(29)
tokens = torch.tensor(rng.integers(0, vocab_size, size=(6, 12)))
labels = torch.tensor(rng.integers(0, 2, size=6))
train_iter = DataLoader(TensorDataset(tokens, labels), batch_size=3)
trainer = torch.optim.Adam(net.parameters(), lr=0.001)
loss = nn.CrossEntropyLoss(reduction="none")
RESULTS = {}
for i, (X, y) in enumerate(train_iter):
    trainer.zero_grad()
    l = loss(net(X), y)
    l.sum().backward()
    trainer.step()
    RESULTS[f"loss{i}"] = l.detach()
RESULTS.update(gradients(net))
RESULTS.update(parameters(net))
net.eval()
with torch.no_grad():
    pred = net(tokens).argmax(dim=1)
RESULTS["pred"] = pred
RESULTS["label"] = ['positive' if p == 1 else 'negative' for p in pred]
