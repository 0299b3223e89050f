"""Sample quality in a fixed feature space: Fréchet distance (FID) and Kernel Inception Distance (KID).

The losses of a GAN say how the two players are doing against each other, not how good the images
are; a distance between feature distributions of fakes and reals does.

Feature spaces, fixed once and shared by every variant so their numbers compare:

- ``inception``: torchvision's ``inception_v3`` with a state dict read from a **local file** (nothing is
  downloaded), pool3 2048-d features at 299x299. With torchvision's ImageNet weights the values are
  close to, but not the same as, published FIDs (those use the TF-ported "pt_inception-2015-12-05").
- ``detector_backbone``: the trained detector's ResNet body, global-average-pooled last stage
  (2048-d for ResNet-50/101). It is what we have offline; its values only compare with each other.

FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)); the trace of the square root is computed from the
eigenvalues of S1^(1/2) S2 S1^(1/2) (symmetric, so ``eigh`` is exact and stable). KID is the unbiased
MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets; it is
unbiased, so unlike FID it is meaningful with a few hundred samples. Both agree with torchmetrics'
implementations to 1e-6 relative on the same features (``fashion_pipeline_tests/test_quality_reference.py``).

Sample sizes (``sample_plan``): FID is strongly biased when a set has fewer samples than the feature
dimension (its covariance is singular): same-distribution FID measured 164, 34 and 8.4 at n = 200,
1,000 and 4,000 with 2,048-d features. So at least ``dim`` fakes are generated, and when the real set
is smaller than ``dim`` the report says FID is unreliable and KID is the number to read. KID subsets
hold at most half of each set, so that different subsets differ and its ± is a real spread.

``python -m fashion_pipeline.gan.quality --a fakes.npy --b reals.npy --detector-checkpoint model_final.pt``
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------- distances

def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
    return max(value, 0.0)  # tiny negative values are rounding


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, np.float64)
    if len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors, got {len(features)}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equal-size sets with the cubic polynomial kernel (x.y / d + 1)^3."""
    size, dim = x.shape
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
    return float(off_diagonal - 2 * k_xy.mean())


def kid_subset_size(n_a: int, n_b: int, requested: int = 1000) -> int:
    """At most half of the smaller set: subsets that are the whole set would make the spread 0."""
    size = min(requested, n_a // 2, n_b // 2)
    if size < 2:
        raise ValueError(f"KID needs at least 4 samples per set, got {n_a} and {n_b}")
    return size


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 (cubic polynomial kernel) over ``subsets`` random proper subsets: (mean, std)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    size = kid_subset_size(len(a), len(b), subset_size)
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


@dataclass(frozen=True)
class SamplePlan:
    """How many fakes to generate and reals to use, and what the numbers can be trusted for."""

    n_fake: int
    n_real: int
    dim: int

    @property
    def fid_reliable(self) -> bool:
        return min(self.n_fake, self.n_real) >= self.dim

    def note(self) -> str:
        if self.fid_reliable:
            return f"{self.n_fake} fakes and {self.n_real} reals against {self.dim}-d features: FID and KID both usable."
        return (f"{self.n_real} reals against {self.dim}-d features: fewer reals than dimensions, so FID is biased "
                f"upwards and only compares runs with the same counts; read KID (unbiased), with its spread.")


def sample_plan(n_real_available: int, dim: int, min_fakes: int = 0, max_reals: int = 10_000) -> SamplePlan:
    """At least ``dim`` fakes (a full-rank covariance), and every real up to ``max_reals``."""
    return SamplePlan(n_fake=max(min_fakes, dim), n_real=min(n_real_available, max_reals), dim=dim)


# ---------------------------------------------------------------- feature spaces

@dataclass
class FeatureSpace:
    """A frozen network mapping N x 64 x 64 x 3 uint8 images to N x dim features."""

    name: str
    description: str
    network: Callable[[torch.Tensor], torch.Tensor]
    input_size: int
    device: torch.device

    @torch.no_grad()
    def features(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.array(images[start:start + batch_size])).to(self.device)  # copy: may be a mmap
            batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
            batch = F.interpolate(batch, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
            chunks.append(self.network((batch - mean) / std).float().flatten(1).cpu().numpy())
        return np.concatenate(chunks).astype(np.float64) if chunks else np.zeros((0, 0))


def inception_space(weights_path: str | Path, device: torch.device) -> FeatureSpace:
    """Inception-v3 pool3 features from a local torchvision state dict."""
    import torchvision

    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"inception_weights_path {path} does not exist")
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, _ = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("AuxLogits")]
    if missing:
        raise ValueError(f"{path} is not an inception_v3 state dict (missing {missing[:3]}...)")
    model.fc = torch.nn.Identity()  # the 2048-d pool3 output instead of the 1000 logits
    model.eval().to(device)
    return FeatureSpace("inception", f"Inception-v3 pool3 (2048-d), weights {path.name}", model, 299, device)


def detector_backbone_space(checkpoint: str | Path, device: torch.device, input_size: int = 128) -> FeatureSpace:
    """Global-average-pooled last-stage features of the trained detector's ResNet body."""
    from fashion_pipeline.gan.detect import load_inference

    detector = load_inference().load_detector(str(checkpoint), device)
    body = detector.backbone.body.eval()

    def network(batch: torch.Tensor) -> torch.Tensor:
        stages = body(batch)
        last = list(stages.values())[-1] if isinstance(stages, dict) else stages
        return last.mean(dim=(2, 3))

    return FeatureSpace("detector_backbone",
                        f"trained detector backbone ({Path(checkpoint).name}), pooled last ResNet stage, "
                        f"{input_size}x{input_size} input — not Inception: compare only within this report",
                        network, input_size, device)


def make_feature_space(inception_weights_path: Optional[str], detector_checkpoint: Optional[str],
                       device: torch.device) -> FeatureSpace:
    """Inception when a local weights file is configured, else the detector's backbone."""
    if inception_weights_path:
        return inception_space(inception_weights_path, device)
    if detector_checkpoint:
        return detector_backbone_space(detector_checkpoint, device)
    raise ValueError("no feature space: set inception_weights_path or materialize best_detector")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="FID and KID between two N x 64 x 64 x 3 uint8 .npy files.")
    parser.add_argument("--a", required=True)
    parser.add_argument("--b", required=True)
    parser.add_argument("--inception-weights", default=None)
    parser.add_argument("--detector-checkpoint", default=None)
    args = parser.parse_args(argv)
    space = make_feature_space(args.inception_weights, args.detector_checkpoint, torch.device("cpu"))
    a = space.features(np.load(args.a))
    b = space.features(np.load(args.b))
    kid, kid_std = kernel_inception_distance(a, b)
    print(f"feature space: {space.description}\nFID {fid_from_features(a, b):.3f}  KID {kid:.5f} ± {kid_std:.5f}")


if __name__ == "__main__":
    main()
