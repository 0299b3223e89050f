"""The Conditional Analogy GAN of seed 000 (Jetchev and Bergmann, "The Conditional Analogy GAN: Swapping Fashion
Articles on People Images", ICCVW 2017).

- Generator: a U-Net (``tom.UNet``: InstanceNorm, LeakyReLU down, ReLU up, skip concatenations, as the slide's
  "Leaky ReLU, ReLU, Concatenate & InstanceNorm") from (x_i, y_i, y_j) (person, the garment worn, the garment
  to put on) to a mask alpha (sigmoid) and an image x_tilde (tanh), composed as
  x_i^j = alpha * x_tilde + (1 - alpha) * x_i.
- Discriminator: on (image, garment) pairs, stride-2 4x4 convolutions with BatchNorm and LeakyReLU 0.2 (the
  slide), one logit per patch. Real: (x_i, y_i). Fake: (x_i^j, y_j), and, as in the paper, the mismatched
  real pair (x_i, y_j), so D must check that the garment is the one worn and not only that the picture looks real.
- Generator loss: the non-saturating GAN loss + gamma_id * mean |alpha| (the slides' regulariser: change as
  little of the picture as needed) + gamma_cyc * |x_i - G(G(x_i, y_i, y_j), y_j, y_i)|_1 (the cycle loss).
- Adam at 2e-4 (the slide), beta1 0.5 (DCGAN's, which the paper builds on).

Training is unpaired: no picture of x_i in y_j is ever seen, only the person with their own garment and
other garments.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from fashion_pipeline.tryon.tom import UNet


class Generator(nn.Module):
    def __init__(self, num_downs: int, ngf: int = 64):
        super().__init__()
        self.unet = UNet(9, 4, num_downs, ngf)

    def forward(self, person, worn, wanted):
        """(composed output, alpha, x_tilde)."""
        out = self.unet(torch.cat([person, worn, wanted], 1))
        alpha, image = torch.sigmoid(out[:, :1]), torch.tanh(out[:, 1:])
        return alpha * image + (1.0 - alpha) * person, alpha, image


class Discriminator(nn.Module):
    def __init__(self, ndf: int = 64, layers: int = 3):
        super().__init__()
        blocks = [nn.Conv2d(6, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        channels = ndf
        for index in range(1, layers):
            out = ndf * min(2 ** index, 8)
            blocks += [nn.Conv2d(channels, out, 4, 2, 1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2, True)]
            channels = out
        blocks.append(nn.Conv2d(channels, 1, 3, 1, 1))
        self.model = nn.Sequential(*blocks)

    def forward(self, image, garment):
        return self.model(torch.cat([image, garment], 1))


def bce(logits, target: float):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def discriminator_loss(d: Discriminator, person, worn, wanted, fake):
    return (bce(d(person, worn), 1.0) + bce(d(fake.detach(), wanted), 0.0) + bce(d(person, wanted), 0.0)) / 3.0


def generator_losses(g: Generator, d: Discriminator, person, worn, wanted, fake, alpha, gamma_id: float,
                     gamma_cyc: float) -> dict:
    adversarial = bce(d(fake, wanted), 1.0)
    back, _, _ = g(fake, wanted, worn)
    cycle = F.l1_loss(back, person)
    identity = alpha.mean()
    return {"gan": adversarial, "alpha_l1": identity, "cycle": cycle,
            "total": adversarial + gamma_id * identity + gamma_cyc * cycle}
