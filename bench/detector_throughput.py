"""Benchmark: the detector's training loop and recipe, each against its reference, in two separate rows.

**Implementation** (the loop, all else equal): ours (``fashion_pipeline.detector.engine.train``)
against torchvision's ``references/detection/engine.py`` ``train_one_epoch`` (pytorch/vision,
BSD-3-Clause), re-implemented below step for step: host float tensors from the dataset (its
``PILToTensor`` + ``ConvertImageDtype``), ``autocast`` + ``GradScaler`` when mixed precision is on,
``reduce_dict`` (an identity on one process), ``losses_reduced.item()`` and an ``isfinite`` check
every step, a ``LinearLR`` warmup, and ``MetricLogger.update`` (one ``.item()`` per loss per step).
Both sides: the same network and initial weights, the same input size (300 px, max 512), the same
precision (AMP float16 on CUDA, float32 on the CPU), batch 2, the same batches and flips (one
``GroupedBatchSampler`` seed) and the same number of loader workers. Inference: the reference's
``evaluate`` loop (batch 1, a ``synchronize`` before each image, every output moved to the CPU
image by image) against ours (``predict_dataset``: batches of 8, loader workers, one copy per
batch), both in float32 as the pipeline infers.

**Recipe** (the input size, same loop): our loop at 300 px (max 512) against torchvision's default
800 px (max 1333), trained from the same initial weights for the same iterations on the synthetic
DeepFashion sample, then COCO AP on a seeded val sample (when pycocotools is installed) and float32
inference speed. DeepFashion images are ~300 px: 800 px upscales them ~2.7x.

Throughput is training images per second after ``--warmup`` untimed steps. Every figure is stored
with the device's name. Needs neither dagster nor (except for AP) pycocotools.

Run: ``python -m bench.detector_throughput [--device auto --backbone resnet50 --steps 50 --out DIR]``
Writes ``detector_throughput.json`` and ``.md`` to ``--out`` (default ``bench/results``).
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the training CLI does; both sides get it
import torch  # noqa: E402
from torch.profiler import record_function  # noqa: E402  (labels for bench/detector_profile.py)

from fashion_pipeline.common.atomic import write_json, write_text  # noqa: E402
from fashion_pipeline.common.device import pick_device  # noqa: E402
from fashion_pipeline.detector import engine  # noqa: E402
from fashion_pipeline.detector.data import CocoDetectionDataset, GroupedBatchSampler, aspect_ratio_groups, collate  # noqa: E402
from fashion_pipeline.detector.evaluate import predict_dataset  # noqa: E402
from fashion_pipeline.detector.model import DetectorSpec, build_detector  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
OUR_SIZES = dict(min_size=300, max_size=512)
REFERENCE_SIZES = dict(min_size=800, max_size=1333)  # torchvision's FasterRCNN defaults
SEED = 42


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def sample_coco_dir(images: int) -> Path:
    """Generate the embedded DeepFashion sample and convert it, as the deepfashion_coco asset does."""
    import subprocess

    root = Path(tempfile.mkdtemp(prefix="detector_bench_"))
    subprocess.run([sys.executable, "-m", "fashion_pipeline.deepfashion.sample", "--root", str(root / "sample"),
                    "--images", str(images)], check=True)
    subprocess.run([sys.executable, "-m", "fashion_pipeline.deepfashion.convert", "--root", str(root / "sample"),
                    "--out", str(root / "coco")], check=True)
    return root / "coco"


class HostFloatDataset(CocoDetectionDataset):
    """What the reference's transforms hand the model: float32 in [0, 1], made on the host."""

    def __getitem__(self, item):
        image, target = super().__getitem__(item)
        return image.float().div_(255), target


def fresh_model(backbone: str, sizes: dict, device):
    torch.manual_seed(SEED)
    return build_detector(DetectorSpec(backbone=backbone, norm="bn", trainable_backbone_layers=5, **sizes)).to(device)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ the reference loop

