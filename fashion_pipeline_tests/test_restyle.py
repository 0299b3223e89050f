"""Restyle compositing: the pattern inside the mask only, the garment's shading kept, soft edges."""
from __future__ import annotations

import numpy as np
import pytest

from fashion_pipeline.garments import restyle


def _garment():
    image = np.zeros((100, 100, 3), np.uint8)
    image[...] = (20, 160, 20)  # green background
    mask = np.zeros((100, 100), bool)
    mask[20:80, 30:70] = True
    image[mask] = (150, 150, 150)
    image[20:80, 30:50][...] = (75, 75, 75)  # the left half of the garment is in shadow (half as bright)
    return image, mask


def _checker(a=(250, 40, 40), b=(40, 40, 250)):
    pattern = np.zeros((64, 64, 3), np.uint8)
    pattern[...] = a
    pattern[(np.arange(64)[:, None] // 8 + np.arange(64)[None, :] // 8) % 2 == 1] = b
    return pattern


def test_the_pattern_goes_inside_the_mask_and_nowhere_else():
    image, mask = _garment()
    out = restyle.restyle(image, mask, _checker(), restyle.RestyleSettings(feather_px=1.0))
    far_outside = np.ones_like(mask)
    far_outside[15:85, 25:75] = False
    assert np.array_equal(out[far_outside], image[far_outside])
    inside = out[25:75, 55:65].astype(int)
    assert (inside[..., 0] > 150).any() and (inside[..., 2] > 150).any()  # both checker colours appear
    assert np.abs(inside[..., 1] - 160).min() > 60  # no green garment left


def test_shading_is_kept():
    image, mask = _garment()
    flat = np.full((64, 64, 3), 200, np.uint8)
    out = restyle.restyle(image, mask, flat, restyle.RestyleSettings(feather_px=0.0, shade_blur=0.001))
    shadow, lit = out[30:70, 32:46].mean(), out[30:70, 54:68].mean()
    assert shadow / lit == pytest.approx(0.5, abs=0.08)


def test_edges_are_feathered():
    image, mask = _garment()
    white = np.full((64, 64, 3), 255, np.uint8)
    hard = restyle.restyle(image, mask, white, restyle.RestyleSettings(feather_px=0.0))
    soft = restyle.restyle(image, mask, white, restyle.RestyleSettings(feather_px=3.0))
    assert np.array_equal(hard[50, 29], image[50, 29])  # just outside: untouched without feathering
    assert not np.array_equal(soft[50, 29], image[50, 29])  # blended with feathering
    row = soft[50, 24:36, 0].astype(int)  # across the left edge: red rises smoothly from background to fabric
    assert (np.diff(row) >= -1).all() and len(set(row.tolist())) > 5


def test_an_empty_mask_changes_nothing_and_sizes_must_agree():
    image, mask = _garment()
    assert np.array_equal(restyle.restyle(image, np.zeros_like(mask), _checker()), image)
    with pytest.raises(ValueError, match="differ in size"):
        restyle.restyle(image, mask[:50], _checker())


def test_tiles_keep_their_size_whatever_the_canvas():
    canvas = restyle.tile_pattern(_checker(), (90, 130), 32)
    assert canvas.shape == (90, 130, 3)
    assert np.allclose(canvas[:32, :32], canvas[32:64, 32:64]) and np.allclose(canvas[:32, :32], canvas[:32, 64:96])
