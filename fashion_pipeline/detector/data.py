"""DeepFashion-in-COCO for torchvision detection: dataset, aspect-ratio batches, horizontal flip.

Image sizes come from the COCO JSON, never from decoding the image (torchvision's reference
decodes every image once just to group by aspect ratio). Images stay ``uint8`` until they reach
the device, so the host copies a quarter of the bytes and the GPU does the float conversion.
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fashion_pipeline.common.images import open_upright
from fashion_pipeline.detector.model import CLASS_NAMES


def load_coco_json(json_path: str | Path) -> dict:
    """Read a COCO file, fill the optional fields COCOeval needs, and check what we rely on."""
    json_path = Path(json_path)
    try:
        coco = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_path}:{error.lineno}: not valid JSON ({error.msg})") from error
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise ValueError(f"{json_path}: COCO file has no '{key}' list")
    image_ids = {image["id"] for image in coco["images"]}
    for annotation in coco["annotations"]:
        _check_annotation(json_path, annotation, image_ids)
        annotation.setdefault("area", float(annotation["bbox"][2] * annotation["bbox"][3]))
        annotation.setdefault("iscrowd", 0)
    return coco


def _check_annotation(json_path: Path, annotation: dict, image_ids: set) -> None:
    where = f"{json_path}: annotation id={annotation.get('id')}"
    if annotation.get("image_id") not in image_ids:
        raise ValueError(f"{where}: image_id {annotation.get('image_id')!r} is not in 'images'")
    if annotation.get("category_id") not in CLASS_NAMES:
        raise ValueError(f"{where}: category_id {annotation.get('category_id')!r} is not one of {sorted(CLASS_NAMES)}")
    bbox = annotation.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(math.isfinite(v) for v in bbox):
        raise ValueError(f"{where}: bbox {bbox!r} is not four finite numbers [x, y, w, h]")


def image_root_of(coco: dict, json_path: str | Path, override: Optional[str] = None) -> Path:
    """``info.image_root`` unless overridden; else the JSON's own folder.

    A relative ``image_root`` is relative to the JSON's folder: the converter writes it so when the
    images lie under the same data root, which can then move as a whole.
    """
    root = override or coco.get("info", {}).get("image_root")
    return Path(json_path).parent / root if root else Path(json_path).parent


def sample_images(images: list[dict], max_images: int, seed: int = 0) -> list[dict]:
    """A seeded uniform sample of ``max_images`` images (all when 0 or more than there are), in id order.

    Not the first N: DeepFashion's ids run folder by folder (one product after another), so the
    first N would be a few products of a few categories. The sample depends only on the split, N
    and the seed, so every backbone is evaluated on the same images.
    """
    images = sorted(images, key=lambda image: image["id"])
    if not max_images or max_images >= len(images):
        return images
    chosen = np.random.default_rng(seed).choice(len(images), size=max_images, replace=False)
    return [images[index] for index in sorted(chosen.tolist())]


class CocoDetectionDataset(Dataset):
    """One COCO split: ``(uint8 CxHxW tensor, target dict)`` per image; crowd and empty boxes dropped.

    ``max_images`` keeps a seeded random sample (:func:`sample_images`), for a quick evaluation.
    """

    def __init__(self, json_path: str | Path, image_root: Optional[str] = None, max_images: int = 0,
                 sample_seed: int = 0):
        self.json_path = Path(json_path)
        self.coco = load_coco_json(self.json_path)
        self.image_root = image_root_of(self.coco, self.json_path, image_root)
        self.images = sample_images(self.coco["images"], max_images, sample_seed)
        self.boxes_by_image = self._boxes_by_image()

    def _boxes_by_image(self) -> dict:
        grouped = defaultdict(list)
        for annotation in self.coco["annotations"]:
            x, y, w, h = annotation["bbox"]
            if annotation.get("iscrowd", 0) or w <= 1 or h <= 1:
                continue
            grouped[annotation["image_id"]].append((x, y, x + w, y + h, annotation["category_id"]))
        return grouped

    def __len__(self) -> int:
        return len(self.images)

    def aspect_ratios(self) -> list[float]:
        """Width / height from the JSON: no image is decoded."""
        return [image["width"] / image["height"] for image in self.images]

    def read_image(self, index: int) -> torch.Tensor:
        path = self.image_root / self.images[index]["file_name"]
        try:
            array = np.array(open_upright(path).convert("RGB"))  # the frame image_headers sized it in
        except OSError as error:
            raise OSError(f"{path} (image id {self.images[index]['id']} in {self.json_path}): cannot read: {error}") from error
        return torch.from_numpy(array).permute(2, 0, 1)

    def target(self, index: int) -> dict:
        image = self.images[index]
        rows = self.boxes_by_image.get(image["id"], [])
        boxes = torch.tensor([row[:4] for row in rows], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([row[4] for row in rows], dtype=torch.int64)
        return {"boxes": boxes, "labels": labels, "image_id": image["id"]}

    def __getitem__(self, item):
        """``item`` is an index, or ``(index, flip)`` from :class:`GroupedBatchSampler`."""
        index, flip = item if isinstance(item, tuple) else (item, False)
        image, target = self.read_image(index), self.target(index)
        if flip:
            image, target = hflip(image, target)
        return image, target


def hflip(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Mirror the image and its boxes left-right."""
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes}


