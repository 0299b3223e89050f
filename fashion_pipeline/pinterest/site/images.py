"""Image files of the embedded site: drawn on first request, cached on disk, served from there.

One image hex owns up to four files under ``<root>/images/<ab>/<hex>/``: the original (jpg, png
or webp) and the 236x, 474x and 736x JPEG renditions. The first request for any of them draws the
original and its 236x thumbnail; the larger renditions are made from the original when first
asked for. A lock per hex serialises the work and every file is written atomically, so
concurrent requests and a killed server never leave a partial file. Originals of pins that "have
none" are still made (copies and renditions derive from them) but the server answers 403.

True garment masks (for the segmentation stage's quality numbers, never served): drawing a look's
original also writes ``<root>/masks[_scale<s>]/<hex>.png`` (the figure's ``GarmentTruth.mask`` at
the original's size: 1 upper, 2 lower, 3 full-body garment, 4 other clothing, 5 skin, 6 hair) and
``<hex>.json`` (content, outfit, the pattern type of each garment). ``ensure_mask`` makes them on
demand for any image, a copy's from its source's mask with the same crop, resize or border.

Looks are drawn with ``figures.RUNWAY_HARD`` (continuous skin tones, light gradients, backdrops close
to the garment's colour or printed, forearms across the body: issue 23); ``hard_looks=False`` draws
the easier looks of before, into caches of their own (``..._easy``).
"""
from __future__ import annotations

import argparse
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageOps

from fashion_pipeline.common.atomic import write_bytes
from fashion_pipeline.pinterest.site.catalog import RENDITIONS, ImageSpec, SiteCatalog

# Values of the true-mask PNGs (as ``fashion_pipeline.synthetic.figures.TRUTH_VALUES``; kept here so
# the site's server does not import the renderer before it draws).
TRUTH_VALUES = {"background": 0, "upper": 1, "lower": 2, "full": 3, "other_clothing": 4, "skin": 5, "hair": 6}

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}
GIF_FRAMES = 3  # an animated original: the picture, then two shifted copies of it
ORIGINAL_JPEG_QUALITY = 92
RENDITION_JPEG_QUALITY = 85


DEFAULT_DRAW_SCALE = 0.5


class ImageStore:
    """``draw_scale`` < 1 draws originals smaller and upscales them to the catalog size (as many
    re-uploaded Pinterest originals are): at 0.5 drawing costs about half, for softer originals."""

    def __init__(self, root_dir: Path, catalog: SiteCatalog, draw_scale: float = DEFAULT_DRAW_SCALE,
                 hard_looks: bool = True):
        if not 0.1 <= draw_scale <= 1.0:
            raise ValueError(f"draw_scale must be in [0.1, 1], got {draw_scale}")
        self.draw_scale = draw_scale
        self.hard_looks = hard_looks
        # The scale and the looks change the pixels, so each has its own cache.
        suffix = ("" if draw_scale == 1.0 else f"_scale{draw_scale:g}") + ("" if hard_looks else "_easy")
        self.root = Path(root_dir) / f"images{suffix}"
        self.catalog = catalog
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.mask_root = Path(root_dir) / f"masks{suffix}"
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

    def mask_path(self, spec: ImageSpec) -> Path:
        return self.mask_root / f"{spec.hex}.png"

    def ensure_mask(self, spec: ImageSpec) -> Path:
        """The image's true-mask PNG (and its ``.json`` labels beside it), made if missing."""
        path = self.mask_path(spec)
        if path.exists() and path.with_suffix(".json").exists():
            return path
        with self._lock_for(spec.hex):
            if path.exists() and path.with_suffix(".json").exists():
                return path
            if spec.source_hex is None:
                _image, truth = draw_with_truth(spec, self.draw_scale, self.hard_looks)
                self._write_mask(spec, truth)
            else:
                source = self.catalog.image(spec.source_hex)
                source_path = self.ensure_mask(source)  # sources are never copies: no lock cycle
                labels = json.loads(source_path.with_suffix(".json").read_text())
                with Image.open(source_path) as opened:
                    mask = derive_mask(opened.copy(), spec)
                self._write_mask(spec, (mask, labels["patterns"]))
        return path

    def _write_mask(self, spec: ImageSpec, truth: tuple[Image.Image, dict]) -> None:
        mask, patterns = truth
        if mask.size != spec.size:
            raise RuntimeError(f"mask of {spec.hex} is {mask.size}, the catalog promised {spec.size}")
        write_bytes(self.mask_path(spec), encode(mask, "png", 0))
        labels = {"image_hex": spec.hex, "content": spec.content, "outfit": spec.outfit, "patterns": patterns,
                  "width": spec.size[0], "height": spec.size[1], "values": TRUTH_VALUES}
        write_bytes(self.mask_path(spec).with_suffix(".json"), json.dumps(labels, sort_keys=True).encode())

    def _make_original(self, spec: ImageSpec, path: Path) -> None:
        started = time.perf_counter()
        if spec.source_hex is None:
            data = encode(draw(spec, self.draw_scale, self.hard_looks), spec.original_ext, ORIGINAL_JPEG_QUALITY)
            # Drawing gave the truth for free: write the mask now (cheap: one small PNG).
            with _drawn_truths_lock:
                truth = _drawn_truths.pop((spec.hex, self.draw_scale, self.hard_looks), None)
            if truth is not None and not self.mask_path(spec).exists():
                self._write_mask(spec, truth)
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


