"""DCGAN as in the PyTorch tutorial, scaled to 16x16 images: a generator of transposed convolutions with
BatchNorm and ReLU ending in Tanh, a discriminator of strided convolutions with LeakyReLU ending in
Sigmoid, weights_init applied through Module.apply, BCELoss, Adam(betas=(0.5, 0.999)), and the
tutorial's alternating D and G updates with fake.detach(). float32."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

from _common import gradients, parameters

nc, nz, ngf, ndf = 1, 8, 4, 4
ngpu = 0
device = torch.device("cuda:0" if (torch.cuda.is_available() and ngpu > 0) else "cpu")
rng = np.random.default_rng(26)


# custom weights initialization called on ``netG`` and ``netD``; the values come from a seeded NumPy
# generator instead of nn.init.normal_ so that any two runs start from the same weights
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        m.weight.data.copy_(torch.tensor(rng.normal(0.0, 0.02, size=tuple(m.weight.shape))))
    elif classname.find('BatchNorm') != -1:
        m.weight.data.copy_(torch.tensor(rng.normal(1.0, 0.02, size=tuple(m.weight.shape))))
        nn.init.constant_(m.bias.data, 0)


class Generator(nn.Module):
    def __init__(self, ngpu):
        super(Generator, self).__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            # input is Z, going into a convolution
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # state size. ``(ngf*4) x 4 x 4``
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size. ``(ngf*2) x 8 x 8``
            nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False),
            nn.Tanh()
            # state size. ``(nc) x 16 x 16``
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, ngpu):
        super(Discriminator, self).__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            # input is ``(nc) x 16 x 16``
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. ``(ndf) x 8 x 8``
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. ``(ndf*2) x 4 x 4``
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
            nn.Sigmoid()
        )

    def forward(self, input):
        return self.main(input)


netG = Generator(ngpu).to(device)
netG.apply(weights_init)
netD = Discriminator(ngpu).to(device)
netD.apply(weights_init)

criterion = nn.BCELoss()
fixed_noise = torch.tensor(rng.standard_normal((4, nz, 1, 1)), dtype=torch.float32, device=device)
real_label = 1.
fake_label = 0.
optimizerD = optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
optimizerG = optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))

real_batches = [torch.tensor(np.tanh(rng.standard_normal((4, nc, 16, 16))), dtype=torch.float32)
                for _ in range(2)]
noises = [torch.tensor(rng.standard_normal((4, nz, 1, 1)), dtype=torch.float32) for _ in range(2)]
G_losses = []
D_losses = []
RESULTS = {}
for i, data in enumerate(real_batches):
    ############################
    # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
    ###########################
    ## Train with all-real batch
    netD.zero_grad()
    real_cpu = data.to(device)
    b_size = real_cpu.size(0)
    label = torch.full((b_size,), real_label, dtype=torch.float, device=device)
    output = netD(real_cpu).view(-1)
    errD_real = criterion(output, label)
    errD_real.backward()
    D_x = output.mean().item()

    ## Train with all-fake batch
    noise = noises[i].to(device)
    fake = netG(noise)
    label.fill_(fake_label)
    output = netD(fake.detach()).view(-1)
    errD_fake = criterion(output, label)
    errD_fake.backward()
    D_G_z1 = output.mean().item()
    errD = errD_real + errD_fake
    optimizerD.step()

    ############################
    # (2) Update G network: maximize log(D(G(z)))
    ###########################
    netG.zero_grad()
    label.fill_(real_label)  # fake labels are real for generator cost
    output = netD(fake).view(-1)
    errG = criterion(output, label)
    errG.backward()
    D_G_z2 = output.mean().item()
    optimizerG.step()

    print('[%d/%d]\tLoss_D: %.4f\tLoss_G: %.4f\tD(x): %.4f\tD(G(z)): %.4f / %.4f'
          % (i, len(real_batches), errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))
    G_losses.append(errG.item())
    D_losses.append(errD.item())
    RESULTS[f"D_x{i}"] = D_x
    RESULTS[f"D_G_z{i}"] = [D_G_z1, D_G_z2]

RESULTS["G_losses"] = G_losses
RESULTS["D_losses"] = D_losses
RESULTS.update(gradients(netG, "G.grad."))
RESULTS.update(gradients(netD, "D.grad."))
RESULTS.update(parameters(netG, "G.state."))
RESULTS.update(parameters(netD, "D.state."))
with torch.no_grad():
    RESULTS["fake"] = netG(fixed_noise).detach().cpu()
