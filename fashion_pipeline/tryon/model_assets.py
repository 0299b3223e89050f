"""Dagster layer of the try-on models: ``tryon_model``, partitioned by method (viton, encoder_decoder, cagan), so a
user trains or retrains one method from the UI (or backfills all three).

Like ``dcgan``: the trainer (``python -m fashion_pipeline.tryon.train``, or torchrun with ``nproc_per_node > 1``)
runs in its own process through Dagster Pipes (``common.pipes.run_trainer``) in the ``gpu`` pool; a diverged run
or a refused resume fails without retries. Its resume cache is keyed by what it trains on: the pairs' data
version, the training config and the process count, so new data or settings never continue an old checkpoint.
The finished model is published under ``tryon_model/<method>/v/<model sha>/`` and recorded; the report reads
the recorded file. Torch-free at import.
"""

import dataclasses
import json
from pathlib import Path

import dagster as dg
import numpy as np

from fashion_pipeline.common import distributed, lineage, versions
from fashion_pipeline.common.automation import TRAINING_RETRY
from fashion_pipeline.common.config import config_from_dataclass
from fashion_pipeline.common.fingerprint import combine, file_sha256
from fashion_pipeline.common.pipes import run_trainer
from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.tryon import model_settings

GROUP = "tryon"
ASSET = "tryon_model"
PAIRS_CHECK = "tryon_pairs_valid"
FINITE_CHECK = "tryon_model_finite_losses"
method_partitions = dg.StaticPartitionsDefinition(list(model_settings.METHODS))

TryonModelConfig = config_from_dataclass(
    model_settings.TrainConfig, "TryonModelConfig",
    "The papers' hyperparameters are the defaults (see fashion_pipeline.tryon.model_settings); the method is the partition.",
    overrides={"device": (str, ""), "method": (str, "")},  # the partition names the method
    resume=(bool, True),
    nproc_per_node=(int, 1),
    # 0: train at the pairs' size; else this height (width 3/4 of it), scored at the pairs' size (tryon/models.py)
    model_height=(int, 0),
    # > 0: CAGAN's step count instead of ``steps`` (one config serves every partition; a CAGAN step costs ~2x)
    cagan_steps=(int, 0),
    cagan_lr=(float, 0.0),  # > 0: CAGAN's learning rate instead of ``lr``
)


def _dataset_root(data_root: DataRoot, pairs: lineage.Recorded) -> Path:
    stored = str(pairs.require("dataset_root"))
    return Path(stored) if Path(stored).is_absolute() else data_root.path / stored


def train_config(config, method: str, device: str) -> model_settings.TrainConfig:
    fields = {f.name for f in dataclasses.fields(model_settings.TrainConfig)}
    values = {k: v for k, v in config.model_dump().items() if k in fields}
    if method == "cagan" and config.cagan_steps:
        values["steps"] = config.cagan_steps
    if method == "cagan" and config.cagan_lr:
        values["lr"] = config.cagan_lr
    return model_settings.TrainConfig(**{**values, "method": method, "device": device})


def resume_key(pairs_version: str, train: model_settings.TrainConfig, height: int, nproc: int) -> str:
    architecture = {stage: train.architecture(stage, nproc) for stage in train.stages}
    return combine([pairs_version, json.dumps(architecture, sort_keys=True), str(height), str(nproc)])


