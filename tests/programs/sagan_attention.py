"""The self-attention block of SAGAN (Zhang et al.) in its popular PyTorch form: query/key/value 1x1
convolutions, energies by torch.bmm over flattened positions, nn.Softmax(dim=-1), out = gamma * attention
output + x with gamma a zero-initialised nn.Parameter; inside a small conv discriminator trained with the
hinge loss. float64, Adam(betas=(0.0, 0.9))."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from _common import gradients, init_params, parameters


class Self_Attn(nn.Module):
    """ Self attention Layer"""
    def __init__(self, in_dim):
        super(Self_Attn, self).__init__()
        self.chanel_in = in_dim

        self.query_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim // 8, kernel_size=1)
        self.key_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim // 8, kernel_size=1)
        self.value_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        """
            inputs :
                x : input feature maps( B X C X W X H)
            returns :
                out : self attention value + input feature
                attention: B X N X N (N is Width*Height)
        """
        m_batchsize, C, width, height = x.size()
        proj_query = self.query_conv(x).view(m_batchsize, -1, width * height).permute(0, 2, 1)  # B X CX(N)
        proj_key = self.key_conv(x).view(m_batchsize, -1, width * height)  # B X C x (*W*H)
        energy = torch.bmm(proj_query, proj_key)  # transpose check
        attention = self.softmax(energy)  # BX (N) X (N)
        proj_value = self.value_conv(x).view(m_batchsize, -1, width * height)  # B X C X N

        out = torch.bmm(proj_value, attention.permute(0, 2, 1))
        out = out.view(m_batchsize, C, width, height)

        out = self.gamma * out + x
        return out, attention


class Discriminator(nn.Module):
    def __init__(self, conv_dim=16):
        super().__init__()
        self.l1 = nn.Sequential(nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.1))
        self.l2 = nn.Sequential(nn.Conv2d(conv_dim, conv_dim * 2, 4, 2, 1), nn.LeakyReLU(0.1))
        self.attn = Self_Attn(conv_dim * 2)
        self.last = nn.Conv2d(conv_dim * 2, 1, 4)

    def forward(self, x):
        out = self.l2(self.l1(x))
        out, p = self.attn(out)
        out = self.last(out)
        return out.squeeze(), p


D = Discriminator().double()
init_params(D, seed=49)
with torch.no_grad():
    D.attn.gamma.fill_(0.5)  # SAGAN starts gamma at 0; a trained value lets the attention path show
rng = np.random.default_rng(50)
real = torch.tensor(rng.uniform(-1, 1, (3, 3, 16, 16)))
fake = torch.tensor(rng.uniform(-1, 1, (3, 3, 16, 16)))
d_optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, D.parameters()), 4e-4, [0.0, 0.9])
RESULTS = {}
for step in range(2):
    d_out_real, dr1 = D(real)
    d_loss_real = torch.nn.ReLU()(1.0 - d_out_real).mean()
    d_out_fake, df1 = D(fake)
    d_loss_fake = torch.nn.ReLU()(1.0 + d_out_fake).mean()
    d_loss = d_loss_real + d_loss_fake
    d_optimizer.zero_grad()
    d_loss.backward()
    d_optimizer.step()
    RESULTS[f"d_loss{step}"] = d_loss.item()
RESULTS.update(gradients(D))
RESULTS.update(parameters(D))
RESULTS["attention"] = dr1.detach()
RESULTS["attention_rows"] = dr1.detach().sum(dim=-1)
RESULTS["gamma"] = D.attn.gamma.item()
