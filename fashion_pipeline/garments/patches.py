"""Square texture patches for the pattern DCGAN, one training set per pattern category.

Two sources, chosen by configuration:

- **From the garments** (the embedded data): square windows lying inside a crop's garment mask
  (at least ``min_inside`` of their pixels are garment), their side a fraction of the crop's side
  so a pattern keeps the same scale from crop to crop, resized to 64 x 64. On the embedded data
  the generator's truth labels each patch with the pattern of the garment covering most of it
  (stripes, dots, florals, checks, solid) when nearly all of it (``min_labelled``) lies on garments
  of that pattern; a patch that holds skin, background or another print (where GrabCut erred, or
  at a seam between garments) has no label and is counted, not used.
- **From a folder** (real use, like the "AI Fashion" poster's clothing-pattern dataset): one
  subfolder per category; each image is centre-cropped to a square and resized to 64 x 64.
  A missing or empty subfolder, or an unreadable file, is an error naming it.

``python -m fashion_pipeline.garments.patches --folder patterns/ --category floral --out floral.npy``
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_pipeline.common.images import open_upright

PATCH_SIZE = 64  # the DCGAN's input
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# The embedded generator's texture kinds (``fashion_pipeline.synthetic.figures.TEXTURES``). A real
# pattern folder's subfolders name their own categories: set FASHION_PIPELINE_PATTERN_CATEGORIES.
DEFAULT_CATEGORIES = ("stripes", "dots", "florals", "checks", "solid")
CATEGORIES_ENV_VAR = "FASHION_PIPELINE_PATTERN_CATEGORIES"


def categories() -> list[str]:
    """The pattern categories (the partitions of ``pattern_patches`` and ``pattern_dcgan``)."""
    configured = os.environ.get(CATEGORIES_ENV_VAR, "")
    names = [name.strip() for name in configured.split(",") if name.strip()]
    return names or list(DEFAULT_CATEGORIES)


@dataclass(frozen=True)
class PatchSettings:
    patch_fraction: float = 0.12  # patch side as a fraction of the crop's side
    min_patch_px: int = 12  # smaller windows are too blurry to teach a texture
    patches_per_crop: int = 6  # per garment crop at most
    min_inside: float = 0.97  # share of a window's pixels that must be garment (mask)
    # Embedded data: the share of a patch that must lie on true garments of one pattern for it to get that
    # label. At 0.8, one patch in ten held a corner of skin, an arm or the other garment's print (measured on
    # the demo's crops); the generator then learns those too.
    min_labelled: float = 0.97
    seed: int = 0


def window_sums(mask: np.ndarray, side: int) -> np.ndarray:
    """For every top-left (y, x), how many mask pixels the side x side window holds ((H-side+1) x (W-side+1))."""
    integral = np.pad(np.asarray(mask, np.int32), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]


def sample_windows(mask: np.ndarray, side: int, count: int, rng: np.random.Generator,
                   min_inside: float = 0.97) -> list[tuple[int, int]]:
    """Up to ``count`` top-left corners (x, y) of distinct windows at least ``min_inside`` inside ``mask``,
    spread out: each next window is drawn from those not overlapping an earlier one by more than half."""
    height, width = mask.shape
    if side < 1 or side > min(height, width):
        return []
    ys, xs = np.nonzero(window_sums(mask, side) >= min_inside * side * side)
    chosen: list[tuple[int, int]] = []
    while len(chosen) < count and len(xs):
        pick = int(rng.integers(len(xs)))
        x, y = int(xs[pick]), int(ys[pick])
        chosen.append((x, y))
        far = (np.abs(xs - x) >= side // 2) | (np.abs(ys - y) >= side // 2)
        xs, ys = xs[far], ys[far]
    return chosen


def to_patch(image: np.ndarray, x: int, y: int, side: int) -> np.ndarray:
    window = Image.fromarray(np.ascontiguousarray(image[y:y + side, x:x + side, :3]))
    return np.asarray(window.resize((PATCH_SIZE, PATCH_SIZE), Image.Resampling.LANCZOS))


def pattern_share(truth, region: np.ndarray, pattern: str) -> float:
    """The share of ``region`` (a bool mask) on true garments printed with ``pattern``."""
    from fashion_pipeline.garments.truth import GARMENT_NAMES

    labels = [value for value, name in GARMENT_NAMES.items() if truth.patterns.get(name) == pattern]
    return float(np.isin(truth.values[region], labels).mean()) if region.any() else 0.0


def garment_patches(image: np.ndarray, mask: np.ndarray, settings: PatchSettings, rng: np.random.Generator,
                    truth=None) -> list[tuple[np.ndarray, str | None, tuple[int, int, int]]]:
    """(64 x 64 x 3 patch, label or None, (x, y, side)) for windows inside ``mask``.

    ``truth`` (a ``truth.CropTruth``) labels each patch; without it every label is None.
    """
    side = max(settings.min_patch_px, round(settings.patch_fraction * min(mask.shape)))
    out = []
    for x, y in sample_windows(mask, side, settings.patches_per_crop, rng, settings.min_inside):
        label = None
        if truth is not None:
            region = np.zeros(mask.shape, bool)
            region[y:y + side, x:x + side] = True
            label = truth.pattern_at(region)
            if label is not None and pattern_share(truth, region, label) < settings.min_labelled:
                label = None
        out.append((to_patch(image, x, y, side), label, (x, y, side)))
    return out


def pattern_files(folder: str | Path, category: str) -> list[Path]:
    """The image files of ``folder/category``, sorted; an error naming the folder when there are none."""
    directory = Path(folder) / category
    if not directory.is_dir():
        raise FileNotFoundError(f"pattern folder {directory} does not exist (one subfolder per category is expected)")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"pattern folder {directory} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def pattern_images(folder: str | Path, category: str) -> list[np.ndarray]:
    """Every image of ``folder/category`` as it is (H x W x 3 uint8): a user's patterns, printed directly."""
    return [np.asarray(_read_rgb(path)) for path in pattern_files(folder, category)]


