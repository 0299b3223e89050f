"""Differentiable augmentation for GANs trained on little data (Zhao et al., "Differentiable
Augmentation for Data-Efficient GAN Training", NeurIPS 2020; their ``DiffAugment_pytorch.py``).

With a few hundred images the discriminator memorises the training set within a couple of
thousand steps and the generator collapses (measured on the demo's 128 crops: D(x) 0.99 at 1,600
steps). The same random colour, translation and cutout applied to *both* the reals and the fakes
the discriminator sees, differentiably so that G's gradient passes through, keeps D from
memorising without teaching G to produce augmented images.

Images are N x C x H x W in [-1, 1]. Off by default (the thesis's DCGAN has none).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> the names, checked; ``""`` -> none."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}: choose from {', '.join(POLICIES)}")
    return names


def random_flip(images: torch.Tensor) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2 (a data augmentation of the reals, not a DiffAugment)."""
    mirrored = torch.rand(images.size(0), 1, 1, 1, device=images.device) < 0.5
    return torch.where(mirrored, images.flip(3), images)


def diff_augment(images: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    for name in policy:
        images = _AUGMENTS[name](images)
    return images


def _per_image(images: torch.Tensor) -> torch.Tensor:
    return torch.rand(images.size(0), 1, 1, 1, device=images.device, dtype=images.dtype)


def color(images: torch.Tensor) -> torch.Tensor:
    """Random brightness (±0.5), saturation (x0 to x2) and contrast (x0.5 to x1.5), per image."""
    images = images + (_per_image(images) - 0.5)
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (_per_image(images) * 2) + mean
    mean = images.mean(dim=[1, 2, 3], keepdim=True)
    return (images - mean) * (_per_image(images) + 0.5) + mean


def _grid(n: int, height: int, width: int, device) -> tuple[torch.Tensor, ...]:
    return torch.meshgrid(torch.arange(n, device=device), torch.arange(height, device=device),
                          torch.arange(width, device=device), indexing="ij")


def translation(images: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros (mid-grey)."""
    n, _, height, width = images.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-shift_y, shift_y + 1, (n, 1, 1), device=images.device)
    dx = torch.randint(-shift_x, shift_x + 1, (n, 1, 1), device=images.device)
    batch, y, x = _grid(n, height, width, images.device)
    y = torch.clamp(y + dy + 1, 0, height + 1)
    x = torch.clamp(x + dx + 1, 0, width + 1)
    padded = F.pad(images, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1).contiguous()[batch, y, x].permute(0, 3, 1, 2)


def cutout(images: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` of the image's side at a random place, per image."""
    n, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height + (1 - size_y % 2), (n, 1, 1), device=images.device)
    left = torch.randint(0, width + (1 - size_x % 2), (n, 1, 1), device=images.device)
    batch, y, x = _grid(n, size_y, size_x, images.device)
    y = torch.clamp(y + top - size_y // 2, 0, height - 1)
    x = torch.clamp(x + left - size_x // 2, 0, width - 1)
    mask = torch.ones(n, height, width, dtype=images.dtype, device=images.device)
    mask[batch, y, x] = 0
    return images * mask.unsqueeze(1)


_AUGMENTS = {"color": color, "translation": translation, "cutout": cutout}
