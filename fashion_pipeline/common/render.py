"""Turn images, plots and tables into Markdown that the Dagster UI renders.

Images are embedded as base64 ``data:`` URIs inside ``MetadataValue.md``.

Why thumbnails: Dagster's event log stores every byte of every materialization's
metadata, for every run, forever. Full-size base64 PNGs (a 64-image grid is ~1 MB)
have caused HTTP 413 errors from the webserver and overflowed database text
columns. The project rule is that a materialization writes at most 256 KB of
metadata in total, and an asset may carry 2-3 images plus tables, so every inline
image here is a small thumbnail: at most ``MAX_INLINE_SIDE`` px on its longest
side and at most ``MAX_INLINE_BYTES`` of base64 payload (see
``inline_image_markdown``, which all the ``*_markdown`` helpers go through). It is
encoded as PNG or JPEG, whichever is smaller, so ``png_markdown`` may emit a
``data:image/jpeg`` URI; the name is kept for callers.

Full-size images belong in files under the data root (``<data root>/<asset>/...``,
written with ``png_bytes`` + ``atomic.write_bytes``), referenced from metadata by
path (``MetadataValue.path``), never inlined.

Kept free of Dagster imports so plain modules and benchmarks can use it.
"""
from __future__ import annotations

import base64
import io
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

#: Most base64 characters one inline image may carry (the payload of its data URI).
MAX_INLINE_BYTES = 48 * 1024
#: Longest side, in pixels, of an inline image; larger images are downsized.
MAX_INLINE_SIDE = 384
#: JPEG quality tried first, then the lower ones, before the image is shrunk further.
JPEG_QUALITY = 80
_JPEG_FALLBACK_QUALITIES = (65, 50, 35, 25)
_SHRINK_FACTOR = 0.75
#: Images with at most this many distinct colours (plots: flat fills plus
#: anti-aliasing) also try a 256-colour palette PNG, exact when they have <= 256.
_PALETTE_MAX_COLOURS = 4096
#: DPI used to rasterise matplotlib figures for inline display.
FIGURE_DPI = 80


def png_bytes(image: Image.Image) -> bytes:
    """Full-resolution PNG encoding, for files written to disk (not for metadata)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _b64_len(n_bytes: int) -> int:
    return 4 * ((n_bytes + 2) // 3)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB or L, with any transparency composited onto white (JPEG has no alpha)."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _fit(image: Image.Image, side: int) -> Image.Image:
    """Downsize (Lanczos) so the longest side is at most ``side``; never upscale."""
    width, height = image.size
    longest = max(width, height)
    if longest <= side:
        return image
    scale = side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _encode(image: Image.Image, fmt: str, quality: int | None = None) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def encode_inline(image: Image.Image, max_side: int = MAX_INLINE_SIDE,
                  max_bytes: int = MAX_INLINE_BYTES) -> tuple[str, bytes] | None:
    """Thumbnail ``image`` for inlining: ``(mime type, encoded bytes)``.

    Downsizes to ``max_side`` (Lanczos, never upscaling), then keeps the smaller of
    PNG and JPEG (quality ``JPEG_QUALITY``); plot-like images with few colours also
    try a 256-colour palette PNG, which usually wins for flat-colour charts. While
    the base64 of that is over ``max_bytes`` it lowers the JPEG quality, then
    shrinks the image and tries again. Returns ``None`` only if not even a 1-pixel image fits in ``max_bytes``.
    """
    flat = _flatten(image)
    side = max(1, min(int(max_side), max(flat.size)))
    while True:
        thumb = _fit(flat, side)
        candidates = [("image/png", _encode(thumb, "PNG")),
                      ("image/jpeg", _encode(thumb, "JPEG", JPEG_QUALITY))]
        if thumb.mode == "RGB" and thumb.getcolors(_PALETTE_MAX_COLOURS) is not None:
            palette = thumb.quantize(256, method=Image.Quantize.MEDIANCUT)
            candidates.append(("image/png", _encode(palette, "PNG")))
        mime, data = min(candidates, key=lambda pair: len(pair[1]))
        if _b64_len(len(data)) <= max_bytes:
            return mime, data
        for quality in _JPEG_FALLBACK_QUALITIES:
            data = _encode(thumb, "JPEG", quality)
            if _b64_len(len(data)) <= max_bytes:
                return "image/jpeg", data
        if side == 1:
            return None
        side = max(1, min(side - 1, int(side * _SHRINK_FACTOR)))


def inline_image_markdown(image: Image.Image, alt: str = "image", max_side: int = MAX_INLINE_SIDE,
                          max_bytes: int = MAX_INLINE_BYTES) -> str:
    """Markdown for a thumbnail of ``image`` whose base64 payload is at most ``max_bytes``."""
    encoded = encode_inline(image, max_side=max_side, max_bytes=max_bytes)
    if encoded is None:
        return f"_{alt}: image omitted (over {max_bytes} bytes inline)_"
    mime, data = encoded
    return f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode('ascii')})"


def png_markdown(image: Image.Image, alt: str = "image") -> str:
    """Inline thumbnail of ``image`` (PNG or JPEG, whichever is smaller; see module doc)."""
    return inline_image_markdown(image, alt=alt)


def to_pil(item) -> Image.Image:
    """Accept a PIL image, an HxWx3 uint8 array, or a path."""
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(item).astype(np.uint8)).convert("RGB")
    with Image.open(item) as opened:
        return opened.convert("RGB")


def image_grid(items: Sequence, ncols: int = 8, cell: int = 96, pad: int = 2) -> Image.Image:
    """Tile images into one grid; each is letterboxed into a ``cell`` square."""
    n = max(len(items), 1)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    grid = Image.new("RGB", (ncols * (cell + pad) + pad, nrows * (cell + pad) + pad), "white")
    for index, item in enumerate(items):
        thumb = to_pil(item)
        thumb.thumbnail((cell, cell))
        row, col = divmod(index, ncols)
        x = pad + col * (cell + pad) + (cell - thumb.width) // 2
        y = pad + row * (cell + pad) + (cell - thumb.height) // 2
        grid.paste(thumb, (x, y))
    return grid


def grid_markdown(items: Sequence, ncols: int = 8, cell: int = 96, alt: str = "samples") -> str:
    """Inline thumbnail of ``image_grid(items)``; ``_no images_`` when empty."""
    if not items:
        return "_no images_"
    return inline_image_markdown(image_grid(items, ncols=ncols, cell=cell), alt=alt)


def figure_markdown(figure, alt: str = "plot") -> str:
    """Render a matplotlib figure at ``FIGURE_DPI`` to an inline thumbnail and close it."""
    import matplotlib.pyplot as plt

    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    finally:
        plt.close(figure)
    buffer.seek(0)
    with Image.open(buffer) as opened:
        opened.load()
        return inline_image_markdown(opened, alt=alt)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
