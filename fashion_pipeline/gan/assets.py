"""Dagster layer of the GAN stage: detections -> full-body crops -> three training sets -> DCGANs -> report.

Each asset reads its inputs from the upstream materialization Dagster recorded (paths and content
fingerprints in its metadata), refuses an upstream whose blocking check failed, and returns a data
version: a content fingerprint, so a change upstream marks everything after it stale in the UI.
The cheap assets follow a re-scrape by declarative automation; ``dcgan`` trains only when launched.
Torch is imported inside the assets, never when the code location loads.

Every materialization publishes a folder of its own (``common.versions``), which its metadata names
(``folder``): a failed run never touches a recorded one. The deterministic assets name the folder by
their inputs (``input_key``) and reuse it when a rerun has nothing new, writing nothing; ``dcgan``
trains in a resume cache keyed by its training set's data version and hard-links the result into
``dcgan/<variant>/seed<k>/v/<data version>/``.
"""

import dataclasses
import json
from typing import Optional

import dagster as dg
import numpy as np
import pandas as pd

from fashion_pipeline.common import atomic, distributed, lineage, render, versions
from fashion_pipeline.common.fingerprint import combine, file_sha256
from fashion_pipeline.common.pipes import run_trainer
from fashion_pipeline.common.automation import FOLLOWS_MATERIALIZED_PARTITIONS, FOLLOWS_UPSTREAM, TRAINING_RETRY
from fashion_pipeline.common.config import config_from_dataclass
from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.gan import crops, settings, training_sets

GROUP = "gan"
variant_partitions = dg.StaticPartitionsDefinition(list(training_sets.VARIANTS))
# Seeds as a backfill dimension: one run per variant cannot tell a real difference from seed noise.
SEEDS = ["0", "1", "2"]
dcgan_partitions = dg.MultiPartitionsDefinition(
    {"variant": variant_partitions, "seed": dg.StaticPartitionsDefinition(SEEDS)})
DEMO_DCGAN_PARTITIONS = [dg.MultiPartitionKey({"variant": v, "seed": "0"}) for v in training_sets.VARIANTS]


def _dataset_manifest(context, data_root: DataRoot) -> tuple[lineage.Recorded, pd.DataFrame]:
    recorded = lineage.require_latest(context.instance, "pinterest_dataset")
    lineage.require_checks_passed(context.instance, "pinterest_dataset",
                                  ("no_near_duplicates_in_result", "every_input_accounted_for"))
    if recorded.get("manifest_sha256"):  # recorded by every build since issue 19: a file changed since is refused
        return recorded, pd.read_parquet(lineage.verified_file(data_root.path, recorded, "manifest", "manifest_sha256"))
    return recorded, pd.read_parquet(recorded.path(data_root.path, "manifest"))


def _usable_best_detector(context) -> lineage.Recorded:
    recorded = lineage.require_latest(context.instance, "best_detector")
    lineage.require_checks_passed(context.instance, "best_detector", ("best_detector_is_usable",))
    return recorded


def _detector_checkpoint(data_root: DataRoot, best: lineage.Recorded):
    """(checkpoint path, verified?): checked against the sha256 best_detector recorded, when it recorded one."""
    if best.get("checkpoint_sha256"):
        return lineage.verified_file(data_root.path, best, "checkpoint", "checkpoint_sha256"), True
    return best.path(data_root.path, "checkpoint"), False


input_key = versions.input_key  # folder name of a deterministic asset: code version, inputs' data versions, config


# ---------------------------------------------------------------- detections

class DetectionsConfig(dg.Config):
    batch_size: int = 8
    min_size: Optional[int] = None  # inference resize (shorter side); None keeps the detector's own
    max_proposals: Optional[int] = None  # RPN proposals per image at test time; None keeps the detector's own
    chunk_size: int = 64  # images decoded ahead of inference


