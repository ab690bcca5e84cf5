"""Neural style transfer as in d2l 14.12: features from chosen layers of a conv net, content loss, style loss
on Gram matrices (matmul with .T), total-variation loss on neighbouring pixels, the synthesised image as the
single nn.Parameter of a module, Adam on it under StepLR. float64."""
import numpy as np
import torch
from torch import nn

from _common import init_params

rgb_mean = torch.tensor([0.485, 0.456, 0.406])
rgb_std = torch.tensor([0.229, 0.224, 0.225])


def preprocess(img):
    # img: (H, W, 3) array in [0, 1], as ToTensor + Normalize would see it
    img = torch.tensor(img).permute(2, 0, 1)
    return ((img - rgb_mean.double().reshape(3, 1, 1)) / rgb_std.double().reshape(3, 1, 1)).unsqueeze(0)


def postprocess(img):
    img = img[0]
    return torch.clamp(img.permute(1, 2, 0) * rgb_std.double() + rgb_mean.double(), 0, 1)


pretrained_net = nn.Sequential(
    nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()).double()
init_params(pretrained_net, seed=54)
style_layers, content_layers = [0, 2, 5, 10], [7]
net = nn.Sequential(*[pretrained_net[i] for i in
                      range(max(content_layers + style_layers) + 1)])


def extract_features(X, content_layers, style_layers):
    contents = []
    styles = []
    for i in range(len(net)):
        X = net[i](X)
        if i in style_layers:
            styles.append(X)
        if i in content_layers:
            contents.append(X)
    return contents, styles


def content_loss(Y_hat, Y):
    # We detach the target content from the tree used to dynamically compute
    # the gradient: this is a stated value, not a variable.
    return torch.square(Y_hat - Y.detach()).mean()


def gram(X):
    num_channels, n = X.shape[1], X.numel() // X.shape[1]
    X = X.reshape((num_channels, n))
    return torch.matmul(X, X.T) / (num_channels * n)


def style_loss(Y_hat, gram_Y):
    return torch.square(gram(Y_hat) - gram_Y.detach()).mean()


def tv_loss(Y_hat):
    return 0.5 * (torch.abs(Y_hat[:, :, 1:, :] - Y_hat[:, :, :-1, :]).mean() +
                  torch.abs(Y_hat[:, :, :, 1:] - Y_hat[:, :, :, :-1]).mean())


content_weight, style_weight, tv_weight = 1, 1e3, 10


def compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram):
    # Calculate the content, style, and total variance losses respectively
    contents_l = [content_loss(Y_hat, Y) * content_weight for Y_hat, Y in zip(
        contents_Y_hat, contents_Y)]
    styles_l = [style_loss(Y_hat, Y) * style_weight for Y_hat, Y in zip(
        styles_Y_hat, styles_Y_gram)]
    tv_l = tv_loss(X) * tv_weight
    # Add up all the losses
    l = sum(styles_l + contents_l + [tv_l])
    return contents_l, styles_l, tv_l, l


class SynthesizedImage(nn.Module):
    def __init__(self, img_shape, **kwargs):
        super(SynthesizedImage, self).__init__(**kwargs)
        self.weight = nn.Parameter(torch.rand(*img_shape))

    def forward(self):
        return self.weight


def get_inits(X, lr, styles_Y):
    gen_img = SynthesizedImage(X.shape).double()
    gen_img.weight.data.copy_(X.data)
    trainer = torch.optim.Adam(gen_img.parameters(), lr=lr)
    styles_Y_gram = [gram(Y) for Y in styles_Y]
    return gen_img(), styles_Y_gram, trainer


rng = np.random.default_rng(55)
content_X = preprocess(rng.uniform(0, 1, (16, 20, 3)))
style_X = preprocess(rng.uniform(0, 1, (16, 20, 3)))
contents_Y, _ = extract_features(content_X, content_layers, style_layers)
_, styles_Y = extract_features(style_X, content_layers, style_layers)

X, styles_Y_gram, trainer = get_inits(content_X, 0.3, styles_Y)
scheduler = torch.optim.lr_scheduler.StepLR(trainer, 1, 0.8)
RESULTS = {}
for epoch in range(2):
    trainer.zero_grad()
    contents_Y_hat, styles_Y_hat = extract_features(
        X, content_layers, style_layers)
    contents_l, styles_l, tv_l, l = compute_loss(
        X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram)
    l.backward()
    trainer.step()
    scheduler.step()
    RESULTS[f"losses{epoch}"] = [float(sum(contents_l)), float(sum(styles_l)), float(tv_l)]
RESULTS["grad"] = X.grad
RESULTS["image"] = postprocess(X.detach())
RESULTS["gram"] = styles_Y_gram[1]
