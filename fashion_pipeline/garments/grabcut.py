"""Garment masks with GrabCut, initialised from the detector's box, keeping clothing only.

The seed document ("Fashion Fitting in Deep Learning") segments a garment with
``cv2.grabCut(img, mask, rect, bgdModel, fgdModel, n, cv2.GC_INIT_WITH_RECT)``: everything outside
the rectangle is background, everything inside "probably foreground", and GrabCut's colour models
(two 5-component GMMs, the (1, 65) arrays) and graph cut sort the inside out. From a full-body box
that also keeps the arms, legs, neck and hair: they are inside the box and unlike the background.

What we do instead (``method="clothing"``, the default), one crop at a time:

1. **The seed's cut.** ``GC_INIT_WITH_RECT`` from the detector's box widened by ``margin`` (a
   fraction of its size), ``iterations`` rounds, at full resolution or at most ``max_side`` px on the
   longer side when set (the mask is scaled back with nearest neighbour; GrabCut's cost grows with the
   pixel count, and on real photos a smaller work size lost garments close to the background's
   colours). This is the figure: garment, skin and hair.
2. **Body skin.** A skin-colour model in YCrCb (Cr in [``cr_min``, ``cr_max``], Cb in
   [``cb_min``, ``cb_max``], Y >= ``y_min``: the classic Chai & Ngan range) finds skin-coloured
   regions inside the box. One counts as the body's skin (arms, legs, neck, face) when at least
   ``skin_edge_share`` of its outline is background after the first cut: limbs and the neck lie at
   the silhouette's edge, while a skin-coloured part of a print is surrounded by the garment. A
   region larger than ``max_skin_region`` of the first cut is a garment in skin colours (beige,
   camel, tan), not a limb, and stays.
3. **Second cut.** The body's skin becomes sure background (``GC_BGD``) and GrabCut runs again
   with ``GC_INIT_WITH_MASK`` (half the rounds): both colour models are re-learnt without skin, and
   hair, which hangs against skin and background, mostly goes with them.
4. **Clean-up.** The skin is removed once more, a morphological opening removes speckles, and
   only connected components holding at least ``min_component`` of the foreground are kept. When
   that leaves less than ``min_kept_after_skin`` of the first cut, the second cut went wrong: the
   first cut minus the skin is used, or the first cut itself when the "skin" was most of it (a
   garment in skin-like colours, a print with skin-coloured stripes).

``method="rect"`` is the seed's plain ``GC_INIT_WITH_RECT`` call, and ``rectangle_mask`` is the
baseline without GrabCut (the box itself); both are in the benchmark.

Bad input never raises: a grayscale or tiny crop, a degenerate box, or a crop whose result is
empty is reported with a ``skip_reason`` (``grayscale``, ``tiny``, ``degenerate_box``, ``unreadable``,
``empty_mask``) and counted.

``python -m fashion_pipeline.garments.grabcut image.png --box 10 20 200 400 --out mask.png``
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SKIP_REASONS = ("unreadable", "grayscale", "tiny", "degenerate_box", "empty_mask")
METHODS = ("clothing", "rect")


@dataclass(frozen=True)
class GrabCutSettings:
    """Every knob of the segmentation. Issue 23 changed ``margin``, ``max_side``, ``cr_max``,
    ``max_skin_region`` and ``max_lost_beyond_skin``, chosen on the tuning halves only (embedded looks
    of even index, the real VITON and Fashionpedia photos marked ``tune``); ``bench/garment_masks.py`` measures the
    held-out halves and the Clothing Co-Parsing sample, which chose nothing (see the fixture's
    PROVENANCE.md for what was looked at when)."""

    method: str = "clothing"  # "clothing" (skin/head-aware seeding, default) or "rect" (the seed's plain call)
    iterations: int = 5  # GrabCut rounds (the seed's n)
    # The box is widened by this fraction of its width/height on each side. 0: a detector's or a
    # garment's box already holds the figure; widening it (0.04 before) let in background and cost
    # 0.01-0.03 IoU on the real tuning photos, nothing on the embedded ones.
    margin: float = 0.0
    # Work resolution: longer side in px (0: full resolution, the seed's call's). 192, then 256 before;
    # issue 23 found it the main loss on 800 px street photos. Chosen on the tuning photos larger than
    # 256 px (Fashionpedia's two runway photos, the embedded looks' tuning half): the mean of their mean
    # IoUs was best at full resolution (0.838; 384 px 0.818, 256 px 0.806), so no downscaling. GrabCut's
    # cost grows with the pixel count (two cuts: about twice the seed's call); the demo sets 384, the
    # best on the embedded tuning half alone (``garments.assets.DEMO_RUN_CONFIG``).
    max_side: int = 0
    min_side: int = 24  # crops smaller than this are skipped as "tiny"
    min_box_side: float = 8.0  # boxes narrower or shorter than this (px, in the crop) are "degenerate_box"
    skin_model: bool = True
    cr_min: int = 135
    cr_max: int = 165  # 180 before: burgundy, rust and orange cloth (Cr 165-180) counted as skin; skin stays below
    cb_min: int = 85
    cb_max: int = 135
    y_min: int = 40
    min_skin_area: float = 0.002  # skin-coloured regions smaller than this share of the box are ignored
    skin_edge_share: float = 0.2  # a skin-coloured region is skin when this share of its outline is background
    # A skin-coloured region larger than this share of the first cut is a garment in skin colours
    # (a beige trench coat, camel trousers), not an arm: the skin rule leaves it alone.
    max_skin_region: float = 0.4
    min_component: float = 0.05  # keep connected components with at least this share of the foreground
    opening_px: int = 2  # morphological opening radius at work resolution (0: none)
    max_lost_beyond_skin: float = 0.25  # the second cut may drop this share of the first cut beyond the skin
    min_kept_after_skin: float = 0.35  # below this share of the first cut left after the skin pass, skip the skin rule

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"margin must be in [0, 1], got {self.margin}")


@dataclass
class MaskResult:
    mask: np.ndarray | None  # H x W bool at the crop's size; None when skipped
    skip_reason: str | None
    seconds: float


def is_grayscale(image: np.ndarray) -> bool:
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    sample = image[:: max(1, image.shape[0] // 64), :: max(1, image.shape[1] // 64)].astype(np.int16)
    return bool(np.abs(sample[..., 0] - sample[..., 1]).max() <= 2 and np.abs(sample[..., 1] - sample[..., 2]).max() <= 2)


def skin_mask(rgb: np.ndarray, settings: GrabCutSettings = GrabCutSettings()) -> np.ndarray:
    """Pixels whose colour falls in the YCrCb skin range (H x W bool)."""
    import cv2

    ycrcb = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycrcb[..., 0], ycrcb[..., 1], ycrcb[..., 2]
    return ((cr >= settings.cr_min) & (cr <= settings.cr_max) & (cb >= settings.cb_min) & (cb <= settings.cb_max)
            & (y >= settings.y_min))


def rectangle_mask(shape: tuple[int, int], box, margin: float = 0.0) -> np.ndarray:
    """The baseline: every pixel of the (widened) box is garment."""
    x0, y0, x1, y1 = widened_box(box, shape, margin)
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def widened_box(box, shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """``box`` (x1, y1, x2, y2 floats) widened by ``margin`` of its size, as integer pixels inside ``shape``."""
    height, width = shape
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    x0 = int(np.clip(np.floor(x1 - dx), 0, width))
    y0 = int(np.clip(np.floor(y1 - dy), 0, height))
    xe = int(np.clip(np.ceil(x2 + dx), 0, width))
    ye = int(np.clip(np.ceil(y2 + dy), 0, height))
    return x0, y0, xe, ye


def segment(image: np.ndarray, box, settings: GrabCutSettings = GrabCutSettings()) -> MaskResult:
    """The garment mask of one RGB crop (H x W x 3 uint8) given its garment box (x1, y1, x2, y2) in crop pixels."""
    import cv2

    started = time.perf_counter()

    def skipped(reason: str) -> MaskResult:
        return MaskResult(None, reason, time.perf_counter() - started)

    if image is None or image.ndim not in (2, 3) or image.size == 0:
        return skipped("unreadable")
    height, width = image.shape[:2]
    if min(height, width) < settings.min_side:
        return skipped("tiny")
    if is_grayscale(image):
        return skipped("grayscale")
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        return skipped("degenerate_box")
    if not np.isfinite([x1, y1, x2, y2]).all():
        return skipped("degenerate_box")
    x1, x2 = max(x1, 0.0), min(x2, float(width))
    y1, y2 = max(y1, 0.0), min(y2, float(height))
    if x2 - x1 < settings.min_box_side or y2 - y1 < settings.min_box_side:
        return skipped("degenerate_box")

    scale = 1.0
    work = np.ascontiguousarray(image[..., :3])
    if settings.max_side and max(height, width) > settings.max_side:
        scale = settings.max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        work = cv2.resize(work, size, interpolation=cv2.INTER_AREA)
    work_box = (x1 * scale, y1 * scale, x2 * scale, y2 * scale)
    bgr = cv2.cvtColor(work, cv2.COLOR_RGB2BGR)
    # GrabCut's GMMs start from k-means on OpenCV's global RNG: reseed, so a crop's mask does not
    # depend on what this process segmented before (pool or not, any order).
    cv2.setRNGSeed(0)
    if settings.method == "rect":
        fg = _grabcut_rect(cv2, bgr, work_box, settings)
    else:
        fg = _grabcut_clothing(cv2, work, bgr, work_box, settings)
    if fg is None or not fg.any():
        return skipped("empty_mask")
    if scale != 1.0:
        fg = cv2.resize(fg.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
    return MaskResult(fg, None, time.perf_counter() - started)


def _grabcut_rect(cv2, bgr: np.ndarray, box, settings: GrabCutSettings) -> np.ndarray | None:
    """The seed's call: GC_INIT_WITH_RECT, background and foreground models of shape (1, 65)."""
    x0, y0, x1, y1 = widened_box(box, bgr.shape[:2], settings.margin)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    mask = np.zeros(bgr.shape[:2], np.uint8)
    bgd_model, fgd_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    rect = (x0, y0, x1 - x0, y1 - y0)
    if (x1 - x0) * (y1 - y0) >= bgr.shape[0] * bgr.shape[1]:  # the box is the whole crop: no background sample
        return np.ones(bgr.shape[:2], bool)
    cv2.grabCut(bgr, mask, rect, bgd_model, fgd_model, settings.iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def _grabcut_clothing(cv2, rgb: np.ndarray, bgr: np.ndarray, box, settings: GrabCutSettings) -> np.ndarray | None:
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = widened_box(box, (height, width), settings.margin)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    if (x1 - x0) * (y1 - y0) >= height * width:  # the box is the whole crop: no background sample
        return np.ones((height, width), bool)
    mask = np.zeros((height, width), np.uint8)
    bgd_model, fgd_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(bgr, mask, (x0, y0, x1 - x0, y1 - y0), bgd_model, fgd_model, settings.iterations,
                    cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # e.g. too few samples of one class for its GMM
        return None
    first = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    if not settings.skin_model:
        return _clean(cv2, first, settings)
    skin = body_skin(cv2, rgb, first, (x0, y0, x1, y1), settings)
    if not skin.any():
        return _clean(cv2, first, settings)
    # Skin is sure background now; GrabCut re-learns both colour models without it and cuts again.
    mask[skin] = cv2.GC_BGD
    if ((mask == cv2.GC_PR_FGD) | (mask == cv2.GC_FGD)).any():
        try:
            cv2.grabCut(bgr, mask, None, bgd_model, fgd_model, max(1, settings.iterations // 2),
                        cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            pass
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)) & ~skin
    # The second cut may only take away skin and a little more (hair): when it dropped more than
    # ``max_lost_beyond_skin`` of the first cut outside the skin, it took a garment close to the
    # background's colours with it (a white top on a white wall): the first cut without the skin.
    if (first & ~skin & ~fg).sum() > settings.max_lost_beyond_skin * first.sum():
        fg = first & ~skin
    least = settings.min_kept_after_skin * first.sum()
    # When the second cut (after clean-up) lost the garment with the skin: the first cut without the
    # skin, or, when the "skin" was most of the figure (a garment in skin-like colours or a print
    # with skin-coloured stripes), the first cut as it was.
    for candidate in (fg, first & ~skin):
        cleaned = _clean(cv2, candidate, settings)
        if cleaned.sum() >= least:
            return cleaned
    return _clean(cv2, first, settings)


def body_skin(cv2, rgb: np.ndarray, foreground: np.ndarray, box, settings: GrabCutSettings) -> np.ndarray:
    """The skin-coloured regions that are limbs, neck or face, not a skin-coloured part of a pattern.

    A pattern colour that happens to fall in the skin range (a check, a stripe, a dot) is surrounded by
    the pattern's other colour, so its outline lies almost all in the foreground; an arm, a leg or the
    neck lies at the silhouette's edge, so a good part of its outline is background. Each 4-connected
    skin-coloured region inside the box whose outline is at least ``skin_edge_share`` background (after
    the first GrabCut pass) counts as skin.
    """
    x0, y0, x1, y1 = box
    candidates = skin_mask(rgb, settings)
    candidates[:y0] = candidates[y1:] = False
    candidates[:, :x0] = candidates[:, x1:] = False
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates.astype(np.uint8), connectivity=4)
    skin = np.zeros(candidates.shape, bool)
    min_area = settings.min_skin_area * (x1 - x0) * (y1 - y0)
    # An arm, a leg or the neck is a small part of the figure; a skin-coloured region as big as a
    # good part of it is a beige, camel or tan garment (a coat, trousers), not skin.
    max_area = settings.max_skin_region * max(int(foreground.sum()), 1)
    kernel = np.ones((3, 3), np.uint8)
    height, width = candidates.shape
    for index in range(1, count):
        left, top, w, h, area = stats[index]
        if area < min_area or area > max_area:
            continue
        sx0, sy0 = max(left - 1, 0), max(top - 1, 0)
        sx1, sy1 = min(left + w + 1, width), min(top + h + 1, height)
        component = labels[sy0:sy1, sx0:sx1] == index
        ring = cv2.dilate(component.astype(np.uint8), kernel).astype(bool) & ~component
        # outside the crop counts as background too (a leg leaving the picture)
        touches_frame = (sx0 == 0 and component[:, 0].any()) or (sy1 == height and component[-1].any())
        if not ring.any():
            continue
        background_share = float((~foreground[sy0:sy1, sx0:sx1][ring]).mean())
        if background_share >= settings.skin_edge_share or (touches_frame and background_share >= settings.skin_edge_share / 2):
            skin[sy0:sy1, sx0:sx1] |= component
    return skin


def _clean(cv2, fg: np.ndarray, settings: GrabCutSettings) -> np.ndarray:
    out = fg.astype(np.uint8)
    if settings.opening_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * settings.opening_px + 1,) * 2)
        out = cv2.morphologyEx(out, cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(out, connectivity=8)
    if count <= 1:
        return out.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= settings.min_component * areas.sum()) + 1
    return np.isin(labels, keep)


