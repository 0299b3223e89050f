"""Load a trained detector and run it on images: the API the GAN stage uses.

``predict`` returns boxes in the original image's pixel coordinates (torchvision's transform
resizes for the network and maps the boxes back).
"""
from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from fashion_pipeline.common.render import to_pil
from fashion_pipeline.detector.model import CLASS_NAMES, DetectorSpec, build_detector


def read_checkpoint(checkpoint_path: str | Path) -> dict:
    try:
        return torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # checkpoint_last.pt also holds numpy RNG state; it is our own file, so full unpickling is fine.
        return torch.load(checkpoint_path, map_location="cpu", weights_only=False)


def load_detector(checkpoint_path: str | Path, device) -> torch.nn.Module:
    """Rebuild the network from the spec stored in the checkpoint and load its weights (eval mode)."""
    checkpoint = read_checkpoint(checkpoint_path)
    if "model_spec" not in checkpoint or "model" not in checkpoint:
        raise ValueError(f"{checkpoint_path} is not a fashion_detector checkpoint (no model_spec/model)")
    model = build_detector(DetectorSpec.from_dict(checkpoint["model_spec"]))
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


def image_tensor(item) -> torch.Tensor:
    """PIL image, HxWx3 array or path -> uint8 CxHxW tensor."""
    array = np.asarray(to_pil(item))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def network_scale(width: int, height: int, min_size: int, max_size: int) -> float:
    """The factor torchvision's ``GeneralizedRCNNTransform`` resizes by (short side to ``min_size``,
    long side at most ``max_size``)."""
    return min(min_size / min(width, height), max_size / max(width, height))


def host_input(item, min_size: int, max_size: int) -> tuple[torch.Tensor, tuple[float, float]]:
    """Decode and, when the network would shrink it, resize on the host: the device then receives
    the small uint8 image, not the full-size one. Returns the tensor and the (x, y) factors that map
    its boxes back to the original pixels. Images the network would enlarge are left to it."""
    image = to_pil(item)
    width, height = image.size
    scale = network_scale(width, height, min_size, max_size)
    if scale < 1:
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR)
    tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    return tensor, (width / image.size[0], height / image.size[1])


@torch.inference_mode()
def predict(model, images: Sequence[Image.Image | str | Path], device, batch_size: int = 8) -> list[dict]:
    """One dict per image: ``boxes`` (N x 4 float32 xyxy, original pixels), ``labels`` (1 upper,
    2 lower, 3 full), ``scores``; sorted by score, highest first.

    Images are decoded and shrunk to the network's input size on the host before the transfer
    (Pinterest pins are several times larger than the 300 px the detector sees), and each batch's
    results come back in one copy."""
    from fashion_pipeline.detector.evaluate import outputs_to_host

    device = torch.device(device)
    model.eval()
    min_size, max_size = model.transform.min_size[-1], model.transform.max_size
    results = []
    for start in range(0, len(images), batch_size):
        prepared = [host_input(item, min_size, max_size) for item in images[start:start + batch_size]]
        batch = [tensor.to(device, non_blocking=True).float().div_(255) for tensor, _ in prepared]
        for (_, (scale_x, scale_y)), output in zip(prepared, outputs_to_host(model(batch))):
            boxes = output["boxes"] * np.array([scale_x, scale_y, scale_x, scale_y], np.float32)
            results.append({"boxes": boxes.astype(np.float32), "labels": output["labels"],
                            "scores": output["scores"].astype(np.float32)})
    return results


def main(argv=None) -> None:
    from fashion_pipeline.common.device import pick_device

    parser = argparse.ArgumentParser(description="Detect garments (upper / lower / full) in images.")
    parser.add_argument("checkpoint", help="model_final.pt from fashion_detector")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    model = load_detector(args.checkpoint, device)
    for path, result in zip(args.images, predict(model, args.images, device)):
        keep = result["scores"] >= args.score_threshold
        detections = [{"label": CLASS_NAMES[int(label)], "score": round(float(score), 3), "box": [round(float(v), 1) for v in box]}
                      for box, label, score in zip(result["boxes"][keep], result["labels"][keep], result["scores"][keep])]
        print(json.dumps({"image": path, "detections": detections}))


if __name__ == "__main__":
    main()
