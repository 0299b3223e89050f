"""Human parse maps with CIHP's 20 labels, as VITON-HD's ``image-parse`` PNGs hold them.

The ids are CIHP's (Gong et al., "Instance-level Human Parsing via Part Grouping Network", 2018),
which VITON-HD and CP-VTON read: 5/6/7 are the upper garment, 10 the neck and torso skin, 13 the face,
14/15 the person's left/right arm. "Left" is the person's left, on the image's right for a figure facing
the camera. The PNGs are palette mode with the usual PASCAL-style colour map, so an id is the pixel value.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

CIHP_LABELS = (
    "background", "hat", "hair", "glove", "sunglasses", "upper_clothes", "dress", "coat", "socks", "pants",
    "torso_skin", "scarf", "skirt", "face", "left_arm", "right_arm", "left_leg", "right_leg", "left_shoe", "right_shoe",
)
CIHP = {name: index for index, name in enumerate(CIHP_LABELS)}
UPPER_GARMENT_IDS = (CIHP["upper_clothes"], CIHP["dress"], CIHP["coat"])  # what VITON-HD calls "upper"


def palette(count: int = 256) -> list[int]:
    """The PASCAL VOC colour map (the one CIHP/LIP parse PNGs use): bit k of the id goes to bit 7-k/3."""
    colours = [0] * (count * 3)
    for index in range(count):
        label, shift = index, 7
        while label:
            for channel in range(3):
                colours[index * 3 + channel] |= ((label >> channel) & 1) << shift
            label >>= 3
            shift -= 1
    return colours


_PALETTE = palette()


def parse_image(labels: np.ndarray) -> Image.Image:
    """A palette-mode PNG-ready image whose pixel values are the CIHP ids in ``labels`` (H x W uint8)."""
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"labels must be an H x W uint8 array, got {labels.dtype} {labels.shape}")
    if labels.size and int(labels.max()) >= len(CIHP_LABELS):
        raise ValueError(f"label {int(labels.max())} is not a CIHP id (0..{len(CIHP_LABELS) - 1})")
    image = Image.fromarray(labels, mode="P")
    image.putpalette(_PALETTE)
    return image


def colourize(labels: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 colours of a label map, for grids."""
    return np.asarray(_PALETTE, np.uint8).reshape(-1, 3)[labels]