DETECTIONS_CODE_VERSION = "2"
CROPS_CODE_VERSION = "2"
TRAINING_SET_CODE_VERSION = "2"
REPORT_CODE_VERSION = "3"


@dg.asset(group_name=GROUP, deps=["pinterest_dataset", "best_detector"], kinds={"pytorch"}, pool="gpu",
          code_version=DETECTIONS_CODE_VERSION, automation_condition=FOLLOWS_UPSTREAM)
def pinterest_detections(context: dg.AssetExecutionContext, config: DetectionsConfig, data_root: DataRoot,
                         compute: ComputeDevice) -> dg.MaterializeResult:
    """The best detector's boxes, labels (1 upper, 2 lower, 3 full) and scores for every deduplicated image."""
    from fashion_pipeline.gan import detect

    dataset, manifest = _dataset_manifest(context, data_root)
    best = _usable_best_detector(context)
    checkpoint, verified = _detector_checkpoint(data_root, best)
    key = input_key(DETECTIONS_CODE_VERSION, dataset.data_version, best.data_version, config.model_dump())
    published = versions.find(data_root.path, "pinterest_detections", version=key)
    stats = {}
    if published is None:
        device = compute.torch_device()
        run = detect.detect_images(manifest, data_root.path, checkpoint, device,
                                   config.batch_size, config.min_size, config.max_proposals, config.chunk_size,
                                   progress=lambda done, total: context.log.debug(f"{done}/{total} images"))
        with versions.staging(data_root.path, "pinterest_detections") as out:
            atomic.write_parquet(out.path("detections.parquet"), run.detections)
            published = out.publish(key)
        stats = {"seconds": round(run.seconds, 2), "images_per_second": round(run.images_per_second, 2),
                 "device": str(device)}
    path = published.file("detections.parquet")
    detections = pd.read_parquet(path)
    per_class = detect.DetectionRun(detections, 0.0).per_class()
    return dg.MaterializeResult(metadata={
        "images": len(detections),
        **{f"detections_{name}": count for name, count in per_class.items()},
        "images_without_detections": int(sum(len(l) == 0 for l in detections["labels"])),
        **stats,
        "detector": best.get("backbone", "?"),
        "detector_checkpoint_verified": verified,
        "path": dg.MetadataValue.path(published.relative_file("detections.parquet")),
        **lineage.folder_metadata(published),
    }, data_version=lineage.file_data_version(path))


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


@dg.asset(group_name=GROUP, deps=[pinterest_detections], code_version=CROPS_CODE_VERSION,
          automation_condition=FOLLOWS_UPSTREAM,
          check_specs=[dg.AssetCheckSpec("enough_crops", asset="fullbody_crops", blocking=True,
                                         description="At least 2 crops, so a DCGAN can train on them.")])
def fullbody_crops(context: dg.AssetExecutionContext, config: CropsConfig, data_root: DataRoot) -> dg.MaterializeResult:
    """One square crop per image around its best full-body box (policy: ``fashion_pipeline.gan.crops``)."""
    recorded = lineage.require_latest(context.instance, "pinterest_detections")
    detections = pd.read_parquet(recorded.path(data_root.path, "path"))
    key = input_key(CROPS_CODE_VERSION, recorded.data_version, config.model_dump())
    published = versions.find(data_root.path, "fullbody_crops", version=key)
    if published is None:
        boxes = crops.best_fullbody_boxes(detections, config.score_threshold)
        with versions.staging(data_root.path, "fullbody_crops") as out:
            manifest = crops.write_crops(data_root.path, boxes, out.path("crops"))
            # the manifest names each crop where it will lie once this folder is published
            manifest["crop_path"] = [out.published_relative(data_root.path / p, key) for p in manifest["crop_path"]]
            atomic.write_parquet(out.path("manifest.parquet"), manifest)
            published = out.publish(key)
    manifest_path = published.file("manifest.parquet")
    manifest = pd.read_parquet(manifest_path)
    samples = [data_root.path / p for p in manifest["crop_path"].head(32)]
    return dg.MaterializeResult(
        metadata={
            "kept": len(manifest),
            "total": len(detections),
            "kept_fraction": round(len(manifest) / max(len(detections), 1), 4),
            "score_threshold": config.score_threshold,
            "score_histogram": dg.MetadataValue.md(_score_histogram(crops.fullbody_scores(detections), config.score_threshold)),
            "samples": dg.MetadataValue.md(render.grid_markdown(samples, alt="crops")),
            "manifest": dg.MetadataValue.path(published.relative_file("manifest.parquet")),
            **lineage.folder_metadata(published),
        },
        data_version=lineage.file_data_version(manifest_path),
        check_results=[dg.AssetCheckResult(check_name="enough_crops", passed=len(manifest) >= 2,
                                           metadata={"kept": len(manifest)})],
    )


