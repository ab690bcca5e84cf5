"""A decoder in the style of CoordConv (Liu et al.): AddCoords appends x/y coordinate channels built with
torch.linspace, expand and repeat; a latent vector goes through Linear and view to a 4x4 map, then
LazyConvTranspose2d layers up to 16x16; BCE-with-logits against binary targets plus an orthogonality
penalty on the first conv's filters written with torch.mm, .t() and torch.eye. float64, Adam."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from _common import gradients, init_params, parameters


class AddCoords(nn.Module):
    def forward(self, input_tensor):
        batch_size, _, y_dim, x_dim = input_tensor.size()
        xx = torch.linspace(-1, 1, x_dim, dtype=input_tensor.dtype).view(1, 1, 1, x_dim)
        yy = torch.linspace(-1, 1, y_dim, dtype=input_tensor.dtype).view(1, 1, y_dim, 1)
        xx_channel = xx.expand(batch_size, 1, y_dim, x_dim)
        yy_channel = yy.repeat(batch_size, 1, 1, x_dim)
        return torch.cat([input_tensor, xx_channel, yy_channel], dim=1)


class CoordConv(nn.Module):
    def __init__(self, out_channels, **kwargs):
        super().__init__()
        self.addcoords = AddCoords()
        self.conv = nn.LazyConv2d(out_channels, **kwargs)

    def forward(self, x):
        return self.conv(self.addcoords(x))


class Decoder(nn.Module):
    def __init__(self, latent_dim=6):
        super().__init__()
        self.fc = nn.Linear(latent_dim, 8 * 4 * 4)
        self.coord = CoordConv(8, kernel_size=3, padding=1)
        self.up = nn.Sequential(
            nn.LazyConvTranspose2d(8, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.LazyConvTranspose2d(4, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2),
        )
        self.out = CoordConv(1, kernel_size=3, padding=1)

    def forward(self, z):
        x = self.fc(z).view(-1, 8, 4, 4)
        x = F.leaky_relu(self.coord(x), 0.2)
        return self.out(self.up(x))


def orthogonality(conv):
    W = conv.weight.view(conv.weight.shape[0], -1)
    gram = torch.mm(W, W.t())
    return ((gram - torch.eye(W.shape[0], dtype=W.dtype)) ** 2).sum()


model = Decoder().double()
rng = np.random.default_rng(60)
z = torch.tensor(rng.standard_normal((3, 6)))
target = torch.tensor((rng.uniform(0, 1, (3, 1, 16, 16)) > 0.5).astype(np.float64))
model(z)
init_params(model, seed=61)
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
RESULTS = {"types": [type(m).__name__ for m in model.up]}
for step in range(2):
    optimizer.zero_grad()
    logits = model(z)
    loss = F.binary_cross_entropy_with_logits(logits, target) + 1e-3 * orthogonality(model.coord.conv)
    loss.backward()
    optimizer.step()
    RESULTS[f"loss{step}"] = loss.item()
RESULTS.update(gradients(model))
RESULTS.update(parameters(model))
with torch.no_grad():
    RESULTS["images"] = torch.sigmoid(model(z))
    RESULTS["coords"] = AddCoords()(torch.zeros(1, 1, 3, 5, dtype=torch.float64))
