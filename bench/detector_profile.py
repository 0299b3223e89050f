"""Profile: where the detector's training loop spends its host time, ours against torchvision's reference.

Two measurements, each side by side in one run (variants interleaved round by round, medians, so
the load other jobs put on a shared CPU hits every variant alike):

1. **The data pipeline alone** (no network): a ``GroupedBatchSampler`` batch through the loader,
   the copy to the device, and the model's own ``GeneralizedRCNNTransform`` (normalise, resize,
   pad into one batch). Three variants: torchvision's ``references/detection`` (decode + float32 on
   the host each step: ``PILToTensor`` + ``ConvertImageDtype``), ours with the thesis's recipe
   (decode each step, ``uint8`` until the device), ours with the fast recipe's ``cache_images``
   (decoded once before training). In-process (``num_workers=0``), so the figure is the host time
   per image that the loader workers would otherwise have to hide.
2. **Whole training steps under ``torch.profiler``** (CPU activity), for the reference loop
   (``bench.detector_throughput.reference_train``) and ours (``engine.train``) with either recipe's
   data path, on a small network: the top operators by self CPU time, the labelled parts of a step
   (``detector.data: decode``, the loader's ``__next__``, ``detector.train: forward`` ...) and the
   host syncs per step (``aten::item`` calls: each one drains the GPU's queue on CUDA).

On the CPU the network's arithmetic dominates a step, so (2) shows the data path's share, and (1)
what removing it buys a GPU run whose step is no longer arithmetic-bound. bf16 and channels_last
are CUDA matters and are not profiled here (autocast is off on the CPU in both recipes).

Run: ``python -m bench.detector_profile [--sample-images 48 --rounds 3 --out bench/results]``
Writes ``detector_profile.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from bench.detector_throughput import HostFloatDataset, device_name, reference_train, sample_coco_dir  # noqa: E402
from fashion_pipeline.common.atomic import write_json, write_text  # noqa: E402
from fashion_pipeline.detector import engine  # noqa: E402
from fashion_pipeline.detector.data import CocoDetectionDataset, GroupedBatchSampler, aspect_ratio_groups, collate  # noqa: E402
from fashion_pipeline.detector.model import DetectorSpec, build_detector  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 42
# A small network for the whole-step profile: the data path's share is what is looked at.
SMALL_NET = dict(backbone="resnet18", norm="bn", trainable_backbone_layers=5, fpn_channels=64, returned_layers=(2, 3, 4),
                 representation_size=256, rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
                 box_batch_size_per_image=128)
LABELS = ("detector.data: decode", "enumerate(DataLoader)", "detector.train: to_device", "detector.train: forward",
          "detector.train: backward + step", "reference: forward", "reference: backward + step", "reference: loss.item()")


def small_model(min_size: int, max_size: int):
    torch.manual_seed(SEED)
    return build_detector(DetectorSpec(min_size=min_size, max_size=max_size, **SMALL_NET))


# ------------------------------------------------------------------ 1. the data pipeline alone

def pipeline_seconds_per_image(dataset, transform, batches: int, batch_size: int, host_float: bool) -> float:
    """Loader -> device copy -> the model's transform, for ``batches`` batches; seconds per image."""
    groups = aspect_ratio_groups(dataset.aspect_ratios(), 3)
    sampler = GroupedBatchSampler(groups, batch_size, seed=SEED, hflip_prob=0.5)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=0, collate_fn=collate)
    device, seen = torch.device("cpu"), 0
    clock = time.perf_counter()
    for number, (images, targets) in enumerate(loader):
        if number == batches:
            break
        if host_float:  # the reference: float32 made on the host, moved as is
            images = [image.to(device) for image in images]
            targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
        else:
            images, targets = engine.to_device(images, targets, device)
        transform(images, targets)
        seen += len(images)
    return (time.perf_counter() - clock) / seen