def reference_train(model, dataset, device, args, amp: bool) -> float:
    """torchvision references/detection/engine.py ``train_one_epoch``, epoch 0, one process."""
    groups = aspect_ratio_groups(dataset.aspect_ratios(), 3)
    sampler = GroupedBatchSampler(groups, 2, seed=SEED, hflip_prob=0.5)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=args.workers, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(SEED))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.0025, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda") if amp else None
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / 1000, total_iters=1000)
    model.train()
    clock, seen, meters = None, 0, {}
    for step, (images, targets) in enumerate(loader):
        if step == args.warmup:
            sync(device)
            clock, seen = time.perf_counter(), 0
        if step == args.warmup + args.steps:
            break
        images = list(image.to(device) for image in images)
        targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
        with record_function("reference: forward"), torch.autocast(device.type, enabled=scaler is not None):
            loss_dict = model(images, targets)
            losses = sum(loss for loss in loss_dict.values())
        loss_dict_reduced = loss_dict  # utils.reduce_dict with world size 1
        losses_reduced = sum(loss for loss in loss_dict_reduced.values())
        with record_function("reference: loss.item()"):
            loss_value = losses_reduced.item()
        if not math.isfinite(loss_value):
            raise RuntimeError(f"reference loss is {loss_value}")
        with record_function("reference: backward + step"):
            optimizer.zero_grad()
            if scaler is not None:
                scaler.scale(losses).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                losses.backward()
                optimizer.step()
            warmup.step()
        for name, value in {"loss": losses_reduced, **loss_dict_reduced}.items():  # MetricLogger.update
            meters[name] = value.item()
        meters["lr"] = optimizer.param_groups[0]["lr"]
        seen += len(images)
    sync(device)
    return seen / (time.perf_counter() - clock)


@torch.inference_mode()
def reference_inference(model, dataset, device) -> float:
    """references/detection/engine.py ``evaluate`` without the COCO bookkeeping: batch 1, a sync
    before each image, each output moved to the CPU key by key."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, collate_fn=collate)
    clock = time.perf_counter()
    for images, _ in loader:
        images = list(image.to(device) for image in images)
        sync(device)
        outputs = model(images)
        outputs = [{k: v.to("cpu") for k, v in t.items()} for t in outputs]
    return len(dataset) / (time.perf_counter() - clock)


# ------------------------------------------------------------------ ours

def our_train(model, dataset, device, args, amp: bool, iterations: int, warmup: int, output_dir: Path,
              solver_overrides: dict | None = None) -> tuple[float, engine.TrainState]:
    """``engine.train`` as the CLI runs it; images/s over the log windows after the warm-up steps."""
    values = {**dict(max_iter=iterations, batch_size=2, num_workers=args.workers, log_period=max(warmup, 1),
                     checkpoint_period=10**9, amp=amp, seed=SEED), **(solver_overrides or {})}
    state = engine.train(model, dataset, engine.SolverConfig(**values), device, output_dir, {"model_spec": {}}, resume=False)
    timed = [window for window in state.history if window["start"] >= warmup] or state.history
    rate = sum((w["iteration"] - w["start"]) * values["batch_size"] for w in timed) / sum(w["seconds"] for w in timed)
    return rate, state


def our_inference(model, dataset, device, workers: int) -> tuple[float, list[dict]]:
    """The pipeline's evaluation path, float32 (no autocast), as ``train.py`` and inference run it."""
    sync(device)
    clock = time.perf_counter()
    detections = predict_dataset(model, dataset, device, batch_size=8, num_workers=workers)
    sync(device)
    return len(dataset) / (time.perf_counter() - clock), detections


def coco_ap(dataset, detections) -> float | None:
    try:
        from fashion_pipeline.detector.evaluate import coco_metrics

        return coco_metrics(dataset.coco, detections, image_ids=[image["id"] for image in dataset.images])["AP"]
    except ImportError:  # pycocotools is optional on a bare GPU machine
        return None


# ------------------------------------------------------------------ the two rows

