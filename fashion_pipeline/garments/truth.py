"""True garment masks of full-body crops, when the images come from the embedded Pinterest site.

The site draws every look with its label map and keeps the reduced map
(``fashion_pipeline.pinterest.site.masks``). A crop's truth is that map resized to the downloaded
file (a 736x rendition when the pin had no original), cut to the crop's square. "Garment" is the
clothing the generator textured (upper, lower, full-body garment), not skin, hair, shoes or the
plain neutral clothes, and each garment carries the pattern type it was drawn with.

A real scrape has no ``<data root>/pinterest_site/ground_truth.json``: every crop's truth is None
and the segmentation stage reports no IoU.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SITE_FOLDER = "pinterest_site"
GARMENT_NAMES = {1: "upper", 2: "lower", 3: "full"}


@dataclass(frozen=True)
class CropTruth:
    values: np.ndarray  # side x side uint8: 0 background, 1 upper, 2 lower, 3 full, 4 other clothing, 5 skin, 6 hair
    patterns: dict  # "upper" / "lower" / "full" -> pattern type

    @property
    def garment(self) -> np.ndarray:
        return np.isin(self.values, tuple(GARMENT_NAMES))

    def pattern_at(self, region: np.ndarray) -> str | None:
        """The pattern of the garment covering most of ``region`` (a bool mask), None when no garment does."""
        values = self.values[region]
        counts = np.bincount(values, minlength=7)[list(GARMENT_NAMES)]
        if counts.max() == 0:
            return None
        return self.patterns.get(GARMENT_NAMES[int(np.argmax(counts)) + 1])


class CropTruths:
    """Looks up crops' truths; ``available`` is False for a real scrape."""

    def __init__(self, data_root: str | Path, dataset):
        self.site_root = Path(data_root) / SITE_FOLDER
        self.available = (self.site_root / "ground_truth.json").is_file()
        self._pins = {row.image_id: list(row.pin_ids) for row in dataset.itertuples()} if self.available else {}
        self._masks = None

    def _true_masks(self):
        if self._masks is None:
            from fashion_pipeline.pinterest.site.masks import TrueMasks

            self._masks = TrueMasks(self.site_root)
        return self._masks

    def for_crop(self, row) -> CropTruth | None:
        """``row``: a crop manifest row (image_id, width, height, crop_x0, crop_y0, crop_side)."""
        if not self.available or row["image_id"] not in self._pins:
            return None
        found = self._true_masks().for_pins(self._pins[row["image_id"]], int(row["width"]), int(row["height"]))
        if found is None:
            return None
        values = found.resized(int(row["width"]), int(row["height"]))
        x0, y0, side = int(row["crop_x0"]), int(row["crop_y0"]), int(row["crop_side"])
        return CropTruth(np.ascontiguousarray(values[y0:y0 + side, x0:x0 + side]), dict(found.patterns))