def overlay(image: np.ndarray, mask: np.ndarray, colour=(40, 220, 90), strength: float = 0.45) -> np.ndarray:
    """The crop with its mask tinted, for the overlay grid (RGB uint8)."""
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    out = rgb[..., :3].astype(np.float32)
    out[mask] = (1 - strength) * out[mask] + strength * np.asarray(colour, np.float32)
    return out.astype(np.uint8)


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    union = np.logical_or(predicted, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(predicted, truth).sum() / union)


# ---------------------------------------------------------------- many crops, across cores


@dataclass(frozen=True)
class Job:
    """One crop to segment: files as absolute paths, ``box`` (x1, y1, x2, y2) in the crop's pixels."""

    image_id: str
    image_path: str
    mask_path: str
    box: tuple[float, float, float, float]


def read_rgb(path: str | Path) -> np.ndarray | None:
    """The image upright (EXIF orientation applied) as H x W x 3 uint8, its channels as stored (a grayscale
    file stays 2-D); None when unreadable."""
    from fashion_pipeline.common.images import open_upright

    try:
        opened = open_upright(path)
        return np.asarray(opened if opened.mode in ("L", "RGB") else opened.convert("RGB"))
    except (OSError, ValueError):
        return None


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """A 1-bit PNG: a 600 x 600 garment mask is a few KB."""
    import io

    from PIL import Image

    from fashion_pipeline.common.atomic import write_bytes

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask, bool)).save(buffer, format="PNG", optimize=True)
    write_bytes(path, buffer.getvalue())