# ---------------------------------------------------------------- training sets

class TrainingSetConfig(dg.Config):
    subset_seed: int = 0  # seed of the random draw of the ``subset`` variant
    image_size: int = 64  # 64 (the thesis) or 128 (the slides' second resolution); a dcgan with that image_size reads it


@dg.asset(group_name=GROUP, partitions_def=variant_partitions, deps=["pinterest_dataset", fullbody_crops],
          code_version=TRAINING_SET_CODE_VERSION, automation_condition=FOLLOWS_UPSTREAM,
          check_specs=[lineage.partitioned_check("valid_training_set", "dcgan_training_set", variant_partitions,
                                                 "N x S x S x 3 uint8 (S = image_size) with N >= 2 and non-constant pixels.")])
def dcgan_training_set(context: dg.AssetExecutionContext, config: TrainingSetConfig,
                       data_root: DataRoot) -> dg.MaterializeResult:
    """The variant's images decoded once to S x S uint8 (shorter side to S, centre crop); S = 64 unless configured."""
    variant = context.partition_key
    dataset_record, dataset = _dataset_manifest(context, data_root)
    crops_record = lineage.require_latest(context.instance, "fullbody_crops")
    lineage.require_checks_passed(context.instance, "fullbody_crops", ("enough_crops",))
    size = config.image_size
    key = input_key(TRAINING_SET_CODE_VERSION, variant, dataset_record.data_version, crops_record.data_version,
                    config.model_dump())
    published = versions.find(data_root.path, "dcgan_training_set", variant, version=key)
    if published is None:
        crop_manifest = pd.read_parquet(crops_record.path(data_root.path, "manifest"))
        with versions.staging(data_root.path, "dcgan_training_set", variant) as out:
            training_sets.build_variant(data_root.path, variant, dataset, crop_manifest, out.dir,
                                        config.subset_seed, size)
            published = out.publish(key)
    array_path = published.file(training_sets.array_name(variant, size))
    images = np.load(array_path, allow_pickle=False)
    valid = images.ndim == 4 and images.shape[1:] == (size, size, 3) and len(images) >= 2 and images.std() > 0
    sha256 = file_sha256(array_path)
    version = dg.DataVersion(combine([sha256]))  # = lineage.file_data_version(array_path), without reading it twice
    return dg.MaterializeResult(
        metadata={
            "variant": variant,
            "size": len(images),
            "shape": str(images.shape),
            "image_size": size,
            "megabytes": round(images.nbytes / 2**20, 2),
            "samples": dg.MetadataValue.md(render.grid_markdown(list(images[:64]), cell=64, alt=variant)),
            "path": dg.MetadataValue.path(published.relative_file(array_path.name)),
            "sha256": sha256,  # dcgan and the report check the .npy against it before using it
            "fingerprint": version.value,
            **lineage.folder_metadata(published),
        },
        data_version=version,
        check_results=[dg.AssetCheckResult(check_name="valid_training_set", passed=bool(valid),
                                           metadata={"variant": variant, "size": len(images)})],
    )