def implementation_row(args, coco_dir: Path, device, amp: bool, scratch: Path) -> dict:
    train_json, val_json = coco_dir / "train.json", coco_dir / "val.json"
    reference = reference_train(fresh_model(args.backbone, OUR_SIZES, device), HostFloatDataset(train_json), device, args, amp)
    print(f"implementation, reference loop: {reference:.2f} images/s", flush=True)
    model = fresh_model(args.backbone, OUR_SIZES, device)
    ours, _ = our_train(model, CocoDetectionDataset(train_json), device, args, amp,
                        args.warmup + args.steps, args.warmup, scratch / "ours", dict(warmup_iters=1000))
    print(f"implementation, our loop: {ours:.2f} images/s", flush=True)
    # Both inference loops time the model our loop just trained (trained in place).
    sample = dict(max_images=args.eval_images, sample_seed=0)
    reference_infer = reference_inference(model, HostFloatDataset(val_json, **sample), device)
    ours_infer, _ = our_inference(model, CocoDetectionDataset(val_json, **sample), device, args.workers)
    return {"device": device_name(device), "input": "300 px (max 512)", "precision": "AMP float16" if amp else "float32",
            "batch": 2, "val_images": len(CocoDetectionDataset(val_json, **sample)), "timed_steps": args.steps, "warmup_steps": args.warmup,
            "reference_train_images_per_s": reference, "ours_train_images_per_s": ours, "train_speedup": ours / reference,
            "inference_precision": "float32", "reference_inference_images_per_s": reference_infer,
            "ours_inference_images_per_s": ours_infer, "inference_speedup": ours_infer / reference_infer}


