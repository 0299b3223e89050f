"""The geometric matching module (GMM) of CP-VTON (Wang et al., "Toward Characteristic-Preserving Image-based
Virtual Try-On Network", ECCV 2018): it predicts the thin-plate spline that lays the product garment onto the
person, from the clothing-agnostic representation (``tryon.inputs``) and the product image.

Architecture as the paper's (read in sergeywong/cp-vton ``networks.py``; written anew here):
- two feature extractors (4 stride-2 4x4 convolutions, ReLU + BatchNorm, then two 3x3 convolutions), one for
  the person representation, one for the product: features at 1/16 of the picture;
- both L2-normalised per position, then correlated: every pair of positions' dot product, so the
  correlation has (H/16)(W/16) channels;
- a regressor (two stride-2 and two plain convolutions, a linear layer, tanh) to the offsets of a
  ``grid_size`` x ``grid_size`` grid of TPS control points (CP-VTON's default grid_size 5).

Two changes, both because a fixed resolution must not be baked in:
- CP-VTON's regressor ends in ``Linear(64 * 4 * 3, ...)``, right only at 256 x 192. Here the correlation's
  channels and the linear layer's width are computed from the configured height and width (one dry run
  at construction), so any 4:3 size whose sides divide by 16 works;
- the linear layer starts at zero (the identity warp) instead of CP-VTON's random normal start, so the first
  steps paste the product where it lies instead of a random warp (a choice of ours, not the paper's).

The TPS: control points P on a regular grid of the person's frame ([-1, 1] coordinates, as
``F.grid_sample`` with ``align_corners=True``), the predicted offsets give where each lies in the product,
Q = P + theta. The spline through (P, Q) with kernel U(r) = r^2 log r^2 is linear in Q, so the matrix
taking Q to every pixel's sampling point is solved once at construction (Bookstein's system), and a warp
costs one matrix product.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

DOWNSAMPLING = 16


def check_size(height: int, width: int) -> None:
    if height % DOWNSAMPLING or width % DOWNSAMPLING:
        raise ValueError(f"the geometric matching module needs sides divisible by {DOWNSAMPLING}, got {height}x{width}")


class FeatureExtraction(nn.Module):
    def __init__(self, in_channels: int, ngf: int = 64, max_channels: int = 512):
        super().__init__()
        layers, channels = [], in_channels
        for index in range(4):  # 1/16
            out = min(ngf * 2 ** index, max_channels)
            layers += [nn.Conv2d(channels, out, 4, 2, 1), nn.ReLU(True)]
            if index < 3:
                layers.append(nn.BatchNorm2d(out))
            channels = out
        layers += [nn.Conv2d(channels, max_channels, 3, 1, 1), nn.BatchNorm2d(max_channels), nn.ReLU(True),
                   nn.Conv2d(max_channels, max_channels, 3, 1, 1), nn.ReLU(True)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def l2_normalise(features):
    return features / torch.sqrt((features ** 2).sum(1, keepdim=True) + 1e-6)


def correlation(person_features, cloth_features):
    """B x (h*w) x h x w: channel k at position p is the dot product of the person's feature at p with the
    product's feature at position k (row-major)."""
    b, c, h, w = person_features.shape
    person = person_features.reshape(b, c, h * w)
    cloth = cloth_features.reshape(b, c, h * w)
    return torch.bmm(cloth.transpose(1, 2), person).reshape(b, h * w, h, w)


