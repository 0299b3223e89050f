"""Garment masks: GrabCut throughput, single process against ours, and mask IoU against the true masks.

Data: the demo's full-body crops (``<data root>/fullbody_crops``) with the embedded site's true
garment masks (clothing only), as ``garment_masks`` reads them; run ``make demo`` first.

Throughput (images per second, the same crops, the runs one after the other):

- reference: the seed's call (``cv2.grabCut`` with ``GC_INIT_WITH_RECT`` from the box, 5 rounds) at
  the crop's full resolution, one process, as a straightforward loop does it;
- the same call at our work resolution (192 px longest side), one process;
- ours (``method="clothing"``: two cuts and the skin model, 192 px), one process;
- ours in a process pool (``grabcut.run_jobs``), one worker per core.

Quality, on every crop with a true mask: IoU of the box as the mask (baseline), the seed's call and ours.

Run: ``.venv/bin/python -m bench.garment_masks [--data-root data]`` -> bench/results/garment_masks.{json,md}
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_pipeline.common.atomic import write_json, write_text
from fashion_pipeline.common.render import markdown_table
from fashion_pipeline.garments import grabcut
from fashion_pipeline.garments.truth import CropTruths

RESULTS = Path(__file__).resolve().parent / "results"


def load(data_root: Path) -> tuple[pd.DataFrame, CropTruths]:
    crops_path = data_root / "fullbody_crops" / "manifest.parquet"
    if not crops_path.is_file():
        raise SystemExit(f"{crops_path} does not exist: run `make demo` first (or pass --data-root)")
    truths = CropTruths(data_root, pd.read_parquet(data_root / "pinterest_dataset" / "manifest.parquet"))
    if not truths.available:
        raise SystemExit(f"{data_root} has no embedded site ground truth: the IoU needs the embedded data")
    return pd.read_parquet(crops_path), truths


def jobs_for(crops: pd.DataFrame, data_root: Path, out_dir: Path) -> list[grabcut.Job]:
    return [grabcut.Job(r["image_id"], str(data_root / r["crop_path"]), str(out_dir / f"{r['image_id']}.png"),
                        grabcut.crop_box(r)) for r in crops.to_dict("records")]


def throughput(jobs: list[grabcut.Job], settings: grabcut.GrabCutSettings, workers: int) -> float:
    started = time.perf_counter()
    grabcut.run_jobs(jobs, settings, workers)
    return len(jobs) / (time.perf_counter() - started)


def ious(crops: pd.DataFrame, data_root: Path, truths: CropTruths, settings: grabcut.GrabCutSettings | None,
         workers: int) -> np.ndarray:
    """IoU per crop with a true mask; ``settings`` None: the box itself is the mask. A skipped crop scores 0."""
    with tempfile.TemporaryDirectory() as folder:
        jobs = jobs_for(crops, data_root, Path(folder))
        rows = grabcut.run_jobs(jobs, settings, workers) if settings is not None else [None] * len(jobs)
        scores = []
        for record, job, row in zip(crops.to_dict("records"), jobs, rows):
            truth = truths.for_crop(record)
            if truth is None:
                continue
            if settings is None:
                predicted = grabcut.rectangle_mask(truth.values.shape, job.box)
            elif row["skip_reason"] is None:
                predicted = grabcut.read_mask(job.mask_path)
            else:
                predicted = np.zeros(truth.values.shape, bool)
            scores.append(grabcut.iou(predicted, truth.garment))
    return np.asarray(scores)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--speed-crops", type=int, default=48, help="crops timed per method (full resolution: a third)")
    args = parser.parse_args(argv)
    data_root = args.data_root.resolve()
    crops, truths = load(data_root)
    workers = os.cpu_count() or 1
    full = grabcut.GrabCutSettings(method="rect", max_side=0)
    seed_call = grabcut.GrabCutSettings(method="rect")
    ours = grabcut.GrabCutSettings()
    sample = crops.sample(min(args.speed_crops, len(crops)), random_state=0)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        jobs = jobs_for(sample, data_root, Path(folder))
        speed = {
            "reference: seed's call, full resolution, 1 process": throughput(jobs[: max(2, len(jobs) // 3)], full, 1),
            "seed's call, 192 px, 1 process": throughput(jobs, seed_call, 1),
            "ours (clothing), 192 px, 1 process": throughput(jobs, ours, 1),
            f"ours (clothing), 192 px, pool of {workers}": throughput(jobs, ours, workers),
        }
    quality = {"box as the mask (baseline)": ious(crops, data_root, truths, None, workers),
               "seed's call (GC_INIT_WITH_RECT), 192 px": ious(crops, data_root, truths, seed_call, workers),
               "ours (clothing)": ious(crops, data_root, truths, ours, workers)}
    reference = next(iter(speed.values()))
    speed_rows = [(name, round(value, 2), f"{value / reference:.1f}x") for name, value in speed.items()]
    quality_rows = [(name, round(float(v.mean()), 3), round(float(np.percentile(v, 10)), 3), len(v))
                    for name, v in quality.items()]
    device = f"{cpu_model()}, {workers} CPU cores, no GPU (1-min load average {load_before:.1f} at the start, "\
             f"{os.getloadavg()[0]:.1f} at the end: the machine was shared)"
    markdown = "\n".join([
        "## Garment masks (`bench/garment_masks.py`)", "", f"Device: {device}. {len(crops)} demo full-body crops "
        f"(embedded site, true masks = clothing only); throughput on {len(sample)} of them.", "",
        "GrabCut throughput (images per second; ratio against the reference):", "",
        markdown_table(["run", "images/s", "vs reference"], speed_rows), "",
        "Mask quality against the true garment masks (a skipped crop counts as IoU 0):", "",
        markdown_table(["mask", "IoU mean", "IoU p10", "crops"], quality_rows), ""])
    RESULTS.mkdir(exist_ok=True)
    write_text(RESULTS / "garment_masks.md", markdown)
    write_json(RESULTS / "garment_masks.json", {"device": device, "speed": speed, "quality": {
        name: {"mean": float(v.mean()), "p10": float(np.percentile(v, 10)), "n": len(v)} for name, v in quality.items()}},
               indent=1)
    print(markdown)


if __name__ == "__main__":
    main()
