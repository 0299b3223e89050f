"""Garment masks: ours against the seed's plain GrabCut call and the box, on real photos and on embedded looks.

Real photos: the parsing fixture (``fashion_pipeline_tests/fixtures/real/parsing``, provenance there):

- VITON test photos (LIP-style parses), split ``tune`` / ``test``: the settings were chosen on ``tune``;
- Fashionpedia's two sample runway photos (618x1000, 1000x1478; hand-drawn polygons), ``tune``: the
  work resolution was chosen on these (the VITON photos are 256 px: any ``max_side`` >= 256 is full
  resolution there);
- CIHP street photos (hand-labelled), all held out (``test``);
- Clothing Co-Parsing street photos (hand-labelled), ``out_of_sample``: the source of issue 23's
  figures, never used to choose anything.

The garment is the union of the source's garment labels; every method gets the same box, the
garment's tight box plus 5% per side (as issue 23 measured).

Embedded looks: ``--looks`` looks of the embedded site drawn into a temporary folder (the true
figure box, cropped as ``fullbody_crops`` does), even index ``tune``, odd ``held_out``; drawn twice,
as the site draws them now (``figures.RUNWAY_HARD``: continuous skin tones, light gradients,
backdrops close to the garment's colour or printed, forearms across the body) and as it drew them
before issue 23 (``easy``): the same figures, outfits and prints.

Methods, side by side in one run:

- the box itself as the mask;
- the seed's call: ``cv2.grabCut(GC_INIT_WITH_RECT)``, 5 rounds, at full resolution (issue 23's
  baseline) and at our work resolution;
- ours (``GrabCutSettings()``, the defaults) and ours with the defaults before issue 23
  (192 px, margin 0.04, Cr <= 180, no cap on a skin region's size or on what the second cut drops);
- on the tuning photos only, ours at other work resolutions (what chose ``max_side``).

A skipped crop scores IoU 0. Run: ``.venv/bin/python -m bench.garment_masks`` ->
``bench/results/garment_masks.{json,md}``; ``--quick`` skips the full-resolution and resolution rows.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from fashion_pipeline.common.atomic import write_json, write_text
from fashion_pipeline.common.render import markdown_table
from fashion_pipeline.garments import grabcut, truth

RESULTS = Path(__file__).resolve().parent / "results"
FIXTURE = Path(__file__).resolve().parents[1] / "fashion_pipeline_tests" / "fixtures" / "real" / "parsing"
G = grabcut.GrabCutSettings
PREVIOUS = G(max_side=192, margin=0.04, max_skin_region=1.0, max_lost_beyond_skin=1.0, cr_max=180)  # before issue 23
REAL_GROUPS = (("viton", "tune"), ("fashionpedia", "tune"), ("viton", "test"), ("cihp", "test"),
               ("ccp", "out_of_sample"))
SWEEP_GROUPS = ("fashionpedia tune",)  # the tuning photos larger than every swept side
SWEEP_SIDES = (256, 320, 384, 448, 512, 600, 0)


DEMO_SIDE = 384  # garments.assets.DEMO_RUN_CONFIG's work resolution: the best on the embedded tuning half


def _px(side: int) -> str:
    return f"{side} px" if side else "full resolution"


def methods(quick: bool) -> dict:
    """Name -> settings (None: the box as the mask), for the real photos."""
    ours = G()
    out = {"box (garment box + 5%)": None}
    if not quick:
        out["seed's call, full resolution"] = G(method="rect", max_side=0)
    if ours.max_side or quick:  # at full resolution the seed's call at our work resolution is the row above
        out[f"seed's call, {_px(ours.max_side)}"] = G(method="rect", max_side=ours.max_side)
    out["ours, before issue 23 (192 px, margin 0.04)"] = PREVIOUS
    out[f"ours (defaults: {_px(ours.max_side)})"] = ours
    return out


def embedded_methods() -> dict:
    """The embedded looks at the demo's work resolution (the full-resolution rows are in the tuning sweep)."""
    return {"box (figure box)": None, f"seed's call, {DEMO_SIDE} px": G(method="rect", max_side=DEMO_SIDE),
            "ours, before issue 23 (192 px, margin 0.04)": PREVIOUS,
            f"ours at the demo's {DEMO_SIDE} px": G(max_side=DEMO_SIDE)}


def resolutions(quick: bool) -> dict:
    return {} if quick else {f"ours at {_px(side)}": G(max_side=side) for side in SWEEP_SIDES}


