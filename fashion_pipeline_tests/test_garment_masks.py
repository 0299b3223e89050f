"""The GrabCut wrapper: clothing only on a drawn figure, bad input skipped by reason, many crops across processes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pathlib import Path

from fashion_pipeline.garments import grabcut, truth

REAL = Path(__file__).resolve().parent / "fixtures" / "real" / "parsing"
SKIN, HAIR = (224, 172, 135), (40, 30, 25)


def _figure(size=(240, 320), background=(205, 210, 215)):
    """A figure on a plain background: head, hair, bare arms and legs, and a striped dress (the truth)."""
    width, height = size
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    cx = width // 2
    draw.ellipse((cx - 18, 20, cx + 18, 62), fill=SKIN)  # head
    draw.pieslice((cx - 20, 16, cx + 20, 50), 180, 360, fill=HAIR)
    draw.rectangle((cx - 6, 60, cx + 6, 74), fill=SKIN)  # neck
    for side in (-1, 1):
        draw.polygon([(cx + side * 40, 78), (cx + side * 52, 80), (cx + side * 66, 170), (cx + side * 56, 172)], fill=SKIN)
        draw.rectangle((cx + side * 8 - 7, 230, cx + side * 8 + 7, 300), fill=SKIN)  # legs
    dress = Image.new("L", size, 0)
    ImageDraw.Draw(dress).polygon([(cx - 42, 74), (cx + 42, 74), (cx + 34, 140), (cx + 62, 232), (cx - 62, 232),
                                   (cx - 34, 140)], fill=255)
    truth = np.asarray(dress) > 0
    stripes = np.zeros((height, width, 3), np.uint8)
    stripes[...] = (30, 60, 170)
    stripes[(np.arange(height) // 6) % 2 == 0] = (240, 240, 240)
    pixels = np.asarray(image).copy()
    pixels[truth] = stripes[truth]
    ys, xs = np.nonzero(truth | (np.abs(pixels.astype(int) - background).sum(2) > 0))
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)  # the whole figure, as a full-body detector gives it
    return pixels, box, truth


def test_a_drawn_figure_gives_its_dress_not_its_skin_or_hair():
    image, box, truth = _figure()
    result = grabcut.segment(image, box)
    assert result.skip_reason is None and result.mask.shape == truth.shape
    assert grabcut.iou(result.mask, truth) > 0.9
    # The seed's plain call keeps arms, legs and head: clearly worse than ours, and worse than 0.9.
    plain = grabcut.segment(image, box, grabcut.GrabCutSettings(method="rect"))
    assert grabcut.iou(plain.mask, truth) < grabcut.iou(result.mask, truth)
    assert grabcut.iou(grabcut.rectangle_mask(truth.shape, box), truth) < 0.7


def test_a_skin_coloured_dress_is_kept():
    image, box, truth = _figure()
    image[truth] = (230, 180, 150)  # the dress in the skin's own colour range
    result = grabcut.segment(image, box)
    assert result.mask is not None and (result.mask & truth).sum() > 0.5 * truth.sum()


@pytest.mark.parametrize("case, reason", [
    ("grayscale", "grayscale"), ("tiny", "tiny"), ("flat_box", "degenerate_box"), ("nan_box", "degenerate_box"),
    ("outside_box", "degenerate_box"), ("no_foreground", "empty_mask"), ("none", "unreadable")])
def test_bad_input_is_skipped_with_its_reason(case, reason):
    image, box, _ = _figure()
    if case == "grayscale":
        image = np.repeat(image.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    elif case == "tiny":
        image = image[:16, :16]
    elif case == "flat_box":
        box = (10, 50, 10.5, 200)
    elif case == "nan_box":
        box = (np.nan, 0, 50, 50)
    elif case == "outside_box":
        box = (500, 500, 600, 600)
    elif case == "no_foreground":
        image = np.full_like(image, 128)
        image[..., 0] = 140  # plain, not grey: the colour check passes and GrabCut finds nothing
    elif case == "none":
        image = None
    result = grabcut.segment(image, box)
    assert result.mask is None and result.skip_reason == reason


def test_run_jobs_in_a_pool_writes_the_same_masks_and_counts_skips(tmp_path):
    image, box, truth = _figure()
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(image[:, ::-1]).save(tmp_path / "b.png")
    Image.fromarray(image.mean(axis=2).astype(np.uint8)).save(tmp_path / "gray.png")  # 1-channel file
    (tmp_path / "broken.png").write_bytes(b"not a png")
    flipped = (image.shape[1] - box[2], box[1], image.shape[1] - box[0], box[3])
    jobs = [grabcut.Job(name, str(tmp_path / f"{name}.png"), str(tmp_path / "masks" / f"{name}.png"), b)
            for name, b in (("a", box), ("b", flipped), ("gray", box), ("broken", box))]
    pooled = grabcut.run_jobs(jobs, workers=2)
    mask_a = grabcut.read_mask(tmp_path / "masks" / "a.png")
    serial = grabcut.run_jobs(jobs, workers=1)
    assert [r["skip_reason"] for r in pooled] == [None, None, "grayscale", "unreadable"]
    assert [r["skip_reason"] for r in serial] == [r["skip_reason"] for r in pooled]
    assert np.array_equal(grabcut.read_mask(tmp_path / "masks" / "a.png"), mask_a)  # deterministic in any process
    assert grabcut.iou(mask_a, truth) > 0.9 and grabcut.iou(grabcut.read_mask(tmp_path / "masks" / "b.png"), truth[:, ::-1]) > 0.9
    assert (tmp_path / "masks" / "a.png").stat().st_size < 4000  # 1-bit PNG
    assert not (tmp_path / "masks" / "gray.png").exists()
    assert pooled[0]["area_fraction"] == pytest.approx(mask_a.mean())


def test_cli_writes_a_mask(tmp_path):
    image, box, truth = _figure()
    Image.fromarray(image).save(tmp_path / "figure.png")
    grabcut.main([str(tmp_path / "figure.png"), "--box", *map(str, box), "--out", str(tmp_path / "mask.png")])
    assert grabcut.iou(grabcut.read_mask(tmp_path / "mask.png"), truth) > 0.9


def _real_scores(samples, settings):
    scores = []
    for sample in samples:
        result = grabcut.segment(sample.image, sample.box, settings)
        scores.append(0.0 if result.mask is None else grabcut.iou(result.mask, sample.garment))
    return np.asarray(scores)


@pytest.mark.slow
def test_on_held_out_real_photos_ours_beats_the_seeds_plain_call():
    """The VITON photos the settings were not chosen on (``test``): ours' mean IoU above the seed's
    ``GC_INIT_WITH_RECT`` call at full resolution (bench: 0.849 against 0.819; its p10 is 0.01 lower).
    On the five CIHP crowd photos ours still loses to it (0.55 against 0.60) and only beats the box.
    (Clothing Co-Parsing, out of sample: 0.833 against 0.818 in the bench; too slow for a test at full
    resolution, about 6 s a photo.)"""
    held_out = truth.real_samples(REAL, sources={"viton"}, splits={"test"})
    ours = _real_scores(held_out, grabcut.GrabCutSettings())
    plain = _real_scores(held_out, grabcut.GrabCutSettings(method="rect", max_side=0))
    assert len(held_out) == 20 and ours.mean() > plain.mean() + 0.01
    assert np.percentile(ours, 10) > np.percentile(plain, 10) - 0.03
    crowd = truth.real_samples(REAL, sources={"cihp"})
    box = np.asarray([grabcut.iou(grabcut.rectangle_mask(s.garment.shape, s.box), s.garment) for s in crowd])
    assert _real_scores(crowd, grabcut.GrabCutSettings()).mean() > box.mean()


def test_a_burgundy_skirt_and_a_white_top_stay_garments_and_the_skin_still_goes():
    """Failure modes seen on real photos: cloth with Cr above skin's (burgundy, rust) counted as skin,
    and a second cut that dropped a garment close to the background's colour. With the settings before
    issue 23 this figure fell back to the whole first cut, arms and head included (IoU 0.63)."""
    image, box, truth_mask = _figure()
    height = image.shape[0]
    lower = truth_mask & (np.arange(height)[:, None] >= 140)
    image[lower] = (120, 30, 40)  # burgundy: Cr about 173, inside the old range (<= 180), outside skin's
    image[truth_mask & ~lower] = (238, 238, 236)  # a white top on the light grey background
    result = grabcut.segment(image, box)
    assert result.mask is not None
    assert (result.mask & lower).sum() > 0.8 * lower.sum()
    assert (result.mask & truth_mask & ~lower).sum() > 0.5 * (truth_mask & ~lower).sum()
    assert grabcut.iou(result.mask, truth_mask) > 0.9
    before = grabcut.GrabCutSettings(max_side=192, margin=0.04, max_skin_region=1.0, max_lost_beyond_skin=1.0, cr_max=180)
    assert grabcut.iou(grabcut.segment(image, box, before).mask, truth_mask) < 0.8
