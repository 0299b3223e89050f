"""Dagster layer of the GAN stage: detections -> full-body crops -> three training sets -> DCGANs -> report.

The ablation is a backfill of ``dcgan`` over its three partitions; ``ablation_report`` reads
whichever variants have been trained.
"""

import dataclasses
import json
from typing import Optional

import dagster as dg
import numpy as np
import pandas as pd

from fashion_pipeline.common import atomic, render
from fashion_pipeline.common.config import config_from_dataclass
from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.gan import crops, detect, quality, report, training_sets
from fashion_pipeline.gan import dcgan as gan_model  # the module; ``dcgan`` below is the asset

GROUP = "gan"
variant_partitions = dg.StaticPartitionsDefinition(list(training_sets.VARIANTS))


def _md(text: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(text)


def _best_detector(data_root: DataRoot) -> dict:
    path = data_root.path / "best_detector" / "best.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize best_detector first")
    return json.loads(path.read_text())


# ---------------------------------------------------------------- detections

class DetectionsConfig(dg.Config):
    batch_size: int = 8
    min_size: Optional[int] = None  # inference resize (shorter side); None keeps the detector's own
    max_proposals: Optional[int] = None  # RPN proposals per image at test time; None keeps the detector's own
    chunk_size: int = 64  # images decoded ahead of inference


@dg.asset(group_name=GROUP, deps=["pinterest_dataset", "best_detector"], kinds={"pytorch"})
def pinterest_detections(context: dg.AssetExecutionContext, config: DetectionsConfig, data_root: DataRoot,
                         compute: ComputeDevice) -> dg.MaterializeResult:
    """The best detector's boxes, labels (1 upper, 2 lower, 3 full) and scores for every deduplicated image."""
    manifest = pd.read_parquet(data_root.path / "pinterest_dataset" / "manifest.parquet")
    best = _best_detector(data_root)
    device = compute.torch_device()
    run = detect.detect_images(manifest, data_root.path, best["checkpoint"], device, config.batch_size,
                               config.min_size, config.max_proposals, config.chunk_size,
                               progress=lambda done, total: context.log.debug(f"{done}/{total} images"))
    path = atomic.write_parquet(data_root.asset_dir("pinterest_detections") / "detections.parquet", run.detections)
    per_class = run.per_class()
    return dg.MaterializeResult(metadata={
        "images": len(run.detections),
        **{f"detections_{name}": count for name, count in per_class.items()},
        "images_without_detections": int(sum(len(l) == 0 for l in run.detections["labels"])),
        "seconds": round(run.seconds, 2),
        "images_per_second": round(run.images_per_second, 2),
        "detector": best.get("backbone", "?"),
        "device": str(device),
        "path": dg.MetadataValue.path(str(path)),
    })


# ---------------------------------------------------------------- crops

class CropsConfig(dg.Config):
    score_threshold: float = 0.5  # minimum score of the full-body box that is cropped


def _score_histogram(scores: np.ndarray, threshold: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3))
    axis.hist(scores, bins=20, range=(0, 1), color="tab:blue")
    axis.axvline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold}")
    axis.set_xlabel("full-body detection score")
    axis.set_ylabel("detections")
    axis.legend()
    return render.figure_markdown(figure, alt="full-body scores")


@dg.asset(group_name=GROUP, deps=[pinterest_detections],
          check_specs=[dg.AssetCheckSpec("enough_crops", asset="fullbody_crops", blocking=True,
                                         description="At least 2 crops, so a DCGAN can train on them.")])
def fullbody_crops(config: CropsConfig, data_root: DataRoot) -> dg.MaterializeResult:
    """One square crop per image around its best full-body box (policy: ``fashion_pipeline.gan.crops``)."""
    detections = pd.read_parquet(data_root.path / "pinterest_detections" / "detections.parquet")
    boxes = crops.best_fullbody_boxes(detections, config.score_threshold)
    out_dir = data_root.asset_dir("fullbody_crops")
    manifest = crops.write_crops(data_root.path, boxes, out_dir / "crops")
    crops.remove_stale_crops(out_dir / "crops", set(manifest["image_id"]))
    atomic.write_parquet(out_dir / "manifest.parquet", manifest)
    samples = [data_root.path / p for p in manifest["crop_path"].head(32)]
    return dg.MaterializeResult(
        metadata={
            "kept": len(manifest),
            "total": len(detections),
            "kept_fraction": round(len(manifest) / max(len(detections), 1), 4),
            "score_threshold": config.score_threshold,
            "score_histogram": _md(_score_histogram(crops.fullbody_scores(detections), config.score_threshold)),
            "samples": _md(render.grid_markdown(samples, alt="crops")),
        },
        check_results=[dg.AssetCheckResult(check_name="enough_crops", passed=len(manifest) >= 2,
                                           metadata={"kept": len(manifest)})],
    )


