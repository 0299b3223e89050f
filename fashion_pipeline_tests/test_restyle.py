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


def test_edges_are_feathered_inwards_and_nothing_is_painted_outside():
    image, mask = _garment()
    white = np.full((64, 64, 3), 255, np.uint8)
    hard = restyle.restyle(image, mask, white, restyle.RestyleSettings(feather_px=0.0))
    soft = restyle.restyle(image, mask, white, restyle.RestyleSettings(feather_px=3.0))
    assert np.array_equal(hard[~mask], image[~mask]) and np.array_equal(soft[~mask], image[~mask])
    row = soft[50, 28:44, 0].astype(int)  # across the left edge: red rises smoothly from background to fabric
    assert (np.diff(row) >= -1).all() and len(set(row.tolist())) > 5
    assert soft[50, 30, 0] < hard[50, 30, 0]  # the first garment pixel is only partly repainted


def test_shading_ignores_the_background_next_to_the_garment():
    image, mask = _garment()
    image[20:80, 30:50] = (150, 150, 150)  # evenly lit garment ...
    image[~mask] = (0, 0, 0)  # ... on a black background
    flat = np.full((64, 64, 3), 200, np.uint8)
    out = restyle.restyle(image, mask, flat, restyle.RestyleSettings(feather_px=0.0, shade_blur=0.05))
    inside = out[mask][..., 0].astype(int)
    assert inside.max() - inside.min() <= 2  # no dark rim where the blur would have reached the background


def test_an_empty_mask_changes_nothing_and_sizes_must_agree():
    image, mask = _garment()
    assert np.array_equal(restyle.restyle(image, np.zeros_like(mask), _checker()), image)
    with pytest.raises(ValueError, match="differ in size"):
        restyle.restyle(image, mask[:50], _checker())


def test_tiles_keep_their_size_whatever_the_canvas():
    canvas = restyle.tile_pattern(_checker(), (90, 130), 32)
    assert canvas.shape == (90, 130, 3)
    assert np.allclose(canvas[:32, :32], canvas[32:64, 32:64]) and np.allclose(canvas[:32, :32], canvas[:32, 64:96])
    wide = restyle.tile_pattern(np.zeros((20, 40, 3), np.uint8), (50, 50), 20)  # a user's file keeps its aspect
    assert wide.shape == (50, 50, 3)


def _seam_jump(canvas: np.ndarray, at: int) -> float:
    """Mean colour step across column ``at`` relative to the mean step between neighbouring columns."""
    steps = np.abs(np.diff(canvas, axis=1)).mean(axis=(0, 2))
    return float(steps[at - 1] / steps.mean())


def test_seamless_tiles_hide_the_seams_of_a_non_periodic_pattern():
    ramp = np.zeros((64, 64, 3), np.uint8)
    ramp[...] = np.linspace(0, 255, 64).astype(np.uint8)[None, :, None]  # dark left, bright right: a hard seam
    hard = restyle.tile_pattern(ramp, (64, 128), 64)
    soft = restyle.tile_pattern(ramp, (64, 128), 64, seamless_fraction=0.25)
    assert _seam_jump(hard, 64) > 20
    assert _seam_jump(soft, 64) < 3
    assert np.allclose(soft[:, 24:40], hard[:, 24:40], atol=1e-6)  # the middle of the tile is unchanged
    tile = restyle.seamless(np.random.default_rng(0).random((32, 32, 3)), 0.25)
    # periodic: the step across the wrap is like any other step
    wrap_x, wrap_y = np.abs(tile[:, 0] - tile[:, -1]).mean(), np.abs(tile[0] - tile[-1]).mean()
    typical = np.abs(np.diff(tile, axis=1)).mean()
    assert wrap_x < 1.5 * typical and wrap_y < 1.5 * typical


def test_a_large_garment_gets_many_repeats_not_one_stretched_tile():
    image = np.full((400, 400, 3), 120, np.uint8)
    mask = np.zeros((400, 400), bool)
    mask[40:360, 100:300] = True  # a dress most of the crop high
    out = restyle.restyle(image, mask, _checker(), restyle.RestyleSettings(tile_fraction=0.1, feather_px=0.0))
    column = out[40:360, 200, 0].astype(int)
    changes = int((np.abs(np.diff(column)) > 60).sum())  # the checker's cells: 8 per tile, 8 tiles down the dress
    assert changes > 40
