"""True garment masks of the embedded site's images, found from a downloaded pin.

The site writes ``<site root>/ground_truth.json`` (pins, their image hex and size, the catalog's
seed, brands and mix) and, whenever it draws a look, the look's true mask beside its image cache
(``images.ImageStore.ensure_mask``). ``TrueMasks`` answers "what is the true mask of the image
this pin showed": it rebuilds the catalog from the ground truth (a pure function of it, checked
against the file), so a mask missing from the cache (an image drawn before masks existed, a copy
whose mask was never asked for) is drawn again, deterministically, instead of being missing.

    truth = TrueMasks("data/pinterest_site")
    found = truth.for_pin("840864086631468536")   # -> PinTruth(mask HxW uint8, patterns, ...) or None

``python -m fashion_pipeline.pinterest.site.masks data/pinterest_site`` writes every board pin's mask.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_pipeline.pinterest.site.catalog import SiteCatalog, SiteMix
from fashion_pipeline.pinterest.site.images import DEFAULT_DRAW_SCALE, TRUTH_VALUES, ImageStore

GARMENT_VALUES = (TRUTH_VALUES["upper"], TRUTH_VALUES["lower"], TRUTH_VALUES["full"])
GARMENT_NAMES = {TRUTH_VALUES["upper"]: "upper", TRUTH_VALUES["lower"]: "lower", TRUTH_VALUES["full"]: "full"}


@dataclass(frozen=True)
class PinTruth:
    pin_id: str
    image_hex: str
    mask: np.ndarray  # H x W uint8, TRUTH_VALUES, at the pin's original size
    patterns: dict  # "upper" / "lower" / "full" -> pattern type
    copy_kind: str

    def garment_mask(self) -> np.ndarray:
        """Clothing only: the labelled garments (not skin, hair, shoes or the plain neutral clothes)."""
        return np.isin(self.mask, GARMENT_VALUES)

    def resized(self, width: int, height: int) -> np.ndarray:
        """The value mask at a downloaded file's size (a 736x rendition when the original was missing)."""
        if self.mask.shape == (height, width):
            return self.mask
        return np.asarray(Image.fromarray(self.mask).resize((width, height), Image.Resampling.NEAREST))


def catalog_from_ground_truth(truth: dict) -> SiteCatalog:
    """The catalog that wrote ``truth``; raises ValueError when it does not reproduce it."""
    boards = truth["boards"]
    brands = [board["brand"] for board in boards.values()]
    counts = {board["brand"]: len(board["pin_ids"]) for board in boards.values()}
    first_path = next(iter(boards.values()))["path"] if boards else "/runwayarchive/"
    user = first_path.strip("/").split("/")[0]
    catalog = SiteCatalog(brands, counts, truth["seed"], SiteMix(**truth["mix"]), user)
    rebuilt = catalog.ground_truth()
    if rebuilt["pins"] != truth["pins"]:
        raise ValueError("the ground truth does not come from this version of the embedded site's catalog "
                         f"(render_version {truth.get('render_version')}): its masks cannot be drawn again")
    return catalog


class TrueMasks:
    """The site's true masks, looked up by pin id; missing ones are drawn (deterministic) and cached."""

    def __init__(self, site_root: str | Path, draw_scale: float | None = None):
        self.site_root = Path(site_root)
        truth_path = self.site_root / "ground_truth.json"
        if not truth_path.is_file():
            raise FileNotFoundError(f"{truth_path} does not exist: no embedded site wrote its ground truth there")
        self.truth = json.loads(truth_path.read_text())
        scale = draw_scale or self.truth.get("true_masks", {}).get("draw_scale", DEFAULT_DRAW_SCALE)
        self._catalog: SiteCatalog | None = None
        self._store: ImageStore | None = None
        self.draw_scale = float(scale)
        self.drawn = 0

    @property
    def store(self) -> ImageStore:
        if self._store is None:
            self._catalog = catalog_from_ground_truth(self.truth)
            self._store = ImageStore(self.site_root, self._catalog, self.draw_scale)
        return self._store

    def pin_ids(self) -> list[str]:
        return list(self.truth["pins"])

    def for_pin(self, pin_id: str) -> PinTruth | None:
        """The pin's truth, or None when the ground truth does not know the pin."""
        row = self.truth["pins"].get(str(pin_id))
        if row is None:
            return None
        image_hex = row["image_hex"]
        folder = self.site_root / ("masks" if self.draw_scale == 1.0 else f"masks_scale{self.draw_scale:g}")
        path = folder / f"{image_hex}.png"
        if not (path.exists() and path.with_suffix(".json").exists()):
            spec = self.store.catalog.image(image_hex)
            path = self.store.ensure_mask(spec)
            self.drawn += 1
        labels = json.loads(path.with_suffix(".json").read_text())
        with Image.open(path) as opened:
            mask = np.asarray(opened.convert("L"))
        return PinTruth(str(pin_id), image_hex, mask, labels["patterns"], row["copy_kind"])

    def for_pins(self, pin_ids, width: int, height: int) -> PinTruth | None:
        """Of several pins showing one deduplicated image, the one whose geometry fits a ``width`` x ``height``
        file best (a cluster may hold a cropped or bordered copy); None when none is known."""
        best, best_error = None, None
        for pin_id in pin_ids:
            row = self.truth["pins"].get(str(pin_id))
            if row is None:
                continue
            error = abs(row["width"] / row["height"] - width / height)
            if best_error is None or error < best_error:
                best, best_error = pin_id, error
        return None if best is None else self.for_pin(best)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the true garment mask of every board pin of an embedded site's root.")
    parser.add_argument("site_root", type=Path, help="the folder holding ground_truth.json (data/pinterest_site)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many pins (0: all)")
    args = parser.parse_args(argv)
    truth = TrueMasks(args.site_root)
    started = time.perf_counter()
    pins = truth.pin_ids()[: args.limit or None]
    kinds: dict[str, int] = {}
    for pin_id in pins:
        for name in truth.for_pin(pin_id).patterns.values():
            kinds[name] = kinds.get(name, 0) + 1
    print(f"{len(pins)} pins, {truth.drawn} masks drawn in {time.perf_counter() - started:.1f} s; garments by pattern: {kinds}")


if __name__ == "__main__":
    main()
