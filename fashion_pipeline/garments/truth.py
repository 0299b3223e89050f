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


# ---------------------------------------------------------------- real photos with parsing labels

# The label numbers that are garments (tops, bottoms, full-body and outer clothing) in each source's
# label map; skin, hair, face, shoes, hosiery, bags and accessories are not, as in the embedded
# site's truth. LIP (the VITON parses) numbers 10 "jumpsuits"; CIHP numbers 10 "torso-skin".
# Fashionpedia annotates a sleeve as a part of its garment, sometimes outside the garment's polygon.
REAL_GARMENT_LABELS = {
    "viton": {5: "upper-clothes", 6: "dress", 7: "coat", 9: "pants", 10: "jumpsuits", 12: "skirt"},
    "cihp": {5: "upper-clothes", 6: "dress", 7: "coat", 9: "pants", 12: "skirt"},
    "ccp": {4: "blazer", 5: "blouse", 6: "bodysuit", 8: "bra", 10: "cape", 11: "cardigan", 13: "coat", 14: "dress",
            22: "hoodie", 23: "intimate", 24: "jacket", 25: "jeans", 26: "jumper", 27: "leggings", 30: "panties",
            31: "pants", 35: "romper", 38: "shirt", 40: "shorts", 42: "skirt", 46: "suit", 48: "sweater",
            49: "sweatshirt", 50: "swimwear", 51: "t-shirt", 54: "top", 55: "vest"},
    # Fashionpedia's category id + 1 (the fixture's PNG; 0 is "no garment"): whole garments and sleeves.
    "fashionpedia": {1: "shirt, blouse", 2: "top, t-shirt, sweatshirt", 3: "sweater", 4: "cardigan", 5: "jacket",
                     6: "vest", 7: "pants", 8: "shorts", 9: "skirt", 10: "coat", 11: "dress", 12: "jumpsuit",
                     13: "cape", 33: "sleeve"},
}
REAL_SPLITS = ("tune", "test", "out_of_sample")
BOX_MARGIN = 0.05  # the box handed to the segmenter: the garment's tight box widened by 5% of its size per side


@dataclass(frozen=True)
class RealSample:
    """One real photo of the parsing fixture: its RGB pixels, true garment mask and the box a detector would give."""

    source: str  # "viton", "cihp", "ccp" or "fashionpedia"
    split: str  # "tune", "test" or "out_of_sample"
    image_id: str
    image: np.ndarray  # H x W x 3 uint8
    garment: np.ndarray  # H x W bool: the union of the source's garment labels
    box: tuple[float, float, float, float]  # x1, y1, x2, y2: tight garment box + BOX_MARGIN, inside the image


def garment_box(garment: np.ndarray, margin: float = BOX_MARGIN) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(garment)
    x1, y1, x2, y2 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = garment.shape
    return max(0.0, x1 - dx), max(0.0, y1 - dy), min(float(width), x2 + dx), min(float(height), y2 + dy)


def real_samples(folder: str | Path, sources=None, splits=None) -> list[RealSample]:
    """The fixture's samples (``samples.csv`` in ``folder``), filtered by source and split; a bad row names its line."""
    import csv

    from PIL import Image

    folder = Path(folder)
    manifest = folder / "samples.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} does not exist")
    samples = []
    with open(manifest, newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            where = f"{manifest}:{line}"
            if row.get("set") not in REAL_GARMENT_LABELS or row.get("split") not in REAL_SPLITS:
                raise ValueError(f"{where}: unknown set {row.get('set')!r} or split {row.get('split')!r}")
            if (sources and row["set"] not in sources) or (splits and row["split"] not in splits):
                continue
            try:
                with Image.open(folder / row["image"]) as opened:
                    image = np.asarray(opened.convert("RGB"))
                with Image.open(folder / row["label"]) as opened:
                    labels = np.asarray(opened)
            except (OSError, ValueError) as error:
                raise ValueError(f"{where}: cannot read {row['image']} / {row['label']}: {error}") from error
            if labels.shape != image.shape[:2]:
                raise ValueError(f"{where}: label map {labels.shape} does not match image {image.shape[:2]}")
            garment = np.isin(labels, tuple(REAL_GARMENT_LABELS[row["set"]]))
            if not garment.any():
                raise ValueError(f"{where}: {row['label']} has no garment pixels")
            samples.append(RealSample(row["set"], row["split"], row["image_id"], image, garment, garment_box(garment)))
    return samples


# ---------------------------------------------------------------- embedded looks drawn for the benchmark


@dataclass(frozen=True)
class DrawnCrop:
    """One embedded-site look, cut to its full-body square crop as ``fullbody_crops`` does around the true figure box."""

    image_id: str
    split: str  # "tune" (even index in the catalog's pin order) or "held_out" (odd)
    image: np.ndarray  # side x side x 3 uint8
    garment: np.ndarray  # side x side bool
    box: tuple[float, float, float, float]  # the figure's tight box (garments, skin, hair) in the crop


def drawn_crops(count: int, folder: str | Path, seed: int = 4, hard_looks: bool = True) -> list[DrawnCrop]:
    """``count`` looks of an embedded-site catalog (no distractors or copies), drawn into ``folder``.

    The box is the true figure box, where the demo has the detector's: the tuning/held-out split of
    GrabCut's settings needs the same looks every time, with no trained detector at hand.
    ``hard_looks`` False draws the easier looks the site drew before issue 23 (six flat skin tones,
    no light gradient, printed or garment-coloured backdrop, or crossed arms).
    """
    from PIL import Image

    from fashion_pipeline.gan import crops
    from fashion_pipeline.pinterest.site.catalog import SiteCatalog, SiteMix
    from fashion_pipeline.pinterest.site.images import ImageStore

    looks_only = SiteMix(distractor_rate=0.0, duplicate_rate=0.0, png_rate=0.0, webp_rate=0.0, missing_original_rate=0.0)
    catalog = SiteCatalog(["brand"], count, seed=seed, mix=looks_only)
    store = ImageStore(Path(folder), catalog, hard_looks=hard_looks)
    out = []
    for index, row in enumerate(catalog.ground_truth()["pins"].values()):
        spec = catalog.image(row["image_hex"])
        with Image.open(store.ensure(spec, "originals")) as opened:
            image = np.asarray(opened.convert("RGB"))
        with Image.open(store.ensure_mask(spec)) as opened:
            values = np.asarray(opened)
        ys, xs = np.nonzero(values > 0)
        x0, y0, x1, _ = crops.square_box((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), spec.size[0], spec.size[1])
        side = x1 - x0
        box = (float(xs.min() - x0), float(ys.min() - y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0))
        window = (slice(y0, y0 + side), slice(x0, x0 + side))
        out.append(DrawnCrop(spec.hex, "tune" if index % 2 == 0 else "held_out", np.ascontiguousarray(image[window]),
                             np.isin(values[window], tuple(GARMENT_NAMES)), box))
    return out