class FeatureRegression(nn.Module):
    """Correlation -> 2 * grid_size^2 offsets in (-1, 1); the linear layer sized by a dry run (see module doc)."""

    def __init__(self, in_channels: int, feature_size: tuple[int, int], outputs: int, width: int = 512):
        super().__init__()
        widths = [width, width // 2, width // 4, width // 8]
        layers, channels, (h, w) = [], in_channels, feature_size
        for index, out in enumerate(widths):
            # CP-VTON: the first two halve the map; a map already under 4 pixels (small pictures) is kept
            halve = index < 2 and min(h, w) >= 4
            layers += [nn.Conv2d(channels, out, 4, 2, 1) if halve else nn.Conv2d(channels, out, 3, 1, 1),
                       nn.BatchNorm2d(out), nn.ReLU(True)]
            h, w = (h // 2, w // 2) if halve else (h, w)
            channels = out
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():
            was_training = self.conv.training
            self.conv.eval()  # the dry run must not touch BatchNorm's running statistics
            flat = self.conv(torch.zeros(1, in_channels, *feature_size)).numel()
            self.conv.train(was_training)
        self.linear = nn.Linear(flat, outputs)
        nn.init.zeros_(self.linear.weight)  # identity warp at the start (not CP-VTON's: see module doc)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x):
        return torch.tanh(self.linear(self.conv(x).flatten(1)))


def control_points(grid_size: int) -> np.ndarray:
    """N x 2 (x, y) regular grid in [-1, 1], x fastest."""
    axis = np.linspace(-1.0, 1.0, grid_size)
    ys, xs = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def _kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.where(squared > 0, squared * np.log(np.where(squared > 0, squared, 1.0)), 0.0)


def tps_matrix(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H*W) x N: row i gives pixel i's sampling point as a combination of the N target points Q."""
    n = len(points)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _kernel(points, points)
    system[:n, n] = 1.0
    system[:n, n + 1:] = points
    system[n, :n] = 1.0
    system[n + 1:, :n] = points.T
    inverse = np.linalg.inv(system)[:, :n]  # the right-hand side is [Q; 0]: only the first n columns matter
    ys, xs = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1)
    basis = np.concatenate([_kernel(pixels, points), np.ones((len(pixels), 1)), pixels], axis=1)
    return basis @ inverse


class TpsGrid(nn.Module):
    """Offsets (B x 2N, x then y) -> a ``grid_sample`` grid B x H x W x 2 in the product's frame."""

    def __init__(self, height: int, width: int, grid_size: int = 5):
        super().__init__()
        points = control_points(grid_size)
        self.register_buffer("points", torch.tensor(points, dtype=torch.float32), persistent=False)
        self.register_buffer("matrix", torch.tensor(tps_matrix(points, height, width), dtype=torch.float32),
                             persistent=False)
        self.height, self.width, self.count = height, width, len(points)

    def forward(self, theta):
        offsets = torch.stack([theta[:, :self.count], theta[:, self.count:]], dim=-1)  # B x N x 2
        targets = self.points.unsqueeze(0) + offsets
        return torch.matmul(self.matrix, targets).view(-1, self.height, self.width, 2)


class GMM(nn.Module):
    def __init__(self, agnostic_channels: int, height: int, width: int, grid_size: int = 5, ngf: int = 64,
                 max_channels: int = 512):
        super().__init__()
        check_size(height, width)
        self.person_features = FeatureExtraction(agnostic_channels, ngf, max_channels)
        self.cloth_features = FeatureExtraction(3, ngf, max_channels)
        h, w = height // DOWNSAMPLING, width // DOWNSAMPLING
        self.regression = FeatureRegression(h * w, (h, w), 2 * grid_size ** 2, max_channels)
        self.grid = TpsGrid(height, width, grid_size)

    def forward(self, agnostic, cloth):
        """(grid B x H x W x 2 for ``grid_sample``, theta B x 2N)."""
        a = l2_normalise(self.person_features(agnostic))
        b = l2_normalise(self.cloth_features(cloth))
        theta = self.regression(correlation(a, b))
        return self.grid(theta), theta


def warp(image, grid, padding: str = "border"):
    """The product resampled into the person's frame (CP-VTON: border padding for the picture, zeros for the mask)."""
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding, align_corners=True)


def grid_to_pixels(grid, height: int, width: int):
    """``grid_sample`` coordinates -> product-frame pixel coordinates (x, y), ``align_corners=True``."""
    scale = grid.new_tensor([(width - 1) / 2.0, (height - 1) / 2.0])
    return (grid + 1.0) * scale
