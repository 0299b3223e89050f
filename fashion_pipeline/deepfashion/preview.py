"""Pictures of a converted split with their boxes drawn, for the asset's metadata and for eyeballing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fashion_pipeline.deepfashion.layout import CATEGORY_TYPE_NAMES
from fashion_pipeline.common.images import open_upright

BOX_COLOURS = {1: (230, 30, 30), 2: (30, 80, 240), 3: (20, 170, 40)}


def boxed_samples(coco_path: Path | str, count: int = 12, seed: int = 0) -> list[Image.Image]:
    """Up to ``count`` images of a COCO file (picked with ``seed``), boxes drawn in their category's colour."""
    document = json.loads(Path(coco_path).read_text())
    image_root = Path(coco_path).parent / document["info"]["image_root"]  # a relative root is relative to the JSON
    images = document["images"]
    if not images:
        return []
    boxes_by_image: dict[int, list[dict]] = {}
    for annotation in document["annotations"]:
        boxes_by_image.setdefault(annotation["image_id"], []).append(annotation)
    picks = np.random.default_rng(seed).choice(len(images), size=min(count, len(images)), replace=False)
    return [_draw(image_root / images[i]["file_name"], boxes_by_image.get(images[i]["id"], [])) for i in sorted(picks)]


def _draw(path: Path, annotations: list[dict]) -> Image.Image:
    image = open_upright(path).convert("RGB")  # the frame the COCO sizes were read in
    draw = ImageDraw.Draw(image)
    for annotation in annotations:
        x, y, w, h = annotation["bbox"]
        colour = BOX_COLOURS.get(annotation["category_id"], (0, 0, 0))
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=colour, width=3)
        draw.text((x + 4, y + 3), CATEGORY_TYPE_NAMES.get(annotation["category_id"], "?"), fill=colour)
    return image
