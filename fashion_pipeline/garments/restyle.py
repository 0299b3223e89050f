"""Put a (generated) pattern onto a garment: inside its mask, keeping its shading, with soft edges.

1. **Tile** the 64 x 64 pattern over the crop, each tile ``tile_fraction`` of the crop's side, so
   the new print has the scale of a real one and never stretches with the garment's size.
2. **Shade**: multiply by the garment's luminance relative to its median inside the mask,
   clipped to [``shade_min``, ``shade_max``]. Folds, the shadow under an arm and the body shading
   the photo had stay on the new fabric; the old print's own dark and light parts would come
   through as well, so the luminance is blurred (``shade_blur``, a fraction of the side) first:
   shading varies slowly, a print quickly.
3. **Blend**: the mask, Gaussian-blurred by ``feather_px``, is the alpha of the new fabric over
   the photo; a hard cut-out edge is the first thing the eye catches.

``python -m fashion_pipeline.garments.restyle crop.png mask.png pattern.png --out restyled.png``
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class RestyleSettings:
    tile_fraction: float = 0.22  # side of one pattern tile, as a fraction of the crop's side
    shade_min: float = 0.35
    shade_max: float = 1.6
    shade_blur: float = 0.03  # Gaussian sigma of the luminance, as a fraction of the crop's side
    feather_px: float = 2.0  # Gaussian sigma of the mask's edge (pixels)


def tile_pattern(pattern: np.ndarray, shape: tuple[int, int], tile_px: int) -> np.ndarray:
    """``pattern`` resized to ``tile_px`` and repeated over an H x W canvas (H x W x 3 float in [0, 1])."""
    tile_px = max(2, int(tile_px))
    tile = Image.fromarray(np.ascontiguousarray(pattern[..., :3])).resize((tile_px, tile_px), Image.Resampling.BICUBIC)
    height, width = shape
    reps = (-(-height // tile_px), -(-width // tile_px), 1)
    return np.tile(np.asarray(tile, np.float32) / 255.0, reps)[:height, :width]


def luminance(image: np.ndarray) -> np.ndarray:
    rgb = image[..., :3].astype(np.float32) / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def shading(image: np.ndarray, mask: np.ndarray, settings: RestyleSettings) -> np.ndarray:
    """The garment's slow luminance changes around 1.0 (H x W float)."""
    import cv2

    sigma = max(0.5, settings.shade_blur * min(mask.shape))
    light = cv2.GaussianBlur(luminance(image), (0, 0), sigma)
    inside = light[mask]
    reference = float(np.median(inside)) if inside.size else 1.0
    return np.clip(light / max(reference, 1e-3), settings.shade_min, settings.shade_max)


def feathered_alpha(mask: np.ndarray, feather_px: float) -> np.ndarray:
    import cv2

    alpha = np.asarray(mask, np.float32)
    return cv2.GaussianBlur(alpha, (0, 0), feather_px) if feather_px > 0 else alpha


def restyle(image: np.ndarray, mask: np.ndarray, pattern: np.ndarray,
            settings: RestyleSettings = RestyleSettings()) -> np.ndarray:
    """``image`` (H x W x 3 uint8) with the garment ``mask`` (H x W bool) re-printed with ``pattern``."""
    mask = np.asarray(mask, bool)
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
    if not mask.any():
        return image.copy()
    tile_px = round(settings.tile_fraction * min(mask.shape))
    fabric = tile_pattern(pattern, mask.shape, tile_px) * shading(image, mask, settings)[..., None]
    alpha = feathered_alpha(mask, settings.feather_px)[..., None]
    out = alpha * np.clip(fabric, 0.0, 1.0) + (1.0 - alpha) * (image[..., :3].astype(np.float32) / 255.0)
    return np.round(out * 255.0).astype(np.uint8)


def main(argv: list[str] | None = None) -> None:
    from fashion_pipeline.common import atomic, render
    from fashion_pipeline.garments.grabcut import read_mask

    parser = argparse.ArgumentParser(description="Re-print the garment of a crop with a pattern, inside its mask.")
    parser.add_argument("image", type=Path)
    parser.add_argument("mask", type=Path, help="garment mask PNG (non-zero = garment)")
    parser.add_argument("pattern", type=Path, help="pattern image (any size; used as a square tile)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tile-fraction", type=float, default=RestyleSettings.tile_fraction)
    parser.add_argument("--feather-px", type=float, default=RestyleSettings.feather_px)
    args = parser.parse_args(argv)
    from fashion_pipeline.common.images import open_upright  # EXIF orientation applied, as every stage decodes

    image = np.asarray(open_upright(args.image).convert("RGB"))
    pattern = np.asarray(open_upright(args.pattern).convert("RGB"))
    settings = RestyleSettings(tile_fraction=args.tile_fraction, feather_px=args.feather_px)
    out = restyle(image, read_mask(args.mask), pattern, settings)
    atomic.write_bytes(args.out, render.png_bytes(Image.fromarray(out)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
