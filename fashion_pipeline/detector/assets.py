"""Dagster layer of the detector: ``fashion_detector`` (one partition per backbone) and ``best_detector``.

Training runs in its own process (``python -m fashion_pipeline.detector.train``, or torchrun
with ``nproc_per_node > 1``) launched through Dagster Pipes, which streams its logs and the
final metadata (12 COCO numbers, AP per class, Table 5.1, loss curves, timings) back here.

Inputs come from Dagster's record, not from a glob of the data root: the detector trains on the
``deepfashion_coco`` materialization that is current (its files are checked against the recorded
sha256), and ``best_detector`` ranks only the backbones whose latest materialization was
evaluated on that same ``val.json``. Torch is imported inside the assets, never at load time.

Each materialization publishes a folder of its own (``common.versions``): the trainer works in a
resume cache keyed by ``train.json``'s sha256 (``fashion_detector/<backbone>/resume/<key>/``), and
the finished model is hard-linked into ``fashion_detector/<backbone>/v/<data version>/``, which the
record names; ``best.json`` goes to ``best_detector/v/<data version>/``. A failed run never
touches a recorded folder.
"""

from typing import Optional

import dagster as dg
from pydantic import Field

from fashion_pipeline.common import distributed, lineage, versions
from fashion_pipeline.common.pipes import run_trainer
from fashion_pipeline.common.automation import FOLLOWS_MATERIALIZED_PARTITIONS, TRAINING_RETRY
from fashion_pipeline.common.atomic import write_json
from fashion_pipeline.common.fingerprint import combine, file_sha256
from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.detector.constants import BACKBONES, DEMO_BACKBONE, METRIC_KEYS  # noqa: F401 (demo.py)
from fashion_pipeline.detector.selection import __doc__ as SELECTION_RULE
from fashion_pipeline.detector.selection import NoTrainedDetector, comparison_table, select, split_by_validation_set

DEEPFASHION = "deepfashion_coco"
DEEPFASHION_CHECKS = ("deepfashion_coco_valid",)
USABLE_CHECK = "best_detector_is_usable"
# Bump when a code change alters what is trained or selected for the same inputs.
DETECTOR_CODE_VERSION = "2"
SELECTION_CODE_VERSION = "3"
# Training checkpoints every checkpoint_period iterations, so a retry resumes instead of starting over.
PUBLISHED_FILES = ("model_final.pt", "metrics.json", "loss_curves.png")  # checkpoint_last.pt stays in the resume cache

# Partitions: the thesis's three backbones, plus resnet18 for the 2-core CPU demo only.
BACKBONE_PARTITIONS = dg.StaticPartitionsDefinition(list(BACKBONES))
MIN_USABLE_AP50 = 0.5  # below this the full-body crops downstream would be mostly misses


