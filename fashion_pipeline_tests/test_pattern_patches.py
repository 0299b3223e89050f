"""The patch sampler: windows inside the mask, labelled by the true garment, and the pattern-folder source."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fashion_pipeline.garments import patches
from fashion_pipeline.garments.truth import CropTruth


def test_window_sums_match_a_direct_count():
    mask = np.random.default_rng(0).random((20, 30)) > 0.4
    sums = patches.window_sums(mask, 5)
    assert sums.shape == (16, 26)
    assert sums[3, 7] == mask[3:8, 7:12].sum() and sums[15, 25] == mask[15:20, 25:30].sum()


def test_windows_lie_inside_the_mask_and_spread_out():
    mask = np.zeros((100, 100), bool)
    mask[20:80, 30:70] = True
    rng = np.random.default_rng(1)
    windows = patches.sample_windows(mask, 16, 10, rng, min_inside=1.0)
    assert len(windows) == 10
    for x, y in windows:
        assert mask[y:y + 16, x:x + 16].all()
    distinct = {(x, y) for x, y in windows}
    assert len(distinct) == 10
    for i, (x, y) in enumerate(windows):  # no two windows overlap by more than half in both directions
        for u, v in windows[i + 1:]:
            assert abs(x - u) >= 8 or abs(y - v) >= 8
    assert patches.sample_windows(mask, 70, 3, rng) == []  # no window of that size fits


def test_garment_patches_take_the_label_of_the_garment_under_them():
    image = np.zeros((120, 120, 3), np.uint8)
    image[:, :60] = (200, 30, 30)
    image[:, 60:] = (30, 30, 200)
    values = np.zeros((120, 120), np.uint8)
    values[10:110, 5:60] = 1  # upper: left half
    values[10:110, 60:115] = 2  # lower: right half
    values[10:40, 60:115] = 5  # skin over the top of the right half
    truth = CropTruth(values, {"upper": "stripes", "lower": "dots"})
    mask = values > 0  # GrabCut took the skin as garment too
    settings = patches.PatchSettings(patch_fraction=0.15, patches_per_crop=30, min_inside=1.0, min_labelled=0.97)
    found = patches.garment_patches(image, mask, settings, np.random.default_rng(0), truth)
    assert found and all(p.shape == (64, 64, 3) and p.dtype == np.uint8 for p, _, _ in found)
    for patch, label, (x, y, side) in found:
        window = values[y:y + side, x:x + side]
        assert mask[y:y + side, x:x + side].all()
        if label == "stripes":  # clean texture: (nearly) all of it on the striped garment
            assert (window == 1).mean() >= 0.97 and patch[..., 0].mean() > 4 * patch[..., 2].mean()
        elif label == "dots":
            assert (window == 2).mean() >= 0.97 and patch[..., 2].mean() > 4 * patch[..., 0].mean()
        else:  # on the skin, or across the seam between the two prints: no label
            assert max((window == 1).mean(), (window == 2).mean()) < 0.97
    labels = [label for _, label, _ in found]
    assert {"stripes", "dots"} <= set(labels) and None in labels  # some windows straddle the seam or the skin
    assert all(label is None for _, label, _ in patches.garment_patches(image, mask, settings, np.random.default_rng(0)))


def test_a_pattern_folder_gives_square_64px_patches(tmp_path):
    (tmp_path / "floral").mkdir()
    Image.new("RGB", (224, 300), (10, 200, 10)).save(tmp_path / "floral" / "a.jpg")
    Image.new("RGB", (50, 40), (200, 10, 10)).save(tmp_path / "floral" / "b.png")
    (tmp_path / "floral" / "notes.txt").write_text("not an image")
    out = patches.folder_patches(tmp_path, "floral")
    assert out.shape == (2, 64, 64, 3) and out.dtype == np.uint8
    assert out[0, 32, 32, 1] > 150 and out[1, 32, 32, 0] > 150


def test_pattern_folder_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "paisley")):
        patches.folder_patches(tmp_path, "paisley")
    (tmp_path / "leaves").mkdir()
    with pytest.raises(ValueError, match=r"leaves holds no images"):
        patches.folder_patches(tmp_path, "leaves")
    (tmp_path / "leaves" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match=r"cannot read pattern image .*broken\.jpg"):
        patches.folder_patches(tmp_path, "leaves")


def test_categories_come_from_the_environment(monkeypatch):
    assert patches.categories() == list(patches.DEFAULT_CATEGORIES)
    monkeypatch.setenv(patches.CATEGORIES_ENV_VAR, "floral, cheetah,paisley,,leaves")
    assert patches.categories() == ["floral", "cheetah", "paisley", "leaves"]


# ---------------------------------------------------------------- the structure measure (pattern_quality)

def _textures(kind: str, count: int, seed: int) -> np.ndarray:
    from fashion_pipeline.synthetic.figures import texture

    rng = np.random.default_rng(seed)
    return np.stack([texture(rng, (64, 64), rng.uniform(8, 16), kind) for _ in range(count)])


def test_descriptors_see_orientation_and_frequency():
    from fashion_pipeline.garments import pattern_quality

    wave = 127.5 + 120 * np.sin(2 * np.pi * np.arange(64) / 8)  # vertical stripes every 8 px: 1/8 cycle/px
    vertical = np.broadcast_to(wave[None, None, :, None], (1, 64, 64, 3)).round().astype(np.uint8)
    horizontal = vertical.transpose(0, 2, 1, 3)
    g = pattern_quality.grey(np.concatenate([vertical, horizontal]))
    orientation = pattern_quality.orientation_histogram(g)
    assert orientation[0, 0] + orientation[0, -1] > 0.9  # gradient along x: angle 0 (mod pi)
    middle = pattern_quality.ORIENTATION_BINS // 2
    assert orientation[1, middle - 1:middle + 1].sum() > 0.9  # along y: angle pi/2
    shares = pattern_quality.radial_power_shares(g)
    assert np.allclose(shares.sum(axis=1), 1.0)
    band = int(0.125 / 0.5 * pattern_quality.RADIAL_BINS)  # the fundamental's band
    assert shares[0, band] > 0.75 and shares[0].argmax() == band  # (the window leaks a little to its neighbours)
    flat = pattern_quality.describe(np.full((2, 64, 64, 3), 90, np.uint8))
    assert np.all(flat[:, :-1] == 0) and np.isfinite(flat).all()  # a solid has no structure, and no NaN


def test_structure_mmd_tells_a_print_from_its_blur_and_from_noise():
    from fashion_pipeline.garments import pattern_quality

    reals, same = _textures("stripes", 60, 1), _textures("stripes", 60, 2)
    noise = np.random.default_rng(0).integers(0, 256, (60, 64, 64, 3), dtype=np.uint8)
    close = pattern_quality.structure_mmd(same, reals, subsets=10)[0]
    blurred = pattern_quality.structure_mmd(pattern_quality.blurred(reals), reals, subsets=10)[0]
    noisy = pattern_quality.structure_mmd(noise, reals, subsets=10)[0]
    assert abs(close) < 0.03 and blurred > 0.15 and noisy > 0.15
    assert pattern_quality.structure_mmd(_textures("dots", 60, 3), reals, subsets=10)[0] > 3 * abs(close)
    assert 0 <= blurred <= 2  # the Gaussian kernel bounds MMD^2
    with pytest.raises(ValueError, match="at least 4"):
        pattern_quality.structure_mmd(reals[:3], reals)
