"""The true garment masks the synthetic generator and the embedded site emit, and their lookup for crops."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_pipeline.garments.truth import BOX_MARGIN, REAL_GARMENT_LABELS, CropTruths, real_samples
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


REAL = Path(__file__).resolve().parent / "fixtures" / "real" / "parsing"


def test_the_real_parsing_fixture_loads_with_its_splits_and_boxes():
    samples = real_samples(REAL)
    counts = {}
    for sample in samples:
        counts[(sample.source, sample.split)] = counts.get((sample.source, sample.split), 0) + 1
        assert sample.image.dtype == np.uint8 and sample.image.shape[:2] == sample.garment.shape
        ys, xs = np.nonzero(sample.garment)
        x1, y1, x2, y2 = sample.box
        # the box holds the whole garment with 5% of its size to spare on each side (where the image allows)
        assert x1 <= xs.min() and y1 <= ys.min() and x2 >= xs.max() + 1 and y2 >= ys.max() + 1
        width, height = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
        assert x1 == pytest.approx(max(0, xs.min() - BOX_MARGIN * width))
        assert y2 == pytest.approx(min(sample.garment.shape[0], ys.max() + 1 + BOX_MARGIN * height))
        assert 0.02 < sample.garment.mean() < 0.9  # clothing, not the whole picture or a speck
    assert counts == {("viton", "tune"): 20, ("viton", "test"): 20, ("cihp", "test"): 5, ("ccp", "out_of_sample"): 60,
                      ("fashionpedia", "tune"): 2}
    assert len(real_samples(REAL, sources={"cihp"})) == 5 and len(real_samples(REAL, splits={"tune"})) == 22


def test_real_garments_leave_out_skin_hair_and_shoes():
    # CCP labels 41 skin, 19 hair, 39 shoes; CIHP/LIP 13 face, 2 hair, 14/15 arms
    assert not {41, 19, 39} & set(REAL_GARMENT_LABELS["ccp"]) and not {2, 13, 14, 15} & set(REAL_GARMENT_LABELS["cihp"])
    sample = next(s for s in real_samples(REAL, sources={"ccp"}) if s.image_id == "0001")
    with Image.open(REAL / "ccp" / "labels" / "0001.png") as opened:
        labels = np.asarray(opened)
    assert not sample.garment[labels == 41].any() and sample.garment[labels == 5].all()  # skin out, the blouse in


def test_fashionpedia_garments_take_their_sleeves_and_leave_out_the_rest():
    """Fashionpedia draws a sleeve as a part of its garment, outside the dress's own polygon on 9813."""
    assert not {14, 16, 25, 26} & set(REAL_GARMENT_LABELS["fashionpedia"])  # glasses, hat, shoe, bag
    sample = next(s for s in real_samples(REAL, sources={"fashionpedia"}) if s.image_id == "000000009813")
    with Image.open(REAL / "fashionpedia" / "labels" / "000000009813.png") as opened:
        labels = np.asarray(opened)
    assert sample.image.shape[:2] == (1000, 618)  # high native resolution: what the work resolution is chosen on
    assert (labels == 33).sum() > 0.05 * (labels == 11).sum() and sample.garment[labels == 33].all()


def test_hard_looks_change_the_picture_not_the_truth_s_consistency():
    """``figures.RUNWAY_HARD`` (the embedded site's looks): the same label-map rules, other pixels; all off is
    the picture of before."""
    skin_tones = set(figures.SKIN_TONES)
    seen_skin, crossed = set(), 0
    for seed in range(12):
        outfit = "full" if seed % 2 else "separates"
        easy, _, easy_truth = figures.render_runway_look_with_truth(np.random.default_rng(seed), (200, 300), outfit)
        off, _, _ = figures.render_runway_look_with_truth(np.random.default_rng(seed), (200, 300), outfit,
                                                          hard=figures.HardLooks())
        assert np.array_equal(np.asarray(easy), np.asarray(off))
        image, boxes, truth = figures.render_runway_look_with_truth(np.random.default_rng(seed), (200, 300), outfit,
                                                                     hard=figures.RUNWAY_HARD)
        assert not np.array_equal(np.asarray(image), np.asarray(easy))
        for category_type, (x0, y0, x1, y1) in boxes:
            ys, xs = np.nonzero(truth.mask == category_type)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
        skin = truth.mask == figures.TRUTH_VALUES["skin"]
        # the skin's colour before the light gradient: the most common skin pixel of the easy picture is a
        # flat tone; the hard one is (almost never) one of the six
        colours, counts = np.unique(np.asarray(image)[skin].reshape(-1, 3), axis=0, return_counts=True)
        seen_skin.add(tuple(int(c) for c in colours[np.argmax(counts)]))
        # a forearm across the body: skin where the easy picture's garment is, below the shoulders
        crossed += bool((skin & easy_truth.garment_mask()).sum() > 20)
    assert len(seen_skin) == 12 and not seen_skin & skin_tones
    assert 1 <= crossed <= 10


def test_the_site_draws_hard_looks_by_default_and_keeps_easy_ones_apart(tmp_path):
    catalog = SiteCatalog(["brand"], 2, seed=2, mix=SiteMix(distractor_rate=0.0, duplicate_rate=0.0))
    spec = catalog.image(next(iter(catalog.ground_truth()["pins"].values()))["image_hex"])
    hard, easy = ImageStore(tmp_path, catalog, draw_scale=0.5), ImageStore(tmp_path, catalog, draw_scale=0.5, hard_looks=False)
    assert hard.root != easy.root and hard.mask_root != easy.mask_root
    pictures = []
    for store in (hard, easy):
        with Image.open(store.ensure(spec, "originals")) as opened:
            pictures.append(np.asarray(opened.convert("RGB")).astype(int))
        assert store.mask_path(spec).is_file()
    assert np.abs(pictures[0] - pictures[1]).mean() > 2  # the hard original is not the easy one


def test_a_bad_fixture_row_names_its_file_and_line(tmp_path):
    (tmp_path / "samples.csv").write_text("set,split,image_id,image,label\nviton,tune,a,a.jpg,a.png\nlip,tune,b,b.jpg,b.png\n")
    with pytest.raises(ValueError, match=r"samples\.csv:2: cannot read a\.jpg"):
        real_samples(tmp_path)
    with pytest.raises(ValueError, match=r"samples\.csv:3: unknown set 'lip'"):
        real_samples(tmp_path, sources={"cihp"})
    with pytest.raises(FileNotFoundError, match="samples.csv"):
        real_samples(tmp_path / "missing")
