"""Run the best detector over every deduplicated Pinterest image, in batches.

Output: one row per image with list columns ``boxes`` (N x [x1, y1, x2, y2], original pixels),
``labels`` (1 upper, 2 lower, 3 full) and ``scores``; images without detections have empty lists.

Decoding of the next chunk overlaps inference of the current one (a background thread), and the
model sees ``batch_size`` images at a time on the GPU when there is one.

``python -m fashion_pipeline.gan.detect --data-root data --min-size 320 [--manifest M] [--checkpoint C | --best-json B]``
"""
from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import pandas as pd
from PIL import Image

from fashion_pipeline.common import atomic, versions
from fashion_pipeline.common.device import pick_device
from fashion_pipeline.common.fingerprint import file_sha256
from fashion_pipeline.common.images import open_upright
from fashion_pipeline.common.paths import resolve_data_root

LABEL_NAMES = {1: "upper", 2: "lower", 3: "full"}


def load_inference():
    """The detector stage's inference module (a seam the tests replace with a stub)."""
    from fashion_pipeline.detector import inference

    return inference


@dataclass
class DetectionRun:
    detections: pd.DataFrame
    seconds: float

    @property
    def images_per_second(self) -> float:
        return len(self.detections) / self.seconds if self.seconds > 0 else 0.0

    def per_class(self) -> dict[str, int]:
        labels = np.concatenate([np.asarray(l, dtype=np.int64) for l in self.detections["labels"]] or [np.zeros(0)])
        return {name: int((labels == label).sum()) for label, name in LABEL_NAMES.items()}


def tune_for_inference(model, min_size: Optional[int] = None, max_proposals: Optional[int] = None) -> None:
    """Trade accuracy for speed on a torchvision Faster R-CNN; ``None`` keeps what the checkpoint says.

    ``min_size`` shrinks the input resize (``GeneralizedRCNNTransform``); ``max_proposals`` caps the RPN
    proposals kept per image at test time (only ever lowered), which the box head's cost grows with.
    """
    if min_size is not None and hasattr(model, "transform"):
        model.transform.min_size = (int(min_size),)
        model.transform.max_size = int(round(min_size * 1333 / 800))  # torchvision's default aspect bound
    if max_proposals is not None and hasattr(model, "rpn"):
        model.rpn._pre_nms_top_n["testing"] = min(model.rpn._pre_nms_top_n["testing"], 2 * int(max_proposals))
        model.rpn._post_nms_top_n["testing"] = min(model.rpn._post_nms_top_n["testing"], int(max_proposals))


def _decode(path: Path) -> Image.Image:
    try:
        return open_upright(path).convert("RGB")  # EXIF orientation applied, as every stage decodes
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error


def _chunks(paths: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(paths), size):
        yield paths[start:start + size]


def detect_images(manifest: pd.DataFrame, data_root: str | Path, checkpoint: str | Path, device=None,
                  batch_size: int = 8, min_size: Optional[int] = None, max_proposals: Optional[int] = None,
                  chunk_size: int = 64,
                  progress: Callable[[int, int], None] = lambda done, total: None) -> DetectionRun:
    """Detections for every row of ``manifest`` (image_id, file_path relative to ``data_root``, width, height)."""
    inference = load_inference()
    device = device or pick_device("auto")
    model = inference.load_detector(str(checkpoint), device)
    tune_for_inference(model, min_size, max_proposals)
    data_root = Path(data_root)
    paths = [data_root / p for p in manifest["file_path"]]
    started = time.perf_counter()
    outputs: list[dict] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        chunks = list(_chunks(paths, chunk_size))
        pending = pool.submit(lambda c: list(map(_decode, c)), chunks[0]) if chunks else None
        for index in range(len(chunks)):
            images = pending.result()
            if index + 1 < len(chunks):
                pending = pool.submit(lambda c: list(map(_decode, c)), chunks[index + 1])
            outputs.extend(inference.predict(model, images, device, batch_size=batch_size))
            progress(len(outputs), len(paths))
    seconds = time.perf_counter() - started
    return DetectionRun(detections=_to_frame(manifest, outputs), seconds=seconds)


def _to_frame(manifest: pd.DataFrame, outputs: list[dict]) -> pd.DataFrame:
    frame = manifest[["image_id", "file_path", "width", "height"]].reset_index(drop=True).copy()
    frame["boxes"] = [np.asarray(o["boxes"], dtype=np.float32).reshape(-1, 4).tolist() for o in outputs]
    frame["labels"] = [np.asarray(o["labels"], dtype=np.int64).tolist() for o in outputs]
    frame["scores"] = [np.asarray(o["scores"], dtype=np.float32).tolist() for o in outputs]
    return frame


def checkpoint_from_best(data_root: Path, best_json: Path) -> Path:
    """The checkpoint a ``best.json`` names (relative to the data root), checked against its recorded sha256."""
    try:
        best = json.loads(Path(best_json).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{best_json}:{error.lineno}: not valid JSON ({error.msg})") from error
    if "checkpoint" not in best:
        raise ValueError(f"{best_json}: no 'checkpoint' key")
    checkpoint = Path(data_root) / best["checkpoint"]
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{best_json} names {checkpoint}, which does not exist (removed by gc?)")
    expected = best.get("checkpoint_sha256")
    if expected and file_sha256(checkpoint) != expected:
        raise ValueError(f"{checkpoint} changed since {best_json} recorded it (sha256 differs)")
    return checkpoint


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description="Detect fashion items on every image of a pinterest_dataset manifest; writes "
                    "pinterest_detections/v/<content>/detections.parquet under the data root.",
        epilog="Defaults are the newest published folders on disk (common.versions.latest_published), not "
               "necessarily Dagster's current record. The output folder is named by no record: "
               "python -m fashion_pipeline.gc removes it after --min-age-s.")
    parser.add_argument("--data-root", default=None, help="file paths in the manifest are relative to it; default: $FASHION_PIPELINE_DATA or ./data")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="a pinterest_dataset manifest.parquet (default: the newest published one)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, default=None, help="a fashion_detector model_final.pt")
    source.add_argument("--best-json", type=Path, default=None,
                        help="a best_detector best.json; its checkpoint is used, sha256-checked "
                             "(default: the newest published best.json)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--min-size", type=int, default=None, help="inference resize (shorter side)")
    parser.add_argument("--max-proposals", type=int, default=None, help="RPN proposals kept per image")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    manifest_path = args.manifest or versions.latest_published_file(root, "pinterest_dataset", name="manifest.parquet",
                                                                    flag="--manifest")
    checkpoint = args.checkpoint or checkpoint_from_best(root, args.best_json or versions.latest_published_file(
        root, "best_detector", name="best.json", flag="--checkpoint or --best-json"))
    print(f"manifest {manifest_path}\ncheckpoint {checkpoint}")
    run = detect_images(pd.read_parquet(manifest_path), root, checkpoint, pick_device(args.device), args.batch_size,
                        args.min_size, args.max_proposals)
    with versions.staging(root, "pinterest_detections") as out:  # a new folder: a recorded one is never overwritten
        atomic.write_parquet(out.path("detections.parquet"), run.detections)
        published = out.publish()
    print(f"{len(run.detections)} images, {run.images_per_second:.1f} images/s, {run.per_class()}")
    print(f"wrote {published.file('detections.parquet')}")


if __name__ == "__main__":
    main()
