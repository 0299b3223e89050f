"""What the try-on models see: training arrays read through ``tryon.layout``, and the clothing-agnostic
person representation built from them in torch.

The representation is CP-VTON's (Wang et al. 2018, ``cp_dataset.py``), which follows VITON (Han et al. 2018):
- body shape: the person's silhouette (parse > 0), shrunk to 1/16 and blown up again (bilinear), so it keeps
  the build but not the old garment's outline;
- head: the person's pixels where the parse says face or hair (hat, sunglasses), -1 elsewhere;
- pose: one map per keypoint, a filled square of side 2 * radius + 1 at the keypoint (1) on -1. CP-VTON
  draws 18 COCO keypoints with radius 5 at 256 px height; here BODY_25's 25, the radius scaled with the height.
So 1 + 3 + 25 = 29 channels. Pictures are in [-1, 1] (CP-VTON's ``Normalize(0.5, 0.5)``).

Optionally (``agnostic_image``, off by default: not in CP-VTON) also VITON-HD's clothing-agnostic person image
(Choi et al. 2021): the person with the upper body (the garment, the torso skin and the arms, dilated) hidden,
so the background, the legs and the trousers are seen instead of guessed. ``keep`` marks what it shows.

The arrays stay uint8 in memory (400 pairs at 128x96 are ~40 MB) and each batch is turned into tensors on
the fly, so no float copy of the whole training set is ever held.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_pipeline.synthetic.parse import CIHP, UPPER_GARMENT_IDS

HEAD_IDS = (CIHP["hat"], CIHP["hair"], CIHP["sunglasses"], CIHP["face"])
KEYPOINTS = 25
AGNOSTIC_CHANNELS = 1 + 3 + KEYPOINTS
SHAPE_SHRINK = 16  # CP-VTON: fine_width // 16, fine_height // 16
PAPER_RADIUS, PAPER_HEIGHT = 5, 256  # CP-VTON's training radius at its 256 x 192


def pose_radius(height: int) -> int:
    return max(1, round(PAPER_RADIUS * height / PAPER_HEIGHT))


@dataclass
class Arrays:
    """N paired samples: person i wearing garment i (``cloth`` / ``cloth_mask`` are that garment's product)."""

    person: np.ndarray  # N x H x W x 3 uint8
    parse: np.ndarray  # N x H x W uint8 (CIHP ids)
    keypoints: np.ndarray  # N x 25 x 3 float32 (x, y, confidence), in pixels of H x W
    cloth: np.ndarray  # N x H x W x 3 uint8
    cloth_mask: np.ndarray  # N x H x W uint8 (0/1)
    names: list[str]

    def __len__(self) -> int:
        return len(self.person)

    @property
    def size(self) -> tuple[int, int]:
        return self.person.shape[1], self.person.shape[2]

    def fingerprint(self) -> str:
        """Identifies the training set, so a checkpoint is never resumed on other data."""
        digest = hashlib.blake2b(digest_size=16)
        for array in (self.person, self.parse, self.keypoints, self.cloth, self.cloth_mask):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()


def from_samples(samples) -> Arrays:
    samples = list(samples)
    if not samples:
        raise ValueError("no try-on samples")
    return Arrays(person=np.stack([s.person for s in samples]), parse=np.stack([s.parse for s in samples]),
                  keypoints=np.stack([s.keypoints for s in samples]).astype(np.float32),
                  cloth=np.stack([s.cloth for s in samples]),
                  cloth_mask=np.stack([s.cloth_mask for s in samples]).astype(np.uint8),
                  names=[s.pair.name for s in samples])


def load_training(root: Path | str, height: int, width: int, max_pairs: int = 0) -> Arrays:
    """The train split's pairs (each person with the garment they wear, as VITON-HD's train_pairs.txt)."""
    from fashion_pipeline.tryon.layout import Layout, read_pairs

    reader = Layout(root, "train", height, width)
    pairs = read_pairs(root, "train")
    if max_pairs:
        pairs = pairs[:max_pairs]
    return from_samples(reader.load(pair) for pair in pairs)


# ---------------------------------------------------------------- torch side

def unit(images):
    """N x H x W x C uint8 tensor -> N x C x H x W float in [-1, 1]."""
    return images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(images) -> np.ndarray:
    """N x 3 x H x W in [-1, 1] -> N x H x W x 3 uint8 (host)."""
    import torch

    scaled = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def label_mask(parse, ids):
    """N x H x W uint8 labels -> N x 1 x H x W float, 1 where the label is one of ``ids``."""
    import torch

    table = torch.zeros(256, dtype=torch.float32, device=parse.device)
    table[list(ids)] = 1.0
    return table[parse.long()].unsqueeze(1)


def pose_maps(keypoints, height: int, width: int, radius: int):
    """N x 25 x 3 keypoints -> N x 25 x H x W: 1 inside each detected keypoint's square, -1 elsewhere."""
    import torch

    ys = torch.arange(height, device=keypoints.device, dtype=torch.float32).view(1, 1, height, 1)
    xs = torch.arange(width, device=keypoints.device, dtype=torch.float32).view(1, 1, 1, width)
    x = keypoints[..., 0].view(*keypoints.shape[:2], 1, 1)
    y = keypoints[..., 1].view(*keypoints.shape[:2], 1, 1)
    seen = (keypoints[..., 2] > 0).view(*keypoints.shape[:2], 1, 1)
    inside = ((xs - x).abs() <= radius) & ((ys - y).abs() <= radius) & seen
    return inside.float() * 2.0 - 1.0


def body_shape(parse):
    """N x 1 x H x W in [-1, 1]: the silhouette at 1/16 resolution, blown up again (CP-VTON's ``shape``)."""
    from torch.nn import functional as F

    height, width = parse.shape[-2:]
    silhouette = (parse > 0).float().unsqueeze(1)
    small = F.interpolate(silhouette, size=(max(1, height // SHAPE_SHRINK), max(1, width // SHAPE_SHRINK)),
                          mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False) * 2.0 - 1.0


def agnostic(person, parse, keypoints, radius: int):
    """The 29-channel clothing-agnostic representation of ``person`` (N x 3 x H x W in [-1, 1])."""
    import torch

    height, width = person.shape[-2:]
    head = label_mask(parse, HEAD_IDS)
    return torch.cat([body_shape(parse), person * head - (1.0 - head), pose_maps(keypoints, height, width, radius)], 1)


HIDDEN_IDS = (*UPPER_GARMENT_IDS, CIHP["torso_skin"], CIHP["left_arm"], CIHP["right_arm"])


def hidden_region(parse, dilate: int):
    """N x 1 x H x W: the upper body (any garment, torso skin, arms), dilated by ``dilate`` px: whatever a new
    upper garment could cover, so its outline says little about the old garment."""
    from torch.nn import functional as F

    region = label_mask(parse, HIDDEN_IDS)
    return F.max_pool2d(region, 2 * dilate + 1, stride=1, padding=dilate) if dilate else region


def agnostic_dilate(height: int) -> int:
    return max(1, height // 32)


def agnostic_image(person, parse, dilate: int):
    """(the person with the hidden region set to 0, grey in [-1, 1]; keep = 1 - hidden)."""
    keep = 1.0 - hidden_region(parse, dilate)
    return person * keep, keep


def worn_mask(parse):
    return label_mask(parse, UPPER_GARMENT_IDS)


def worn_garment(person, mask):
    """The garment as worn, on white: what the geometric matching module's warp is trained to reproduce."""
    return person * mask + (1.0 - mask)


@dataclass
class Batch:
    person: "object"  # N x 3 x H x W, [-1, 1]
    agnostic: "object"  # N x 29 x H x W
    cloth: "object"  # N x 3 x H x W
    cloth_mask: "object"  # N x 1 x H x W, {0, 1}
    worn_mask: "object"  # N x 1 x H x W, {0, 1}
    worn: "object"  # N x 3 x H x W: the worn garment on white
    shown: "object" = None  # N x 3 x H x W: VITON-HD's agnostic person image (when asked for)
    keep: "object" = None  # N x 1 x H x W: 1 where ``shown`` shows the person
    hidden: "object" = None  # N x 1 x H x W: the region the model must render (1 - keep; undilated without it)


def batch(tensors: dict, index, radius: int, dilate: int = 0) -> Batch:
    """A batch of the uint8 training tensors (``device_tensors``) at ``index``; ``dilate`` > 0 adds the agnostic image."""
    person = unit(tensors["person"][index])
    parse = tensors["parse"][index]
    mask = worn_mask(parse)
    shown, keep = agnostic_image(person, parse, dilate) if dilate else (None, None)
    return Batch(person=person, agnostic=agnostic(person, parse, tensors["keypoints"][index], radius),
                 cloth=unit(tensors["cloth"][index]), cloth_mask=tensors["cloth_mask"][index].unsqueeze(1).float(),
                 worn_mask=mask, worn=worn_garment(person, mask), shown=shown, keep=keep,
                 hidden=1.0 - keep if keep is not None else hidden_region(parse, 0))


def device_tensors(arrays: Arrays, device) -> dict:
    import torch

    return {name: torch.from_numpy(np.ascontiguousarray(getattr(arrays, name))).to(device)
            for name in ("person", "parse", "keypoints", "cloth", "cloth_mask")}
