"""Train and evaluate one Faster R-CNN backbone on DeepFashion-in-COCO: the detector's CLI.

Every hyperparameter is a flag; the defaults are the thesis's (section 4.2): SGD momentum 0.9,
weight decay 1e-4, base lr 0.0025, steps [20k, 40k] with gamma 0.1 after a linear warmup
(the thesis's "[0, 20k, 40k]": the 0 is the warmup), 50k iterations, horizontal flips,
2 images per batch (Detectron's single-GPU setting, which the base lr 0.0025 = 0.02 x 2/16 implies).

Input size: DeepFashion images are about 300 px on the long side, so the default resizes the
short side to 300 instead of torchvision's 800 (which would upscale ~2.7x and cost ~7x compute).

Writes ``model_final.pt``, ``checkpoint_last.pt``, ``metrics.json`` and ``loss_curves.png`` to
``--output-dir``. Rerun with the same flags and it resumes from ``checkpoint_last.pt``.

Runs standalone, under ``torchrun`` (DDP when WORLD_SIZE > 1; rank 0 evaluates and writes), and
under Dagster Pipes, when the ``fashion_detector`` asset launches it: then the logs and the final
metadata go back to Dagster.

More processes (DDP): ``--batch-size`` is per process, so the global batch is ``batch_size x
world_size``. ``--scale-lr`` applies the linear rule ``lr = base_lr x global_batch /
reference_batch_size`` (``--reference-batch-size`` 2: the thesis's 0.0025 is for 2 images; the same
rule as Detectron2's 0.02 for 16). Losses are averaged over the ranks before the NaN/divergence
check, so all ranks stop together. A checkpoint is resumed only with the world size it was trained
with; another world size is refused (exit code 2) with a message: use the same ``--nproc-per-node``,
or ``--restart``. From-scratch BatchNorm becomes SyncBatchNorm on CUDA (not on the CPU's gloo).
Normalisation parameters get ``--weight-decay-norm`` (0, Detectron2's default).

Fast recipe (``--recipe fast``; the default ``--recipe thesis`` is the thesis's): the same images
seen (50k x 2 = 100k) in fewer, larger steps. It sets, unless a flag given on the command line
says otherwise: ``--batch-size 16`` with ``--scale-lr`` (lr 0.0025 x 16/2 = 0.02, the linear rule)
and the schedule divided by 8 (``--max-iter 6250 --lr-steps 2500 5000 --warmup-iters 125``, so the
warmup and the decays fall after the same number of images as the thesis's); ``--amp-dtype
bfloat16`` (no GradScaler; CUDA only: on the CPU autocast is off in both recipes and it is unused);
``--channels-last``; ``--cache-images`` (every training image decoded once before the first step,
images the network would shrink stored shrunk: the decode and resize leave the loop; it needs
about 3 x width x height bytes per image in memory). Aspect-ratio grouping (``--aspect-ratio-group-factor
3``) is on in both. The chosen recipe and every resulting value go into ``metrics.json`` and the
resume key (a checkpoint of one recipe is not continued by the other).

``--max-eval-images N`` evaluates a seeded random sample of N val images (seed
``--eval-sample-seed``), not the first N ids, which are grouped by product folder.

    python -m fashion_pipeline.detector.train --coco-dir data/deepfashion_coco --output-dir out --backbone resnet101
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Optional

import torch

from fashion_pipeline.common.atomic import torch_save, write_bytes, write_json
from fashion_pipeline.common import distributed
from fashion_pipeline.common import pipes as pipes_reporting
from fashion_pipeline.common.device import pick_device
from fashion_pipeline.common.fingerprint import file_sha256
from fashion_pipeline.detector import engine
from fashion_pipeline.detector.data import CocoDetectionDataset
from fashion_pipeline.detector.evaluate import coco_metrics, predict_dataset
from fashion_pipeline.detector.model import BACKBONES, DetectorSpec, build_detector, count_parameters, resolve_spec

FINAL_NAME = "model_final.pt"
METRICS_NAME = "metrics.json"
CURVES_NAME = "loss_curves.png"
# Solver fields that change the result; a checkpoint trained with others is not resumed.
RESUME_IRRELEVANT = {"num_workers", "log_period", "checkpoint_period", "compile_backbone"}
THESIS_BATCH = 2  # the thesis's images per step: the fast recipe's schedule is scaled from it


def fast_recipe(batch_size: int = 16) -> dict:
    """The thesis's schedule for ``batch_size`` images per step at equal images seen (module docstring)."""
    factor = batch_size / THESIS_BATCH
    defaults = engine.SolverConfig()
    return {"batch_size": batch_size, "scale_lr": True, "reference_batch_size": THESIS_BATCH,
            "max_iter": round(defaults.max_iter / factor), "lr_steps": [round(step / factor) for step in defaults.lr_steps],
            "warmup_iters": round(defaults.warmup_iters / factor), "amp_dtype": "bfloat16", "channels_last": True,
            "cache_images": True, "aspect_ratio_group_factor": 3}