class DetectorTrainingConfig(dg.Config):
    """Every hyperparameter of ``fashion_pipeline.detector.train``; defaults are the thesis's (section 4.2)."""

    # solver
    recipe: str = Field("thesis", description="thesis | fast (batch 16, linear lr, schedule / 8, bf16, channels_last, "
                        "cached decode; fields left at their default take the recipe's value: see detector/train.py)")
    max_iter: int = Field(50_000, description="training iterations (thesis: 50k)")
    base_lr: float = Field(0.0025, description="SGD base learning rate (thesis: 0.0025)")
    momentum: float = Field(0.9, description="SGD momentum")
    weight_decay: float = Field(1e-4, description="thesis: 1e-4")
    lr_steps: list[int] = Field([20_000, 40_000], description="iterations where lr is multiplied by gamma (thesis: [0, 20k, 40k], 0 = warmup)")
    gamma: float = Field(0.1, description="lr decay factor at each step (thesis: 0.1)")
    warmup_iters: int = Field(1000, description="linear warmup length (Detectron default)")
    warmup_factor: float = Field(0.001, description="lr multiplier at iteration 0 of the warmup")
    batch_size: int = Field(2, description="images per step per process (Detectron single-GPU; base_lr 0.0025 = 0.02 x 2/16)")
    hflip_prob: float = Field(0.5, description="horizontal-flip augmentation probability (thesis: on)")
    aspect_ratio_group_factor: int = Field(3, description="aspect-ratio bins for batching; 0 disables")
    num_workers: int = Field(2, description="data-loader worker processes")
    amp: bool = Field(True, description="mixed precision on CUDA (ignored on CPU)")
    amp_dtype: str = Field("float16", description="autocast type on CUDA: float16 (with GradScaler) | bfloat16")
    compile_backbone: bool = Field(False, description="torch.compile the backbone + FPN (CUDA; compile time at start)")
    channels_last: bool = Field(False, description="NHWC convolution weights (tensor-core layout on CUDA)")
    cache_images: bool = Field(False, description="decode every training image once before training (~3 bytes/pixel of memory)")
    log_period: int = Field(20, description="steps between host syncs / loss reports")
    checkpoint_period: int = Field(1000, description="steps between checkpoint_last.pt writes")
    divergence_factor: float = Field(10.0, description="fail when a window's loss exceeds this multiple of the first")
    seed: int = Field(42, description="seed for weights init, sampling and flips")
    weight_decay_norm: float = Field(0.0, description="weight decay on normalisation scales/shifts (Detectron2 default: 0)")
    scale_lr: bool = Field(False, description="linear lr scaling: lr = base_lr x batch_size x nproc_per_node / reference_batch_size")
    reference_batch_size: int = Field(2, description="global batch base_lr is meant for (thesis: 0.0025 for 2 images)")
    # model
    pretrained_weights_path: Optional[str] = Field(None, description="local ImageNet weights; else torch hub cache; else scratch")
    norm: str = Field("auto", description="auto | frozen_bn | bn | gn (auto: frozen BN when pretrained, BN from scratch)")
    trainable_backbone_layers: int = Field(3, description="backbone stages trained when pretrained (scratch: all 5)")
    min_size: int = Field(300, description="short side after resize (DeepFashion is ~300 px; torchvision's 800 would upscale)")
    max_size: int = Field(512, description="cap on the long side after resize")
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    box_score_thresh: float = 0.05
    box_detections_per_img: int = 100
    fpn_channels: int = Field(256, description="FPN width (torchvision default 256)")
    returned_layers: list[int] = Field([1, 2, 3, 4], description="ResNet stages feeding the FPN")
    representation_size: int = Field(1024, description="box head MLP width")
    # run
    eval_batch_size: int = 8
    max_eval_images: int = Field(0, description="evaluate a seeded random sample of this many val images; 0 = the whole val split")
    eval_sample_seed: int = Field(0, description="seed of the max_eval_images sample")
    threads: int = Field(0, description="torch CPU threads per process; 0 = torch default")
    restart: bool = Field(False, description="ignore checkpoint_last.pt and train from iteration 0")
    nproc_per_node: int = Field(1, description=">1 launches torchrun with DDP on this many processes; a checkpoint "
                                "is resumed only with the nproc_per_node it was trained with")


def train_command(config: DetectorTrainingConfig, backbone: str, coco_dir, output_dir, device: str) -> list[str]:
    """The CLI call that reproduces this materialization outside Dagster."""
    args = ["--backbone", backbone, "--coco-dir", str(coco_dir), "--output-dir", str(output_dir), "--device", device]
    defaults = DetectorTrainingConfig()
    for name, value in config.model_dump().items():
        flag = "--" + name.replace("_", "-")
        if name == "nproc_per_node" or value is None:
            continue
        if config.recipe != "thesis" and value == getattr(defaults, name):
            continue  # left at its default: the recipe (the CLI's --recipe) sets it
        if isinstance(value, bool):
            if name == "amp":
                args.append(flag if value else "--no-amp")
            elif value:
                args.append(flag)
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return distributed.launch_command("fashion_pipeline.detector.train", args, config.nproc_per_node)


def current_training_data(instance: dg.DagsterInstance, data_root) -> lineage.Recorded:
    """The current ``deepfashion_coco``, refused when its check failed or its files changed since it was recorded."""
    recorded = lineage.require_latest(instance, DEEPFASHION)
    lineage.require_checks_passed(instance, DEEPFASHION, DEEPFASHION_CHECKS)
    for split in ("train", "val"):
        lineage.verified_file(data_root, recorded, f"{split}_path", f"{split}_sha256")
    return recorded


