"""The true garment masks the synthetic generator and the embedded site emit, and their lookup for crops."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from fashion_pipeline.garments.truth import CropTruths
from fashion_pipeline.pinterest.site.catalog import SiteCatalog, SiteMix
from fashion_pipeline.pinterest.site.images import TRUTH_VALUES, ImageStore
from fashion_pipeline.pinterest.site.masks import TrueMasks
from fashion_pipeline.synthetic import figures


def test_truth_comes_with_the_same_picture_and_marks_clothing_only():
    for outfit in ("full", "separates"):
        plain, boxes = figures.render_runway_look(np.random.default_rng(7), (200, 300), outfit)
        image, boxes_again, truth = figures.render_runway_look_with_truth(np.random.default_rng(7), (200, 300), outfit)
        assert np.array_equal(np.asarray(plain), np.asarray(image)) and boxes == boxes_again  # no extra random draws
        assert truth.mask.shape == (300, 200) and set(np.unique(truth.mask)) <= set(figures.TRUTH_VALUES.values())
        assert set(truth.patterns) == ({"full"} if outfit == "full" else {"upper", "lower"})
        assert set(truth.patterns.values()) <= set(figures.TEXTURES)
        for category_type, (x0, y0, x1, y1) in boxes:  # each garment's box is the tight box of its true pixels
            ys, xs = np.nonzero(truth.mask == category_type)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
        assert (truth.mask == figures.TRUTH_VALUES["skin"]).any()
        assert not (truth.garment_mask() & (truth.mask == figures.TRUTH_VALUES["skin"])).any()


def test_the_site_writes_masks_when_it_draws_and_redraws_missing_ones(tmp_path):
    catalog = SiteCatalog(["brand"], 4, seed=2, mix=SiteMix(distractor_rate=0.0, duplicate_rate=0.0))
    site = tmp_path / "pinterest_site"
    site.mkdir()
    truth = catalog.ground_truth()
    (site / "ground_truth.json").write_text(json.dumps({**truth, "true_masks": {"draw_scale": 0.5}}))
    store = ImageStore(site, catalog, draw_scale=0.5)
    pin_id, row = next(iter(truth["pins"].items()))
    spec = catalog.image(row["image_hex"])
    store.ensure(spec, "236x")
    mask_path = store.mask_path(spec)
    assert mask_path.is_file() and json.loads(mask_path.with_suffix(".json").read_text())["image_hex"] == spec.hex
    found = TrueMasks(site).for_pin(pin_id)
    assert found.mask.shape == (spec.size[1], spec.size[0]) and found.garment_mask().any()
    assert set(np.unique(found.mask)) <= set(TRUTH_VALUES.values())
    first = found.mask.copy()
    mask_path.unlink()
    again = TrueMasks(site)
    assert np.array_equal(again.for_pin(pin_id).mask, first) and again.drawn == 1  # deterministic redraw

    crop = {"image_id": "img", "width": spec.size[0], "height": spec.size[1], "crop_x0": 10, "crop_y0": 20, "crop_side": 100}
    truths = CropTruths(tmp_path, pd.DataFrame([{"image_id": "img", "pin_ids": [pin_id]}]))
    crop_truth = truths.for_crop(crop)
    assert np.array_equal(crop_truth.values, first[20:120, 10:110]) and crop_truth.patterns == found.patterns
    assert CropTruths(tmp_path / "elsewhere", pd.DataFrame()).for_crop(crop) is None  # a real scrape: no truth
