"""Try-on scores against ground truth: SSIM (whole picture and inside the changed region), L1, a feature
distance in the detector backbone's space, KID/FID (``gan.quality``), and means with 95% confidence intervals.

SSIM is Wang et al.'s with an 11-tap Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, the data range 255,
population (not sample) covariances, averaged over the colour channels, and a 5-px border left out (the
windows there would leave the picture): the settings of torchmetrics' ``structural_similarity_index_measure``
and of scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``,
which ``fashion_pipeline_tests/test_tryon_metrics.py`` checks it against (scikit-image to 1e-9; torchmetrics
measured up to 1.2e-4 apart on noise pictures). Inside a region, the per-pixel SSIM
map is averaged over the region's pixels.

The feature distance is **not LPIPS**: LPIPS needs AlexNet/VGG ImageNet weights plus its learned linear
heads, which cannot be downloaded here. It is the LPIPS recipe (unit-normalise each position's channel vector,
squared difference, spatial mean, summed over stages) with the trained detector's ResNet stages and no learned
weights, so its values compare only with each other.
"""
from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats
from scipy.ndimage import gaussian_filter

SIGMA, TRUNCATE = 1.5, 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: the 11-tap window
BORDER = 5
K1, K2, DATA_RANGE = 0.01, 0.03, 255.0


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H x W SSIM (channel mean) of two H x W x 3 uint8 pictures; the ``BORDER`` pixels are NaN."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM of different shapes {a.shape} and {b.shape}")
    x, y = a.astype(np.float64), b.astype(np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]

    def blur(image):
        return np.stack([gaussian_filter(image[..., c], SIGMA, truncate=TRUNCATE, mode="reflect")
                         for c in range(image.shape[2])], axis=-1)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    out = value.mean(axis=-1)
    out[:BORDER], out[-BORDER:], out[:, :BORDER], out[:, -BORDER:] = np.nan, np.nan, np.nan, np.nan
    return out