def data_pipeline(train_json: Path, args) -> dict:
    transform = small_model(args.min_size, args.max_size).transform.train()
    cached = CocoDetectionDataset(train_json)
    cached.cache_decoded(args.min_size, args.max_size)
    variants = {"reference": (HostFloatDataset(train_json), True), "ours_thesis": (CocoDetectionDataset(train_json), False),
                "ours_fast": (cached, False)}
    times = {name: [] for name in variants}
    for round_number in range(args.rounds + 1):  # interleaved: the machine's load changes under every variant alike
        for name, (dataset, host_float) in variants.items():
            seconds = pipeline_seconds_per_image(dataset, transform, args.batches, args.batch_size, host_float)
            if round_number:  # round 0 warms the page cache and the allocator for all three; not counted
                times[name].append(seconds)
    result = {name: {"ms_per_image": 1000 * statistics.median(values), "images_per_s": 1 / statistics.median(values),
                     "min_ms_per_image": 1000 * min(values), "rounds_ms": [round(1000 * v, 2) for v in values]}
              for name, values in times.items()}
    result["fast_over_thesis"] = result["ours_fast"]["images_per_s"] / result["ours_thesis"]["images_per_s"]
    result["thesis_over_reference"] = result["ours_thesis"]["images_per_s"] / result["reference"]["images_per_s"]
    result["fast_over_reference"] = result["ours_fast"]["images_per_s"] / result["reference"]["images_per_s"]
    result["cache_bytes"] = cached.decoded.nbytes
    return result


# ------------------------------------------------------------------ 2. whole steps under torch.profiler

def summarise(prof, steps: int, top: int) -> dict:
    averages = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in averages) or 1
    rows = sorted(averages, key=lambda event: event.self_cpu_time_total, reverse=True)
    labelled = {}
    for event in averages:
        for label in LABELS:
            if event.key.startswith(label):
                entry = labelled.setdefault(label, {"cpu_ms_per_step": 0.0, "calls": 0})
                entry["cpu_ms_per_step"] += event.cpu_time_total / 1000 / steps
                entry["calls"] += event.count
    def calls(name: str) -> float:
        return sum(event.count for event in averages if event.key == name) / steps
    return {"top_self_cpu": [{"name": event.key, "self_cpu_ms_per_step": event.self_cpu_time_total / 1000 / steps,
                              "share": event.self_cpu_time_total / total, "calls_per_step": event.count / steps}
                             for event in rows[:top]],
            "labelled": labelled, "item_calls_per_step": calls("aten::item"),
            "nonzero_calls_per_step": calls("aten::nonzero"), "is_nonzero_calls_per_step": calls("aten::is_nonzero")}


