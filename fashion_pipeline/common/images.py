"""One way to decode an image: upright, as a browser or photo viewer shows it.

Phone cameras store the sensor's pixels as they came and record the camera's rotation in the
EXIF ``Orientation`` tag (1 = upright; 6 = turn 90 degrees clockwise to view; 3, 8, and the
mirrored 2, 4, 5, 7). Browsers (and so Pinterest's users) apply the tag; ``PIL.Image.open`` does
not. A stage that decodes without applying it sees a sideways person, and its boxes, crops and
masks no longer line up with another stage that does. Every stage therefore decodes through
``open_upright`` and records ``upright_size``; both apply the tag the same way
(``ImageOps.exif_transpose``). No stage decodes with OpenCV (``cv2.imread`` would apply the tag
itself unless given ``IMREAD_IGNORE_ORIENTATION``); GrabCut gets numpy arrays from this module.

Run ``python -m fashion_pipeline.common.images FILE...`` to print each file's stored size,
orientation and upright size.
"""
from __future__ import annotations

import argparse
import io
import os
from typing import BinaryIO, Union

from PIL import ExifTags, Image, ImageOps

Source = Union[str, os.PathLike, bytes, BinaryIO]
ORIENTATION_TAG = ExifTags.Base.Orientation
# Orientations whose upright picture is the stored one turned by 90 degrees: width and height swap.
SWAPS_SIDES = {5, 6, 7, 8}


def _file(source: Source):
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8) of an opened image; 1 when absent or not a valid value."""
    try:
        value = int(image.getexif().get(ORIENTATION_TAG, 1))
    except (TypeError, ValueError, OSError):  # a damaged EXIF block: show the pixels as stored
        return 1
    return value if 1 <= value <= 8 else 1


def upright_dimensions(image: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened, not yet drafted image as displayed (EXIF orientation applied)."""
    width, height = image.size
    return (height, width) if orientation(image) in SWAPS_SIDES else (width, height)


def upright_size(source: Source) -> tuple[int, int]:
    """(width, height) as displayed, read from the header and EXIF without decoding the pixels."""
    with Image.open(_file(source)) as image:
        return upright_dimensions(image)


def transpose_upright(image: Image.Image) -> Image.Image:
    """The opened image decoded and turned upright (a new image; the orientation tag removed)."""
    return ImageOps.exif_transpose(image)


def open_upright(source: Source, draft: tuple[str, tuple[int, int]] | None = None) -> Image.Image:
    """Decode ``source`` (a path, bytes or a binary file) upright; the file is closed on return.

    ``draft=(mode, (width, height))``: let JPEG decoding scale down by 1/2..1/8 while still at
    least that size *upright* (the request is turned with the picture). Raises what PIL raises for
    an unreadable or truncated file; callers name the file in their own errors.
    """
    with Image.open(_file(source)) as image:
        if draft is not None:
            mode, (width, height) = draft
            image.draft(mode, (height, width) if orientation(image) in SWAPS_SIDES else (width, height))
        return transpose_upright(image)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print stored size, EXIF orientation and upright size of images.")
    parser.add_argument("images", nargs="+")
    args = parser.parse_args(argv)
    status = 0
    for path in args.images:
        try:
            with Image.open(path) as image:
                stored, tag = image.size, orientation(image)
            print(f"{path}: stored {stored[0]}x{stored[1]}, orientation {tag}, upright {'x'.join(map(str, upright_size(path)))}")
        except (OSError, ValueError) as error:
            print(f"{path}: unreadable: {error}")
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