# ---------------------------------------------------------------- DCGAN

DCGANConfig = config_from_dataclass(
    settings.TrainConfig,
    "DCGANConfig",
    "The thesis's hyperparameters (section 4.4) are the defaults; see fashion_pipeline.gan.dcgan.TrainConfig.",
    # empty: the ``compute`` resource decides
    overrides={"device": (str, "")},
    # continue from checkpoint_last.pt when it matches the data and architecture
    resume=(bool, True),
    # > 1: torchrun with this many processes (batch_size is per process); a checkpoint is resumed
    # only with the nproc_per_node it was trained with
    nproc_per_node=(int, 1),
)


FAKES_NAME = "fixed_noise_fakes.npy"


def _train_command(train_config, data_path, out_dir, nproc_per_node: int) -> list[str]:
    """The CLI call (``python -m fashion_pipeline.gan.dcgan``) that reproduces this materialization outside Dagster."""
    from fashion_pipeline.gan.dcgan import command_args  # the CLI's own flag spelling

    args = ["--data", str(data_path), "--out", str(out_dir), *command_args(train_config)]
    return distributed.launch_command("fashion_pipeline.gan.dcgan", args, nproc_per_node)


def _current_training_set(context, variant: str, image_size: int) -> lineage.Recorded:
    training_set = lineage.require_latest(context.instance, "dcgan_training_set", variant)
    lineage.require_checks_passed(context.instance, "dcgan_training_set", ("valid_training_set",), variant)
    built = int(training_set.get("image_size", 64))
    if built != image_size:
        raise lineage.input_failure(
            f"dcgan image_size {image_size} needs dcgan_training_set[{variant}] at {image_size} px, but its current "
            f"materialization (run {training_set.run_id}) is {built} px: materialize it with config image_size: {image_size}")
    return training_set


def loss_chart(history: dict, variant: str) -> str:
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


@dg.asset(group_name=GROUP, partitions_def=dcgan_partitions, pool="gpu", kinds={"pytorch"}, code_version="3",
          retry_policy=TRAINING_RETRY,
          deps=[dg.AssetDep(dcgan_training_set,
                            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="variant"))],
          check_specs=[lineage.partitioned_check("finite_losses", "dcgan", dcgan_partitions,
                                                 "Every recorded epoch has finite losses.")])
