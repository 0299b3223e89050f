"""The try-on module (TOM) of CP-VTON, the encoder-decoder baseline, and their losses.

- ``UNet``: CP-VTON's ``UnetGenerator`` design (pix2pix's skip-connected U-Net with InstanceNorm, LeakyReLU 0.2
  going down, ReLU and bilinear up-sampling + 3x3 convolution coming up). CP-VTON uses 6 down-samplings at
  256 x 192 (a 4 x 3 bottleneck); ``num_downs`` is configured, and refused when the sides do not divide by
  2^num_downs. ``default_num_downs`` gives the paper's 4 x 3 bottleneck at any 4:3 size.
- ``TryOnModule``: from the agnostic representation and the *warped* product, a rendered person I' (tanh) and a
  composition mask alpha (sigmoid); the output is I_hat = alpha * c' + (1 - alpha) * I' (seed 003's slide,
  VITON's refinement and CP-VTON's TOM).
- ``EncoderDecoder``: the same U-Net from the agnostic representation and the *unwarped* product straight to the
  picture, no composition: seed 003's "encoder-decoder generator" baseline, whose outputs lose the detail.

Losses (``TryOnLosses``): L1 and SSIM (1 - SSIM, 11-tap Gaussian window, sigma 1.5) always; a VGG-19 perceptual
loss (CP-VTON's layer weights 1/32, 1/16, 1/8, 1/4, 1 on relu1_1..relu5_1) only when a local weights file is
configured, because pretrained weights cannot be downloaded here. For the mask: VITON's refinement loss
-lambda_warp * |alpha|_1 + lambda_TV * |grad alpha|_1 (the slide), and optionally CP-VTON's L1 between alpha
and the warped product's mask.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from fashion_pipeline.tryon.inputs import AGNOSTIC_CHANNELS

BOTTLENECK_HEIGHT = 4  # CP-VTON: 256 / 2^6


def default_num_downs(height: int) -> int:
    """Down-samplings that leave CP-VTON's 4-pixel-high bottleneck (6 at 256, 5 at 128, 4 at 64)."""
    downs, size = 0, height
    while size > BOTTLENECK_HEIGHT and size % 2 == 0:
        size //= 2
        downs += 1
    return downs


def check_unet_size(height: int, width: int, num_downs: int) -> None:
    if num_downs < 1 or height % 2 ** num_downs or width % 2 ** num_downs:
        raise ValueError(f"a U-Net with {num_downs} down-samplings needs sides divisible by {2 ** num_downs}, "
                         f"got {height}x{width}")


class UNet(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_downs: int, ngf: int = 64, max_multiple: int = 8,
                 dropout: bool = False):
        super().__init__()
        widths = [ngf * min(2 ** i, max_multiple) for i in range(num_downs)]
        self.downs = nn.ModuleList()
        for i, width in enumerate(widths):
            if i == 0:
                self.downs.append(nn.Conv2d(in_channels, width, 4, 2, 1))
                continue
            layers = [nn.LeakyReLU(0.2, True), nn.Conv2d(widths[i - 1], width, 4, 2, 1)]
            if i < num_downs - 1:  # the innermost block has no norm (a 1-pixel-wide map at CP-VTON's size)
                layers.append(nn.InstanceNorm2d(width))
            self.downs.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList()
        for i in reversed(range(num_downs)):
            inner = widths[i] if i == num_downs - 1 else widths[i] * 2
            outer = widths[i - 1] if i > 0 else out_channels
            layers = [nn.ReLU(True), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                      nn.Conv2d(inner, outer, 3, 1, 1)]
            if i > 0:
                layers.append(nn.InstanceNorm2d(outer))
                if dropout and i >= num_downs - 3:
                    layers.append(nn.Dropout(0.5))
            self.ups.append(nn.Sequential(*layers))

    def forward(self, x):
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = skips.pop()
        for index, up in enumerate(self.ups):
            if index > 0:
                x = torch.cat([x, skips.pop()], 1)
            x = up(x)
        return x


def keep_shown(rendered, alpha, person, keep):
    """With VITON-HD's agnostic image: the shown pixels are the person's, and the garment goes only where the
    agnostic image hides the body (``keep`` = 1 - hidden). Without it (``keep`` None): unchanged."""
    if keep is None:
        return rendered, alpha
    rendered = keep * person + (1.0 - keep) * rendered
    return rendered, (None if alpha is None else alpha * (1.0 - keep))


def compose(rendered, alpha, warped_cloth):
    """I_hat = alpha * c' + (1 - alpha) * I'."""
    return alpha * warped_cloth + (1.0 - alpha) * rendered


