"""A convolutional autoencoder: strided-conv encoder with GroupNorm and LeakyReLU, a decoder of
nn.Upsample(scale_factor=2, mode="nearest") + conv blocks, a final F.interpolate(mode="bilinear") back to
the input size, Sigmoid, MSELoss; the latent code read through a forward hook. float32, Adam."""
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from _common import gradients, init_params, parameters


class Encoder(nn.Module):
    def __init__(self, channels=(1, 8, 16), latent=4):
        super().__init__()
        layers = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(4, c_out), nn.LeakyReLU(0.1)]
        self.body = nn.Sequential(*layers)
        self.to_latent = nn.Conv2d(channels[-1], latent, 1)

    def forward(self, x):
        return self.to_latent(self.body(x))


class Decoder(nn.Module):
    def __init__(self, latent=4, channels=(16, 8)):
        super().__init__()
        layers = []
        c_in = latent
        for c_out in channels:
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(c_in, 1, 3, padding=1)

    def forward(self, z, size):
        x = self.out(self.body(z))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(x)


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()

    def forward(self, x):
        return self.decoder(self.encoder(x), x.shape[-2:])


model = AutoEncoder()
init_params(model, seed=39)
codes = []
hook = model.encoder.register_forward_hook(lambda module, args, output: codes.append(output.detach().clone()))

rng = np.random.default_rng(40)
images = torch.tensor(rng.uniform(0, 1, size=(3, 1, 18, 18)), dtype=torch.float32)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
criterion = nn.MSELoss()
RESULTS = {}
for step in range(2):
    recon = model(images)
    loss = criterion(recon, images)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    RESULTS[f"loss{step}"] = loss.item()
hook.remove()
RESULTS.update(gradients(model))
RESULTS.update(parameters(model))
RESULTS["codes"] = torch.stack(codes)
with torch.no_grad():
    RESULTS["recon"] = model(images)
    RESULTS["upsampled"] = F.interpolate(images[:1], scale_factor=0.5, mode="nearest")
RESULTS["n_hooked"] = len(codes)