def score(items, settings) -> dict:
    """``items``: (image, box, garment) triples. Mean and p10 IoU, skips, seconds per image."""
    ious, skipped, started = [], 0, time.perf_counter()
    for image, box, garment in items:
        if settings is None:
            ious.append(grabcut.iou(grabcut.rectangle_mask(garment.shape, box), garment))
            continue
        result = grabcut.segment(image, box, settings)
        skipped += result.mask is None
        ious.append(0.0 if result.mask is None else grabcut.iou(result.mask, garment))
    values = np.asarray(ious)
    return {"mean": round(float(values.mean()), 3), "p10": round(float(np.percentile(values, 10)), 3),
            "skipped": int(skipped), "n": len(values),
            "s_per_image": round((time.perf_counter() - started) / len(values), 3)}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or platform.machine()


def _score_task(task):
    import cv2

    cv2.setNumThreads(1)  # one core per process, as the pool's workers run
    group, name, items, settings = task
    found = score(items, settings)
    print(group, name, found, flush=True)
    return found


def rows_for(groups: dict, named: dict, workers: int = 1) -> tuple[list, dict]:
    """One table row per (group, method) and the same as JSON; ``workers`` processes score (group, method) pairs."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    tasks = [(group, name, items, settings) for group, items in groups.items() for name, settings in named.items()]
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_score_task, tasks))
    else:
        results = [_score_task(task) for task in tasks]
    rows, data = [], {}
    for (group, name, _items, _settings), found in zip(tasks, results):
        data.setdefault(group, {})[name] = found
        rows.append((group, name, found["mean"], found["p10"], f"{found['skipped']} of {found['n']}",
                     found["s_per_image"]))
    return rows, data


def main(argv: list[str] | None = None) -> None:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--looks", type=int, default=120, help="embedded looks drawn (half tune, half held out)")
    parser.add_argument("--quick", action="store_true", help="skip full-resolution and resolution-sweep rows")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes scoring (set, method) pairs at once (s/image then includes their contention)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # one core per process, as the pool's workers run
    load_before = os.getloadavg()[0]
    real = {f"{source} {split}": [(s.image, s.box, s.garment) for s in truth.real_samples(FIXTURE, {source}, {split})]
            for source, split in REAL_GROUPS}
    real_rows, real_data = rows_for(real, methods(args.quick), args.workers)
    sweep_rows, sweep_data = rows_for({k: v for k, v in real.items() if k in SWEEP_GROUPS}, resolutions(args.quick),
                                      args.workers)
    embedded = {}
    for looks, hard in (("hard looks (now)", True), ("easy looks (before)", False)):
        with tempfile.TemporaryDirectory() as folder:
            drawn = truth.drawn_crops(args.looks, folder, hard_looks=hard)
        embedded.update({f"embedded {split}, {looks}": [(c.image, c.box, c.garment) for c in drawn if c.split == split]
                         for split in ("tune", "held_out")})
    embedded_rows, embedded_data = rows_for(embedded, embedded_methods(), args.workers)
    device = (f"{cpu_model()}, {os.cpu_count()} CPU cores, no GPU, {args.workers} scoring process(es) (1-min load average "
              f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end: the machine was shared)")
    header = ["set", "mask", "IoU mean", "IoU p10", "skipped", "s/image"]
    markdown = "\n".join([
        "## Garment masks (`bench/garment_masks.py`)", "",
        f"Device: {device}. Date: {datetime.date.today().isoformat()}. A skipped crop counts as IoU 0.", "",
        "Real photos (the parsing fixture; the box is the garment's tight box + 5%; `tune` chose the settings "
        "(in-sample), `test` and CIHP are held out, CCP is out of sample):", "",
        markdown_table(header, real_rows), "",
        "Work resolution of ours on the tuning photos larger than 256 px (what chose `max_side`):" if sweep_rows else "",
        "",
        markdown_table(header, sweep_rows) if sweep_rows else "", "",
        f"Embedded looks ({args.looks} drawn, the true figure box; even index tune, odd held out; the same looks "
        "drawn hard, as the site draws them now, and easy, as before issue 23):", "",
        markdown_table(header, embedded_rows), ""])
    RESULTS.mkdir(exist_ok=True)
    write_text(RESULTS / "garment_masks.md", markdown)
    write_json(RESULTS / "garment_masks.json", {"device": device, "date": datetime.date.today().isoformat(),
                                                "real": real_data, "resolution": sweep_data,
                                                "embedded": embedded_data}, indent=1)
    print(markdown)


if __name__ == "__main__":
    main()