RECIPES = {"thesis": {}, "fast": fast_recipe()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--coco-dir", help="folder with train.json and val.json (the deepfashion_coco asset)")
    data.add_argument("--train-json", help="overrides <coco-dir>/train.json")
    data.add_argument("--val-json", help="overrides <coco-dir>/val.json")
    data.add_argument("--image-root", default=None, help="overrides the JSON's info.image_root")
    data.add_argument("--output-dir", required=True)

    net = parser.add_argument_group("model")
    net.add_argument("--backbone", choices=BACKBONES, default="resnet50")
    net.add_argument("--pretrained-weights-path", default=None,
                     help="local ImageNet weights; else the torch hub cache; else from scratch (never downloads)")
    net.add_argument("--norm", choices=["auto", "frozen_bn", "bn", "gn"], default="auto",
                     help="auto: frozen BN when pretrained, trainable BN from scratch")
    net.add_argument("--trainable-backbone-layers", type=int, default=3, help="with pretrained weights (scratch: all 5)")
    net.add_argument("--min-size", type=int, default=300)
    net.add_argument("--max-size", type=int, default=512)
    net.add_argument("--rpn-pre-nms-top-n-train", type=int, default=2000)
    net.add_argument("--rpn-post-nms-top-n-train", type=int, default=2000)
    net.add_argument("--rpn-pre-nms-top-n-test", type=int, default=1000)
    net.add_argument("--rpn-post-nms-top-n-test", type=int, default=1000)
    net.add_argument("--rpn-batch-size-per-image", type=int, default=256)
    net.add_argument("--box-batch-size-per-image", type=int, default=512)
    net.add_argument("--box-score-thresh", type=float, default=0.05)
    net.add_argument("--box-detections-per-img", type=int, default=100)
    net.add_argument("--fpn-channels", type=int, default=256)
    net.add_argument("--returned-layers", type=int, nargs="+", default=[1, 2, 3, 4], help="ResNet stages feeding the FPN")
    net.add_argument("--representation-size", type=int, default=1024, help="box head MLP width")

    solver = parser.add_argument_group("solver (thesis section 4.2)")
    solver.add_argument("--recipe", choices=sorted(RECIPES), default="thesis",
                        help="thesis: the defaults below; fast: batch 16, linear lr, schedule / 8, bf16, channels_last, "
                             "cached decode (see above). Flags given explicitly override the recipe")
    solver.add_argument("--max-iter", type=int, default=50_000)
    solver.add_argument("--base-lr", type=float, default=0.0025)
    solver.add_argument("--momentum", type=float, default=0.9)
    solver.add_argument("--weight-decay", type=float, default=1e-4)
    solver.add_argument("--lr-steps", type=int, nargs="*", default=[20_000, 40_000])
    solver.add_argument("--gamma", type=float, default=0.1)
    solver.add_argument("--warmup-iters", type=int, default=1000)
    solver.add_argument("--warmup-factor", type=float, default=0.001)
    solver.add_argument("--batch-size", type=int, default=2, help="images per step per process")
    solver.add_argument("--hflip-prob", type=float, default=0.5)
    solver.add_argument("--aspect-ratio-group-factor", type=int, default=3, help="0 disables grouping")
    solver.add_argument("--num-workers", type=int, default=2)
    solver.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="mixed precision (CUDA only)")
    solver.add_argument("--amp-dtype", choices=sorted(engine.AMP_DTYPES), default="float16",
                        help="autocast type: float16 with a GradScaler, or bfloat16 without one")
    solver.add_argument("--compile-backbone", action="store_true",
                        help="torch.compile the backbone + FPN (pays a compile at start; CUDA)")
    solver.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False,
                        help="NHWC convolution weights (tensor-core layout on CUDA)")
    solver.add_argument("--cache-images", action=argparse.BooleanOptionalAction, default=False,
                        help="decode every training image once before training (memory: ~3 bytes per pixel)")
    solver.add_argument("--log-period", type=int, default=20, help="steps between host syncs / loss reports")
    solver.add_argument("--checkpoint-period", type=int, default=1000)
    solver.add_argument("--divergence-factor", type=float, default=10.0,
                        help="fail when a window's loss exceeds this multiple of the first window's")
    solver.add_argument("--seed", type=int, default=42)
    solver.add_argument("--weight-decay-norm", type=float, default=0.0,
                        help="weight decay of normalisation scales/shifts (Detectron2's default: 0)")
    solver.add_argument("--scale-lr", action=argparse.BooleanOptionalAction, default=False,
                        help="linear rule: lr = base_lr x batch_size x world_size / reference_batch_size")
    solver.add_argument("--reference-batch-size", type=int, default=2,
                        help="global batch that --base-lr is meant for (thesis: 0.0025 for 2 images)")

    run = parser.add_argument_group("run")
    run.add_argument("--device", default="auto")
    run.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    run.add_argument("--eval-batch-size", type=int, default=8)
    run.add_argument("--max-eval-images", type=int, default=0,
                     help="evaluate a seeded random sample of this many val images; 0 = the whole val split")
    run.add_argument("--eval-sample-seed", type=int, default=0, help="seed of the --max-eval-images sample")
    run.add_argument("--restart", action="store_true", help="ignore checkpoint_last.pt and train from iteration 0")
    run.add_argument("--stop-after", type=int, default=0,
                     help="stop after this many iterations of this run (resume later); 0 = run to max-iter")

    fault = parser.add_argument_group("fault injection (tests only)")
    fault.add_argument("--inject-nan-at-iter", type=int, default=0,
                       help="make the loss NaN at this iteration (1-based) on --inject-nan-rank; 0 = never")
    fault.add_argument("--inject-nan-rank", type=int, default=0, help="the rank whose loss --inject-nan-at-iter poisons")
    return parser


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The CLI's arguments: ``--recipe``'s values become the defaults, so explicit flags still win."""
    parser = build_parser()
    recipe = parser.parse_known_args(argv)[0].recipe
    parser.set_defaults(**RECIPES[recipe])
    args = parser.parse_args(argv)
    if not (args.coco_dir or (args.train_json and args.val_json)):
        parser.error("give --coco-dir, or both --train-json and --val-json")
    return args


def solver_config(args) -> engine.SolverConfig:
    values = {field: getattr(args, field) for field in engine.SolverConfig.__dataclass_fields__}
    values["lr_steps"] = tuple(values["lr_steps"])
    return engine.SolverConfig(**values)


def model_sizes(args) -> dict:
    fields = set(DetectorSpec.__dataclass_fields__) - {"backbone", "norm", "trainable_backbone_layers"}
    sizes = {field: getattr(args, field) for field in fields}
    sizes["returned_layers"] = tuple(sizes["returned_layers"])
    return sizes


def training_signature(spec: DetectorSpec, solver: engine.SolverConfig, train_json_sha256: str,
                       world_size: int = 1) -> dict:
    """What must match for ``checkpoint_last.pt`` to be continued rather than restarted.

    The training data enters by content, not path: the same path with new data (say, the real
    DeepFashion after the demo's sample) must train again, not return the old finished model.
    The world size enters because the sampler shards the batch stream by it (see
    :func:`resumable_iteration`: another world size is refused, not silently restarted).
    """
    solver_values = {k: v for k, v in vars(solver).items() if k not in RESUME_IRRELEVANT | {"max_iter"}}
    return {"model_spec": spec.to_dict(), "solver": json.loads(json.dumps(solver_values)),
            "train_json_sha256": train_json_sha256, "world_size": world_size}


def resumable_iteration(checkpoint_path: Path, signature: dict, log) -> int:
    """The iteration ``checkpoint_last.pt`` reached, or 0 when there is none or its settings differ.

    Raises :class:`engine.ResumeRefused` when only the world size differs: restarting would throw
    away a run that the right number of processes can continue.
    """
    if not checkpoint_path.is_file():
        return 0
    checkpoint = engine.read_checkpoint(checkpoint_path)
    saved = checkpoint.get("signature") or {}
    if saved.get("train_json_sha256") != signature["train_json_sha256"]:
        log(f"{checkpoint_path} was trained on another train.json (sha256 {str(saved.get('train_json_sha256'))[:12]}, "
            f"now {signature['train_json_sha256'][:12]}); training again from iteration 0")
        return 0
    saved_world_size = saved.get("world_size", checkpoint.get("world_size", 1))
    same_but_world_size = {**saved, "world_size": signature["world_size"]} == signature
    if same_but_world_size and saved_world_size != signature["world_size"]:
        raise engine.ResumeRefused(engine.world_size_refusal(
            checkpoint_path, saved_world_size, signature["world_size"], checkpoint["state"]["iteration"]))
    if saved != signature:
        log(f"{checkpoint_path} was trained with other settings; starting again from iteration 0")
        return 0
    return checkpoint["state"]["iteration"]


class Reporter(pipes_reporting.Reporter):
    """Prints JSON lines; under Dagster Pipes also forwards them and the final metadata."""

    # At most about this many loss reports go to Dagster's event log (stdout gets them all).
    PIPES_WINDOW_REPORTS = 200

    def __init__(self, pipes=None, windows_total: int = 1):
        super().__init__(pipes)
        self.pipes_every = max(1, windows_total // self.PIPES_WINDOW_REPORTS)
        self.windows = 0

    def window(self, window: dict) -> None:
        self.windows += 1
        line = json.dumps({key: round(value, 5) if isinstance(value, float) else value for key, value in window.items()})
        self.log(line, to_pipes=self.windows % self.pipes_every == 0 or "event" in window)

    def materialization(self, metrics: dict) -> None:
        if self.pipes is not None:
            from fashion_pipeline.detector.report import pipes_metadata

            metadata = pipes_metadata(metrics)
            metadata["recipe"] = {"raw_value": metrics["recipe"], "type": "text"}
            metadata["solver"] = {"raw_value": metrics["solver"], "type": "json"}
            self.pipes.report_asset_materialization(metadata=metadata)


@contextlib.contextmanager
def open_reporter(rank: int, windows_total: int):
    """Pipes on rank 0 when Dagster launched us; plain printing otherwise (``fashion_pipeline.common.pipes``)."""
    with pipes_reporting.open_reporter(rank, Reporter, windows_total=windows_total) as reporter:
        yield reporter


def run(args) -> Optional[dict]:
    rank, local_rank, world_size = distributed.distributed_setup(use_cuda=args.device != "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
    coco_dir = Path(args.coco_dir) if args.coco_dir else None
    train_json = Path(args.train_json or coco_dir / "train.json")
    val_json = Path(args.val_json or coco_dir / "val.json")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    spec, weights_path, weights_reason = resolve_spec(
        args.backbone, args.pretrained_weights_path, args.norm, args.trainable_backbone_layers, **model_sizes(args))
    solver = solver_config(args)
    for path in (train_json, val_json):
        if not path.is_file():
            raise distributed.BadInput(f"{path}: no such COCO file")
    data_digests = {"train_json_sha256": file_sha256(train_json), "val_json_sha256": file_sha256(val_json)}
    signature = training_signature(spec, solver, data_digests["train_json_sha256"], world_size)
    with open_reporter(rank, solver.max_iter // solver.log_period) as reporter:
        reporter.log(f"{args.backbone}: {'pretrained, ' + weights_reason if weights_path else 'from scratch: ' + weights_reason}; "
                     f"device {device}, world size {world_size}, global batch {solver.batch_size * world_size}, "
                     f"lr {engine.effective_base_lr(solver, world_size):g}"
                     + (" (scaled linearly)" if solver.scale_lr else ""))
        if world_size > 1 and spec.norm == "bn":
            reporter.log("BatchNorm: " + ("SyncBatchNorm over all ranks" if device.type == "cuda" else
                                          "per-rank statistics (gloo cannot sync BN; consider --norm gn)"))
        checkpoint_path = output_dir / engine.CHECKPOINT_NAME
        resumed_from = 0 if args.restart else resumable_iteration(checkpoint_path, signature, reporter.log)
        resume = resumed_from > 0
        engine.seed_everything(solver.seed)  # the heads' random init must be reproducible too
        model = build_detector(spec, None if resume else weights_path)
        try:
            dataset = CocoDetectionDataset(train_json, image_root=args.image_root)
        except ValueError as error:  # malformed COCO: the message names the file and the line or annotation
            raise distributed.BadInput(str(error)) from error
        state = engine.train(
            model, dataset, solver, device, output_dir,
            checkpoint_extra={"model_spec": spec.to_dict(), "signature": signature, "backbone": args.backbone},
            resume=resume, stop_after=args.stop_after, on_log=reporter.window, rank=rank, world_size=world_size,
            fault=engine.FaultInjection(args.inject_nan_at_iter, args.inject_nan_rank))
        if rank != 0:
            return None
        if state.iteration < solver.max_iter:
            reporter.log(f"stopped at iteration {state.iteration} of {solver.max_iter}; rerun to resume")
            return None
        metrics = finish(model, state, spec, args, device, val_json, output_dir, weights_path, weights_reason, resumed_from,
                         data_digests)
        reporter.log(json.dumps({key: metrics[key] for key in ("AP", "AP50", "AP75", "AR100")}))
        reporter.materialization(metrics)
        return metrics


def relative_paths(args: dict, base: Path) -> dict:
    """The CLI arguments with path values relative to ``base``, so the folder can move or be mounted elsewhere."""
    path_args = {"coco_dir", "train_json", "val_json", "output_dir", "image_root", "pretrained_weights_path"}
    return {key: os.path.relpath(value, base) if key in path_args and value else value for key, value in args.items()}


def finish(model, state, spec, args, device, val_json, output_dir, weights_path, weights_reason, resumed_from,
           data_digests: dict) -> dict:
    """Evaluate on val and write model_final.pt, metrics.json and the loss-curve PNG."""
    from fashion_pipeline.detector.report import figure_png, loss_curves_figure

    module = model.module if hasattr(model, "module") else model
    val_set = CocoDetectionDataset(val_json, image_root=args.image_root, max_images=args.max_eval_images,
                                   sample_seed=args.eval_sample_seed)
    clock = time.perf_counter()
    detections = predict_dataset(module, val_set, device, batch_size=args.eval_batch_size, num_workers=args.num_workers)
    eval_seconds = time.perf_counter() - clock
    eval_images = len(val_set)
    metrics = coco_metrics(val_set.coco, detections, image_ids=[image["id"] for image in val_set.images])
    final_path = output_dir / FINAL_NAME
    torch_save(final_path, {"model": module.state_dict(), "model_spec": spec.to_dict(), "backbone": args.backbone,
                            "iteration": state.iteration, "metrics": {k: v for k, v in metrics.items()}})
    history = state.history
    metrics.update({
        "backbone": args.backbone,
        "checkpoint": final_path.name,  # relative to metrics.json's folder, like every path stored here
        "iterations": state.iteration,
        "resumed_from_iteration": resumed_from,
        "final_loss": history[-1]["loss"] if history else float("nan"),
        "training_seconds": state.train_seconds,
        "train_images_per_s": state.images_seen / max(state.train_seconds, 1e-9),
        "inference_images_per_s": eval_images / max(eval_seconds, 1e-9),
        "val_images": eval_images,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "pretrained": weights_path is not None,
        "weights_source": weights_reason,
        "parameters": count_parameters(module),
        "model_spec": spec.to_dict(),
        "recipe": args.recipe,
        "solver": dataclasses.asdict(solver_config(args)),
        "args": relative_paths(vars(args), output_dir),
        "history": history,
        **data_digests,  # what it was trained and evaluated on: best_detector compares only equal val sets
    })
    write_json(output_dir / METRICS_NAME, metrics, indent=2)
    if history:
        write_bytes(output_dir / CURVES_NAME, figure_png(loss_curves_figure(history)))
    return metrics


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    try:
        run(args)
    except (engine.TrainingDiverged, engine.ResumeRefused, distributed.BadInput) as error:
        # Under DDP every rank gets here with the same message (the losses are averaged over ranks).
        distributed.exit_not_retryable(error)
    finally:
        distributed.distributed_teardown()


if __name__ == "__main__":
    main()
