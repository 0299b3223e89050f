"""Issue 22's comparison: the model-specific scores with intervals, the targets measured, and one grid per method
(person | garment | warped garment | output | ground truth).

Reads what the report wrote (``manifest.parquet``: one row per pair and method, with the extras the model methods
return) and the test split, so it can be recomputed from the report's folder alone.

``python -m fashion_pipeline.tryon.comparison --report /tmp/report --root /tmp/tryon --height 128``
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fashion_pipeline.synthetic.parse import UPPER_GARMENT_IDS
from fashion_pipeline.tryon import metrics
from fashion_pipeline.tryon.layout import Layout, read_pairs

EXTRAS = ("ssim_garment", "mask_iou", "warp_error_px", "alpha_iou")


def extra_scores(frame: pd.DataFrame) -> dict:
    """{method: {extra: interval dict}} for the per-pair extras the model methods report."""
    out = {}
    for method, rows in frame.groupby("method"):
        entry = {c: metrics.mean_ci(rows[c].dropna().tolist()).as_dict() for c in ("ssim", *EXTRAS)
                 if c in rows and rows[c].notna().any()}
        if entry:
            out[str(method)] = entry
    return out


def old_garment_iou(layout: Layout, pairs) -> dict:
    """The person's current garment mask against the true worn one: what not warping at all scores."""
    values = []
    for pair in pairs:
        sample = layout.load(pair)
        if sample.truth_parse is None:
            continue
        a, b = np.isin(sample.parse, UPPER_GARMENT_IDS), np.isin(sample.truth_parse, UPPER_GARMENT_IDS)
        union = (a | b).sum()
        if union:
            values.append(float((a & b).sum() / union))
    return metrics.mean_ci(values).as_dict()


def _target(name: str, value: float, threshold: float, met: bool, detail: str) -> dict:
    return {"target": name, "value": round(float(value), 4), "threshold": threshold, "met": bool(met), "detail": detail}


def targets(scores: dict) -> list[dict]:
    """The four targets of issue 22 from ``extra_scores``; a method not scored is reported as not met."""
    out = []

    def get(method, key):
        return scores.get(method, {}).get(key)

    full = get("viton", "ssim")
    for baseline, margin in (("warped_paste", 0.05), ("unchanged", 0.10)):
        other = get(baseline, "ssim")
        if full and other:
            gain = full["mean"] - other["mean"]
            apart = full["ci95_low"] > other["ci95_high"]
            out.append(_target(f"viton SSIM - {baseline} SSIM >= {margin}, intervals apart", gain, margin,
                               gain >= margin and apart, f"{full['mean']:.4f} vs {other['mean']:.4f}; intervals apart: {apart}"))
    iou = get("viton", "mask_iou")
    if iou:
        out.append(_target("learned warp's mask IoU with the true worn garment >= 0.80", iou["mean"], 0.80,
                           iou["mean"] >= 0.80, f"± {(iou['ci95_high'] - iou['ci95_low']) / 2:.4f}"))
    a, b = get("viton", "ssim_garment"), get("encoder_decoder", "ssim_garment")
    if a and b:
        gain = a["mean"] - b["mean"]
        out.append(_target("SSIM inside the true garment: viton - encoder_decoder >= 0.05", gain, 0.05, gain >= 0.05,
                           f"{a['mean']:.4f} vs {b['mean']:.4f}"))
    alpha = get("cagan", "alpha_iou")
    if alpha:
        out.append(_target("CAGAN's alpha IoU with the changed region >= 0.7", alpha["mean"], 0.7, alpha["mean"] >= 0.7,
                           f"± {(alpha['ci95_high'] - alpha['ci95_low']) / 2:.4f}"))
    return out


def method_grid(layout: Layout, pairs, method, rows: int = 6) -> Image.Image:
    """person | garment | warped garment (blank where the method has none) | output | truth, ``rows`` pairs."""
    from fashion_pipeline.tryon import models

    tiles = []
    for pair in pairs[:rows]:
        sample = layout.load(pair)
        predictor = getattr(method.run, "predictor", None)
        output, _ = method.run(sample)
        warped = None
        if isinstance(predictor, models.Predictor) and predictor.method == "viton":
            warped = predictor.run(sample)["warped"]
        blank = np.full_like(sample.person, 255)
        tiles.append(np.concatenate([sample.person, sample.cloth, warped if warped is not None else blank, output,
                                     sample.truth if sample.truth is not None else blank], axis=1))
    return Image.fromarray(np.concatenate(tiles, axis=0))


def markdown(scores: dict, checks: list[dict], old_iou: dict) -> str:
    from fashion_pipeline.common import render

    headers = ["method", "SSIM in the true garment ↑", "warped mask IoU ↑", "warp end-point error px ↓", "α IoU (changed) ↑"]

    def ci(entry):
        return "" if not entry else f"{entry['mean']:.4f} ± {(entry['ci95_high'] - entry['ci95_low']) / 2:.4f}"

    rows = [[m, *(ci(e.get(k)) for k in EXTRAS)] for m, e in scores.items() if any(k in e for k in EXTRAS)]
    lines = ["## Model scores", "", render.markdown_table(headers, rows), "",
             f"The person's old garment mask against the true worn one: IoU {ci(old_iou)}.", "", "## Targets", ""]
    lines += [f"- {'met' if c['met'] else 'NOT met'}: {c['target']}: {c['value']} ({c['detail']})" for c in checks]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Model scores and targets from a try-on report's manifest.")
    parser.add_argument("--report", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--height", type=int, default=128)
    args = parser.parse_args(argv)
    frame = pd.read_parquet(Path(args.report) / "manifest.parquet")
    layout = Layout(args.root, "test", args.height, args.height * 3 // 4)
    pairs = read_pairs(args.root, "test")
    scores = extra_scores(frame)
    print(markdown(scores, targets(scores), old_garment_iou(layout, pairs)))
    print(json.dumps(targets(scores), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
