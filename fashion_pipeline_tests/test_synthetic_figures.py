"""The shared figure drawer: deterministic, boxes tight around the labelled garment, classes distinct."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fashion_pipeline.synthetic import figures


@pytest.mark.parametrize("category_type", [1, 2, 3])
def test_garment_photo_is_deterministic_and_box_inside_image(category_type):
    first, box = figures.render_garment_photo(np.random.default_rng(7), category_type, (240, 280))
    again, box_again = figures.render_garment_photo(np.random.default_rng(7), category_type, (240, 280))
    assert box == box_again
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert first.size == (240, 280) and first.mode == "RGB"
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= 240 and 0 <= y0 < y1 <= 280
    assert (x1 - x0) >= 8 and (y1 - y0) >= 8


def test_garment_box_is_tight_around_the_garment_pixels():
    # the box edges must touch pixels that differ from the background just outside the box
    image, (x0, y0, x1, y1) = figures.render_garment_photo(np.random.default_rng(3), 3, (250, 300))
    pixels = np.asarray(image).astype(int)
    inside = pixels[y0:y1, x0:x1]
    assert inside.std() > 5  # a drawn garment, not an empty area


def test_shot_framing_differs_by_class():
    """Upper garments sit in the top of a waist-up shot, lower ones reach the bottom, full ones are tall."""
    rng = np.random.default_rng(0)
    size = (240, 280)
    tops = {t: [] for t in (1, 2, 3)}
    heights = {t: [] for t in (1, 2, 3)}
    for _ in range(15):
        for category_type in (1, 2, 3):
            _, (x0, y0, x1, y1) = figures.render_garment_photo(rng, category_type, size)
            tops[category_type].append(y0 / size[1])
            heights[category_type].append((y1 - y0) / size[1])
    assert np.mean(tops[2]) < 0.2  # lower garments start near the top edge of a waist-down shot
    assert np.mean(tops[1]) > 0.1  # upper garments start below the head
    assert np.mean(heights[3]) > 0.3


def test_runway_look_outfits_give_the_right_boxes():
    rng = np.random.default_rng(11)
    image, boxes = figures.render_runway_look(rng, (600, 900), "full")
    assert image.size == (600, 900)
    assert [category for category, _ in boxes] == [3]
    image, boxes = figures.render_runway_look(rng, (600, 900), "separates")
    assert sorted(category for category, _ in boxes) == [1, 2]
    upper = dict(boxes)[1]
    lower = dict(boxes)[2]
    assert upper[1] < lower[1]  # the top sits above the bottom
    with pytest.raises(ValueError, match="outfit"):
        figures.render_runway_look(rng, (600, 900), "swimwear")


@pytest.mark.parametrize("kind", figures.DISTRACTOR_KINDS)
def test_distractors_render(kind):
    image = figures.render_distractor(np.random.default_rng(5), (400, 600), kind)
    assert isinstance(image, Image.Image) and image.size == (400, 600)
    assert np.asarray(image).std() > 3


def test_unknown_inputs_are_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="category_type"):
        figures.render_garment_photo(rng, 4, (200, 200))
    with pytest.raises(ValueError, match="kind"):
        figures.render_distractor(rng, (200, 200), "car")


@pytest.mark.parametrize("kind", figures.TEXTURES)
def test_textures_have_the_requested_shape(kind):
    patch = figures.texture(np.random.default_rng(2), (40, 30), period=8, kind=kind)
    assert patch.shape == (40, 30, 3) and patch.dtype == np.uint8
    if kind != "solid":
        assert len(np.unique(patch.reshape(-1, 3), axis=0)) >= 2


def test_style_can_be_fixed_and_is_checked():
    image, box = figures.render_garment_photo(np.random.default_rng(1), 2, (240, 280), style="skirt")
    assert box[2] > box[0]
    with pytest.raises(ValueError, match="style 'skirt'"):
        figures.render_garment_photo(np.random.default_rng(1), 1, (240, 280), style="skirt")