def collate(batch):
    return tuple(zip(*batch))


def aspect_ratio_groups(aspect_ratios: list[float], group_factor: int) -> list[int]:
    """Quantise aspect ratios into ``2 * group_factor + 2`` bins, as torchvision's reference does."""
    if group_factor <= 0:
        return [0] * len(aspect_ratios)
    bins = (2 ** np.linspace(-1, 1, 2 * group_factor + 1)).tolist()
    return [bisect.bisect_right(bins, ratio) for ratio in aspect_ratios]


class GroupedBatchSampler(Sampler):
    """An endless, seeded stream of batches whose images share an aspect-ratio group.

    Iteration-based training (Detectron's recipe) needs no epochs: every pass reshuffles with
    ``seed + pass``. The horizontal flip is drawn here too, from the same seeded generator, and
    travels as ``(index, flip)``: so ``start_batch``, which skips batches already trained on, makes
    a resumed run see exactly the batches and flips of an uninterrupted one, whatever the number
    of loader workers. Under DDP each rank takes every ``world_size``-th batch.
    """

    def __init__(self, group_ids: list[int], batch_size: int, seed: int = 0, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1, hflip_prob: float = 0.0):
        if not group_ids:
            raise ValueError("cannot sample batches from an empty dataset")
        if max(np.bincount(group_ids)) < batch_size:
            group_ids = [0] * len(group_ids)  # no group could ever fill a batch: ignore aspect ratios
        self.group_ids = group_ids
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        self.rank = rank
        self.world_size = world_size
        self.hflip_prob = hflip_prob

    def _all_batches(self) -> Iterator[list[tuple[int, bool]]]:
        epoch = 0
        while True:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(len(self.group_ids), generator=generator)
            flips = torch.rand(len(self.group_ids), generator=generator) < self.hflip_prob
            buckets = defaultdict(list)
            for index, flip in zip(order.tolist(), flips.tolist()):
                bucket = buckets[self.group_ids[index]]
                bucket.append((index, flip))
                if len(bucket) == self.batch_size:
                    yield list(bucket)
                    bucket.clear()
            epoch += 1

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        for number, batch in enumerate(self._all_batches()):
            if number < self.start_batch * self.world_size:
                continue
            if number % self.world_size == self.rank:
                yield batch


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Summarise a COCO split: images, boxes per class, aspect-ratio groups.")
    parser.add_argument("json_path")
    parser.add_argument("--aspect-ratio-group-factor", type=int, default=3)
    args = parser.parse_args(argv)
    dataset = CocoDetectionDataset(args.json_path)
    per_class = defaultdict(int)
    for rows in dataset.boxes_by_image.values():
        for row in rows:
            per_class[CLASS_NAMES[row[4]]] += 1
    groups = aspect_ratio_groups(dataset.aspect_ratios(), args.aspect_ratio_group_factor)
    print(json.dumps({"images": len(dataset), "image_root": str(dataset.image_root), "boxes": dict(per_class),
                      "aspect_ratio_groups": {str(k): groups.count(k) for k in sorted(set(groups))}}, indent=2))


if __name__ == "__main__":
    main()