# ---------------------------------------------------------------- training sets

class TrainingSetConfig(dg.Config):
    subset_seed: int = 0  # seed of the random draw of the ``subset`` variant


@dg.asset(group_name=GROUP, partitions_def=variant_partitions, deps=["pinterest_dataset", fullbody_crops],
          check_specs=[dg.AssetCheckSpec("valid_training_set", asset="dcgan_training_set", blocking=True,
                                         description="N x 64 x 64 x 3 uint8 with N >= 2 and non-constant pixels.")])
def dcgan_training_set(context: dg.AssetExecutionContext, config: TrainingSetConfig,
                       data_root: DataRoot) -> dg.MaterializeResult:
    """The variant's images decoded once to 64x64 uint8 (shorter side to 64, centre crop)."""
    variant = context.partition_key
    dataset = pd.read_parquet(data_root.path / "pinterest_dataset" / "manifest.parquet")
    crop_manifest = pd.read_parquet(data_root.path / "fullbody_crops" / "manifest.parquet")
    out_dir = data_root.asset_dir("dcgan_training_set")
    images, rows = training_sets.build_variant(data_root.path, variant, dataset, crop_manifest, out_dir,
                                               config.subset_seed)
    valid = images.ndim == 4 and images.shape[1:] == (64, 64, 3) and len(images) >= 2 and images.std() > 0
    return dg.MaterializeResult(
        metadata={
            "size": len(images),
            "shape": str(images.shape),
            "megabytes": round(images.nbytes / 2**20, 2),
            "samples": _md(render.grid_markdown(list(images[:64]), cell=64, alt=variant)),
            "path": dg.MetadataValue.path(str(out_dir / f"{variant}.npy")),
        },
        check_results=[dg.AssetCheckResult(check_name="valid_training_set", passed=bool(valid),
                                           metadata={"size": len(images)})],
    )


# ---------------------------------------------------------------- DCGAN

DCGANConfig = config_from_dataclass(
    gan_model.TrainConfig,
    "DCGANConfig",
    "The thesis's hyperparameters (section 4.4) are the defaults; see fashion_pipeline.gan.dcgan.TrainConfig.",
    # empty: the ``compute`` resource decides
    overrides={"device": (str, "")},
    # continue from checkpoint_last.pt when it matches the data and architecture
    resume=(bool, True),
)