def profile_reference(train_json: Path, args) -> dict:
    model = small_model(args.min_size, args.max_size)
    loop_args = argparse.Namespace(workers=0, warmup=0, steps=args.profile_steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        clock = time.perf_counter()
        reference_train(model, HostFloatDataset(train_json), torch.device("cpu"), loop_args, amp=False)
        seconds = time.perf_counter() - clock
    return {"ms_per_step": 1000 * seconds / args.profile_steps, **summarise(prof, args.profile_steps, args.top)}


def profile_ours(train_json: Path, args, cache: bool, scratch: Path) -> dict:
    model = small_model(args.min_size, args.max_size)
    dataset = CocoDetectionDataset(train_json)
    if cache:
        dataset.cache_decoded(args.min_size, args.max_size)  # before the profile: built once per training run
    solver = engine.SolverConfig(max_iter=args.profile_steps, batch_size=args.batch_size, num_workers=0,
                                 log_period=args.profile_steps, checkpoint_period=10 ** 9, seed=SEED, cache_images=cache)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        clock = time.perf_counter()
        engine.train(model, dataset, solver, torch.device("cpu"), scratch / f"cache{int(cache)}", {"model_spec": {}},
                     resume=False)
        seconds = time.perf_counter() - clock
    return {"ms_per_step": 1000 * seconds / args.profile_steps, **summarise(prof, args.profile_steps, args.top)}


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    coco_dir = Path(args.coco_dir) if args.coco_dir else sample_coco_dir(args.sample_images)
    train_json = coco_dir / "train.json"
    results = {"device": device_name(torch.device("cpu")), "torch": torch.__version__,
               "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
               "input": f"{args.min_size} px (max {args.max_size})", "batch": args.batch_size,
               "train_images": len(CocoDetectionDataset(train_json)), "load_average_start": os.getloadavg()[0]}
    print("data pipeline ...", flush=True)
    results["data_pipeline"] = data_pipeline(train_json, args)
    print("profiles ...", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        results["profile"] = {"reference": profile_reference(train_json, args),
                              "ours_thesis": profile_ours(train_json, args, False, Path(scratch)),
                              "ours_fast": profile_ours(train_json, args, True, Path(scratch))}
    results["load_average_end"] = os.getloadavg()[0]
    return results


# ------------------------------------------------------------------ report

NAMES = {"reference": "torchvision references/detection", "ours_thesis": "ours, thesis recipe (decode each step)",
         "ours_fast": "ours, fast recipe (`cache_images`)"}


def _label(profile_row: dict, label: str) -> str:
    entry = profile_row["labelled"].get(label)
    return f"{entry['cpu_ms_per_step']:.1f}" if entry else "-"


def markdown(results: dict) -> str:
    data, prof = results["data_pipeline"], results["profile"]
    lines = [
        "### Detector profile (`bench/detector_profile.py`)",
        "",
        f"{results['device']}, torch {results['torch']}, {results['date']}; input {results['input']}, batch "
        f"{results['batch']}, {results['train_images']} synthetic DeepFashion training images; load average "
        f"{results['load_average_start']:.1f} at start, {results['load_average_end']:.1f} at end.",
        "",
        "**Data pipeline alone** (loader + device copy + the model's transform; in-process; median of interleaved rounds):",
        "",
        "| data path | host ms / image (median) | images/s (median) | fastest round (ms / image) | rounds (ms / image) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {NAMES[name]} | {data[name]['ms_per_image']:.2f} | {data[name]['images_per_s']:.0f} "
              f"| {data[name]['min_ms_per_image']:.2f} | {', '.join(map(str, data[name]['rounds_ms']))} |" for name in NAMES]
    lines += [
        f"| **fast / thesis** | | **{data['fast_over_thesis']:.2f}x** | | |",
        f"| **thesis / reference**, **fast / reference** | | **{data['thesis_over_reference']:.2f}x**, "
        f"**{data['fast_over_reference']:.2f}x** | | |",
        "",
        f"The cache held {data['cache_bytes'] / 2 ** 20:.1f} MiB.",
        "",
        "**Whole steps under `torch.profiler`** (small resnet18 FPN, float32 on the CPU; CPU ms per step, "
        "inclusive, of the labelled parts):",
        "",
        "| loop | ms / step | loader `__next__` | of it: decode | to_device | forward | backward + step | "
        "`aten::item` / `nonzero` / `is_nonzero` per step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in NAMES:
        row = prof[name]
        forward = _label(row, "reference: forward" if name == "reference" else "detector.train: forward")
        backward = _label(row, "reference: backward + step" if name == "reference" else "detector.train: backward + step")
        lines.append(f"| {NAMES[name]} | {row['ms_per_step']:.0f} | {_label(row, 'enumerate(DataLoader)')} "
                     f"| {_label(row, 'detector.data: decode')} | {_label(row, 'detector.train: to_device')} | {forward} "
                     f"| {backward} | {row['item_calls_per_step']:.1f} / {row['nonzero_calls_per_step']:.1f} / "
                     f"{row['is_nonzero_calls_per_step']:.1f} |")
    for name in ("ours_thesis", "reference"):
        lines += ["", f"Top operators by self CPU time, {NAMES[name]}:", "",
                  "| operator | self CPU ms / step | share | calls / step |", "|---|---|---|---|"]
        lines += [f"| `{entry['name']}` | {entry['self_cpu_ms_per_step']:.1f} | {100 * entry['share']:.1f}% "
                  f"| {entry['calls_per_step']:.0f} |" for entry in prof[name]["top_self_cpu"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco-dir", default=None, help="a deepfashion_coco folder; default: generate the sample")
    parser.add_argument("--sample-images", type=int, default=48)
    parser.add_argument("--min-size", type=int, default=300)
    parser.add_argument("--max-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8, help="batches per data-pipeline round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, after one untimed")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=10, help="operators listed per profile")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "detector_profile.json", results, indent=2)
    write_text(out / "detector_profile.md", markdown(results))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
