"""DeepFashion-in-COCO for torchvision detection: dataset, aspect-ratio batches, horizontal flip.

Image sizes come from the COCO JSON, never from decoding the image (torchvision's reference
decodes every image once just to group by aspect ratio). Images stay ``uint8`` until they reach
the device, so the host copies a quarter of the bytes and the GPU does the float conversion.

``CocoDetectionDataset.cache_decoded`` (the fast recipe's ``cache_images``) takes the JPEG decode,
the data pipeline's largest cost (``bench/detector_profile.py``), off the training loop: every
image is decoded once, before the first step, into one shared ``uint8`` buffer; images the network
would shrink are stored at the network's size, so the per-step resize on the device is a no-op.
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
from torch.profiler import record_function
from torch.utils.data import Dataset, Sampler

from fashion_pipeline.common.images import open_upright
from fashion_pipeline.detector.inference import network_scale
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
        self.decoded: Optional[DecodedImages] = None

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
        if self.decoded is not None:
            return self.decoded.image(index)
        return self.decode_image(index)

    def decode_image(self, index: int) -> torch.Tensor:
        path = self.image_root / self.images[index]["file_name"]
        try:
            with record_function("detector.data: decode"):  # names it in bench/detector_profile.py
                array = np.array(open_upright(path).convert("RGB"))  # the frame image_headers sized it in
        except OSError as error:
            raise OSError(f"{path} (image id {self.images[index]['id']} in {self.json_path}): cannot read: {error}") from error
        return torch.from_numpy(array).permute(2, 0, 1)

    def target(self, index: int) -> dict:
        image = self.images[index]
        rows = self.boxes_by_image.get(image["id"], [])
        boxes = torch.tensor([row[:4] for row in rows], dtype=torch.float32).reshape(-1, 4)
        if self.decoded is not None:
            boxes = boxes * self.decoded.box_scale(index)  # the stored image may be shrunk
        labels = torch.tensor([row[4] for row in rows], dtype=torch.int64)
        return {"boxes": boxes, "labels": labels, "image_id": image["id"]}

    def __getitem__(self, item):
        """``item`` is an index, or ``(index, flip)`` from :class:`GroupedBatchSampler`."""
        index, flip = item if isinstance(item, tuple) else (item, False)
        image, target = self.read_image(index), self.target(index)
        if flip:
            image, target = hflip(image, target)
        return image, target


    def cache_decoded(self, min_size: int, max_size: int, workers: int = 0,
                      max_bytes: int = 32 * 2 ** 30) -> "DecodedImages":
        """Decode every image once (see :class:`DecodedImages`); later reads index the buffer."""
        if self.decoded is None or self.decoded.sizes != (min_size, max_size):
            self.decoded = None  # decode from the files, not from an older cache
            self.decoded = DecodedImages.build(self, min_size, max_size, workers, max_bytes)
        return self.decoded


def stored_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """Width and height an image is cached at: the network's size when it would shrink it, else its own.

    Images the network enlarges (DeepFashion's ~300 px at 800) stay native: the device enlarges them,
    and the host holds and copies 7x fewer bytes.
    """
    scale = network_scale(width, height, min_size, max_size)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


class _Decoder(Dataset):
    """Decodes (and shrinks) image ``index`` for :meth:`DecodedImages.build`'s parallel loader."""

    def __init__(self, dataset: CocoDetectionDataset, min_size: int, max_size: int):
        self.dataset, self.min_size, self.max_size = dataset, min_size, max_size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.dataset.decode_image(index)
        height, width = image.shape[-2:]
        new_width, new_height = stored_size(width, height, self.min_size, self.max_size)
        if (new_width, new_height) != (width, height):
            # Bilinear with antialias, on uint8: what PIL's resize gives, without a float copy.
            image = torch.nn.functional.interpolate(image[None].float(), size=(new_height, new_width), mode="bilinear",
                                                    align_corners=False, antialias=True)[0].round_().clamp_(0, 255)
            image = image.to(torch.uint8)
        return image


class DecodedImages:
    """Every image of a dataset, decoded once into one flat shared ``uint8`` buffer.

    Sizes come from the JSON, so the buffer is allocated (and its size checked against
    ``max_bytes``) before anything is decoded; an image whose decoded size differs from its JSON
    entry is an error naming it. The buffer lives in shared memory, so loader workers read it
    without a copy.
    """

    def __init__(self, buffer: torch.Tensor, offsets: list[int], shapes: list[tuple[int, int]],
                 scales: list[tuple[float, float]], sizes: tuple[int, int]):
        self.buffer, self.offsets, self.shapes, self.scales, self.sizes = buffer, offsets, shapes, scales, sizes

    @classmethod
    def build(cls, dataset: CocoDetectionDataset, min_size: int, max_size: int, workers: int = 0,
              max_bytes: int = 32 * 2 ** 30) -> "DecodedImages":
        shapes, scales, offsets, total = [], [], [], 0
        for image in dataset.images:
            width, height = stored_size(image["width"], image["height"], min_size, max_size)
            shapes.append((height, width))
            scales.append((width / image["width"], height / image["height"]))
            offsets.append(total)
            total += 3 * width * height
        if total > max_bytes:
            raise ValueError(f"{dataset.json_path}: caching {len(dataset)} decoded images needs {total / 2 ** 30:.1f} GiB, "
                             f"more than the {max_bytes / 2 ** 30:.1f} GiB allowed; train without cache_images "
                             "(the loader workers then decode each step)")
        buffer = torch.empty(total, dtype=torch.uint8).share_memory_()
        loader = torch.utils.data.DataLoader(_Decoder(dataset, min_size, max_size), batch_size=None,
                                             num_workers=workers)
        for index, image in enumerate(loader):
            expected = (3, *shapes[index])
            if tuple(image.shape) != expected:
                entry = dataset.images[index]
                raise ValueError(f"{dataset.image_root / entry['file_name']} (image id {entry['id']} in "
                                 f"{dataset.json_path}): decodes to {tuple(image.shape[1:])} (h, w), the JSON says "
                                 f"{entry['height']}x{entry['width']}")
            buffer[offsets[index]:offsets[index] + image.numel()] = image.reshape(-1)
        return cls(buffer, offsets, shapes, scales, (min_size, max_size))

    @property
    def nbytes(self) -> int:
        return self.buffer.numel()

    def image(self, index: int) -> torch.Tensor:
        """A CxHxW view into the buffer (no copy; collate and ``to`` copy it later)."""
        height, width = self.shapes[index]
        start = self.offsets[index]
        return self.buffer[start:start + 3 * height * width].view(3, height, width)

    def box_scale(self, index: int) -> torch.Tensor:
        scale_x, scale_y = self.scales[index]
        return torch.tensor([scale_x, scale_y, scale_x, scale_y], dtype=torch.float32)


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