def _loss_chart(history: dict, variant: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.asarray(history["step_losses"], dtype=float).reshape(-1, 2)
    epochs = history["epochs"]
    per_epoch = len(steps) / max(len(epochs), 1)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot(steps[:, 1], label="G (per step)", alpha=0.35, color="tab:orange")
    axis.plot(steps[:, 0], label="D (per step)", alpha=0.35, color="tab:blue")
    x = [(i + 1) * per_epoch for i in range(len(epochs))]
    axis.plot(x, [e["Loss_G"] for e in epochs], label="Loss_G (epoch mean)", color="tab:orange")
    axis.plot(x, [e["Loss_D"] for e in epochs], label="Loss_D (epoch mean)", color="tab:blue")
    axis.set_title(f"Generator and Discriminator loss during training ({variant})")
    axis.set_xlabel("iterations")
    axis.set_ylabel("loss")
    axis.legend(fontsize=7)
    return render.figure_markdown(figure, alt="loss chart")


def _stats_metadata(row: dict, prefix: str = "") -> dict:
    return {f"{prefix}{name}": round(float(row[name]), 5) for name in gan_model.STAT_NAMES}


@dg.asset(group_name=GROUP, partitions_def=variant_partitions, deps=[dcgan_training_set], pool="gpu",
          kinds={"pytorch"},
          check_specs=[dg.AssetCheckSpec("finite_losses", asset="dcgan", blocking=True,
                                         description="Every recorded epoch has finite losses.")])
def dcgan(context: dg.AssetExecutionContext, config: DCGANConfig, data_root: DataRoot,
          compute: ComputeDevice) -> dg.MaterializeResult:
    """The thesis's DCGAN trained on one variant; checkpoints every epoch and resumes after an interruption."""
    variant = context.partition_key
    images = np.load(data_root.path / "dcgan_training_set" / f"{variant}.npy", allow_pickle=False)
    out_dir = data_root.asset_dir("dcgan", variant)
    if not config.resume:
        (out_dir / gan_model.CHECKPOINT_NAME).unlink(missing_ok=True)
    fields = {f.name for f in dataclasses.fields(gan_model.TrainConfig)}
    train_config = gan_model.TrainConfig(**{k: v for k, v in config.model_dump().items() if k in fields})
    train_config.device = config.device or str(compute.torch_device())
    result = gan_model.train(images, out_dir, train_config, log=context.log.info)
    history = json.loads((out_dir / gan_model.HISTORY_NAME).read_text())
    best = result.history[gan_model.best_epoch_index(result.history)]
    final = result.history[-1]
    reals = images[np.sort(np.random.default_rng(0).choice(len(images), min(64, len(images)), replace=False))]
    fakes = np.load(out_dir / "fixed_noise_fakes.npy")
    comparison = report.side_by_side({"real": reals, "fake (fixed noise)": fakes})
    atomic.write_bytes(out_dir / "real_vs_fake.png", render.png_bytes(comparison))
    finite = all(np.isfinite([row[name] for name in gan_model.STAT_NAMES]).all() for row in result.history)
    return dg.MaterializeResult(
        metadata={
            **_stats_metadata(best),
            **_stats_metadata(final, prefix="final_"),
            "best_epoch": int(best["epoch"]),
            "epochs": len(result.history),
            "epochs_this_run": result.epochs_run,
            "resumed_from_epoch": result.start_epoch,
            "training_images": len(images),
            "seconds": round(result.seconds, 2),
            "images_per_second": round(result.images_per_second, 2),
            "device": train_config.device,
            "loss_chart": _md(_loss_chart(history, variant)),
            "real_vs_fake": _md(render.png_markdown(comparison, alt="real vs fake")),
            "checkpoint": dg.MetadataValue.path(str(out_dir / gan_model.CHECKPOINT_NAME)),
        },
        check_results=[dg.AssetCheckResult(check_name="finite_losses", passed=bool(finite))],
    )


# ---------------------------------------------------------------- report

class ReportConfig(dg.Config):
    inception_weights_path: Optional[str] = None  # local torchvision inception_v3 state dict; else detector features
    n_samples: int = 1000  # fakes generated, and reals sampled at most, per variant
    kid_subsets: int = 50
    kid_subset_size: int = 1000


@dg.asset(group_name=GROUP, deps=[dcgan])
def ablation_report(context: dg.AssetExecutionContext, config: ReportConfig, data_root: DataRoot,
                    compute: ComputeDevice) -> dg.MaterializeResult:
    """Table 5.2 across the trained variants, FID/KID in a fixed feature space, and the fakes side by side."""
    best_json = data_root.path / "best_detector" / "best.json"
    checkpoint = json.loads(best_json.read_text())["checkpoint"] if best_json.exists() else None
    space = quality.make_feature_space(config.inception_weights_path, checkpoint, compute.torch_device())
    settings = report.ReportSettings(n_samples=config.n_samples, kid_subsets=config.kid_subsets,
                                     kid_subset_size=config.kid_subset_size)
    built = report.build_report(data_root.path, space, settings)
    metadata = {
        "variants": ", ".join(built["variants"]),
        "feature_space": built["feature_space"],
        "report": _md(report.report_markdown(built, render.png_markdown(built["picture"], alt="fakes"))),
        "path": dg.MetadataValue.path(str(data_root.path / "ablation_report" / "report.md")),
    }
    for variant, summary in built["table"].items():
        metadata.update({f"{variant}_{k}": round(float(summary["best"][k]), 5) for k in ("Loss_G", "Loss_D", "D_x")})
    for variant, by_reference in built["quality"].items():
        for reference, values in by_reference.items():
            metadata[f"{variant}_FID_{reference}"] = round(values["FID"], 4)
            metadata[f"{variant}_KID_{reference}"] = round(values["KID"], 6)
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[pinterest_detections, fullbody_crops, dcgan_training_set, dcgan, ablation_report])


def resources() -> dict:
    """No stage-specific resources: the stage uses ``data_root`` and ``compute`` only."""
    return {}


# `make demo`: ~500 images on 2 CPU cores. Detection runs at the demo detector's own small min_size. The DCGANs keep the
# thesis's architecture and batch 128 but train 2 epochs: a smoke test of the ablation (a handful of steps, so the fakes
# are still noise), not a result. Batch 16 would give 8x the steps for the same images, but measured ~3x slower per
# image on 2 cores. The report samples 64 fakes per variant (KID is unbiased at that size; FID is not).
DEMO_RUN_CONFIG = {
    "ops": {
        # The demo detector's checkpoint already says 256-px inputs and 100 proposals: nothing to override.
        "pinterest_detections": {"config": {"batch_size": 8}},
        "dcgan": {"config": {"epochs": 2}},
        "ablation_report": {"config": {"n_samples": 64, "kid_subsets": 20, "kid_subset_size": 64}},
    }
}
