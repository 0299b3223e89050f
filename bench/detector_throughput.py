"""Benchmark: our detector training/inference settings against torchvision's reference recipe.

Same data (the synthetic DeepFashion sample, or ``--coco-dir``), same backbone, same run:

- **reference** (``pytorch/vision`` ``references/detection``): 2 images per step, inputs resized to
  800 px (max 1333), fp32, images decoded to float tensors on the host, and ``loss.item()`` plus a
  finiteness check every step (a host sync); evaluation one image at a time at 800 px;
- **ours** (``fashion_pipeline.detector``): the thesis's batch of 2 at 300 px (max 512; DeepFashion
  images are ~300 px, 800 would upscale them), uint8 to the device, losses summed on the device
  and read every ``log_period`` steps, AMP on CUDA; evaluation in batches of 8.

Throughput is images per second after ``--warmup`` steps. The AP of both settings on a full
training is not measured here (that needs the 50k-iteration runs of the ``fashion_detector`` asset).

Run: ``.venv/bin/python -m bench.detector_throughput [--device auto --backbone resnet50 --steps 20]``
Writes ``bench/results/detector_throughput.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the training CLI does; both sides get it
import torch  # noqa: E402
import numpy as np
from PIL import Image

from fashion_pipeline.common.atomic import write_json, write_text
from fashion_pipeline.common.device import pick_device
from fashion_pipeline.detector import engine
from fashion_pipeline.detector.data import CocoDetectionDataset, GroupedBatchSampler, aspect_ratio_groups, collate, hflip
from fashion_pipeline.detector.evaluate import predict_dataset
from fashion_pipeline.detector.model import DetectorSpec, build_detector

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_SIZES = dict(min_size=800, max_size=1333)
OUR_SIZES = dict(min_size=300, max_size=512)


def sample_coco_dir(images: int) -> Path:
    """Generate the embedded DeepFashion sample and convert it, as the deepfashion_coco asset does."""
    import subprocess
    import sys

    root = Path(tempfile.mkdtemp(prefix="detector_bench_"))
    subprocess.run([sys.executable, "-m", "fashion_pipeline.deepfashion.sample", "--root", str(root / "sample"),
                    "--images", str(images)], check=True)
    subprocess.run([sys.executable, "-m", "fashion_pipeline.deepfashion.convert", "--root", str(root / "sample"),
                    "--out", str(root / "coco")], check=True)
    return root / "coco"


class ReferenceDataset(CocoDetectionDataset):
    """What the reference feeds the model: float32 tensors made on the host (ToTensor-style)."""

    def __getitem__(self, item):
        index, flip = item if isinstance(item, tuple) else (item, False)
        with Image.open(self.image_root / self.images[index]["file_name"]) as opened:
            image = torch.from_numpy(np.array(opened.convert("RGB"))).permute(2, 0, 1).float() / 255
        target = self.target(index)
        if flip:
            image, target = hflip(image, target)
        return image, target


def reference_train(model, dataset, device, steps: int, warmup: int) -> float:
    """references/detection/engine.py train_one_epoch: fp32, loss.item() + isfinite every step."""
    groups = aspect_ratio_groups(dataset.aspect_ratios(), 3)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=GroupedBatchSampler(groups, 2, seed=0, hflip_prob=0.5),
                                         num_workers=2, collate_fn=collate)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.0025, momentum=0.9, weight_decay=1e-4)
    model.to(device).train()
    clock, seen = None, 0
    for step, (images, targets) in enumerate(loader):
        if step == warmup:
            clock, seen = time.perf_counter(), 0
        if step == steps + warmup:
            break
        images = [image.to(device) for image in images]
        targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
        loss_dict = model(images, targets)
        losses = sum(loss for loss in loss_dict.values())
        loss_value = losses.item()  # the per-step host sync of the reference
        if not math.isfinite(loss_value):
            raise RuntimeError(f"reference loss is {loss_value}")
        optimizer.zero_grad()
        losses.backward()
        optimizer.step()
        seen += len(images)
    return seen / (time.perf_counter() - clock)


def our_train(model, dataset, device, steps: int, warmup: int, output_dir: Path) -> float:
    solver = engine.SolverConfig(max_iter=steps + warmup, batch_size=2, num_workers=2, log_period=max(warmup, 1),
                                 checkpoint_period=10**9, warmup_iters=0)
    state = engine.train(model, dataset, solver, device, output_dir, {"model_spec": {}}, resume=False)
    timed = [window for window in state.history if window["start"] >= warmup]
    return sum((w["iteration"] - w["start"]) * 2 for w in timed) / sum(w["seconds"] for w in timed)


def reference_inference(model, dataset, device) -> float:
    """references/detection/engine.py evaluate: batch 1, fp32, synchronize around every image."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, collate_fn=collate)
    with torch.inference_mode():
        clock = time.perf_counter()
        for images, _ in loader:
            if device.type == "cuda":
                torch.cuda.synchronize()
            model([image.to(device) for image in images])
            if device.type == "cuda":
                torch.cuda.synchronize()
    return len(dataset) / (time.perf_counter() - clock)