class TryOnModule(nn.Module):
    def __init__(self, num_downs: int, ngf: int = 64, agnostic_image: bool = False):
        super().__init__()
        self.unet = UNet(AGNOSTIC_CHANNELS + 3 * agnostic_image + 3, 4, num_downs, ngf)

    def raw(self, agnostic, warped_cloth, shown=None):
        """(rendered person, alpha) before any composition."""
        out = self.unet(torch.cat([agnostic, *([shown] if shown is not None else []), warped_cloth], 1))
        return torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:])

    def forward(self, agnostic, warped_cloth, shown=None, keep=None):
        """(output, rendered person, alpha)."""
        rendered, alpha = keep_shown(*self.raw(agnostic, warped_cloth, shown), shown, keep)
        return compose(rendered, alpha, warped_cloth), rendered, alpha


class EncoderDecoder(nn.Module):
    def __init__(self, num_downs: int, ngf: int = 64, agnostic_image: bool = False):
        super().__init__()
        self.unet = UNet(AGNOSTIC_CHANNELS + 3 * agnostic_image + 3, 3, num_downs, ngf)

    def raw(self, agnostic, cloth, shown=None):
        return torch.tanh(self.unet(torch.cat([agnostic, *([shown] if shown is not None else []), cloth], 1)))

    def forward(self, agnostic, cloth, shown=None, keep=None):
        return keep_shown(self.raw(agnostic, cloth, shown), None, shown, keep)[0]


# ---------------------------------------------------------------- losses

def _gaussian(sigma: float = 1.5, taps: int = 11, device=None):
    x = torch.arange(taps, dtype=torch.float32, device=device) - taps // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _weighted_mean(values, weight):
    """Mean of ``values`` (N x C x h x w) under ``weight`` (N x 1 x h x w), or the plain mean without one."""
    if weight is None:
        return values.mean()
    return (values * weight).sum() / (weight.sum() * values.shape[1])


def ssim(a, b, weight=None):
    """Mean SSIM of two N x C x H x W batches in [-1, 1] (valid windows only, the metric's constants); ``weight``
    (N x 1 x H x W) weighs each window by its centre pixel's weight."""
    x, y = (a + 1.0) / 2.0, (b + 1.0) / 2.0
    channels = x.shape[1]
    g = _gaussian(device=x.device)
    kernel_h = g.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    kernel_v = g.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, kernel_h, groups=channels), kernel_v, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    if weight is not None:
        pad = g.numel() // 2
        weight = weight[..., pad:weight.shape[-2] - pad, pad:weight.shape[-1] - pad]
    return _weighted_mean(value, weight)


def total_variation(mask):
    return (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean() + (mask[..., :, 1:] - mask[..., :, :-1]).abs().mean()


class Perceptual(nn.Module):
    """CP-VTON's VGG loss on a local VGG-19 ``state_dict`` (torchvision's layout); ImageNet-normalised input."""

    SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))  # relu1_1 .. relu5_1
    WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

    def __init__(self, weights_path: str | Path):
        super().__init__()
        import torchvision

        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: VGG-19 weights file not found (set vgg_weights to a torchvision "
                                    "vgg19 state_dict, or leave it empty for L1 + SSIM)")
        model = torchvision.models.vgg19(weights=None)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        features = model.features.eval()
        for parameter in features.parameters():
            parameter.requires_grad_(False)
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in self.SLICES)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, a, b):
        x = ((a + 1) / 2 - self.mean) / self.std
        y = ((b + 1) / 2 - self.mean) / self.std
        total = 0.0
        for weight, block in zip(self.WEIGHTS, self.slices):
            x, y = block(x), block(y)
            total = total + weight * F.l1_loss(x, y.detach())
        return total


class TryOnLosses:
    """The picture loss: l1 * L1 + ssim * (1 - SSIM) [+ vgg * perceptual when weights are configured]. With
    ``hidden_weight`` > 0, L1 and SSIM are means weighted by 1 + hidden_weight on the region the model renders
    (``inputs.Batch.hidden``): with the agnostic image everything else is the person's own pixels (error 0), so
    a plain mean dilutes the rendering error by the shown area, against the mask terms (not in CP-VTON)."""

    def __init__(self, l1: float = 1.0, ssim_weight: float = 1.0, vgg: float = 1.0, vgg_weights: str = "",
                 device=None, hidden_weight: float = 0.0):
        self.l1, self.ssim_weight, self.vgg, self.hidden_weight = l1, ssim_weight, vgg, hidden_weight
        self.perceptual = Perceptual(vgg_weights).to(device) if vgg_weights and vgg > 0 else None

    @property
    def names(self) -> list[str]:
        names = [name for name, weight in (("L1", self.l1), ("SSIM", self.ssim_weight)) if weight > 0]
        if self.hidden_weight > 0:
            names = [f"{name} (hidden region x{1 + self.hidden_weight:g})" for name in names]
        return names + (["VGG-19 perceptual"] if self.perceptual is not None else [])

    def __call__(self, output, target, hidden=None):
        weight = 1.0 + self.hidden_weight * hidden if self.hidden_weight > 0 and hidden is not None else None
        loss = (self.l1 * _weighted_mean((output - target).abs(), weight)
                + self.ssim_weight * (1.0 - ssim(output, target, weight)))
        if self.perceptual is not None:
            loss = loss + self.vgg * self.perceptual(output, target)
        return loss
