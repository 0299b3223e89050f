"""COCO evaluation with pycocotools: the 12 standard numbers plus AP per class.

The ground truth is loaded from the split's JSON file, not rebuilt from the dataset (a known
slow spot of torchvision's reference ``coco_eval.py``).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch

from fashion_pipeline.detector.data import CocoDetectionDataset, collate, load_coco_json
from fashion_pipeline.detector.model import CLASS_NAMES

from fashion_pipeline.detector.constants import METRIC_KEYS, METRIC_ROWS  # noqa: F401,E402


def coco_ground_truth(gt: str | Path | dict) -> "COCO":
    """A pycocotools COCO index over a split file (or an already loaded dict).

    pycocotools is imported here, not at module level: prediction (``predict_dataset``) and the
    benchmarks' GPU machine do without it."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = load_coco_json(gt) if not isinstance(gt, dict) else gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_metrics(gt: str | Path | dict | COCO, detections: list[dict], image_ids: Optional[Iterable[int]] = None) -> dict:
    """Score COCO-format detections (``image_id, category_id, bbox [x,y,w,h], score``).

    Returns the 12 numbers under :data:`METRIC_KEYS` and ``AP_<class>`` per category.
    COCO's convention is kept: -1 where a number is undefined (no ground truth in that range).
    """
    from pycocotools.cocoeval import COCOeval

    coco_gt = coco_ground_truth(gt) if isinstance(gt, (str, Path, dict)) else gt
    if not detections:
        return {key: 0.0 for key in METRIC_KEYS} | {f"AP_{name}": 0.0 for name in CLASS_NAMES.values()}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics = {key: float(value) for key, value in zip(METRIC_KEYS, evaluator.stats)}
    return metrics | per_class_ap(evaluator)


def per_class_ap(evaluator: "COCOeval") -> dict:
    """AP@[.50:.95], all areas, 100 detections, for each category (-1 when it has no ground truth)."""
    precision = evaluator.eval["precision"]  # [iou, recall, category, area, max_dets]
    result = {}
    for position, category_id in enumerate(evaluator.params.catIds):
        values = precision[:, :, position, 0, -1]
        values = values[values > -1]
        name = CLASS_NAMES.get(category_id, str(category_id))
        result[f"AP_{name}"] = float(values.mean()) if values.size else -1.0
    return result


def outputs_to_host(outputs: list[dict]) -> list[dict]:
    """A batch's detections as numpy, in one device-to-host copy: boxes, score and label packed
    into one N x 6 tensor, not three ``.cpu()`` calls (each a device sync) per image."""
    if not outputs:
        return []
    counts = [len(output["scores"]) for output in outputs]  # shapes are known without a sync
    packed = torch.cat([torch.cat([output["boxes"].float(), output["scores"].float()[:, None],
                                   output["labels"].float()[:, None]], 1) for output in outputs]).cpu().numpy()
    return [{"boxes": part[:, :4], "scores": part[:, 4], "labels": part[:, 5].round().astype(np.int64)}
            for part in np.split(packed, np.cumsum(counts)[:-1])]


def to_coco_detections(image_id: int, output: dict) -> list[dict]:
    """COCO rows (bbox as x, y, w, h) from one image's :func:`outputs_to_host` arrays."""
    boxes = output["boxes"]
    xywh = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    return [
        {"image_id": int(image_id), "category_id": int(label), "bbox": [round(float(v), 2) for v in box], "score": float(score)}
        for box, label, score in zip(xywh, output["labels"], output["scores"])
    ]


@torch.inference_mode()
def predict_dataset(model, dataset: CocoDetectionDataset, device, batch_size: int = 8, num_workers: int = 2) -> list[dict]:
    """Run the model over a split; returns COCO detections in original pixel coordinates.

    Loader workers decode the next batches while the model runs; each batch's results come back
    in one device-to-host copy (:func:`outputs_to_host`).
    """
    model.eval()
    device = torch.device(device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate,
                                         pin_memory=device.type == "cuda")
    detections = []
    for images, targets in loader:
        images = [image.to(device, non_blocking=True).float().div_(255) for image in images]
        for target, output in zip(targets, outputs_to_host(model(images))):
            detections.extend(to_coco_detections(target["image_id"], output))
    return detections


def evaluate_model(model, json_path: str | Path, device, batch_size: int = 8, max_images: int = 0,
                   image_root: Optional[str] = None, num_workers: int = 2, sample_seed: int = 0) -> dict:
    dataset = CocoDetectionDataset(json_path, image_root=image_root, max_images=max_images, sample_seed=sample_seed)
    detections = predict_dataset(model, dataset, device, batch_size=batch_size, num_workers=num_workers)
    image_ids = [image["id"] for image in dataset.images]
    return coco_metrics(dataset.coco, detections, image_ids=image_ids)


def main(argv: Optional[list[str]] = None) -> None:
    from fashion_pipeline.common.device import pick_device
    from fashion_pipeline.detector.inference import load_detector

    parser = argparse.ArgumentParser(description="COCO-evaluate a trained detector checkpoint on a split.")
    parser.add_argument("checkpoint", help="e.g. <data_root>/fashion_detector/<backbone>/v/<version>/model_final.pt")
    parser.add_argument("json_path", help="COCO split, e.g. <data_root>/deepfashion_coco/v/<input key>/val.json "
                                          "(the folder deepfashion_coco's metadata names)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-images", type=int, default=0, help="a seeded random sample of this many images; 0 = the whole split")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the --max-images sample")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers decoding images")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    model = load_detector(args.checkpoint, device)
    print(json.dumps(evaluate_model(model, args.json_path, device, args.batch_size, args.max_images,
                                    num_workers=args.workers, sample_seed=args.sample_seed), indent=2))


if __name__ == "__main__":
    main()
