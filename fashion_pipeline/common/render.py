"""Turn images, plots and tables into Markdown that the Dagster UI renders.

Images are embedded as base64 PNG ``data:`` URIs inside ``MetadataValue.md``.
Kept free of Dagster imports so plain modules and benchmarks can use it.
"""
from __future__ import annotations

import base64
import io
from typing import Iterable, Sequence

import numpy as np
from PIL import Image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def png_markdown(image: Image.Image, alt: str = "image") -> str:
    encoded = base64.b64encode(png_bytes(image)).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"


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
    if not items:
        return "_no images_"
    return png_markdown(image_grid(items, ncols=ncols, cell=cell), alt=alt)


def figure_markdown(figure, alt: str = "plot") -> str:
    """Render a matplotlib figure to PNG markdown and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
