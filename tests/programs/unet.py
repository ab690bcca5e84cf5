"""A small U-Net in the style of milesial/Pytorch-UNet: DoubleConv, Down (max-pool then DoubleConv), Up
(transposed conv, F.pad to the skip's size, torch.cat with the skip), OutConv; per-pixel cross-entropy on
(N, H, W) class maps plus a soft Dice term. float32, Adam."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from _common import gradients, init_params, parameters


class DoubleConv(nn.Module):
    """(convolution => [BN] => ReLU) * 2"""

    def __init__(self, in_channels, out_channels, mid_channels=None):
        super().__init__()
        if not mid_channels:
            mid_channels = out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)
        )

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    """Downscaling with maxpool then double conv"""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.maxpool_conv = nn.Sequential(
            nn.MaxPool2d(2),
            DoubleConv(in_channels, out_channels)
        )

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Upscaling then double conv"""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        # input is CHW
        diffY = x2.size()[2] - x1.size()[2]
        diffX = x2.size()[3] - x1.size()[3]

        x1 = F.pad(x1, [diffX // 2, diffX - diffX // 2,
                        diffY // 2, diffY - diffY // 2])
        x = torch.cat([x2, x1], dim=1)
        return self.conv(x)


class OutConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super(OutConv, self).__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, n_channels, n_classes, base=4):
        super(UNet, self).__init__()
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.inc = DoubleConv(n_channels, base)
        self.down1 = Down(base, base * 2)
        self.down2 = Down(base * 2, base * 4)
        self.down3 = Down(base * 4, base * 8)
        self.up1 = Up(base * 8, base * 4)
        self.up2 = Up(base * 4, base * 2)
        self.up3 = Up(base * 2, base)
        self.outc = OutConv(base, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x = self.up1(x4, x3)
        x = self.up2(x, x2)
        x = self.up3(x, x1)
        logits = self.outc(x)
        return logits


def dice_loss(logits, true_masks, n_classes, epsilon=1e-6):
    probs = F.softmax(logits, dim=1).float()
    one_hot = F.one_hot(true_masks, n_classes).permute(0, 3, 1, 2).float()
    inter = 2 * (probs * one_hot).sum(dim=(-1, -2))
    sets_sum = probs.sum(dim=(-1, -2)) + one_hot.sum(dim=(-1, -2))
    sets_sum = torch.where(sets_sum == 0, inter, sets_sum)
    dice = (inter + epsilon) / (sets_sum + epsilon)
    return 1 - dice.mean()


model = UNet(n_channels=3, n_classes=3)
init_params(model, seed=24)
rng = np.random.default_rng(25)
images = torch.tensor(rng.standard_normal((2, 3, 20, 20)).astype(np.float32))  # 20 -> 10 -> 5 -> 2: Up pads
true_masks = torch.tensor(rng.integers(0, 3, size=(2, 20, 20)), dtype=torch.long)

optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-8)
criterion = nn.CrossEntropyLoss()
RESULTS = {}
for step in range(2):
    masks_pred = model(images)
    loss = criterion(masks_pred, true_masks)
    loss += dice_loss(masks_pred, true_masks, model.n_classes)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if step == 0:
        RESULTS.update(gradients(model))
    optimizer.step()
    RESULTS[f"loss{step}"] = loss.item()
RESULTS.update(parameters(model))
model.eval()
with torch.no_grad():
    mask_pred = model(images).argmax(dim=1)
RESULTS["mask_pred"] = mask_pred
RESULTS["pixel_acc"] = (mask_pred == true_masks).float().mean().item()