def _loss_chart(history: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fashion_pipeline.common import render

    figure, axis = plt.subplots(figsize=(7, 3.2))
    for stage, record in history["stages"].items():
        rows = record["history"]
        keys = [k for k in rows[0] if k not in ("step", "total")] if rows else []
        for key in keys:
            axis.plot([r["step"] for r in rows], [r[key] for r in rows], label=f"{stage}: {key}")
    axis.set_xlabel("step (per stage)")
    axis.legend(fontsize=6)
    return render.figure_markdown(figure, alt="try-on training losses")


@dg.asset(group_name=GROUP, partitions_def=method_partitions, pool="gpu", kinds={"pytorch"}, code_version="1",
          retry_policy=TRAINING_RETRY, deps=["tryon_pairs"],
          check_specs=[lineage.partitioned_check(FINITE_CHECK, ASSET, method_partitions,
                                                 "Every logged training loss of every stage is finite.")])
def tryon_model(context: dg.AssetExecutionContext, config: TryonModelConfig, data_root: DataRoot,
                compute: ComputeDevice, pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    """One try-on method trained on ``tryon_pairs``' train split: ``viton`` (CP-VTON's GMM + TOM), ``encoder_decoder``
    or ``cagan`` (unpaired). Resumes after an interruption; never retrains by itself."""
    method = context.partition_key
    root = data_root.path
    pairs = lineage.require_latest(context.instance, "tryon_pairs")
    lineage.require_checks_passed(context.instance, "tryon_pairs", (PAIRS_CHECK,))
    dataset = _dataset_root(data_root, pairs)
    height = config.model_height or int(pairs.require("height"))
    train = train_config(config, method, config.device or compute.device)
    work_dir = versions.resume_dir(root, ASSET, method,
                                   key=resume_key(pairs.data_version or "unversioned", train, height, config.nproc_per_node))
    if not config.resume:
        for stage in train.stages:
            (work_dir / model_settings.checkpoint_name(stage)).unlink(missing_ok=True)
    from fashion_pipeline.tryon.train import command_args  # imports torch: only inside the step

    command = distributed.launch_command(
        "fashion_pipeline.tryon.train",
        ["--root", str(dataset), "--height", str(height), "--out", str(work_dir), *command_args(train)],
        config.nproc_per_node)
    context.log.info("training: " + " ".join(command))
    env = compute.training_env(config.nproc_per_node, log=context.log.info)
    trained = run_trainer(context, pipes_subprocess_client, command, env, lease=compute.lease(config.nproc_per_node)).metadata
    history = json.loads((work_dir / model_settings.HISTORY_NAME).read_text())
    finite = all(np.isfinite([v for row in record["history"] for k, v in row.items() if k != "step"]).all()
                 for record in history["stages"].values())
    model_sha256 = file_sha256(work_dir / model_settings.MODEL_NAME)
    with versions.staging(root, ASSET, method) as out:
        for name in (model_settings.MODEL_NAME, model_settings.HISTORY_NAME):
            out.link(work_dir / name)
        published = out.publish(combine([model_sha256]))
    return dg.MaterializeResult(
        metadata={**trained, "method": method, "model_height": height, "pairs_height": int(pairs.require("height")),
                  "tryon_pairs_version": pairs.data_version or "",
                  "model": dg.MetadataValue.path(published.relative_file(model_settings.MODEL_NAME)),
                  "model_sha256": model_sha256,
                  "loss_chart": dg.MetadataValue.md(_loss_chart(history)),
                  "resume_dir": dg.MetadataValue.path(lineage.relative(work_dir, root)),
                  **lineage.folder_metadata(published)},
        data_version=dg.DataVersion(combine([model_sha256])),
        check_results=[dg.AssetCheckResult(check_name=FINITE_CHECK, passed=bool(finite), metadata={"method": method})])


def recorded_models(instance: dg.DagsterInstance, data_root: Path, methods) -> dict[str, Path]:
    """{method: model.pt} for the methods whose latest ``tryon_model`` materialization passed its check; the
    report uses these (a method never trained is left out, and says so)."""
    found = {}
    for method in methods:
        record = lineage.latest(instance, ASSET, method)
        if record is None:
            continue
        lineage.require_checks_passed(instance, ASSET, (FINITE_CHECK,), method)
        found[method] = lineage.verified_file(Path(data_root), record, "model", "model_sha256")
    return found


# `make demo` (its CPU cost is in the README). The GMM and CAGAN train at 64 x 48 on the 128 x 96 pairs, the
# TOM and the encoder-decoder at the pairs' 128 x 96 (render_height: on held-out validation pairs of another seed,
# the TOM at 64 x 48 gave SSIM 0.787, at 128 x 96 0.811); all are scored at 128 x 96. CAGAN: 1,200 steps and
# gamma_cyc 0.5 (alpha IoU 0.674 on those pairs, 0.594 with 800 steps and gamma_cyc 1). Not the papers' settings.
DEMO_TRAIN = {"model_height": 64, "render_height": 128, "batch_size": 4, "ngf": 16, "max_channels": 128, "ndf": 16,
              "lr": 3e-4, "warp_mask": 1.0, "agnostic_image": True, "gmm_steps": 500, "steps": 1000,
              "cagan_steps": 1200, "cagan_lr": 2e-4, "gamma_cyc": 0.5, "log_every": 25}


# ---------------------------------------------------------------- used by tryon_report

def register_recorded(context, wanted, data_root: DataRoot, pairs: lineage.Recorded, device="cpu") -> tuple[list, dict]:
    """Register the report methods of the trained models among ``wanted`` (their latest recorded materializations);
    returns (method names, {model method: model sha256} for the report's input key). Untrained ones are logged."""
    from fashion_pipeline.tryon import models

    found = recorded_models(context.instance, data_root.path, wanted)
    missing = [m for m in wanted if m not in found]
    if missing:
        context.log.info(f"try-on models not materialized yet, left out of the report: {missing}")
    names = models.register(found, _dataset_root(data_root, pairs), device) if found else []
    return names, {m: file_sha256(path) for m, path in found.items()}


def write_comparison(reader, folder: Path, model_methods: list[str], grid_rows: int = 6) -> dict:
    """Model scores, targets and one grid per model method, into the report's ``folder`` (comparison.json/.md)."""
    import pandas as pd

    from fashion_pipeline.common import atomic, render
    from fashion_pipeline.tryon import baselines, comparison
    from fashion_pipeline.tryon.layout import read_pairs
    from fashion_pipeline.tryon.report import evaluation_pairs

    pairs, _ = evaluation_pairs(reader, read_pairs(reader.root, reader.split))
    frame = pd.read_parquet(folder / "manifest.parquet")
    scores = comparison.extra_scores(frame)
    checks = comparison.targets(scores)
    old = comparison.old_garment_iou(reader, pairs)
    grids = {}
    for name in model_methods:
        picture = comparison.method_grid(reader, pairs, baselines.METHODS[name], grid_rows)
        atomic.write_bytes(folder / f"grid_{name}.png", render.png_bytes(picture))
        grids[name] = f"grid_{name}.png"
    result = {"scores": scores, "targets": checks, "old_garment_mask_iou": old, "grids": grids}
    atomic.write_json(folder / "comparison.json", result, indent=1)
    atomic.write_text(folder / "comparison.md", comparison.markdown(scores, checks, old))
    return result


def comparison_metadata(folder: Path) -> dict:
    from PIL import Image

    from fashion_pipeline.common import render
    from fashion_pipeline.tryon import comparison

    path = folder / "comparison.json"
    if not path.is_file():
        return {}
    result = json.loads(path.read_text())
    metadata = {"model_scores_and_targets": dg.MetadataValue.md(
        comparison.markdown(result["scores"], result["targets"], result["old_garment_mask_iou"])),
        "targets_met": f"{sum(t['met'] for t in result['targets'])}/{len(result['targets'])}"}
    for name, file in result["grids"].items():
        metadata[f"grid_{name}"] = dg.MetadataValue.md(render.inline_image_markdown(
            Image.open(folder / file), alt="person | garment | warped garment | output | truth"))
    return metadata