def dcgan(context: dg.AssetExecutionContext, config: DCGANConfig, data_root: DataRoot, compute: ComputeDevice,
          pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    """The thesis's DCGAN trained on one variant with one seed; checkpoints every epoch and resumes after an
    interruption. Seed k trains with ``seed + k`` (seed 0 keeps the thesis's 999).

    Training runs in its own process (``python -m fashion_pipeline.gan.dcgan``, or torchrun with
    ``nproc_per_node > 1``) launched through Dagster Pipes, which streams its logs and numbers back here.
    Never trains by itself: when its training set changes it turns stale; launch it (or a backfill) from the UI.
    """
    from fashion_pipeline.gan import report

    keys = context.partition_key.keys_by_dimension
    variant, seed = keys["variant"], keys["seed"]
    root = data_root.path
    training_set = _current_training_set(context, variant, config.image_size)
    # the recorded .npy, checked against its recorded sha256: a set rewritten since is refused, never used
    data_path = lineage.verified_file(root, training_set, "path", "sha256")
    images = np.load(data_path, allow_pickle=False)
    # The resume cache is keyed by the training set's content: new data never continues an old checkpoint.
    work_dir = versions.resume_dir(root, "dcgan", variant, f"seed{seed}", key=training_set.data_version or "unversioned")
    if not config.resume:
        (work_dir / settings.CHECKPOINT_NAME).unlink(missing_ok=True)
    fields = {f.name for f in dataclasses.fields(settings.TrainConfig)}
    train_config = settings.TrainConfig(**{k: v for k, v in config.model_dump().items() if k in fields})
    train_config.seed = config.seed + int(seed)
    train_config.device = config.device or compute.device
    command = _train_command(train_config, data_path, work_dir, config.nproc_per_node)
    context.log.info("training: " + " ".join(command))
    env = compute.training_env(config.nproc_per_node, log=context.log.info)
    trained = run_trainer(context, pipes_subprocess_client, command, env,
                          lease=compute.lease(config.nproc_per_node)).metadata
    history = json.loads((work_dir / settings.HISTORY_NAME).read_text())
    finite = all(np.isfinite([row[name] for name in settings.STAT_NAMES]).all() for row in history["epochs"])
    generator_sha256 = file_sha256(work_dir / settings.GENERATOR_NAME)
    version = combine([generator_sha256])
    with versions.staging(root, "dcgan", variant, f"seed{seed}") as out:
        for name in (settings.GENERATOR_NAME, settings.HISTORY_NAME, FAKES_NAME):
            out.link(work_dir / name)
        reals = images[np.sort(np.random.default_rng(0).choice(len(images), min(64, len(images)), replace=False))]
        comparison = report.side_by_side({"real": reals, "fake (fixed noise)": np.load(work_dir / FAKES_NAME)})
        atomic.write_bytes(out.path("real_vs_fake.png"), render.png_bytes(comparison))
        published = out.publish(version)  # an identical generator: the folder that already holds it is reused
    return dg.MaterializeResult(
        metadata={
            "variant": variant,
            "seed": seed,
            "torch_seed": train_config.seed,
            # stats of the best and final epochs, epochs, resumed_from_epoch, seconds, images/s, device
            **trained,
            "training_images": len(images),
            "optimizer_steps": len(history["step_losses"]),  # compare variants of different sizes by updates, not epochs
            "training_set_version": training_set.data_version or "",
            "training_set_path": dg.MetadataValue.path(training_set.require("path")),
            "training_set_sha256": training_set.require("sha256"),
            "training_set_verified": dg.MetadataValue.text("the .npy matched the sha256 dcgan_training_set recorded"),
            "loss_chart": dg.MetadataValue.md(loss_chart(history, variant)),
            "real_vs_fake": dg.MetadataValue.md(render.png_markdown(comparison, alt="real vs fake")),
            "real_vs_fake_png": dg.MetadataValue.path(published.relative_file("real_vs_fake.png")),
            "generator": dg.MetadataValue.path(published.relative_file(settings.GENERATOR_NAME)),
            "generator_sha256": generator_sha256,
            "resume_checkpoint": dg.MetadataValue.path(lineage.relative(work_dir / settings.CHECKPOINT_NAME, root)),
            **lineage.folder_metadata(published),
        },
        data_version=dg.DataVersion(version),
        check_results=[dg.AssetCheckResult(check_name="finite_losses", passed=bool(finite),
                                           metadata={"variant": variant, "seed": seed, "epochs": len(history["epochs"])})],
    )


# ---------------------------------------------------------------- report

class ReportConfig(dg.Config):
    inception_weights_path: Optional[str] = None  # local torchvision inception_v3 state dict; else detector features
    n_samples: int = 0  # fakes per generator; never fewer than the feature dimension (FID needs a full-rank covariance)
    max_reals: int = 10_000  # reals per training set at most
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # capped at half of each set, so subsets differ


@dataclasses.dataclass
class CurrentRuns:
    """The dcgan runs trained on the current training sets, and the recorded records behind them."""

    seeds: dict[str, list[str]]  # variant -> seeds
    left_out: dict[str, str]  # 'variant/seed' -> why
    runs: dict[tuple[str, str], lineage.Recorded]  # (variant, seed) -> its dcgan materialization
    training_sets: dict[str, lineage.Recorded]  # variant -> its current dcgan_training_set materialization


def current_runs(instance: dg.DagsterInstance) -> CurrentRuns:
    """The seeds trained on each variant's current training set whose finite_losses check passed on that
    materialization; every other run, with why it is left out."""
    found = CurrentRuns({}, {}, {}, {})
    materialized = lineage.materialized_partitions(instance, "dcgan")
    for variant in training_sets.VARIANTS:
        training_set = lineage.latest(instance, "dcgan_training_set", variant)
        if training_set is not None:
            found.training_sets[variant] = training_set
        for seed in SEEDS:
            key = str(dg.MultiPartitionKey({"variant": variant, "seed": seed}))
            if key not in materialized:
                continue
            trained = lineage.require_latest(instance, "dcgan", key)
            failed = lineage.failed_checks(instance, "dcgan", ("finite_losses",), key)
            if training_set is None or trained.get("training_set_version") != training_set.data_version:
                found.left_out[f"{variant}/seed{seed}"] = "trained on an older training set: rematerialize it"
            elif failed:
                found.left_out[f"{variant}/seed{seed}"] = f"its finite_losses check {failed['finite_losses']}"
            else:
                found.seeds.setdefault(variant, []).append(seed)
                found.runs[(variant, seed)] = trained
    return found


def _recorded_layout(data_root: DataRoot, found: CurrentRuns):
    """The report's layout: each run's recorded folder, and the recorded training-set files, checked against
    their recorded sha256 (the report scores against what the generators were trained on, not whatever is on disk)."""
    from fashion_pipeline.gan import report

    root = data_root.path
    folders = {}
    for (variant, seed), trained in found.runs.items():
        generator = lineage.verified_file(root, trained, "generator", "generator_sha256")
        folders[(variant, seed)] = generator.parent
    sets = {}
    for variant, recorded in found.training_sets.items():
        if variant in found.seeds or variant == "original":  # "original" is every variant's common reference
            sets[(variant, int(recorded.get("image_size", 64)))] = lineage.verified_file(root, recorded, "path", "sha256")
    return report.Layout(root, run_folders=folders, training_sets=sets)


@dg.asset(group_name=GROUP, deps=[dcgan, "best_detector"], pool="gpu", kinds={"pytorch"}, code_version=REPORT_CODE_VERSION,
          automation_condition=FOLLOWS_MATERIALIZED_PARTITIONS)
def ablation_report(context: dg.AssetExecutionContext, config: ReportConfig, data_root: DataRoot,
                    compute: ComputeDevice) -> dg.MaterializeResult:
    """Table 5.2 across the variants trained on the current training sets, FID/KID in a fixed feature space,
    and the fakes side by side."""
    from fashion_pipeline.gan import quality, report

    found = current_runs(context.instance)
    runs, left_out = found.seeds, found.left_out
    for run, why in left_out.items():
        context.log.warning(f"dcgan {run} left out of the report: {why}")
    if not runs:
        raise lineage.input_failure("no DCGAN trained on the current training sets: materialize dcgan (a backfill of "
                                    "its variant x seed partitions)" + "".join(f"; {r}: {w}" for r, w in left_out.items()))
    layout = _recorded_layout(data_root, found)
    best = lineage.latest(context.instance, "best_detector")
    checkpoint, verified = _detector_checkpoint(data_root, best) if best else (None, False)
    key = input_key(REPORT_CODE_VERSION, config.model_dump(), best.data_version if best else "",
                    sorted(f"{v}/{s}={r.data_version}" for (v, s), r in found.runs.items()),
                    sorted(f"{v}={r.data_version}" for v, r in found.training_sets.items()))
    published = versions.find(data_root.path, "ablation_report", version=key)
    if published is None:
        space = quality.make_feature_space(config.inception_weights_path, checkpoint, compute.torch_device())
        report_settings = report.ReportSettings(n_samples=config.n_samples, max_reals=config.max_reals,
                                                kid_subsets=config.kid_subsets, kid_subset_size=config.kid_subset_size)
        with versions.staging(data_root.path, "ablation_report") as out:
            built = report.build_report(data_root.path, space, report_settings, runs=runs, layout=layout, out_dir=out.dir)
            published = out.publish(key)
    else:  # the same runs, training sets, detector and config as an earlier report: nothing to compute
        built = report.load_report(published.folder)
    metadata = {
        "variants": ", ".join(built["variants"]),
        "runs": ", ".join(f"{v}/seed{s}" for v, seeds in runs.items() for s in seeds),
        "left_out": ", ".join(f"{v} ({why})" for v, why in left_out.items()) or "none",
        "feature_space": built["feature_space"],
        "report": dg.MetadataValue.md(report.report_markdown(built, render.png_markdown(built["picture"], alt="fakes"))),
        "path": dg.MetadataValue.path(published.relative_file("report.md")),
        "inputs_verified": dg.MetadataValue.text("generators and training sets matched their recorded sha256"
                                                 + ("; the detector checkpoint too" if verified else "")),
        **lineage.folder_metadata(published),
    }
    for variant, summary in built["table"].items():  # means over the seeds: the UI plots them across reports
        metadata.update({f"{variant}_{k}": round(float(summary["best"][k]), 5) for k in ("Loss_G", "Loss_D", "D_x")})
        metadata[f"{variant}_seeds"] = len(summary["seeds"])
    for name in sorted({n for by_seed in built["quality"].values() for entries in by_seed.values() for n in entries}):
        if name.startswith(("vs_", "untrained_vs_")):
            prefix = "" if name.startswith("vs_") else "untrained_"
            reference = name.split("vs_", 1)[1]
            for metric in ("FID", "KID"):
                for variant, (mean, _, _) in report.variant_means(built["quality"], name, metric).items():
                    metadata[f"{variant}_{prefix}{metric}_vs_{reference}"] = round(mean, 6)
    for variant, (mean, _, _) in report.variant_means(built["quality"], "untrained_over_trained", "FID").items():
        metadata[f"{variant}_untrained_over_trained_FID"] = round(mean, 3)
    return dg.MaterializeResult(metadata=metadata, data_version=lineage.file_data_version(published.file("report.json")))


defs = dg.Definitions(assets=[pinterest_detections, fullbody_crops, dcgan_training_set, dcgan, ablation_report])


def resources() -> dict:
    # dcgan trains in a child process; its stdout/stderr are forwarded to the run's logs.
    return {"pipes_subprocess_client": dg.PipesSubprocessClient()}


# `make demo`: ~500 images on 2 CPU cores. Detection runs at the demo detector's own small min_size. The DCGANs keep the
# thesis's architecture and batch 128 but train 2 epochs: a smoke test of the ablation (a handful of steps, so the fakes
# are still noise), not a result. Batch 16 would give 8x the steps for the same images, but measured ~3x slower per
# image on 2 cores. The report samples 64 fakes per variant (KID is unbiased at that size; FID is not).
DEMO_RUN_CONFIG = {
    "ops": {
        # The demo detector's checkpoint already says 256-px inputs and 100 proposals: nothing to override.
        "pinterest_detections": {"config": {"batch_size": 8}},
        # Measured on 2 CPU cores: the thesis's 64/64 feature maps at batch 128 make 2-4 steps per epoch of the
        # demo's few hundred crops, and stay grey noise. Quarter-width networks at batch 16 make ~0.1 s steps.
        # Equal epochs gave the 128-crop variants a quarter of original's steps (480 vs 1,740: texture, not
        # figures); 1,600 steps each without flips collapsed on 128 crops (D(x) 0.99). With flips, 1,600 steps
        # show figure silhouettes and colours on all three variants.
        "dcgan": {"config": {"ngf": 32, "ndf": 32, "batch_size": 16, "steps": 1600, "flip": True,
                             "checkpoint_every": 10}},
        "ablation_report": {"config": {"kid_subsets": 100}},
    }
}
