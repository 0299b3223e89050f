"""Image files of the embedded site: drawn on first request, cached on disk, served from there.

One image hex owns up to four files under ``<root>/images/<ab>/<hex>/``: the original (jpg, png
or webp) and the 236x, 474x and 736x JPEG renditions. The first request for any of them draws the
original and its 236x thumbnail; the larger renditions are made from the original when first
asked for. A lock per hex serialises the work and every file is written atomically, so
concurrent requests and a killed server never leave a partial file. Originals of pins that "have
none" are still made (copies and renditions derive from them) but the server answers 403.
"""
from __future__ import annotations

import argparse
import io
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fashion_pipeline.common.atomic import write_bytes
from fashion_pipeline.pinterest.site.catalog import RENDITIONS, ImageSpec, SiteCatalog

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
ORIGINAL_JPEG_QUALITY = 92
RENDITION_JPEG_QUALITY = 85


DEFAULT_DRAW_SCALE = 0.5


class ImageStore:
    """``draw_scale`` < 1 draws originals smaller and upscales them to the catalog size (as many
    re-uploaded Pinterest originals are): at 0.5 drawing costs about half, for softer originals."""

    def __init__(self, root_dir: Path, catalog: SiteCatalog, draw_scale: float = DEFAULT_DRAW_SCALE):
        if not 0.1 <= draw_scale <= 1.0:
            raise ValueError(f"draw_scale must be in [0.1, 1], got {draw_scale}")
        self.draw_scale = draw_scale
        # The scale changes the pixels, so each scale has its own cache.
        self.root = Path(root_dir) / ("images" if draw_scale == 1.0 else f"images_scale{draw_scale:g}")
        self.catalog = catalog
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.rendered = 0  # originals drawn or derived by this process (not found in the cache)
        self.render_seconds = 0.0

    def file_path(self, spec: ImageSpec, size_name: str) -> Path:
        ext = spec.original_ext if size_name == "originals" else "jpg"
        # Only the validated hex and fixed size names reach the filesystem, never a raw URL.
        return self.root / spec.hex[:2] / spec.hex / f"{size_name}.{ext}"

    def read(self, spec: ImageSpec, size_name: str) -> bytes:
        return self.ensure(spec, size_name).read_bytes()

    def ensure(self, spec: ImageSpec, size_name: str) -> Path:
        """The file of one size, made (with the original first, and the thumbnail with it) if missing."""
        path = self.file_path(spec, size_name)
        if path.exists():
            return path
        with self._lock_for(spec.hex):
            original_path = self.file_path(spec, "originals")
            if not original_path.exists():
                self._make_original(spec, original_path)
                # Browsers ask for the 236x thumbnail first: make it now, it is cheap.
                self._make_rendition(spec, "236x", original_path)
            if not path.exists():
                self._make_rendition(spec, size_name, original_path)
        return path

    def _lock_for(self, image_hex: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(image_hex, threading.Lock())

    def _make_original(self, spec: ImageSpec, path: Path) -> None:
        started = time.perf_counter()
        if spec.source_hex is None:
            data = encode(draw(spec, self.draw_scale), spec.original_ext, ORIGINAL_JPEG_QUALITY)
        else:
            source = self.catalog.image(spec.source_hex)
            source_bytes = self.read(source, "originals")  # sources are never copies: no lock cycle
            if spec.copy_kind == "identical":
                data = source_bytes
            else:
                data = derive_copy(Image.open(io.BytesIO(source_bytes)).convert("RGB"), spec)
        write_bytes(path, data)
        with self._locks_guard:
            self.rendered += 1
            self.render_seconds += time.perf_counter() - started

    def _make_rendition(self, spec: ImageSpec, size_name: str, original_path: Path) -> None:
        """Always from the decoded original file, so a rendition never depends on request order."""
        target = spec.rendition_size(size_name)
        with Image.open(original_path) as image:
            if image.size != spec.size:
                raise RuntimeError(f"{original_path}: image is {image.size}, the catalog promised {spec.size}")
            image.draft("RGB", target)  # JPEG: decode at 1/2, 1/4 or 1/8 scale when that is still >= target
            small = image.convert("RGB").resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
        write_bytes(self.file_path(spec, size_name), encode(small, "jpg", RENDITION_JPEG_QUALITY))


def draw(spec: ImageSpec, scale: float = 1.0) -> Image.Image:
    """Draw a runway look or a distractor with the shared synthetic figure renderer, at ``spec.size``."""
    from fashion_pipeline.synthetic import figures

    rng = np.random.default_rng(spec.render_seed)
    size = (max(64, round(spec.size[0] * scale)), max(64, round(spec.size[1] * scale)))
    if spec.content == "look":
        image, _boxes = figures.render_runway_look(rng, size, outfit=spec.outfit)
    else:
        image = figures.render_distractor(rng, size, kind=spec.distractor_kind)
    image = image.convert("RGB")
    return image if image.size == spec.size else image.resize(spec.size, Image.Resampling.BICUBIC)


def derive_copy(source: Image.Image, spec: ImageSpec) -> bytes:
    """Re-encode, resize, crop or frame the source look; always a JPEG, like a re-upload."""
    quality = ORIGINAL_JPEG_QUALITY
    if spec.copy_kind == "reencoded":
        (quality,) = spec.transform
        image = source
    elif spec.copy_kind == "resized":
        image = source.resize(spec.transform, Image.Resampling.LANCZOS)
    elif spec.copy_kind == "cropped":
        image = source.crop(spec.transform)
    elif spec.copy_kind == "bordered":
        border, grey = spec.transform
        image = ImageOps.expand(source, border=border, fill=(grey, grey, grey))
    else:
        raise ValueError(f"image {spec.hex}: cannot derive a copy of kind {spec.copy_kind!r}")
    return encode(image, "jpg", quality)


def encode(image: Image.Image, ext: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if ext == "jpg":
        image.save(buffer, format="JPEG", quality=quality)
    elif ext == "png":
        image.save(buffer, format="PNG", compress_level=3)  # level 3: near-optimal size, much faster
    elif ext == "webp":
        image.save(buffer, format="WEBP", quality=quality, method=2)
    else:
        raise ValueError(f"unsupported image extension {ext!r}")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render (and time) the images of the embedded site's boards into a cache folder.")
    parser.add_argument("root_dir", type=Path)
    parser.add_argument("--brands", nargs="+", default=["Prada", "Chanel"])
    parser.add_argument("--pins", type=int, default=10, help="pins per board")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draw-scale", type=float, default=DEFAULT_DRAW_SCALE)
    args = parser.parse_args(argv)
    catalog = SiteCatalog(args.brands, args.pins, args.seed)
    store = ImageStore(args.root_dir, catalog, args.draw_scale)
    started = time.perf_counter()
    for board in catalog.boards.values():
        for pin in board.pins:
            store.ensure(pin.image, "originals")
    elapsed = time.perf_counter() - started
    print(f"{store.rendered} images made in {elapsed:.2f} s ({elapsed / max(store.rendered, 1) * 1000:.0f} ms each) under {store.root}")


if __name__ == "__main__":
    main()