# (hex, scale, hard_looks) -> the truth of a picture ``draw`` just made, for the caller that writes its mask; bounded,
# because a caller that never asks (a thumbnail-only tool) must not grow it.
_drawn_truths: dict[tuple[str, float], tuple[Image.Image, dict]] = {}
_DRAWN_TRUTHS_MAX = 64
_drawn_truths_lock = threading.Lock()  # the server draws on several threads


def draw(spec: ImageSpec, scale: float = 1.0, hard_looks: bool = True) -> Image.Image:
    """Draw a runway look or a distractor with the shared synthetic figure renderer, at ``spec.size``.

    The picture's truth (``draw_with_truth``) is left in ``_drawn_truths`` for ``ImageStore`` to write.
    """
    image, truth = draw_with_truth(spec, scale, hard_looks)
    with _drawn_truths_lock:
        while len(_drawn_truths) >= _DRAWN_TRUTHS_MAX:
            _drawn_truths.pop(next(iter(_drawn_truths)))
        _drawn_truths[(spec.hex, scale, hard_looks)] = truth
    return image


def draw_with_truth(spec: ImageSpec, scale: float = 1.0, hard_looks: bool = True
                    ) -> tuple[Image.Image, tuple[Image.Image, dict]]:
    """The picture and its truth: (mask as an "L" image at ``spec.size``, pattern type per garment).

    ``hard_looks``: a look is drawn with ``figures.RUNWAY_HARD`` (False: the easier looks of before).

    A distractor has no labelled garment: its mask is all background and it has no patterns.
    """
    from fashion_pipeline.synthetic import figures

    rng = np.random.default_rng(spec.render_seed)
    size = (max(64, round(spec.size[0] * scale)), max(64, round(spec.size[1] * scale)))
    if spec.content == "look":
        image, _boxes, truth = figures.render_runway_look_with_truth(
            rng, size, outfit=spec.outfit, hard=figures.RUNWAY_HARD if hard_looks else None)
        mask, patterns = Image.fromarray(truth.mask, mode="L"), dict(truth.patterns)
    else:
        image = figures.render_distractor(rng, size, kind=spec.distractor_kind)
        mask, patterns = Image.new("L", size, 0), {}
    image = image.convert("RGB")
    if image.size != spec.size:
        image = image.resize(spec.size, Image.Resampling.BICUBIC)
        mask = mask.resize(spec.size, Image.Resampling.NEAREST)
    return image, (mask, patterns)


def derive_mask(source_mask: Image.Image, spec: ImageSpec) -> Image.Image:
    """A copy's true mask: the source's mask with the copy's geometry (its pixels' re-encoding changes nothing)."""
    if spec.copy_kind in ("identical", "reencoded"):
        return source_mask
    if spec.copy_kind == "resized":
        return source_mask.resize(spec.transform, Image.Resampling.NEAREST)
    if spec.copy_kind == "cropped":
        return source_mask.crop(spec.transform)
    if spec.copy_kind == "bordered":
        border, _grey = spec.transform
        return ImageOps.expand(source_mask, border=border, fill=0)
    raise ValueError(f"image {spec.hex}: cannot derive a mask for a copy of kind {spec.copy_kind!r}")


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
    elif ext == "gif":
        # Frame 0 is the picture (what pinimg's JPEG renditions show); later frames pan it, so a
        # reader that kept another frame, or blended them, would not match the renditions.
        rgb = image.convert("RGB")
        frames = [rgb] + [ImageChops.offset(rgb, 12 * k, 0) for k in range(1, GIF_FRAMES)]
        # One palette for all frames, by the fast octree: median cut took about 4 s per original.
        first = frames[0].quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        rest = [frame.quantize(palette=first, dither=Image.Dither.NONE) for frame in frames[1:]]
        first.save(buffer, format="GIF", save_all=True, append_images=rest, duration=120, loop=0)
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
