"""A distance between sets of texture patches that sees structure, not only colour.

KID in a CNN's feature space rewards the right colours: a patch of stripes and the same patch
blurred flat share their colours, and on small patches a trained detector's pooled features hardly
tell them apart. This module describes each patch by its grey-level structure only:

- the share of its power spectrum (mean removed, Hann window) in ``RADIAL_BINS`` frequency bands:
  stripes, checks and dots put their power in a few bands set by their period, a blur removes the
  high ones, noise spreads it flat;
- a histogram of its gradient orientations (mod 180 degrees) weighted by gradient magnitude, in
  ``ORIENTATION_BINS`` bins: stripes have one or two peaks, checks two at right angles, florals
  and dots none;
- its log contrast (the grey level's standard deviation), which separates solids from prints.

Two sets are compared by the unbiased MMD^2 of their descriptors with a Gaussian kernel whose width
is the median distance within the reference set (the real patches), averaged over random subsets as
KID is: ``structure_mmd``. It is bounded (at most 2); lower is closer, near 0 for two samples of one
distribution.
``blurred`` makes the baseline a generator must beat: the reals themselves, blurred so that their
colours stay and their structure goes.

``python -m fashion_pipeline.garments.pattern_quality --a fakes.npy --b patches.npy``
"""
from __future__ import annotations

import argparse

import numpy as np

RADIAL_BINS = 16
ORIENTATION_BINS = 16


def grey(images: np.ndarray) -> np.ndarray:
    """N x H x W x 3 uint8 -> N x H x W float luminance in [0, 1]."""
    rgb = np.asarray(images, np.float64)[..., :3] / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114])


def radial_power_shares(grey_images: np.ndarray, bins: int = RADIAL_BINS) -> np.ndarray:
    """N x bins: each patch's AC power in equal-width radial frequency bands (0 to 0.5 cycles/pixel,
    the corners beyond 0.5 counted in the last band), as shares of its total (zeros for a flat patch)."""
    _, height, width = grey_images.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    centred = grey_images - grey_images.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(centred * window)) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij"))
    band = np.minimum((radius / 0.5 * bins).astype(int), bins - 1)
    band[0, 0] = -1  # the DC term (zero after removing the mean; kept out all the same)
    per_band = np.stack([power[:, band == k].sum(axis=1) for k in range(bins)], axis=1)
    total = per_band.sum(axis=1, keepdims=True)
    return np.divide(per_band, total, out=np.zeros_like(per_band), where=total > 1e-12)


def orientation_histogram(grey_images: np.ndarray, bins: int = ORIENTATION_BINS) -> np.ndarray:
    """N x bins: gradient orientations mod pi, weighted by gradient magnitude, as shares (zeros when flat)."""
    gy, gx = np.gradient(grey_images, axis=(1, 2))
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    index = np.minimum((angle / np.pi * bins).astype(int), bins - 1)
    out = np.zeros((len(grey_images), bins))
    for k in range(bins):
        out[:, k] = np.where(index == k, magnitude, 0.0).sum(axis=(1, 2))
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 1e-9)


def describe(images: np.ndarray) -> np.ndarray:
    """N x (RADIAL_BINS + ORIENTATION_BINS + 1) structure descriptors of N x H x W x 3 uint8 patches."""
    if len(images) == 0:
        return np.zeros((0, RADIAL_BINS + ORIENTATION_BINS + 1))
    g = grey(images)
    contrast = np.log(g.std(axis=(1, 2)) + 1e-3)[:, None]
    return np.concatenate([radial_power_shares(g), orientation_histogram(g), contrast], axis=1)


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0.0)


def bandwidth(reference: np.ndarray) -> float:
    """The Gaussian kernel's width: the median distance between the reference's descriptors (a floor
    keeps a set of identical descriptors, such as flat solids, from a zero width)."""
    distances = np.sqrt(_squared_distances(reference, reference))[np.triu_indices(len(reference), 1)]
    return max(float(np.median(distances)) if distances.size else 0.0, 0.05)


def mmd2_gaussian(x: np.ndarray, y: np.ndarray, width: float) -> float:
    """Unbiased MMD^2 with the kernel exp(-|a - b|^2 / (2 width^2)): bounded (at most 2), 0 in expectation
    for two samples of one distribution."""
    gamma = 1.0 / (2.0 * width * width)
    k_xx, k_yy = np.exp(-gamma * _squared_distances(x, x)), np.exp(-gamma * _squared_distances(y, y))
    n, m = len(x), len(y)
    within = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1)) + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * np.exp(-gamma * _squared_distances(x, y)).mean())


def structure_mmd(images: np.ndarray, reference: np.ndarray, subsets: int = 50, seed: int = 0,
                  subset_size: int = 500) -> tuple[float, float]:
    """MMD^2 (mean, std over random subsets of at most half of each set, as KID does) between the
    structure descriptors of ``images`` and of ``reference``; the kernel's width comes from the reference,
    so distances to one reference compare."""
    a, b = describe(images), describe(reference)
    size = min(subset_size, len(a) // 2, len(b) // 2)
    if size < 2:
        raise ValueError(f"structure_mmd needs at least 4 images per set, got {len(a)} and {len(b)}")
    width = bandwidth(b)
    rng = np.random.default_rng(seed)
    values = [mmd2_gaussian(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)], width)
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def blurred(images: np.ndarray, sigma_fraction: float = 0.06) -> np.ndarray:
    """The patches Gaussian-blurred (sigma a fraction of the side: 3.8 px at 64): colours kept, print gone."""
    import cv2

    sigma = max(0.5, sigma_fraction * images.shape[1])
    return np.stack([cv2.GaussianBlur(np.ascontiguousarray(image), (0, 0), sigma) for image in images])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Structure MMD (power spectrum + gradient orientations) between two "
                                                 "N x 64 x 64 x 3 uint8 .npy files; the second is the reference.")
    parser.add_argument("--a", required=True, help="e.g. generated patterns")
    parser.add_argument("--b", required=True, help="the reference, e.g. the training patches")
    parser.add_argument("--subsets", type=int, default=50)
    args = parser.parse_args(argv)
    a, b = np.load(args.a, allow_pickle=False), np.load(args.b, allow_pickle=False)
    value, spread = structure_mmd(a, b, args.subsets)
    base, base_spread = structure_mmd(blurred(b), b, args.subsets)
    print(f"structure MMD {value:.4f} ± {spread:.4f}; the reference blurred: {base:.4f} ± {base_spread:.4f}")


if __name__ == "__main__":
    main()