def our_inference(model, dataset, device, amp: bool) -> float:
    clock = time.perf_counter()
    with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
        predict_dataset(model, dataset, device, batch_size=8)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(dataset) / (time.perf_counter() - clock)


def fresh_model(backbone: str, sizes: dict, device):
    torch.manual_seed(0)
    return build_detector(DetectorSpec(backbone=backbone, norm="bn", trainable_backbone_layers=5, **sizes)).to(device)


def run(args) -> dict:
    device = pick_device(args.device)
    coco_dir = Path(args.coco_dir) if args.coco_dir else sample_coco_dir(args.sample_images)
    val_subset = dict(max_images=args.eval_images)
    load = os.getloadavg()[0]
    results = {"device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
               "backbone": args.backbone, "steps": args.steps, "warmup": args.warmup, "eval_images": args.eval_images,
               "torch_threads": torch.get_num_threads(), "load_average_start": load, "machine": platform.machine()}
    with tempfile.TemporaryDirectory() as scratch:
        results["reference_train_images_per_s"] = reference_train(
            fresh_model(args.backbone, REFERENCE_SIZES, device), ReferenceDataset(coco_dir / "train.json"), device, args.steps, args.warmup)
        print(f"reference training: {results['reference_train_images_per_s']:.2f} images/s", flush=True)
        ours = fresh_model(args.backbone, OUR_SIZES, device)
        results["ours_train_images_per_s"] = our_train(ours, CocoDetectionDataset(coco_dir / "train.json"), device,
                                                       args.steps, args.warmup, Path(scratch))
        print(f"our training: {results['ours_train_images_per_s']:.2f} images/s", flush=True)
    results["reference_inference_images_per_s"] = reference_inference(
        fresh_model(args.backbone, REFERENCE_SIZES, device), ReferenceDataset(coco_dir / "val.json", **val_subset), device)
    results["ours_inference_images_per_s"] = our_inference(ours, CocoDetectionDataset(coco_dir / "val.json", **val_subset), device, True)
    results["train_speedup"] = results["ours_train_images_per_s"] / results["reference_train_images_per_s"]
    results["inference_speedup"] = results["ours_inference_images_per_s"] / results["reference_inference_images_per_s"]
    results["load_average_end"] = os.getloadavg()[0]
    return results


def markdown(results: dict) -> str:
    return "\n".join([
        "## Detector throughput (`bench/detector_throughput.py`)",
        "",
        f"### {results['device']}, {results['torch_threads']} torch threads "
        f"(1-min load average {results['load_average_start']:.1f} at start, {results['load_average_end']:.1f} at end)",
        "",
        f"Faster R-CNN FPN on {results['backbone']} (from scratch), synthetic DeepFashion sample, "
        f"{results['steps']} timed training steps after {results['warmup']} warm-up steps; inference on {results['eval_images']} val images.",
        "",
        "| settings | train images/s | inference images/s |",
        "|---|---|---|",
        f"| reference (torchvision references/detection: batch 2, 800 px, fp32, host float tensors, `loss.item()` every step; eval batch 1) "
        f"| {results['reference_train_images_per_s']:.2f} | {results['reference_inference_images_per_s']:.2f} |",
        f"| ours (batch 2, 300 px, uint8 to device, one sync per log window, AMP on CUDA; eval batch 8) "
        f"| {results['ours_train_images_per_s']:.2f} | {results['ours_inference_images_per_s']:.2f} |",
        f"| **speed-up** | **{results['train_speedup']:.2f}x** | **{results['inference_speedup']:.2f}x** |",
        "",
        "AP at equal training length is not part of this short run; compare the `AP` metadata of two "
        "`fashion_detector` materializations (`min_size` 300 vs 800) for that.",
        "",
    ])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backbone", default=None, help="default: resnet50 on CUDA, resnet18 on CPU (minutes, not hours)")
    parser.add_argument("--coco-dir", default=None, help="a deepfashion_coco folder; default: generate the sample")
    parser.add_argument("--sample-images", type=int, default=120)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 50 on CUDA, 4 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 10 on CUDA, 1 on CPU)")
    parser.add_argument("--eval-images", type=int, default=None, help="default 200 on CUDA, 8 on CPU")
    args = parser.parse_args(argv)
    cuda = pick_device(args.device).type == "cuda"
    args.backbone = args.backbone or ("resnet50" if cuda else "resnet18")
    args.steps = args.steps or (50 if cuda else 4)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    args.eval_images = args.eval_images or (200 if cuda else 8)
    results = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "detector_throughput.json", results, indent=2)
    write_text(RESULTS / "detector_throughput.md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