def read_mask(path: str | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as opened:
        return np.asarray(opened.convert("L")) > 0


def run_job(job: Job, settings: GrabCutSettings) -> dict:
    """Segment one crop and write its mask; a bad crop gives a ``skip_reason``, never an exception."""
    image = read_rgb(job.image_path)
    result = segment(image, job.box, settings) if image is not None else MaskResult(None, "unreadable", 0.0)
    row = {"image_id": job.image_id, "skip_reason": result.skip_reason, "seconds": result.seconds,
           "area_fraction": float("nan")}
    if result.mask is not None:
        write_mask(job.mask_path, result.mask)
        row["area_fraction"] = float(result.mask.mean())
    return row


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only contend


def _run_chunk(jobs: list[Job], settings: GrabCutSettings) -> list[dict]:
    return [run_job(job, settings) for job in jobs]


def run_jobs(jobs: list[Job], settings: GrabCutSettings = GrabCutSettings(), workers: int = 0) -> list[dict]:
    """Every job's row, in order; ``workers`` processes (0: one per core, 1: in this process).

    GrabCut holds the GIL, so threads would not help; jobs go to the pool in chunks (a few
    per worker) to keep the pickling and scheduling small next to ~0.1 s of work per crop.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(jobs) <= 1:
        return _run_chunk(jobs, settings)
    size = max(1, len(jobs) // (workers * 4))
    chunks = [jobs[start:start + size] for start in range(0, len(jobs), size)]
    # spawn, not fork: the Dagster step process has threads, and a forked child may inherit a held lock.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
        return [row for rows in pool.map(_run_chunk, chunks, [settings] * len(chunks)) for row in rows]


def crop_box(row) -> tuple[float, float, float, float]:
    """A crop manifest row's detector box, in the crop's pixels."""
    x0, y0 = float(row["crop_x0"]), float(row["crop_y0"])
    return (float(row["box_x1"]) - x0, float(row["box_y1"]) - y0, float(row["box_x2"]) - x0, float(row["box_y2"]) - y0)


def main(argv: list[str] | None = None) -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description="Segment the garment inside a box of one image with GrabCut.")
    parser.add_argument("image", type=Path)
    parser.add_argument("--box", type=float, nargs=4, required=True, metavar=("X1", "Y1", "X2", "Y2"))
    parser.add_argument("--out", type=Path, required=True, help="mask PNG (255 = garment)")
    parser.add_argument("--method", choices=METHODS, default=GrabCutSettings.method)
    parser.add_argument("--iterations", type=int, default=GrabCutSettings.iterations)
    parser.add_argument("--margin", type=float, default=GrabCutSettings.margin)
    parser.add_argument("--max-side", type=int, default=GrabCutSettings.max_side)
    args = parser.parse_args(argv)
    settings = GrabCutSettings(method=args.method, iterations=args.iterations, margin=args.margin, max_side=args.max_side)
    from fashion_pipeline.common.images import open_upright

    image = np.asarray(open_upright(args.image).convert("RGB"))
    result = segment(image, args.box, settings)
    if result.mask is None:
        raise SystemExit(f"skipped: {result.skip_reason}")
    Image.fromarray(result.mask.astype(np.uint8) * 255).save(args.out)
    print(f"{args.out}: garment {result.mask.mean():.1%} of the image, {result.seconds * 1000:.0f} ms; "
          f"settings {asdict(settings)}")


if __name__ == "__main__":
    main()
