"""Near-duplicate quality of the dedup stage's pHash: precision and recall per transformation.

Base images are the natural pictures shipped by installed packages (scikit-image's data folder,
scikit-learn's sample images, matplotlib's sample data; scikit-image and scikit-learn are
benchmark-only dependencies), plus non-overlapping quarter tiles of the larger ones as extra
distinct negatives. Every base gets one copy per transformation (JPEG re-encodes, downscales to
the 236/474/736 px Pinterest widths, PNG<->JPEG, borders, crops, flips, colour shifts); each copy
is written to disk and hashed by ``fashion_pipeline.dedup.phash`` exactly as the pipeline does.

Recall of a transformation at threshold T: share of its copies within T bits of their base.
Precision at T: of all pairs the search returns over the whole pool (bases + all copies), the
share that really come from the same base; per transformation, FP counts that transformation's
copies paired with a different base.

Colourways: for every base with a clearly coloured region (its dominant hue among saturated
pixels covers >= 5 % of the picture), a *different item* is made by turning that region's hue by
120 degrees, as a garment in another colourway on the same silhouette. Each colourway counts as
its own source; "colourways kept apart" is the share not merged with the base they were made from.

The colour check runs twice side by side: ``before`` is the per-channel check alone
(``phash.colour_distance``, the pipeline's rule until 2026-12-01), ``after`` the pipeline's
``phash.thumbnail_distance`` (luminance when one side is black and white or desaturated, refusal
when hues disagree).

Run: ``.venv/bin/python -m bench.dedup_quality`` -> bench/results/dedup_quality.{json,md}
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from fashion_pipeline.common.atomic import write_json, write_text
from fashion_pipeline.common.render import markdown_table
from fashion_pipeline.dedup import phash
from fashion_pipeline.dedup.dataset import DEFAULT_MAX_THUMB_DISTANCE, DEFAULT_THRESHOLD
from fashion_pipeline.dedup.search import find_pairs, hamming

RESULTS = Path(__file__).resolve().parent / "results"
COLOURWAY_SOURCE = 1000
THRESHOLDS = [4, 6, 8, 10, 12, 14, 16]
# Near-identical to another base (stereo pair, grey copy of the same board): not distinct negatives.
SKIP = {"motorcycle_right.png", "chessboard_GRAY.png", "multipage.tif", "multipage_rgb.tif", "no_time_for_that_tiny.gif"}
# Left-right symmetric pictures: their left and right quarter tiles are mirror images, not distinct negatives.
NO_TILES = {"skimage/phantom", "skimage/retina"}


def base_images() -> dict[str, Image.Image]:
    images: dict[str, Image.Image] = {}
    import skimage

    data_dir = Path(skimage.__file__).parent / "data"
    for path in sorted(data_dir.iterdir()):
        if path.suffix.lower() in {".png", ".jpg", ".jpeg"} and path.name not in SKIP:
            images[f"skimage/{path.stem}"] = Image.open(path).convert("RGB")
    try:
        from sklearn.datasets import load_sample_images

        for name, array in zip(("china", "flower"), load_sample_images().images):
            images[f"sklearn/{name}"] = Image.fromarray(array)
    except ImportError:
        pass
    import matplotlib

    sample_dir = Path(matplotlib.get_data_path()) / "sample_data"
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        images[f"matplotlib/{Path(name).stem}"] = Image.open(sample_dir / name).convert("RGB")
    return images


def tiles(images: dict[str, Image.Image], min_side: int = 400) -> dict[str, Image.Image]:
    """Quarter tiles of the larger bases: distinct content, sometimes similar texture (hard negatives)."""
    out = {}
    for name, image in images.items():
        w, h = image.size
        if min(w, h) < min_side or name in NO_TILES:
            continue
        for k, (x, y) in enumerate([(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2)]):
            out[f"{name}#tile{k}"] = image.crop((x, y, x + w // 2, y + h // 2))
    return out


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _width(image: Image.Image, width: int) -> Image.Image:
    return image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.LANCZOS)


def _border(image: Image.Image, fraction: float) -> Image.Image:
    pad = max(1, round(fraction * min(image.size)))
    return ImageOps.expand(image, border=pad, fill=(255, 255, 255))


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    dx, dy = round(fraction * image.width), round(fraction * image.height)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def _shift_hue(image: Image.Image, shift: int) -> Image.Image:
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + shift) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


# name -> (transformation, file format the copy is saved in). Bases are saved as PNG.
TRANSFORMS = {
    "jpeg_q90": (lambda im: im, "JPEG90"),
    "jpeg_q70": (lambda im: im, "JPEG70"),
    "jpeg_q50": (lambda im: im, "JPEG50"),
    "jpeg_q30": (lambda im: im, "JPEG30"),
    "width_236": (lambda im: _width(im, 236), "JPEG85"),
    "width_474": (lambda im: _width(im, 474), "JPEG85"),
    "width_736": (lambda im: _width(im, 736), "JPEG85"),
    "jpeg_to_png": (lambda im: _jpeg(im, 80), "PNG"),
    "border_2pct": (lambda im: _border(im, 0.02), "JPEG85"),
    "border_5pct": (lambda im: _border(im, 0.05), "JPEG85"),
    "border_10pct": (lambda im: _border(im, 0.10), "JPEG85"),
    "crop_2pct": (lambda im: _crop(im, 0.02), "JPEG85"),
    "crop_5pct": (lambda im: _crop(im, 0.05), "JPEG85"),
    "crop_10pct": (lambda im: _crop(im, 0.10), "JPEG85"),
    "flip_lr": (ImageOps.mirror, "JPEG85"),
    "brightness_+20pct": (lambda im: ImageEnhance.Brightness(im).enhance(1.2), "JPEG85"),
    "contrast_-20pct": (lambda im: ImageEnhance.Contrast(im).enhance(0.8), "JPEG85"),
    "saturation_+40pct": (lambda im: ImageEnhance.Color(im).enhance(1.4), "JPEG85"),
    "hue_shift": (lambda im: _shift_hue(im, 20), "JPEG85"),
    "greyscale": (lambda im: ImageOps.grayscale(im).convert("RGB"), "JPEG85"),
    "desaturate_70pct": (lambda im: ImageEnhance.Color(im).enhance(0.3), "JPEG85"),
    "sepia": (lambda im: ImageOps.colorize(ImageOps.grayscale(im), (40, 26, 13), (255, 240, 192)), "JPEG85"),
}
COLOURWAY_SHIFT = 85  # of 256 hue steps: 120 degrees (orange -> blue, red -> green)
MIN_COLOURWAY_AREA = 0.05


def colourway(image: Image.Image) -> Image.Image | None:
    """The picture with its dominant saturated hue region recoloured by 120 degrees; None when it has none."""
    hsv = np.asarray(image.convert("HSV")).astype(int)
    saturated = (hsv[..., 1] >= 90) & (hsv[..., 2] >= 40)
    if saturated.mean() < MIN_COLOURWAY_AREA:
        return None
    mode = int(np.bincount(hsv[..., 0][saturated] // 8, minlength=32).argmax()) * 8 + 4
    region = saturated & (np.abs((hsv[..., 0] - mode + 128) % 256 - 128) <= 16)
    if region.mean() < MIN_COLOURWAY_AREA:
        return None
    hsv[..., 0] = np.where(region, (hsv[..., 0] + COLOURWAY_SHIFT) % 256, hsv[..., 0])
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


def _save(image: Image.Image, path: Path, fmt: str) -> Path:
    if fmt == "PNG":
        image.save(path.with_suffix(".png"), format="PNG")
        return path.with_suffix(".png")
    image.convert("RGB").save(path.with_suffix(".jpg"), format="JPEG", quality=int(fmt[4:]))
    return path.with_suffix(".jpg")


def build_pool(folder: Path) -> tuple[list[str], list[int], list[str]]:
    """Files, the source each comes from, and the transformation name ("base" for bases).

    A colourway is its own source (``1000 + base index``): merging it with its base is a false pair.
    """
    bases = base_images()
    bases.update(tiles(bases))
    files, source, kind = [], [], []
    for index, (name, image) in enumerate(sorted(bases.items())):
        recoloured = colourway(image)
        if recoloured is not None:
            files.append(str(_save(recoloured, folder / f"{index:03d}_colourway", "JPEG85")))
            source.append(COLOURWAY_SOURCE + index)
            kind.append("colourway")
        stem = f"{index:03d}"
        files.append(str(_save(image, folder / stem, "PNG")))
        source.append(index)
        kind.append("base")
        for t_name, (transform, fmt) in TRANSFORMS.items():
            files.append(str(_save(transform(image), folder / f"{stem}_{t_name}", fmt)))
            source.append(index)
            kind.append(t_name)
    return files, source, kind


def legacy_distance(a, b, mirror_b: bool = False) -> np.ndarray:
    """The colour check before 2026-12-01: per-channel standardised thumbnails only."""
    distance = phash.colour_distance(a, b)
    return np.minimum(distance, phash.colour_distance(a, b[:, :, ::-1])) if mirror_b else distance


CHECKS = {"before": legacy_distance, "after": phash.thumbnail_distance}


def evaluate(hashes, mirrors, thumbs, source, kind, use_mirrors: bool, thumb_limit: float | None,
             check: str = "after") -> dict:
    """Recall/precision per transformation and overall, for pHash (+ optional colour check)."""
    source, kind = np.asarray(source), np.asarray(kind)
    base_of = {s: i for i, (s, k) in enumerate(zip(source, kind)) if k == "base"}
    # a colourway's "base" is the picture it was recoloured from (for the kept-apart rate)
    base_index = np.array([base_of[s % COLOURWAY_SOURCE] for s in source])
    thumb_distance = CHECKS[check]
    distance = hamming(hashes, hashes[base_index])
    if use_mirrors:
        distance = np.minimum(distance, hamming(mirrors, hashes[base_index]))
    pairs = find_pairs(hashes, max(THRESHOLDS), mirrors=mirrors if use_mirrors else None)
    if thumb_limit is not None:
        # a failed colour check takes the pair out at every threshold
        distance = np.where(thumb_distance(thumbs, thumbs[base_index], use_mirrors) <= thumb_limit, distance, 99)
        agree = thumb_distance(thumbs[pairs.i], thumbs[pairs.j], use_mirrors) <= thumb_limit
        pairs = type(pairs)(pairs.i[agree], pairs.j[agree], pairs.distance[agree])
    same = source[pairs.i] == source[pairs.j]
    out = {"thresholds": THRESHOLDS, "thumb_limit": thumb_limit, "check": check if thumb_limit is not None else None,
           "transforms": {}, "overall": {}, "colourways_apart": {}}
    colourways = np.flatnonzero(kind == "colourway")
    for t in THRESHOLDS:
        out["colourways_apart"][t] = float((distance[colourways] > t).mean()) if len(colourways) else 1.0
    positives_total = sum(int((source == s).sum() * ((source == s).sum() - 1) / 2) for s in np.unique(source))
    # A colourway and a black-and-white copy of the picture it was made from have the same luminance:
    # no check can tell them apart, so these false pairs are counted separately (the clustering lets
    # such a grey copy join one colourway, never merge two: ``cluster.cluster_labels``).
    monochrome = np.isin(kind, ["greyscale", "sepia"])
    recoloured = kind == "colourway"
    grey_colourway = ((monochrome[pairs.i] & recoloured[pairs.j]) | (recoloured[pairs.i] & monochrome[pairs.j])) & (
        source[pairs.i] % COLOURWAY_SOURCE == source[pairs.j] % COLOURWAY_SOURCE)
    for t in THRESHOLDS:
        within = pairs.distance <= t
        tp, fp = int((within & same).sum()), int((within & ~same).sum())
        out["overall"][t] = {"tp_pairs": tp, "fp_pairs": fp, "precision": tp / (tp + fp) if tp + fp else 1.0,
                             "pair_recall": tp / positives_total, "fp_grey_vs_colourway": int((within & grey_colourway).sum())}
    for t_name in TRANSFORMS:
        members = np.flatnonzero(kind == t_name)
        d = distance[members]
        rows = {"median_distance": float(np.median(d)), "p90_distance": float(np.percentile(d, 90))}
        member_set = np.zeros(len(kind), dtype=bool)
        member_set[members] = True
        for t in THRESHOLDS:
            tp = int((d <= t).sum())
            involved = (member_set[pairs.i] | member_set[pairs.j]) & (pairs.distance <= t) & ~same
            fp = int(involved.sum())
            rows[t] = {"recall": tp / len(members), "precision": tp / (tp + fp) if tp + fp else 1.0, "fp_pairs": fp}
        out["transforms"][t_name] = rows
    return out


MODES = {  # report key -> (title, match mirrors, colour-check limit, which check)
    "plain": ("pHash alone", False, None, "after"),
    "before": (f"pHash + per-channel colour check <= {DEFAULT_MAX_THUMB_DISTANCE} (the rule before 2026-12-01)", False,
               DEFAULT_MAX_THUMB_DISTANCE, "before"),
    "verified": (f"pHash + colour/luminance/hue check <= {DEFAULT_MAX_THUMB_DISTANCE} (pipeline default)", False,
                 DEFAULT_MAX_THUMB_DISTANCE, "after"),
    "mirrors_verified": ("pHash + mirror hash + colour/luminance/hue check (match_mirrors=True)", True,
                         DEFAULT_MAX_THUMB_DISTANCE, "after"),
}
SWEEP = [0.15, 0.2, 0.25, 0.3, 0.4, None]
HARD = ["border_2pct", "crop_2pct", "crop_5pct", "hue_shift", "greyscale", "desaturate_70pct", "sepia"]


def sweep(hashes, mirrors, thumbs, source, kind) -> list[dict]:
    """At the default threshold: how the colour-check limit trades precision for recall, before and after."""
    rows = []
    for check in CHECKS:
        for limit in SWEEP:
            if limit is None and check == "before":
                continue  # no check at all is the same row either way
            result = evaluate(hashes, mirrors, thumbs, source, kind, False, limit, check)
            t = DEFAULT_THRESHOLD
            rows.append({"check": check if limit is not None else "off", "limit": limit,
                         "fp_pairs": result["overall"][t]["fp_pairs"],
                         "fp_grey_vs_colourway": result["overall"][t]["fp_grey_vs_colourway"], "precision": result["overall"][t]["precision"],
                         "pair_recall": result["overall"][t]["pair_recall"], "colourways_apart": result["colourways_apart"][t],
                         **{name: result["transforms"][name][t]["recall"] for name in HARD}})
    return rows


def markdown(report: dict) -> str:
    lines = ["## dedup_quality: pHash near-duplicate precision/recall", "",
             f"{report['n_bases']} base images ({report['n_natural']} natural pictures from {', '.join(report['sources'])} "
             f"+ {report['n_bases'] - report['n_natural']} quarter tiles), {len(TRANSFORMS)} transformations, "
             f"{report['n_colourways']} colourways (distinct items), {report['n_files']} files; hashing {report['hash_seconds']:.1f} s; "
             f"measured {report['measured']} on {report['device']}.", ""]
    if "sklearn" not in report["sources"]:
        lines += ["scikit-learn was not installed: its two sample photos are absent. Before and after below come from "
                  "the same run on the same files.", ""]
    lines += ["A black-and-white copy of a picture and a colourway of it have the same luminance, so no pairwise check "
              "can separate them (the false pairs in brackets). The clustering lets such a grey copy join one "
              "colourway, never merge two (`fashion_pipeline/dedup/cluster.py`, tested in "
              "`fashion_pipeline_tests/test_dedup_real_photos.py`).", ""]
    for mode, (title, _, _, _) in MODES.items():
        result = report[mode]
        lines.append(f"### {title}: recall (precision) per transformation")
        headers = ["transformation", "median d", *[f"T={t}" for t in THRESHOLDS]]
        rows = [[name, f"{v['median_distance']:.0f}", *[f"{v[t]['recall']:.2f} ({v[t]['precision']:.2f})" for t in THRESHOLDS]]
                for name, v in result["transforms"].items()]
        overall = result["overall"]
        rows.append(["**all pairs: precision**", "", *[f"{overall[t]['precision']:.3f} ({overall[t]['fp_pairs']} FP)" for t in THRESHOLDS]])
        rows.append(["**all pairs: recall**", "", *[f"{overall[t]['pair_recall']:.3f}" for t in THRESHOLDS]])
        rows.append(["**FP of which grey copy ~ colourway**", "", *[str(overall[t]["fp_grey_vs_colourway"]) for t in THRESHOLDS]])
        rows.append([f"**colourways kept apart** ({report['n_colourways']})", "",
                     *[f"{result['colourways_apart'][t]:.2f}" for t in THRESHOLDS]])
        lines += [markdown_table(headers, rows), ""]
    lines.append(f"### Colour-check limit at T={DEFAULT_THRESHOLD}, before and after, side by side: false pairs, "
                 "colourways kept apart, recall on the hard transformations")
    rows = [[r["check"], r["limit"] if r["limit"] is not None else "off", f"{r['fp_pairs']} ({r['fp_grey_vs_colourway']})",
             f"{r['precision']:.4f}",
             f"{r['pair_recall']:.3f}", f"{r['colourways_apart']:.2f}", *[f"{r[n]:.2f}" for n in HARD]] for r in report["sweep"]]
    lines += [markdown_table(["check", "limit", "FP pairs (grey copy ~ colourway)", "precision", "pair recall", "colourways apart", *HARD], rows), ""]
    lines.append(report["conclusion"])
    return "\n".join(lines) + "\n"


def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        files, source, kind = build_pool(Path(tmp))
        started = time.perf_counter()
        hashed = phash.hash_files(files, workers=min(2, os.cpu_count() or 1))
        hash_seconds = time.perf_counter() - started
    errors = [h for h in hashed if h.error]
    if errors:
        raise RuntimeError(f"benchmark files failed to hash: {errors[:3]}")
    hashes = np.array([h.phash for h in hashed], dtype=np.uint64)
    mirrors = np.array([h.phash_mirror for h in hashed], dtype=np.uint64)
    thumbs = phash.thumbs_from_bytes([h.thumb for h in hashed])
    report = {"n_bases": kind.count("base"), "n_colourways": kind.count("colourway"), "n_files": len(files),
              "hash_seconds": hash_seconds, "measured": time.strftime("%Y-%m-%d"), "device": device()}
    for mode, (_, use_mirrors, limit, check) in MODES.items():
        report[mode] = evaluate(hashes, mirrors, thumbs, source, kind, use_mirrors, limit, check)
    report["sweep"] = sweep(hashes, mirrors, thumbs, source, kind)
    natural = base_images()
    report["n_natural"] = len(natural)
    report["sources"] = sorted({name.split("/")[0] for name in natural})  # scikit-learn's two only when installed
    report["conclusion"] = conclusion(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "dedup_quality.json", report, indent=1)
    write_text(RESULTS / "dedup_quality.md", markdown(report))
    print(markdown(report))
    return report


def device() -> str:
    import platform

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, no GPU used"


def conclusion(report: dict) -> str:
    plain, before, after = report["plain"], report["before"], report["verified"]
    t = DEFAULT_THRESHOLD
    clean = [k for k in THRESHOLDS if plain["overall"][k]["fp_pairs"] == 0]
    largest = f"T={max(clean)}" if clean else "none of the thresholds tried"

    def line(name, result):
        o = result["overall"][t]
        tr = result["transforms"]
        return (f"{name}: {o['fp_pairs']} false pairs ({o['fp_grey_vs_colourway']} of them a black-and-white copy ~ a "
                f"colourway of its picture; precision {o['precision']:.4f}), pair recall {o['pair_recall']:.3f}, "
                f"greyscale recall {tr['greyscale'][t]['recall']:.2f}, desaturated {tr['desaturate_70pct'][t]['recall']:.2f}, "
                f"sepia {tr['sepia'][t]['recall']:.2f}, hue shift {tr['hue_shift'][t]['recall']:.2f}, "
                f"colourways kept apart {result['colourways_apart'][t]:.2f}")

    return (f"Measured {report['measured']} on {report['device']}. pHash alone: largest threshold with no false pair over "
            f"the whole pool is {largest}. At the default T={t}: {line('pHash alone', plain)}. "
            f"{line('Before (per-channel colour check)', before)}. {line('After (pipeline default)', after)}. "
            "Rationale for the defaults: `fashion_pipeline/dedup/dataset.py` docstring.\n")


if __name__ == "__main__":
    main()
