"""Image width and height from the file header, without decoding pixels.

JPEG (all of DeepFashion) is read by walking its markers to the start-of-frame segment: about
10-20 us a file, against about 55 us for ``PIL.Image.open(...).size``, which parses every table in
Python. Over 289,222 files that is the difference between ~5 s and ~16 s. Anything that is not a
plain JPEG, or whose frame header is not in the first bytes, or that carries an EXIF block (it
may hold an orientation), falls back to ``common.images.upright_size`` (PIL, which also reads
only the header): sizes are the upright ones every decoding stage sees.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from PIL import UnidentifiedImageError

from fashion_pipeline.common.images import upright_size

HEAD_BYTES = 2048  # JFIF/EXIF-less JPEGs have their frame header within the first few hundred bytes
# Start-of-frame markers (baseline, progressive, lossless, arithmetic); they carry height and width.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE_MARKERS = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})

Size = tuple[int, int]


def jpeg_size(head: bytes) -> Size | None:
    """(width, height) from the first bytes of a JPEG, or None when not found there."""
    if head[:2] != b"\xff\xd8":
        return None
    pos, end = 2, len(head)
    while pos + 4 <= end:
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        if marker == 0xE1 and head[pos + 4 : pos + 10] == b"Exif\x00\x00":
            return None  # may carry an orientation: the PIL fallback reads it (upright size)
        if marker in _SOF_MARKERS:
            if pos + 9 > end:
                return None
            height = int.from_bytes(head[pos + 5 : pos + 7], "big")
            width = int.from_bytes(head[pos + 7 : pos + 9], "big")
            return (width, height) if width and height else None
        pos += 2 + int.from_bytes(head[pos + 2 : pos + 4], "big")
    return None


def header_size(path: str | os.PathLike) -> Size | None:
    """(width, height) of one image, or None when the file is missing or not an image."""
    try:  # raw os.open/os.read: a buffered file object costs more than the parse itself
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        head = os.read(fd, HEAD_BYTES)
    except IsADirectoryError:
        return None
    finally:
        os.close(fd)
    size = jpeg_size(head)
    if size is not None:
        return size
    try:
        return upright_size(path)  # as displayed: EXIF orientation applied, as every stage decodes
    except (UnidentifiedImageError, OSError):
        return None


def header_sizes(paths: Sequence[str], workers: int = 4) -> list[Size | None]:
    """Sizes of many images. Files are read in a few threads (the reads release the GIL), one chunk per thread."""
    if not paths:
        return []
    workers = max(1, min(workers, len(paths) // 2000 + 1))
    chunk = (len(paths) + workers - 1) // workers
    chunks = [paths[start : start + chunk] for start in range(0, len(paths), chunk)]
    if len(chunks) == 1:
        return [header_size(path) for path in chunks[0]]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda part: [header_size(path) for path in part], chunks)
    return [size for part in results for size in part]

