"""Every stage that decodes an image decodes it upright: a JPEG rotated by EXIF orientation.

A phone photo is stored as the sensor saw it, with the EXIF ``Orientation`` tag saying how to
turn it for viewing. The fixture is a real, non-square photo (fixtures/real/photos/coffee.jpg)
stored turned and tagged for each of the eight orientations; every stage's decoder must give
back the upright picture and record the upright width and height.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_pipeline.common import images

PHOTO = Path(__file__).parent / "fixtures" / "real" / "photos" / "coffee.jpg"
# Orientation -> the operation that turns the *upright* picture into what the camera stores
# (the inverse of the one a viewer applies, ImageOps.exif_transpose).
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # viewer turns it 90 degrees clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright() -> Image.Image:
    with Image.open(PHOTO) as opened:
        return opened.convert("RGB")


def rotated_jpeg(orientation: int) -> bytes:
    picture = upright()
    stored = picture if STORED_AS[orientation] is None else picture.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[images.ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def close_to_upright(array, reference: Image.Image | None = None) -> bool:
    """Same shape as the upright photo and nearly the same pixels (JPEG noise only)."""
    reference = np.asarray(reference or upright(), dtype=np.float32)
    array = np.asarray(array, dtype=np.float32)
    return array.shape == reference.shape and float(np.abs(array - reference).mean()) < 4.0


@pytest.fixture(params=[6, 8, 3, 2, 5, 7], ids=lambda o: f"orientation{o}")
def tagged(request, tmp_path) -> Path:
    path = tmp_path / f"photo_o{request.param}.jpg"
    path.write_bytes(rotated_jpeg(request.param))
    with Image.open(path) as raw:  # the file really is stored turned (else the test proves nothing)
        assert images.orientation(raw) == request.param
        if request.param in images.SWAPS_SIDES:
            assert raw.size == (upright().height, upright().width)
        assert not close_to_upright(raw.convert("RGB")) or request.param == 1
    return path


def test_open_upright_and_upright_size(tagged):
    assert close_to_upright(images.open_upright(tagged))
    assert close_to_upright(images.open_upright(tagged.read_bytes()))
    assert images.upright_size(tagged) == upright().size
    # The draft request is upright too: 140x60 upright fits libjpeg's 1/2 scale (150x100), whichever way
    # the file is stored; a request not turned with the picture would decode a turned file at full size.
    drafted = images.open_upright(tagged, draft=("RGB", (140, 60)))
    small = np.asarray(upright().resize((150, 100), Image.Resampling.BOX), dtype=np.float32)
    assert drafted.size == (150, 100) and np.abs(np.asarray(drafted, dtype=np.float32) - small).mean() < 8.0


def test_hashing_sees_the_upright_picture_and_records_upright_size(tagged, tmp_path):
    from fashion_pipeline.dedup import phash

    result = phash.hash_file(tagged)
    reference_path = tmp_path / "upright.png"
    upright().save(reference_path)
    reference = phash.hash_file(reference_path)
    assert result.error is None and (result.width, result.height) == upright().size
    assert bin(result.phash ^ reference.phash).count("1") <= 4
    thumbs = phash.thumbs_from_bytes([result.thumb, reference.thumb])
    assert phash.thumbnail_distance(thumbs[:1], thumbs[1:])[0] < 0.1


def test_detection_cropping_and_training_sets_decode_upright(tagged, tmp_path):
    from fashion_pipeline.gan import crops, detect, training_sets

    assert close_to_upright(detect._decode(tagged))
    assert np.array_equal(training_sets.load_square(tagged, 64).shape, (64, 64, 3))
    expected = training_sets.square_array(upright(), 64).astype(np.float32)
    assert np.abs(training_sets.load_square(tagged, 64).astype(np.float32) - expected).mean() < 6.0
    # a box in the upright picture's coordinates (the detector's) crops the same region
    row = {"image_id": "x", "file_path": tagged.name, "box_x1": 20, "box_y1": 30, "box_x2": 120, "box_y2": 150}
    out = crops._crop_one(tagged.parent, tmp_path / "crops", row)
    square = crops.square_box((20, 30, 120, 150), *upright().size)
    with Image.open(tmp_path / "crops" / "x.png") as crop:
        assert close_to_upright(crop.convert("RGB"), upright().crop(square))
    assert out["crop_side"] == square[2] - square[0]


def test_masks_and_patches_decode_upright(tagged, tmp_path):
    from fashion_pipeline.garments import grabcut, patches

    assert close_to_upright(grabcut.read_rgb(tagged))
    folder = tmp_path / "patterns" / "florals"  # a user's pattern folder: centre square, 64 x 64
    folder.mkdir(parents=True)
    (folder / "photo.jpg").write_bytes(tagged.read_bytes())
    picture = upright()
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    expected = picture.crop((left, top, left + side, top + side)).resize((patches.PATCH_SIZE,) * 2, Image.Resampling.LANCZOS)
    assert close_to_upright(patches.folder_patches(tmp_path / "patterns", "florals")[0], expected)


def test_download_records_the_upright_size(tagged):
    from fashion_pipeline.pinterest.download import DownloadSettings, validate_image

    info = validate_image(tagged.read_bytes(), "image/jpeg", "http://site/i/originals/x.jpg", DownloadSettings())
    assert (info.width, info.height) == upright().size


def test_deepfashion_sizes_and_detector_decode_agree(tagged, tmp_path):
    from fashion_pipeline.deepfashion import image_headers, preview
    from fashion_pipeline.detector.data import CocoDetectionDataset

    width, height = image_headers.header_size(tagged)
    assert (width, height) == upright().size
    document = {"info": {"image_root": str(tagged.parent)}, "categories": [{"id": 3, "name": "full"}],
                "images": [{"id": 1, "file_name": tagged.name, "width": width, "height": height}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 50, 50], "area": 2500, "iscrowd": 0}]}
    json_path = tmp_path / "coco.json"
    json_path.write_text(json.dumps(document))
    tensor = CocoDetectionDataset(json_path, image_root=str(tagged.parent)).read_image(0)
    assert tuple(tensor.shape) == (3, height, width)
    assert close_to_upright(tensor.permute(1, 2, 0).numpy())
    assert close_to_upright(preview._draw(tagged, []))


def test_a_plain_jpeg_is_left_as_stored(tmp_path):
    path = tmp_path / "plain.jpg"
    path.write_bytes(rotated_jpeg(1))
    assert images.upright_size(path) == upright().size and close_to_upright(images.open_upright(path))
    from fashion_pipeline.deepfashion.image_headers import jpeg_size

    plain = io.BytesIO()
    upright().save(plain, format="JPEG")
    assert jpeg_size(plain.getvalue()[:2048]) == upright().size  # the fast header walk still serves EXIF-less files
