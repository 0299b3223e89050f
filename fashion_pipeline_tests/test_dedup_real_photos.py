"""Dedup on real photographs (scikit-image's sample photos, fixtures/real/photos/PROVENANCE.md).

A greyscale, desaturated or sepia repost of a colour photo is the same picture and must merge;
the same garment in another colourway (the astronaut's orange suit turned blue or green) is a
different item and must stay apart, also when a greyscale copy of one of them is in the pool.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance, ImageOps

from fashion_pipeline.common.atomic import write_bytes, write_parquet
from fashion_pipeline.dedup import dataset, phash
from fashion_pipeline_tests.dedup_fixtures import jpeg_bytes

PHOTOS = Path(__file__).parent / "fixtures" / "real" / "photos"
LIMIT = dataset.DEFAULT_MAX_THUMB_DISTANCE


def photo(name: str) -> Image.Image:
    with Image.open(PHOTOS / f"{name}.jpg") as opened:
        return opened.convert("RGB")


def recolour_suit(image: Image.Image, shift: int) -> Image.Image:
    """The astronaut's orange suit (saturated orange pixels) in another colour: another colourway."""
    hsv = np.asarray(image.convert("HSV")).astype(int)
    suit = (hsv[..., 0] <= 30) & (hsv[..., 1] >= 90) & (hsv[..., 2] >= 40)
    assert 0.15 < suit.mean() < 0.5  # the suit, not the whole picture
    hsv[..., 0] = np.where(suit, (hsv[..., 0] + shift) % 256, hsv[..., 0])
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


def reencoded(image: Image.Image, quality: int = 85) -> Image.Image:
    from io import BytesIO

    return Image.open(BytesIO(jpeg_bytes(image, quality))).convert("RGB")


def signature(image: Image.Image):
    value, _, thumb = phash.signatures(image)
    return int(value), thumb[None]


def distances(a: Image.Image, b: Image.Image) -> tuple[int, float, float]:
    """(pHash bits, the old per-channel colour distance, the pipeline's verification distance)."""
    hash_a, thumb_a = signature(a)
    hash_b, thumb_b = signature(b)
    return (bin(hash_a ^ hash_b).count("1"), float(phash.colour_distance(thumb_a, thumb_b)[0]),
            float(phash.thumbnail_distance(thumb_a, thumb_b)[0]))


COPIES = {
    "greyscale": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "desaturated_80pct": lambda im: ImageEnhance.Color(im).enhance(0.2),
    "desaturated_50pct": lambda im: ImageEnhance.Color(im).enhance(0.5),
    "sepia": lambda im: ImageOps.colorize(ImageOps.grayscale(im), (40, 26, 13), (255, 240, 192)),
}


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("kind", sorted(COPIES))
def test_a_monochrome_or_desaturated_repost_matches_its_colour_photo(name, kind):
    original = photo(name)
    bits, _, distance = distances(original, reencoded(COPIES[kind](original)))
    assert bits <= dataset.DEFAULT_THRESHOLD
    assert distance <= LIMIT, f"{kind} copy of {name}: {distance:.3f}"


def test_the_old_colour_check_refused_the_greyscale_astronaut():
    """The defect as filed: pHash agrees, the per-channel colour distance does not."""
    original = photo("astronaut")
    bits, before, after = distances(original, reencoded(COPIES["greyscale"](original)))
    assert bits <= 2 and before > LIMIT and after < 0.1


@pytest.mark.parametrize("shift", [40, 85, 128, 170])
def test_colourways_of_the_suit_stay_apart(shift):
    original = photo("astronaut")
    recoloured = reencoded(recolour_suit(original, shift))
    bits, _, distance = distances(original, recoloured)
    assert bits <= dataset.DEFAULT_THRESHOLD  # pHash alone would merge them: same silhouette
    assert distance > LIMIT


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_ordinary_copies_still_match(name):
    original = photo(name)
    hsv = np.asarray(original.convert("HSV")).astype(int)
    hsv[..., 0] = (hsv[..., 0] + 20) % 256  # a mild colour cast (28 degrees)
    for copy in (reencoded(original, 40), original.resize((original.width // 2, original.height // 2)),
                 ImageEnhance.Color(original).enhance(1.4), reencoded(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"))):
        bits, _, distance = distances(original, copy)
        assert bits <= dataset.DEFAULT_THRESHOLD and distance <= LIMIT


def test_different_photos_stay_apart_even_in_grey():
    for a, b in (("astronaut", "coffee"), ("coffee", "chelsea"), ("astronaut", "chelsea")):
        grey_b = COPIES["greyscale"](photo(b).resize(photo(a).size))
        assert phash.thumbnail_distance(signature(photo(a))[1], signature(grey_b)[1])[0] > LIMIT


def _write_brand(root: Path, brand: str, images: dict[str, Image.Image]) -> None:
    rows = []
    for pin_id, image in images.items():
        data = jpeg_bytes(image, 90)
        digest = hashlib.sha256(data).hexdigest()
        relative = f"pinterest_images/{brand}/images/{digest}.jpg"
        write_bytes(root / relative, data)
        rows.append({"pin_id": pin_id, "page_url": f"http://site/pin/{pin_id}/", "image_url": f"http://site/{digest}.jpg",
                     "file_path": relative, "sha256": digest, "width": image.width, "height": image.height,
                     "brand": brand, "scraped_at": pd.Timestamp("2026-12-01T00:00:00Z")})
    write_parquet(root / "pinterest_images" / brand / "manifest.parquet", pd.DataFrame(rows))


def test_dataset_merges_grey_reposts_and_keeps_colourways_apart(tmp_path):
    astronaut = photo("astronaut")
    blue, green = recolour_suit(astronaut, 128), recolour_suit(astronaut, 85)
    big = astronaut.resize((512, 512), Image.Resampling.LANCZOS)
    _write_brand(tmp_path, "nasa", {"1": astronaut, "2": blue, "3": green})
    # reposts: a larger colour copy, a greyscale copy (it matches all three colourways on luminance),
    # a desaturated copy of the blue one, and unrelated photos in grey and in colour
    _write_brand(tmp_path, "repost", {"4": big, "5": COPIES["greyscale"](big), "6": ImageEnhance.Color(blue).enhance(0.2),
                                      "7": photo("coffee"), "8": COPIES["greyscale"](photo("chelsea"))})
    result, info = dataset.build_dataset(tmp_path, dataset.DedupSettings(workers=1))
    image_of = result.mapping.set_index("pin_id")["image_id"]
    assert image_of["1"] == image_of["4"]  # resized copy
    assert image_of["6"] == image_of["2"]  # desaturated copy of the blue colourway
    assert len({image_of["1"], image_of["2"], image_of["3"]}) == 3  # three colourways, three items
    assert image_of["5"] in {image_of["1"], image_of["2"], image_of["3"]}  # the grey copy joins one of them
    assert result.stats["grey_links_refused"] >= 1  # ... and is refused the others
    assert result.stats["unique_count"] == 5  # 3 colourways + coffee + the grey cat
    kept = result.manifest.set_index("image_id")
    grey_sha = result.mapping.set_index("pin_id").loc["5", "sha256"]
    assert grey_sha not in set(kept["sha256"])  # a colour copy is kept over the larger grey one
    assert kept.loc[image_of["1"], "width"] == 512
    ok, details = dataset.check_no_near_duplicates(info["published"].folder)
    assert ok, details