def recipe_side(args, coco_dir: Path, device, amp: bool, sizes: dict, scratch: Path) -> dict:
    iterations = args.recipe_iterations
    warmup = max(1, min(args.warmup, iterations // 4))
    # The thesis's solver, its schedule shrunk to this run: warmup over the first fifth, no decay.
    overrides = dict(warmup_iters=max(1, iterations // 5), lr_steps=(), base_lr=0.0025)
    train_rate, state = our_train(fresh_model(args.backbone, sizes, device), CocoDetectionDataset(coco_dir / "train.json"),
                                  device, args, amp, iterations, warmup, scratch / str(sizes["min_size"]), overrides)
    model = build_detector(DetectorSpec(backbone=args.backbone, norm="bn", trainable_backbone_layers=5, **sizes))
    model.load_state_dict(torch.load(scratch / str(sizes["min_size"]) / engine.CHECKPOINT_NAME, map_location="cpu",
                                     weights_only=False)["model"])
    model.to(device)
    val = CocoDetectionDataset(coco_dir / "val.json", max_images=args.eval_images, sample_seed=0)
    infer_rate, detections = our_inference(model, val, device, args.workers)
    return {"input": f"{sizes['min_size']} px (max {sizes['max_size']})", "train_images_per_s": train_rate,
            "inference_images_per_s": infer_rate, "AP": coco_ap(val, detections), "iterations": state.iteration,
            "val_images": len(val),
            "final_loss": state.history[-1]["loss"]}


def recipe_row(args, coco_dir: Path, device, amp: bool, scratch: Path) -> dict:
    ours = recipe_side(args, coco_dir, device, amp, OUR_SIZES, scratch)
    print(f"recipe, 300 px: {ours}", flush=True)
    reference = recipe_side(args, coco_dir, device, amp, REFERENCE_SIZES, scratch)
    print(f"recipe, 800 px: {reference}", flush=True)
    return {"device": device_name(device), "precision": "AMP float16" if amp else "float32", "batch": 2,
            "iterations": args.recipe_iterations, "eval_images": ours["val_images"], "ours_300": ours, "torchvision_800": reference,
            "train_speedup": ours["train_images_per_s"] / reference["train_images_per_s"],
            "inference_speedup": ours["inference_images_per_s"] / reference["inference_images_per_s"]}


# ------------------------------------------------------------------ time to quality (issue 24)

THESIS_IMAGES = 360_000 * 2  # the thesis's budget as issue 24 states it: 360k iterations x 2 images at 800 px


def scaled_schedule(images: int, batch_size: int) -> dict:
    """The thesis's schedule shape (warmup over the first 1/50, decays at 40% and 80%) for ``images`` images."""
    iterations = max(1, images // batch_size)
    return {"max_iter": iterations, "warmup_iters": max(1, iterations // 50),
            "lr_steps": (int(0.4 * iterations), int(0.8 * iterations))}


def ttq_side(name: str, args, coco_dir: Path, device, scratch: Path) -> dict:
    """One recipe trained on ``args.images_seen`` images from the same initial weights, then AP on val."""
    cuda = device.type == "cuda"
    model = fresh_model(args.backbone, dict(min_size=args.ttq_size, max_size=round(args.ttq_size * 1333 / 800)), device)
    train_json = coco_dir / "train.json"
    if name == "reference":
        steps = args.images_seen // 2
        warmup = max(1, min(args.warmup, steps // 4))
        loop_args = argparse.Namespace(workers=args.workers, warmup=warmup, steps=steps - warmup)
        rate, solver_values = reference_train(model, HostFloatDataset(train_json), device, loop_args, amp=cuda), {}
    else:
        from fashion_pipeline.detector.train import fast_recipe

        batch = 16 if name == "fast" else 2
        recipe = fast_recipe(batch) if name == "fast" else {}
        solver_values = {**{k: v for k, v in recipe.items() if k not in ("max_iter", "lr_steps", "warmup_iters")},
                         **scaled_schedule(args.images_seen, batch), "batch_size": batch}
        steps = solver_values["max_iter"]
        warmup = max(1, min(args.warmup, steps // 4))
        rate, _ = our_train(model, CocoDetectionDataset(train_json), device, args, cuda, steps, warmup, scratch / name,
                            solver_values)
    val = CocoDetectionDataset(coco_dir / "val.json", max_images=args.eval_images, sample_seed=0)
    _, detections = our_inference(model, val, device, args.workers)
    return {"recipe": name, "batch": solver_values.get("batch_size", 2), "iterations": steps,
            "images_seen": steps * solver_values.get("batch_size", 2), "train_images_per_s": rate,
            "projected_hours_thesis_budget": THESIS_IMAGES / rate / 3600, "AP": coco_ap(val, detections),
            "val_images": len(val), "solver": {k: list(v) if isinstance(v, tuple) else v for k, v in solver_values.items()}}


def time_to_quality_row(args, coco_dir: Path, device, scratch: Path) -> dict:
    """Fast recipe vs thesis recipe vs the reference loop at 800 px and equal images seen."""
    sides = {}
    for name in ("thesis", "fast", "reference"):
        sides[name] = ttq_side(name, args, coco_dir, device, scratch)
        print(f"time to quality, {name}: {sides[name]}", flush=True)
    fast, thesis = sides["fast"], sides["thesis"]
    row = {"device": device_name(device), "input": f"{args.ttq_size} px (max {round(args.ttq_size * 1333 / 800)})", "images_seen": args.images_seen,
           "thesis_budget_images": THESIS_IMAGES, "sides": sides, "cuda": device.type == "cuda",
           "fast_over_thesis_images_per_s": fast["train_images_per_s"] / thesis["train_images_per_s"],
           "fast_over_reference_images_per_s": fast["train_images_per_s"] / sides["reference"]["train_images_per_s"]}
    if fast["AP"] is not None and thesis["AP"] is not None:
        row["fast_minus_thesis_AP"] = fast["AP"] - thesis["AP"]
    # Targets (issue 24), judged only on a GPU: <= 2 h for the thesis's budget, AP within 0.01 of the thesis's.
    row["time_target_met"] = row["cuda"] and fast["projected_hours_thesis_budget"] <= 2.0
    row["ap_target_met"] = row["cuda"] and row.get("fast_minus_thesis_AP", -1.0) >= -0.01
    return row


def run(args) -> dict:
    device = pick_device(args.device)
    amp = device.type == "cuda" and not args.no_amp
    coco_dir = Path(args.coco_dir) if args.coco_dir else sample_coco_dir(args.sample_images)
    results = {"device": device_name(device), "torch": torch.__version__, "date": datetime.date.today().isoformat(),
               "backbone": args.backbone, "load_average_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as scratch:
        if "implementation" in args.rows:
            results["implementation"] = implementation_row(args, coco_dir, device, amp, Path(scratch))
        if "recipe" in args.rows:
            results["recipe"] = recipe_row(args, coco_dir, device, amp, Path(scratch))
        if "time_to_quality" in args.rows:
            results["time_to_quality"] = time_to_quality_row(args, coco_dir, device, Path(scratch))
    results["load_average_end"] = os.getloadavg()[0]
    return results


def _ap(value) -> str:
    return "n/a (no pycocotools)" if value is None else f"{value:.3f}"


def markdown(results: dict) -> str:
    parts = [("implementation" in results and "recipe" in results and rows_markdown(results)),
             ("time_to_quality" in results and time_to_quality_markdown(results))]
    return "\n".join(part for part in parts if part)


def time_to_quality_markdown(results: dict) -> str:
    row = results["time_to_quality"]
    sides = row["sides"]
    names = {"thesis": "ours, thesis recipe (batch 2, AMP float16)",
             "fast": "ours, fast recipe (batch 16, linear lr, bf16, channels_last, cached decode)",
             "reference": "torchvision references/detection loop (batch 2, AMP float16)"}
    if not row["cuda"]:
        names = {key: value.replace("AMP float16", "float32").replace("bf16, ", "") for key, value in names.items()}
    lines = ["### Detector time to quality (`bench/detector_throughput.py --rows time_to_quality`)", "",
             f"{row['device']}, torch {results['torch']}, {results['date']}; {results['backbone']} from scratch, "
             f"{row['input']}, {row['images_seen']} images seen by each recipe, AP on "
             f"{sides['thesis']['val_images']} val images.", "",
             "| recipe | iterations x batch | train images/s | projected hours for 360,000 x 2 images | AP after equal images |",
             "|---|---|---|---|---|"]
    lines += [f"| {names[key]} | {side['iterations']} x {side['batch']} | {side['train_images_per_s']:.2f} "
              f"| {side['projected_hours_thesis_budget']:.1f} | {_ap(side['AP'])} |" for key, side in sides.items()]
    lines += ["", f"Fast / thesis: **{row['fast_over_thesis_images_per_s']:.2f}x** images/s; fast / reference: "
              f"**{row['fast_over_reference_images_per_s']:.2f}x**; fast - thesis AP: "
              + (f"{row['fast_minus_thesis_AP']:+.3f}" if "fast_minus_thesis_AP" in row else "n/a") + "."]
    if row["cuda"]:
        lines.append(f"Targets (issue 24): <= 2 h for the thesis's budget: **{'met' if row['time_target_met'] else 'not met'}**; "
                     f"AP within 0.01 of the thesis recipe's: **{'met' if row['ap_target_met'] else 'not met'}**.")
    else:
        lines.append("CPU smoke run (no CUDA): shows the comparison runs; not a measurement of the GPU targets.")
    return "\n".join(lines) + "\n"


def rows_markdown(results: dict) -> str:
    impl, recipe = results["implementation"], results["recipe"]
    ours, ref = recipe["ours_300"], recipe["torchvision_800"]
    return "\n".join([
        "## Detector (`bench/detector_throughput.py`)",
        "",
        f"{results['device']}, torch {results['torch']}, {results['date']}; Faster R-CNN FPN on {results['backbone']} "
        f"from scratch, synthetic DeepFashion sample (1-min load average {results['load_average_start']:.1f} at start, "
        f"{results['load_average_end']:.1f} at end).",
        "",
        f"**Implementation**: same input ({impl['input']}), precision ({impl['precision']}), batch {impl['batch']}, "
        f"data and initial weights; {impl['timed_steps']} timed steps after {impl['warmup_steps']}. Inference in "
        f"{impl['inference_precision']}.",
        "",
        "| loop | device | train images/s | inference images/s |",
        "|---|---|---|---|",
        f"| torchvision references/detection `train_one_epoch` / `evaluate` | {impl['device']} "
        f"| {impl['reference_train_images_per_s']:.2f} | {impl['reference_inference_images_per_s']:.2f} |",
        f"| ours (`engine.train` / `predict_dataset`) | {impl['device']} | {impl['ours_train_images_per_s']:.2f} "
        f"| {impl['ours_inference_images_per_s']:.2f} |",
        f"| **ours / reference** | | **{impl['train_speedup']:.2f}x** | **{impl['inference_speedup']:.2f}x** |",
        "",
        f"**Recipe**: our loop, {recipe['precision']}, batch {recipe['batch']}, {recipe['iterations']} iterations from "
        f"the same initial weights; AP on {recipe['eval_images']} val images (a seeded sample when the split is larger); "
        "inference in float32.",
        "",
        "| input size | device | train images/s | inference images/s | AP after the same iterations |",
        "|---|---|---|---|---|",
        f"| {ref['input']} (torchvision's default) | {recipe['device']} | {ref['train_images_per_s']:.2f} "
        f"| {ref['inference_images_per_s']:.2f} | {_ap(ref['AP'])} |",
        f"| {ours['input']} (ours) | {recipe['device']} | {ours['train_images_per_s']:.2f} "
        f"| {ours['inference_images_per_s']:.2f} | {_ap(ours['AP'])} |",
        f"| **300 / 800** | | **{recipe['train_speedup']:.2f}x** | **{recipe['inference_speedup']:.2f}x** | |",
        "",
    ])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backbone", default=None, help="default: resnet50 on CUDA, resnet18 on the CPU")
    parser.add_argument("--coco-dir", default=None, help="a deepfashion_coco folder; default: generate the sample")
    parser.add_argument("--sample-images", type=int, default=120)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per loop (default 100 on CUDA, 4 on the CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 20 on CUDA, 1 on the CPU)")
    parser.add_argument("--recipe-iterations", type=int, default=None, help="default 400 on CUDA, 8 on the CPU")
    parser.add_argument("--eval-images", type=int, default=None, help="default 200 on CUDA, 8 on the CPU")
    parser.add_argument("--workers", type=int, default=2, help="loader workers, both sides")
    parser.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    parser.add_argument("--rows", nargs="+", choices=["implementation", "recipe", "time_to_quality"],
                        default=["implementation", "recipe"])
    parser.add_argument("--images-seen", type=int, default=None,
                        help="time_to_quality: images each recipe trains on (default 4000 on CUDA, 32 on the CPU)")
    parser.add_argument("--ttq-size", type=int, default=None,
                        help="time_to_quality: short side (default 800 on CUDA, the thesis's; 128 on the CPU)")
    parser.add_argument("--out", default=os.environ.get("DETECTOR_BENCH_OUT", str(RESULTS)))
    args = parser.parse_args(argv)
    cuda = pick_device(args.device).type == "cuda"
    args.backbone = args.backbone or ("resnet50" if cuda else "resnet18")
    args.steps = args.steps or (100 if cuda else 4)
    args.warmup = args.warmup if args.warmup is not None else (20 if cuda else 1)
    args.recipe_iterations = args.recipe_iterations or (400 if cuda else 8)
    args.eval_images = args.eval_images or (200 if cuda else 8)
    args.images_seen = args.images_seen or (4000 if cuda else 32)
    args.ttq_size = args.ttq_size or (800 if cuda else 128)
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "detector_throughput" if args.rows != ["time_to_quality"] else "detector_time_to_quality"
    write_json(out / f"{stem}.json", results, indent=2)
    write_text(out / f"{stem}.md", markdown(results))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
