"""Full-body crops: one square crop per image around its best full-body detection.

Cropping policy (so that the DCGAN's 64x64 input is not distorted):

1. keep the image's highest-scoring box with label 3 (``full``) whose score is at least the threshold;
   images without one are dropped;
2. make the box square around its centre, with side ``max(box width, box height)``;
3. if that square leaves the image, **shift** it back inside (its size is kept);
4. only when the image itself is narrower or shorter than the side is the side **shrunk**, to
   ``min(image width, image height)``; the square then still covers the box's centre as well as it can.

The crop is saved at its native resolution (PNG, lossless); the training set resizes it to 64x64.

``python -m fashion_pipeline.gan.crops --data-root data --threshold 0.5 [--detections D]``
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from fashion_pipeline.common import atomic, versions
from fashion_pipeline.common.fingerprint import file_sha256
from fashion_pipeline.common.images import open_upright
from fashion_pipeline.common.paths import resolve_data_root

FULL_BODY_LABEL = 3


def square_box(box, image_width: int, image_height: int) -> tuple[int, int, int, int]:
    """The square crop ``(x0, y0, x1, y1)`` (integer pixels, exclusive end) for ``box`` = (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"degenerate box {box}")
    side = max(x2 - x1, y2 - y1)
    side = int(round(min(side, image_width, image_height)))
    side = max(side, 1)
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    x0 = _clamp(int(round(centre_x - side / 2)), 0, image_width - side)
    y0 = _clamp(int(round(centre_y - side / 2)), 0, image_height - side)
    return x0, y0, x0 + side, y0 + side


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def best_fullbody_boxes(detections: pd.DataFrame, score_threshold: float) -> pd.DataFrame:
    """One row per image that has a full-body box scoring >= ``score_threshold``: its best such box.

    ``detections`` has one row per image with list columns ``boxes`` (N x 4), ``labels``, ``scores``.
    Returns image_id, file_path, width, height, score, box_x1..box_y2.
    """
    rows = []
    for record in detections.itertuples(index=False):
        labels = np.asarray(record.labels, dtype=np.int64)
        scores = np.asarray(record.scores, dtype=np.float64)
        keep = (labels == FULL_BODY_LABEL) & (scores >= score_threshold)
        if not keep.any():
            continue
        best = int(np.flatnonzero(keep)[np.argmax(scores[keep])])
        box = np.asarray(record.boxes[best], dtype=np.float64)
        rows.append({"image_id": record.image_id, "file_path": record.file_path,
                     "width": int(record.width), "height": int(record.height), "score": float(scores[best]),
                     "box_x1": box[0], "box_y1": box[1], "box_x2": box[2], "box_y2": box[3]})
    columns = ["image_id", "file_path", "width", "height", "score", "box_x1", "box_y1", "box_x2", "box_y2"]
    return pd.DataFrame(rows, columns=columns)


def fullbody_scores(detections: pd.DataFrame) -> np.ndarray:
    """Every full-body detection's score (for the score histogram)."""
    scores = [np.asarray(s, dtype=np.float64)[np.asarray(l) == FULL_BODY_LABEL]
              for l, s in zip(detections["labels"], detections["scores"])]
    return np.concatenate(scores) if scores else np.zeros(0)


def _crop_one(data_root: Path, out_dir: Path, row: dict) -> dict:
    source = data_root / row["file_path"]
    try:
        image = open_upright(source).convert("RGB")  # the frame the detector's boxes are in
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {source} (image_id {row['image_id']}): {error}") from error
    box = (row["box_x1"], row["box_y1"], row["box_x2"], row["box_y2"])
    square = square_box(box, image.width, image.height)
    crop = image.crop(square)
    target = out_dir / f"{row['image_id']}.png"
    with atomic.atomic_open(target, "wb") as handle:
        crop.save(handle, format="PNG", compress_level=1)  # speed over size; the crops are intermediate
    return {**row, "crop_x0": square[0], "crop_y0": square[1], "crop_side": square[2] - square[0],
            "crop_path": str(target.relative_to(data_root))}


def write_crops(data_root: str | Path, boxes: pd.DataFrame, out_dir: str | Path, workers: int = 4) -> pd.DataFrame:
    """Cut and save every crop of ``boxes``; returns the crop manifest (paths relative to ``data_root``)."""
    data_root, out_dir = Path(data_root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = boxes.to_dict("records")
    # PIL decodes and encodes with the GIL released, so threads overlap the file work.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        cropped = list(pool.map(lambda row: _crop_one(data_root, out_dir, row), records))
    return pd.DataFrame(cropped, columns=list(boxes.columns) + ["crop_x0", "crop_y0", "crop_side", "crop_path"])


def remove_stale_crops(out_dir: str | Path, keep_ids: set[str]) -> int:
    """Delete crops of images no longer kept (an earlier run with a lower threshold)."""
    removed = 0
    for path in Path(out_dir).glob("*.png"):
        if path.stem not in keep_ids:
            path.unlink()
            removed += 1
    return removed


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description="Square full-body crops from a pinterest_detections detections.parquet; writes "
                    "fullbody_crops/v/<input key>/{crops/, manifest.parquet} under the data root.",
        epilog="The default input is the newest published folder on disk (common.versions.latest_published), "
               "not necessarily Dagster's current record. The output folder is named by no record: "
               "python -m fashion_pipeline.gc removes it after --min-age-s.")
    parser.add_argument("--data-root", default=None, help="the detections' file paths are relative to it; default: $FASHION_PIPELINE_DATA or ./data")
    parser.add_argument("--detections", type=Path, default=None,
                        help="a detections.parquet (default: the newest published pinterest_detections one)")
    parser.add_argument("--threshold", type=float, default=0.5, help="minimum full-body score")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    detections_path = args.detections or versions.latest_published_file(
        root, "pinterest_detections", name="detections.parquet", flag="--detections")
    print(f"detections {detections_path}")
    detections = pd.read_parquet(detections_path)
    # named by what the crops depend on, so the manifest can name each crop where it will lie once published
    key = versions.input_key("crops-cli", file_sha256(detections_path), args.threshold)
    published = versions.find(root, "fullbody_crops", version=key)
    if published is None:
        boxes = best_fullbody_boxes(detections, args.threshold)
        with versions.staging(root, "fullbody_crops") as out:
            manifest = write_crops(root, boxes, out.path("crops"))
            manifest["crop_path"] = [out.published_relative(root / p, key) for p in manifest["crop_path"]]
            atomic.write_parquet(out.path("manifest.parquet"), manifest)
            published = out.publish(key)
    manifest = pd.read_parquet(published.file("manifest.parquet"))
    print(f"{len(manifest)} crops out of {len(detections)} images")
    print(f"wrote {published.file('manifest.parquet')}{' (reused)' if published.reused else ''}")


if __name__ == "__main__":
    main()