@dg.asset(
    group_name="detector",
    partitions_def=BACKBONE_PARTITIONS,
    deps=[DEEPFASHION],
    pool="gpu",
    kinds={"pytorch"},
    code_version=DETECTOR_CODE_VERSION,
    retry_policy=TRAINING_RETRY,
    description="Faster R-CNN + FPN trained on deepfashion_coco/train.json, COCO-evaluated on val.json; one partition "
                "per backbone. Never retrains by itself: when deepfashion_coco changes it turns stale; launch it from the UI.",
)
def fashion_detector(
    context: dg.AssetExecutionContext,
    config: DetectorTrainingConfig,
    data_root: DataRoot,
    compute: ComputeDevice,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    backbone = context.partition_key
    root = data_root.path
    coco = current_training_data(context.instance, root)
    coco_dir = coco.path(root, "train_path").parent
    # The resume cache is keyed by what is trained on: new data never continues (or clobbers) another's checkpoint.
    work_dir = versions.resume_dir(root, "fashion_detector", backbone, key=str(coco.require("train_sha256"))[:20])
    command = train_command(config, backbone, coco_dir, work_dir, compute.device)
    context.log.info("training: " + " ".join(command))
    env = compute.training_env(config.nproc_per_node, log=context.log.info)
    reported = run_trainer(context, pipes_subprocess_client, command, env, lease=compute.lease(config.nproc_per_node))
    final = work_dir / "model_final.pt"
    if not final.is_file() or "AP" not in (reported.metadata or {}):
        raise dg.Failure(f"training stopped before {final} was written (see the logs); materialize again to resume")
    checkpoint_sha256 = file_sha256(final)
    version = combine([checkpoint_sha256])
    with versions.staging(root, "fashion_detector", backbone) as out:
        for name in PUBLISHED_FILES:
            if (work_dir / name).is_file():
                out.link(work_dir / name)
        published = out.publish(version)
    return dg.MaterializeResult(
        metadata={**reported.metadata,
                  **lineage.folder_metadata(published),
                  "checkpoint": dg.MetadataValue.path(published.relative_file("model_final.pt")),
                  "checkpoint_sha256": checkpoint_sha256,
                  "metrics_json": dg.MetadataValue.path(published.relative_file("metrics.json")),
                  "resume_cache": dg.MetadataValue.path(lineage.relative(work_dir, root)),
                  "inputs_verified": dg.MetadataValue.text("deepfashion_coco train.json and val.json match their "
                                                           "recorded sha256"),
                  "deepfashion_coco_version": coco.data_version or ""},
        data_version=dg.DataVersion(version),
    )


def recorded_candidates(instance: dg.DagsterInstance) -> list[dict]:
    """Each backbone partition's latest materialization, as the candidate dict ``selection`` ranks."""
    candidates = []
    for backbone in sorted(lineage.materialized_partitions(instance, "fashion_detector") & set(BACKBONES)):
        recorded = lineage.require_latest(instance, "fashion_detector", backbone)
        candidates.append({**recorded.metadata, "backbone": backbone, "data_version": recorded.data_version,
                           "run_id": recorded.run_id})
    return candidates


@dg.asset(
    group_name="detector",
    deps=[fashion_detector, DEEPFASHION],
    kinds={"pytorch"},
    code_version=SELECTION_CODE_VERSION,
    automation_condition=FOLLOWS_MATERIALIZED_PARTITIONS,
    check_specs=[dg.AssetCheckSpec(USABLE_CHECK, asset="best_detector", blocking=True,
                                   description="checkpoint loads and AP50 >= the usability threshold")],
    description="The trained backbone with the highest COCO AP among those evaluated on the current deepfashion_coco "
                "(rule in the metadata); best.json points at its checkpoint.",
)
def best_detector(context: dg.AssetExecutionContext, data_root: DataRoot) -> dg.MaterializeResult:
    coco = lineage.require_latest(context.instance, DEEPFASHION)
    candidates, stale = split_by_validation_set(recorded_candidates(context.instance), coco.require("val_sha256"))
    for metrics in stale:
        context.log.warning(f"fashion_detector[{metrics['backbone']}] was evaluated on another deepfashion_coco val.json: "
                            f"left out; rematerialize that partition to compare it")
    try:
        record, ranked = select(candidates, None, where=" evaluated on the current deepfashion_coco")
    except NoTrainedDetector as error:
        left_out = ", ".join(f"fashion_detector[{m['backbone']}]" for m in stale)
        raise lineage.input_failure(str(error) + (f" (left out, evaluated on another val.json: {left_out})" if stale else ""))
    context.log.info(f"best detector: {record['backbone']} (AP {record['AP']:.3f}) of {record['ranking']}")
    winner = next(m for m in ranked if m["backbone"] == record["backbone"])
    record["checkpoint_sha256"] = winner.get("checkpoint_sha256")
    checkpoint = _verified_checkpoint(data_root.path, winner)
    usable, usable_metadata = _usability(record, checkpoint)
    version = combine([record["backbone"], winner.get("data_version") or ""])
    # The folder is named by every candidate (best.json lists the ranking); the data version by the winner only,
    # so a losing backbone added later does not mark everything downstream stale.
    folder_key = combine([version, *sorted(f"{m['backbone']}={m.get('data_version')}" for m in ranked)])
    published = versions.find(data_root.path, "best_detector", version=folder_key)
    if published is None:  # else: the same candidates as an earlier materialization; its best.json is reused
        with versions.staging(data_root.path, "best_detector") as out:
            write_json(out.path("best.json"), record, indent=2)
            published = out.publish(folder_key)
    metadata = {key: dg.MetadataValue.float(float(record[key])) for key in METRIC_KEYS if key in record}
    metadata.update({
        "backbone": dg.MetadataValue.text(record["backbone"]),
        "checkpoint": dg.MetadataValue.path(record["checkpoint"]),
        "checkpoint_sha256": dg.MetadataValue.text(record["checkpoint_sha256"] or ""),
        "candidates": dg.MetadataValue.int(len(ranked)),
        "left_out_other_val_set": dg.MetadataValue.text(", ".join(m["backbone"] for m in stale) or "none"),
        "comparison": dg.MetadataValue.md(comparison_table(ranked)),
        "selection_rule": dg.MetadataValue.md(SELECTION_RULE),
        "best_json": dg.MetadataValue.path(published.relative_file("best.json")),
        "checkpoint_verified": dg.MetadataValue.bool(bool(record["checkpoint_sha256"])),
        **lineage.folder_metadata(published),
    })
    return dg.MaterializeResult(
        metadata=metadata,
        data_version=dg.DataVersion(version),
        check_results=[dg.AssetCheckResult(check_name=USABLE_CHECK, passed=usable, metadata=usable_metadata)],
    )


def _verified_checkpoint(data_root, candidate: dict):
    """The winner's checkpoint, checked against the sha256 its materialization recorded."""
    recorded = lineage.Recorded(asset="fashion_detector", partition=candidate["backbone"],
                                data_version=candidate.get("data_version"), metadata=candidate,
                                run_id=candidate.get("run_id", "?"), storage_id=0)
    return lineage.verified_file(data_root, recorded, "checkpoint", "checkpoint_sha256")


def _usability(record: dict, checkpoint) -> tuple[bool, dict]:
    """Guards the cropping stage: a detector that misses most garments would feed it noise."""
    from fashion_pipeline.detector.inference import load_detector

    load_detector(checkpoint, "cpu")
    metadata = {"backbone": dg.MetadataValue.text(record["backbone"]),
                "AP50": dg.MetadataValue.float(float(record["AP50"])),
                "threshold": dg.MetadataValue.float(MIN_USABLE_AP50)}
    return record["AP50"] >= MIN_USABLE_AP50, metadata


def resources() -> dict:
    # Training runs in a child process; its stdout/stderr are forwarded to the run's logs.
    return {"pipes_subprocess_client": dg.PipesSubprocessClient()}


# The 2-core CPU demo, not the thesis's recipe: resnet18 from scratch (no weights offline), a
# narrow FPN (64) and box head (256) without the stride-4 level (garments are large), 224-px
# inputs, 200 steps of 4 images (~1.2 epochs of the 648-image sample) with a 6x higher lr.
# Measured on the sample's val split: 300 such steps gave AP50 0.97 (AP 0.63), 250 gave AP50 0.95.
DEMO_RUN_CONFIG = {
    "ops": {
        "fashion_detector": {
            "config": {
                "max_iter": 200,
                "base_lr": 0.015,
                "lr_steps": [160],
                "warmup_iters": 50,
                "batch_size": 4,
                "num_workers": 1,
                "log_period": 20,
                "checkpoint_period": 50,
                "min_size": 224,
                "max_size": 288,
                "fpn_channels": 64,
                "returned_layers": [2, 3, 4],
                "representation_size": 256,
                "rpn_pre_nms_top_n_train": 600,
                "rpn_post_nms_top_n_train": 300,
                "rpn_pre_nms_top_n_test": 300,
                "rpn_post_nms_top_n_test": 100,
                "box_batch_size_per_image": 128,
            }
        }
    }
}

defs = dg.Definitions(assets=[fashion_detector, best_detector])