def ssim(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean SSIM over the picture, or over ``region`` (H x W bool); NaN when the region is empty."""
    values = ssim_map(a, b)
    keep = ~np.isnan(values) if region is None else (~np.isnan(values) & region)
    return float(values[keep].mean()) if keep.any() else float("nan")


def l1(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean absolute difference in [0, 1] units (pixel values / 255)."""
    difference = np.abs(a.astype(np.float64) - b.astype(np.float64)).mean(axis=-1) / 255.0
    return float(difference.mean() if region is None else (difference[region].mean() if region.any() else np.nan))


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        half = (self.high - self.low) / 2
        return f"{self.mean:.4f} ± {half:.4f}"

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci95_low": self.low, "ci95_high": self.high, "n": self.n}


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean with Student's t interval over the pairs (NaNs, e.g. an empty region, left out)."""
    data = np.asarray([v for v in values if not math.isnan(v)], np.float64)
    if len(data) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(data.mean())
    if len(data) < 2:
        return Interval(mean, float("nan"), float("nan"), 1)
    half = float(stats.t.ppf(0.5 + level / 2, len(data) - 1) * data.std(ddof=1) / math.sqrt(len(data)))
    return Interval(mean, mean - half, mean + half, len(data))


def changed_region(parse_before: np.ndarray, parse_after: np.ndarray, garment_ids: Sequence[int]) -> np.ndarray:
    """Where a try-on may change pixels: either garment, and wherever the label differs (arms a sleeve uncovers)."""
    garment = np.isin(parse_before, garment_ids) | np.isin(parse_after, garment_ids)
    return garment | (parse_before != parse_after)


# ---------------------------------------------------------------- feature distance (not LPIPS)

Stages = Callable[["torch.Tensor"], list]  # noqa: F821  (N x 3 x H x W normalised -> feature maps)


class FeatureDistance:
    """LPIPS-style distance in a fixed network's stages, without learned heads (see the module docstring).

    ``encode`` runs the network once per picture; its pooled last stage doubles as the KID/FID features
    (the detector backbone's space of ``gan.quality``, at the pictures' own 4:3 size rather than squashed).
    """

    def __init__(self, stages: Stages, description: str, device, scale: int = 1):
        self.stages, self.description, self.device, self.scale = stages, description, device, scale

    def encode(self, images: np.ndarray, batch_size: int = 32) -> tuple[list, np.ndarray]:
        """(per stage: N x C x h x w unit-normalised maps, N x C pooled last-stage features) of N x H x W x 3 uint8."""
        import torch

        chunks, pooled = [], []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                maps = self.stages(self._tensor(images[start:start + batch_size]))
                chunks.append([x / (x.norm(dim=1, keepdim=True) + 1e-10) for x in maps])
                pooled.append(maps[-1].mean(dim=(2, 3)).double().cpu().numpy())
        return [torch.cat(stage) for stage in zip(*chunks)], np.concatenate(pooled)

    @staticmethod
    def between(a: list, b: list) -> np.ndarray:
        """Per-pair distances of two ``encode`` results."""
        total = 0.0
        for x, y in zip(a, b):
            total = total + ((x - y) ** 2).sum(dim=1).mean(dim=(1, 2))
        return total.cpu().numpy()

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-pair distances of two N x H x W x 3 uint8 stacks."""
        return self.between(self.encode(a)[0], self.encode(b)[0])

    def _tensor(self, images: np.ndarray):
        import torch
        from torch.nn import functional as F

        from fashion_pipeline.gan.quality import IMAGENET_MEAN, IMAGENET_STD

        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        if self.scale != 1:
            batch = F.interpolate(batch, scale_factor=self.scale, mode="bilinear", align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        return (batch - mean) / std


def resnet_stages(body) -> Stages:
    """The feature maps of a torchvision ResNet body (an ``IntermediateLayerGetter`` or a plain ResNet)."""
    def run(batch):
        if hasattr(body, "layer1") and not hasattr(body, "return_layers"):
            x = body.maxpool(body.relu(body.bn1(body.conv1(batch))))
            maps = []
            for name in ("layer1", "layer2", "layer3", "layer4"):
                x = getattr(body, name)(x)
                maps.append(x)
            return maps
        result = body(batch)
        return list(result.values()) if isinstance(result, dict) else [result]
    return run


def detector_distance(checkpoint, device) -> FeatureDistance:
    from fashion_pipeline.gan.detect import load_inference

    body = load_inference().load_detector(str(checkpoint), device).backbone.body.eval()
    return FeatureDistance(resnet_stages(body), "feature distance in the trained detector's ResNet stages "
                                                "(LPIPS recipe, no learned heads; not LPIPS)", device)


def untrained_resnet(device, seed: int = 0):
    """A randomly initialised ResNet-18 (seeded): features for tests and for runs with no detector; labelled so."""
    import torch
    import torchvision

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    torch.random.set_rng_state(generator_state)
    return model


# ---------------------------------------------------------------- LPIPS, only from local weight files


class LPIPS:
    """Real LPIPS (Zhang et al. 2018, v0.1, AlexNet): needs two local files, nothing is downloaded.

    ``alexnet_weights``: a torchvision ``alexnet`` state dict (ImageNet); ``linear_weights``: the LPIPS heads
    (``lpips/weights/v0.1/alex.pth`` of the ``lpips`` package: ``lin0.model.1.weight`` .. ``lin4``). Pictures
    go in as [-1, 1], through LPIPS' scaling layer, AlexNet's five ReLU outputs are unit-normalised per
    position, their squared difference weighted by the heads, averaged over space and summed.
    """

    SHIFT = (-0.030, -0.088, -0.188)
    SCALE = (0.458, 0.448, 0.450)
    SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))  # AlexNet.features up to relu1 .. relu5

    def __init__(self, alexnet_weights, linear_weights, device):
        import torch
        import torchvision

        model = torchvision.models.alexnet(weights=None)
        model.load_state_dict(torch.load(alexnet_weights, map_location="cpu", weights_only=True))
        self.features = model.features.eval().to(device)
        heads = torch.load(linear_weights, map_location="cpu", weights_only=True)
        missing = [f"lin{k}.model.1.weight" for k in range(5) if f"lin{k}.model.1.weight" not in heads]
        if missing:
            raise ValueError(f"{linear_weights} is not an LPIPS v0.1 AlexNet head file (missing {missing})")
        self.heads = [heads[f"lin{k}.model.1.weight"].to(device) for k in range(5)]
        self.device = device
        self.description = f"LPIPS v0.1 AlexNet (weights {Path(str(alexnet_weights)).name}, heads {Path(str(linear_weights)).name})"

    def __call__(self, a: np.ndarray, b: np.ndarray, batch_size: int = 32) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(a), batch_size):
                fa = self._stages(a[start:start + batch_size])
                fb = self._stages(b[start:start + batch_size])
                total = 0.0
                for x, y, head in zip(fa, fb, self.heads):
                    x = x / (torch.sqrt((x ** 2).sum(dim=1, keepdim=True)) + 1e-10)
                    y = y / (torch.sqrt((y ** 2).sum(dim=1, keepdim=True)) + 1e-10)
                    total = total + torch.nn.functional.conv2d((x - y) ** 2, head).mean(dim=(1, 2, 3))
                out.append(total.cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def _stages(self, images: np.ndarray) -> list:
        import torch

        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        shift = torch.tensor(self.SHIFT, device=self.device).view(1, 3, 1, 1)
        scale = torch.tensor(self.SCALE, device=self.device).view(1, 3, 1, 1)
        x = (batch - shift) / scale
        maps = []
        for start, stop in self.SLICES:
            for layer in self.features[start:stop]:
                x = layer(x)
            maps.append(x)
        return maps