def folder_patches(folder: str | Path, category: str) -> np.ndarray:
    """Every image of ``folder/category`` as N x 64 x 64 x 3 uint8 (centre square, resized)."""
    return np.stack([_square_64(_read_rgb(path)) for path in pattern_files(folder, category)])


def _read_rgb(path: Path) -> Image.Image:
    try:
        return open_upright(path).convert("RGB")  # EXIF orientation applied, as every stage decodes
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read pattern image {path}: {error}") from error


def _square_64(image: Image.Image) -> np.ndarray:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((PATCH_SIZE, PATCH_SIZE), Image.Resampling.LANCZOS))


def main(argv: list[str] | None = None) -> None:
    from fashion_pipeline.common import atomic

    parser = argparse.ArgumentParser(description="A pattern category's 64x64 patches from a folder, or from one "
                                                 "image and its garment mask.")
    parser.add_argument("--out", type=Path, required=True, help=".npy of N x 64 x 64 x 3 uint8")
    parser.add_argument("--folder", type=Path, help="pattern folder, one subfolder per category")
    parser.add_argument("--category", help="subfolder of --folder")
    parser.add_argument("--image", type=Path, help="a crop (instead of --folder)")
    parser.add_argument("--mask", type=Path, help="the crop's garment mask PNG")
    parser.add_argument("--count", type=int, default=PatchSettings.patches_per_crop)
    args = parser.parse_args(argv)
    if args.folder:
        patches = folder_patches(args.folder, args.category)
    else:
        from fashion_pipeline.garments.grabcut import read_mask, read_rgb

        settings = PatchSettings(patches_per_crop=args.count)
        found = garment_patches(read_rgb(args.image), read_mask(args.mask), settings, np.random.default_rng(0))
        patches = np.stack([p for p, _, _ in found]) if found else np.zeros((0, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
    atomic.save_npy(args.out, patches)
    print(f"{len(patches)} patches -> {args.out}")


if __name__ == "__main__":
    main()
