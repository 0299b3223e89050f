"""Tiny DeepFashion-like COCO splits for the detector tests: one coloured garment box per image."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# Tiny settings that keep every model small enough for a CPU test.
TINY_MODEL_ARGS = ["--min-size", "64", "--max-size", "96", "--rpn-pre-nms-top-n-train", "100",
                   "--rpn-post-nms-top-n-train", "50", "--rpn-pre-nms-top-n-test", "50", "--rpn-post-nms-top-n-test", "20",
                   "--box-batch-size-per-image", "32", "--rpn-batch-size-per-image", "64"]
TINY_SPEC = dict(min_size=64, max_size=96, rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50,
                 rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, box_batch_size_per_image=32,
                 rpn_batch_size_per_image=64)
COLOURS = {1: (220, 40, 40), 2: (40, 40, 220), 3: (40, 200, 40)}


def garment_image(rng: np.random.Generator, category: int, width: int, height: int) -> tuple[Image.Image, list[float]]:
    """A grey picture with one coloured box: upper in the top half, lower in the bottom, full tall."""
    array = np.full((height, width, 3), 200, np.uint8) + rng.integers(-10, 10, (height, width, 3)).astype(np.uint8)
    x1 = int(rng.integers(2, width // 3))
    x2 = int(rng.integers(2 * width // 3, width - 2))
    y1, y2 = {1: (height * 0.1, height * 0.5), 2: (height * 0.5, height * 0.9), 3: (height * 0.1, height * 0.9)}[category]
    y1, y2 = int(y1), int(y2)
    array[y1:y2, x1:x2] = COLOURS[category]
    return Image.fromarray(array), [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]


def write_split(root: Path, split: str, count: int, seed: int, first_id: int = 1, size: tuple[int, int] = (80, 96)) -> Path:
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for offset in range(count):
        image_id = first_id + offset
        category = 1 + offset % 3
        width, height = size if offset % 2 == 0 else size[::-1]
        image, bbox = garment_image(rng, category, width, height)
        file_name = f"img/{split}_{image_id:05d}.jpg"
        image.save(root / file_name, quality=92)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        annotations.append({"id": image_id, "image_id": image_id, "category_id": category, "bbox": bbox,
                            "area": bbox[2] * bbox[3], "iscrowd": 0})
    coco = {"info": {"image_root": str(root.resolve())}, "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "upper"}, {"id": 2, "name": "lower"}, {"id": 3, "name": "full"}]}
    path = root / f"{split}.json"
    path.write_text(json.dumps(coco))
    return path


def write_tiny_coco(coco_dir: Path, train: int = 8, val: int = 4) -> Path:
    """``coco_dir/{train,val}.json`` plus images, as the deepfashion_coco asset lays them out."""
    coco_dir.mkdir(parents=True, exist_ok=True)
    write_split(coco_dir, "train", train, seed=0, first_id=1)
    write_split(coco_dir, "val", val, seed=1, first_id=1000)
    return coco_dir
