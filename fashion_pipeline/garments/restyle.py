"""Put a (generated) pattern onto a garment: inside its mask, keeping its shading, with soft edges.

1. **Tile** the pattern over the crop at the scale of a real print: each tile is ``tile_fraction`` of
   the crop's side, whatever the garment's size, so a dress shows many repeats rather than one tile
   stretched over it. A generated pattern comes back at the scale its training patches were cut at
   (``pattern_patches``' ``patch_fraction``: the fabric's own scale); a user's pattern file at the
   ``tile_fraction`` the user chose. A DCGAN's 64 x 64 output is not periodic, so each tile is first
   made seamless (``seamless``): without it a grid of hard seams is the first thing one sees.
2. **Shade**: multiply by the garment's luminance relative to its median inside the mask, clipped to
   [``shade_min``, ``shade_max``]. Folds, the shadow under an arm and the body shading the photo had
   stay on the new fabric. The luminance is blurred first (``shade_blur``, a fraction of the side:
   shading varies slowly, the old print quickly, so the old print does not come through) and only
   over the garment (a normalised convolution): the background next to the garment's edge neither
   darkens nor lightens it.
3. **Blend**: the new fabric is laid over the photo with the mask as alpha, feathered inwards
   (``feather_px``): the edge is soft but nothing is painted outside the mask.

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
    tile_fraction: float = 0.12  # side of one pattern tile, as a fraction of the crop's side
    seamless_fraction: float = 0.25  # the share of a tile, at each side, cross-faded into the opposite side
    shade_min: float = 0.35
    shade_max: float = 1.3  # above, skin or a highlight the mask took in shows as a glare spot
    # Gaussian sigma of the luminance, as a fraction of the crop's side. At 0.03 the old print (checks,
    # stripes, large florals on the demo's garments) still showed through the new one; at 0.06 it hardly
    # does, and the body's side shading, which varies over a fifth of the figure's height, stays.
    shade_blur: float = 0.06
    feather_px: float = 2.0  # Gaussian sigma of the mask's inner edge (pixels)


def _edge_weight(size: int, fraction: float) -> np.ndarray:
    """1 in the middle, falling linearly to 0 over ``fraction`` of ``size`` at both ends."""
    ramp = max(1.0, fraction * size)
    distance = np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5
    return np.clip(distance / ramp, 0.0, 1.0).astype(np.float32)


def seamless(tile: np.ndarray, fraction: float = 0.25) -> np.ndarray:
    """A periodic version of ``tile`` (H x W x C float): near each side it cross-fades into the tile
    rolled by half, whose content there continues across the wrap. Done along x, then along y, so the
    result wraps in both directions; the middle of the tile is unchanged."""
    if fraction <= 0:
        return tile
    out = tile.astype(np.float32)
    for axis in (1, 0):
        size = out.shape[axis]
        weight = _edge_weight(size, fraction).reshape((-1, 1, 1) if axis == 0 else (1, -1, 1))
        out = weight * out + (1.0 - weight) * np.roll(out, size // 2, axis=axis)
    return out


def tile_pattern(pattern: np.ndarray, shape: tuple[int, int], tile_px: int, seamless_fraction: float = 0.0) -> np.ndarray:
    """``pattern`` resized to ``tile_px`` wide (its height in proportion: a user's file keeps its aspect),
    made seamless when ``seamless_fraction`` > 0, and repeated over an H x W canvas (H x W x 3 float in [0, 1])."""
    tile_w = max(2, int(tile_px))
    tile_h = max(2, round(tile_w * pattern.shape[0] / pattern.shape[1]))
    tile = Image.fromarray(np.ascontiguousarray(pattern[..., :3])).resize((tile_w, tile_h), Image.Resampling.LANCZOS)
    tile = seamless(np.asarray(tile, np.float32) / 255.0, seamless_fraction)
    height, width = shape
    reps = (-(-height // tile_h), -(-width // tile_w), 1)
    return np.clip(np.tile(tile, reps)[:height, :width], 0.0, 1.0)


def luminance(image: np.ndarray) -> np.ndarray:
    rgb = image[..., :3].astype(np.float32) / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def shading(image: np.ndarray, mask: np.ndarray, settings: RestyleSettings) -> np.ndarray:
    """The garment's slow luminance changes around 1.0 (H x W float), measured on the garment only."""
    import cv2

    sigma = max(0.5, settings.shade_blur * min(mask.shape))
    weight = np.asarray(mask, np.float32)
    blurred_light = cv2.GaussianBlur(luminance(image) * weight, (0, 0), sigma)
    blurred_weight = cv2.GaussianBlur(weight, (0, 0), sigma)
    light = blurred_light / np.maximum(blurred_weight, 1e-3)  # normalised convolution: the mean over the garment
    inside = light[mask]
    reference = float(np.median(inside)) if inside.size else 1.0
    return np.clip(light / max(reference, 1e-3), settings.shade_min, settings.shade_max)


def feathered_alpha(mask: np.ndarray, feather_px: float) -> np.ndarray:
    """The mask softened inwards: the blurred mask inside it, 0 outside (nothing painted past the edge)."""
    import cv2

    alpha = np.asarray(mask, np.float32)
    if feather_px <= 0:
        return alpha
    return np.where(mask, cv2.GaussianBlur(alpha, (0, 0), feather_px), 0.0).astype(np.float32)


def restyle(image: np.ndarray, mask: np.ndarray, pattern: np.ndarray,
            settings: RestyleSettings = RestyleSettings()) -> np.ndarray:
    """``image`` (H x W x 3 uint8) with the garment ``mask`` (H x W bool) re-printed with ``pattern``."""
    mask = np.asarray(mask, bool)
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
    if not mask.any():
        return image.copy()
    tile_px = round(settings.tile_fraction * min(mask.shape))
    fabric = tile_pattern(pattern, mask.shape, tile_px, settings.seamless_fraction)
    fabric = fabric * shading(image, mask, settings)[..., None]
    alpha = feathered_alpha(mask, settings.feather_px)[..., None]
    out = alpha * np.clip(fabric, 0.0, 1.0) + (1.0 - alpha) * (image[..., :3].astype(np.float32) / 255.0)
    return np.round(out * 255.0).astype(np.uint8)


def main(argv: list[str] | None = None) -> None:
    from fashion_pipeline.common import atomic, render
    from fashion_pipeline.garments.grabcut import read_mask

    parser = argparse.ArgumentParser(description="Re-print the garment of a crop with a pattern, inside its mask.")
    parser.add_argument("image", type=Path)
    parser.add_argument("mask", type=Path, help="garment mask PNG (non-zero = garment)")
    parser.add_argument("pattern", type=Path, help="pattern image (any size; tiled at --tile-fraction of the crop's side, keeping its aspect)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tile-fraction", type=float, default=RestyleSettings.tile_fraction)
    parser.add_argument("--feather-px", type=float, default=RestyleSettings.feather_px)
    parser.add_argument("--seamless-fraction", type=float, default=RestyleSettings.seamless_fraction,
                        help="0 tiles the pattern as it is (hard seams when it is not periodic)")
    args = parser.parse_args(argv)
    from fashion_pipeline.common.images import open_upright  # EXIF orientation applied, as every stage decodes

    image = np.asarray(open_upright(args.image).convert("RGB"))
    pattern = np.asarray(open_upright(args.pattern).convert("RGB"))
    settings = RestyleSettings(tile_fraction=args.tile_fraction, feather_px=args.feather_px,
                               seamless_fraction=args.seamless_fraction)
    out = restyle(image, read_mask(args.mask), pattern, settings)
    atomic.write_bytes(args.out, render.png_bytes(Image.fromarray(out)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
