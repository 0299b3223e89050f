"""Dagster layer of the garment stage: crops -> garment masks -> pattern patches -> pattern DCGANs -> restyled garments.

The domain logic is in ``grabcut``, ``patches``, ``restyle`` and ``truth`` (plain modules with CLIs);
the assets read their inputs from the upstream materialization Dagster recorded, refuse an upstream
whose blocking check failed, and return content data versions, as the GAN stage's assets do.
Torch is imported inside the assets, never when the code location loads.
"""

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Optional

import dagster as dg
import numpy as np
import pandas as pd

from fashion_pipeline.common import atomic, lineage, render, versions
from fashion_pipeline.common.automation import TRAINING_RETRY
from fashion_pipeline.common.config import config_from_dataclass
from fashion_pipeline.common.fingerprint import combine, file_sha256
from fashion_pipeline.common.pipes import run_trainer
from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.garments import grabcut, patches, restyle
from fashion_pipeline.gan import settings as gan_settings

GROUP = "garments"
pattern_partitions = dg.StaticPartitionsDefinition(patches.categories())
MASKS_CHECK = "masks_not_degenerate"
CROP_GEOMETRY = ("width", "height", "crop_x0", "crop_y0", "crop_side")


MASKS_CODE_VERSION = "2"


def _verified_manifest(data_root: DataRoot, recorded: lineage.Recorded, path_key: str = "manifest",
                       sha_key: str = "manifest_sha256") -> pd.DataFrame:
    """The manifest a record names, checked against its recorded sha256 when the record has one."""
    if recorded.get(sha_key):
        return pd.read_parquet(lineage.verified_file(data_root.path, recorded, path_key, sha_key))
    return pd.read_parquet(recorded.path(data_root.path, path_key))


def _usable_masks(context, data_root: DataRoot) -> tuple[lineage.Recorded, pd.DataFrame]:
    recorded = lineage.require_latest(context.instance, "garment_masks")
    lineage.require_checks_passed(context.instance, "garment_masks", (MASKS_CHECK,))
    return recorded, _verified_manifest(data_root, recorded)


def _dataset_manifest(context, data_root: DataRoot) -> tuple[Optional[lineage.Recorded], Optional[pd.DataFrame]]:
    """The recorded pinterest_dataset (for the embedded site's truth), or (None, None) when there is none."""
    recorded = lineage.latest(context.instance, "pinterest_dataset")
    return (recorded, _verified_manifest(data_root, recorded)) if recorded else (None, None)


# ---------------------------------------------------------------- garment masks

class GarmentMasksConfig(dg.Config):
    method: str = grabcut.GrabCutSettings.method  # "clothing" (skin/head-aware, default) or "rect" (the seed's call)
    iterations: int = grabcut.GrabCutSettings.iterations
    margin: float = grabcut.GrabCutSettings.margin  # box widened by this fraction of its size
    max_side: int = grabcut.GrabCutSettings.max_side  # work resolution (0: full)
    workers: int = 0  # processes; 0: one per core
    full_frame_fraction: float = 0.95  # a mask covering more of its crop than this is "full-frame"
    max_degenerate_share: float = 0.1  # the check fails when empty + full-frame masks exceed this share of the crops
    overlays: int = 16  # crops shown in the overlay grid


def _mask_jobs(crop_manifest: pd.DataFrame, data_root, mask_dir) -> list[grabcut.Job]:
    return [grabcut.Job(row["image_id"], str(data_root / row["crop_path"]), str(mask_dir / f"{row['image_id']}.png"),
                        grabcut.crop_box(row)) for row in crop_manifest.to_dict("records")]


def _score_against_truth(frame: pd.DataFrame, crop_manifest: pd.DataFrame, data_root, dataset) -> pd.DataFrame:
    """Adds iou and rect_iou (the box as the mask) where the embedded site's true mask exists."""
    from fashion_pipeline.garments.truth import CropTruths

    truths = CropTruths(data_root, dataset) if dataset is not None else None
    ious, rect_ious, patterns = [], [], []
    for row, made in zip(crop_manifest.to_dict("records"), frame.to_dict("records")):
        truth = truths.for_crop(row) if truths is not None and truths.available else None
        iou = rect_iou = np.nan
        if truth is not None:
            shape = truth.values.shape
            predicted = grabcut.read_mask(data_root / made["mask_path"]) if made["mask_path"] else np.zeros(shape, bool)
            iou = grabcut.iou(predicted, truth.garment)
            rect_iou = grabcut.iou(grabcut.rectangle_mask(shape, grabcut.crop_box(row)), truth.garment)
        ious.append(iou)
        rect_ious.append(rect_iou)
        patterns.append(json.dumps(truth.patterns, sort_keys=True) if truth is not None else "")
    return frame.assign(iou=ious, rect_iou=rect_ious, true_patterns=patterns)


def _overlay_grid(frame: pd.DataFrame, data_root, count: int) -> str:
    made = frame[frame["mask_path"] != ""].head(count)
    tiles = [grabcut.overlay(grabcut.read_rgb(data_root / row.crop_path), grabcut.read_mask(data_root / row.mask_path))
             for row in made.itertuples()]
    return render.grid_markdown(tiles, ncols=8, cell=96, alt="garment masks")


def _make_masks(crop_manifest: pd.DataFrame, dataset, root, out: versions.Staging, key: str,
                settings: grabcut.GrabCutSettings, workers: int) -> pd.DataFrame:
    """The masks written into the staging folder ``out``; the manifest names them where they will lie once
    ``out`` is published as ``key``."""
    mask_dir = out.dir / "masks"
    mask_dir.mkdir()
    rows = grabcut.run_jobs(_mask_jobs(crop_manifest, root, mask_dir), settings, workers)
    frame = pd.DataFrame(rows)
    frame.insert(1, "crop_path", crop_manifest["crop_path"].to_numpy())
    for column in CROP_GEOMETRY:  # so that readers of the masks need no other manifest
        frame[column] = crop_manifest[column].to_numpy()
    staged = [out.dir / "masks" / f"{r['image_id']}.png" if r["skip_reason"] is None else None for r in rows]
    frame["mask_path"] = [lineage.relative(p, root) if p else "" for p in staged]  # scored where they lie now
    frame["skip_reason"] = frame["skip_reason"].fillna("")
    frame = _score_against_truth(frame, crop_manifest, root, dataset)
    frame["mask_path"] = [out.published_relative(p, key) if p else "" for p in staged]
    atomic.write_parquet(out.path("manifest.parquet"), frame)
    return frame


@dg.asset(group_name=GROUP, deps=["fullbody_crops", "pinterest_dataset"], code_version=MASKS_CODE_VERSION,
          check_specs=[dg.AssetCheckSpec(MASKS_CHECK, asset="garment_masks", blocking=True,
                                         description="Empty and full-frame masks stay under a configured share.")])
def garment_masks(context: dg.AssetExecutionContext, config: GarmentMasksConfig, data_root: DataRoot) -> dg.MaterializeResult:
    """One garment mask (1-bit PNG) per full-body crop: GrabCut from the detector's box, clothing only
    (skin and hair taken out, see ``fashion_pipeline.garments.grabcut``), run across cores.

    Written into a folder of its own, ``garment_masks/v/<input key>/`` (``common.versions``), named by the
    crops', the dataset's and the settings' versions: a rerun with nothing new reuses it and computes nothing."""
    crops_record = lineage.require_latest(context.instance, "fullbody_crops")
    lineage.require_checks_passed(context.instance, "fullbody_crops", ("enough_crops",))
    dataset_record, dataset = _dataset_manifest(context, data_root)
    root = data_root.path
    settings = grabcut.GrabCutSettings(method=config.method, iterations=config.iterations, margin=config.margin,
                                       max_side=config.max_side)
    # workers and overlays change neither the masks nor the manifest's content that matters
    key = versions.input_key(MASKS_CODE_VERSION, crops_record.data_version,
                             dataset_record.data_version if dataset_record else None, dataclasses.asdict(settings))
    published = versions.find(root, "garment_masks", version=key)
    wall = 0.0
    if published is None:
        crop_manifest = pd.read_parquet(crops_record.path(root, "manifest"))
        started = time.perf_counter()
        with versions.staging(root, "garment_masks") as out:
            _make_masks(crop_manifest, dataset, root, out, key, settings, config.workers)
            wall = time.perf_counter() - started
            published = out.publish(key)
    manifest_path = published.file("manifest.parquet")
    frame = pd.read_parquet(manifest_path)
    # The masks' content, not the manifest's (its timings change every run): same masks, same version.
    version = dg.DataVersion(combine(file_sha256(root / p) for p in frame["mask_path"] if p))
    metadata = {**_masks_metadata(frame, config, wall, root), **lineage.folder_metadata(published),
                "manifest": dg.MetadataValue.path(published.relative_file("manifest.parquet")),
                "manifest_sha256": file_sha256(manifest_path),  # its readers check it before use
                # the crops the manifest's crop_path names: gc keeps their folder while this record is kept
                "crops_manifest": dg.MetadataValue.path(str(crops_record.require("manifest")))}
    return dg.MaterializeResult(metadata=metadata, data_version=version,
                                check_results=[_degenerate_check(frame, config)])


def _masks_metadata(frame: pd.DataFrame, config: GarmentMasksConfig, wall: float, root) -> dict:
    made = frame[frame["skip_reason"] == ""]
    scored = frame.dropna(subset=["iou"])
    metadata = {
        "crops": len(frame),
        "masks": len(made),
        **{f"skipped_{reason}": int((frame["skip_reason"] == reason).sum()) for reason in grabcut.SKIP_REASONS},
        "area_fraction_mean": round(float(made["area_fraction"].mean()), 4) if len(made) else 0.0,
        "seconds_per_image": round(float(frame["seconds"].mean()), 4) if len(frame) else 0.0,  # when they were made
        "wall_seconds": round(wall, 2),  # this run's (0 when it reused the folder)
        "images_per_second": round(len(frame) / wall, 2) if wall > 0 else 0.0,
        "method": config.method, "iterations": config.iterations, "margin": config.margin,
        "overlays": dg.MetadataValue.md(_overlay_grid(frame, root, config.overlays)),
    }
    if len(scored):  # the embedded site's truth; a skipped crop counts as IoU 0
        metadata.update(mask_iou_mean=round(float(scored["iou"].mean()), 4),
                        mask_iou_p10=round(float(np.percentile(scored["iou"], 10)), 4),
                        rect_iou_mean=round(float(scored["rect_iou"].mean()), 4), crops_with_truth=len(scored))
    return metadata


def _degenerate_check(frame: pd.DataFrame, config: GarmentMasksConfig) -> dg.AssetCheckResult:
    empty = int((frame["skip_reason"] == "empty_mask").sum())
    full = int((frame["area_fraction"] > config.full_frame_fraction).sum())
    share = (empty + full) / max(len(frame), 1)
    return dg.AssetCheckResult(check_name=MASKS_CHECK, passed=bool(len(frame) and share <= config.max_degenerate_share),
                               metadata={"empty": empty, "full_frame": full, "share": round(share, 4),
                                         "max_share": config.max_degenerate_share})


# ---------------------------------------------------------------- pattern patches

class PatternPatchesConfig(dg.Config):
    source_folder: Optional[str] = None  # real use: a folder with one subfolder per category (replaces the garments)
    patch_fraction: float = patches.PatchSettings.patch_fraction
    min_patch_px: int = patches.PatchSettings.min_patch_px
    patches_per_crop: int = patches.PatchSettings.patches_per_crop
    min_inside: float = patches.PatchSettings.min_inside
    min_labelled: float = patches.PatchSettings.min_labelled
    max_patches: int = 4000
    seed: int = 0


PATCHES_CODE_VERSION = "3"


def _garment_category_patches(config: PatternPatchesConfig, root, masks: pd.DataFrame, dataset, category: str) -> tuple[np.ndarray, dict]:
    from fashion_pipeline.garments.truth import CropTruths

    truths = CropTruths(root, dataset) if dataset is not None else None
    if truths is None or not truths.available:
        raise lineage.input_failure("the crops have no pattern labels (not the embedded site): set pattern_patches' "
                                    "source_folder to a folder with one subfolder per category")
    settings = patches.PatchSettings(**{f.name: getattr(config, f.name) for f in dataclasses.fields(patches.PatchSettings)})
    made = masks[masks["mask_path"] != ""]
    # Only crops wearing the category can give its patches: skip the others' decoding.
    made = made[[category in json.loads(p or "{}").values() for p in made["true_patterns"]]]
    made = made.sample(frac=1.0, random_state=config.seed)
    rng = np.random.default_rng(config.seed)
    kept, counts = [], {"unlabelled": 0}
    for mask_row in made.itertuples():
        truth = truths.for_crop(mask_row._asdict())
        image = grabcut.read_rgb(root / mask_row.crop_path)
        for patch, label, _ in patches.garment_patches(image, grabcut.read_mask(root / mask_row.mask_path), settings, rng, truth):
            counts[label or "unlabelled"] = counts.get(label or "unlabelled", 0) + 1
            if label == category:
                kept.append(patch)
        if len(kept) >= config.max_patches:
            break
    images = np.stack(kept[:config.max_patches]) if kept else np.zeros((0, 64, 64, 3), np.uint8)
    return images, counts


def _folder_patches(config: PatternPatchesConfig, category: str) -> np.ndarray:
    try:
        return patches.folder_patches(config.source_folder, category)
    except (FileNotFoundError, ValueError) as error:
        raise lineage.input_failure(str(error)) from error


COUNTS_NAME = "counts.json"  # windows seen per label, beside the patches (the metadata of a reused folder)


@dg.asset(group_name=GROUP, partitions_def=pattern_partitions, deps=[garment_masks], code_version=PATCHES_CODE_VERSION,
          check_specs=[lineage.partitioned_check("enough_patches", "pattern_patches", pattern_partitions,
                                                 "N x 64 x 64 x 3 uint8 with N >= 8, so a DCGAN can train on them.")])
def pattern_patches(context: dg.AssetExecutionContext, config: PatternPatchesConfig,
                    data_root: DataRoot) -> dg.MaterializeResult:
    """A pattern category's 64 x 64 texture patches: windows inside the garment masks labelled by the embedded
    generator's pattern type, or, with ``source_folder``, that folder's subfolder for the category.

    Published as ``pattern_patches/<category>/v/<version>/<category>.npy``: from the garment masks named by
    their masks' manifest and the settings (a rerun with nothing new reuses the folder, cutting nothing);
    from a folder by the patches' content (a user's files are read every run, their copy is kept once)."""
    category, root = context.partition_key, data_root.path
    key = published = None
    if config.source_folder:
        images, counts = _folder_patches(config, category), {}
    else:
        masks_record, masks = _usable_masks(context, data_root)
        dataset_record, dataset = _dataset_manifest(context, data_root)
        key = versions.input_key(PATCHES_CODE_VERSION, category, masks_record.data_version,
                                 masks_record.get("manifest_sha256"),
                                 dataset_record.data_version if dataset_record else None, config.model_dump())
        published = versions.find(root, "pattern_patches", category, version=key)
        if published is None:
            images, counts = _garment_category_patches(config, root, masks, dataset, category)
    if published is None:
        with versions.staging(root, "pattern_patches", category) as out:
            atomic.save_npy(out.path(f"{category}.npy"), images)
            atomic.write_text(out.path(COUNTS_NAME), json.dumps(counts, sort_keys=True))
            published = out.publish(key)  # None: the content's fingerprint (identical files reuse their folder)
    path = published.file(f"{category}.npy")
    images, counts = np.load(path, allow_pickle=False), json.loads(published.file(COUNTS_NAME).read_text())
    sha256 = file_sha256(path)
    version = dg.DataVersion(combine([sha256]))  # = lineage.file_data_version(path)
    return dg.MaterializeResult(
        metadata={"category": category, "patches": len(images),
                  "source": config.source_folder or "garment masks (embedded generator's labels)",
                  # the print's scale on the garment, which restyled_garments reproduces (unknown for a folder)
                  **({} if config.source_folder else {"patch_fraction": config.patch_fraction}),
                  **{f"seen_{label}": n for label, n in sorted(counts.items())},
                  "samples": dg.MetadataValue.md(render.grid_markdown(list(images[:48]), ncols=12, cell=48, alt=category)),
                  "path": dg.MetadataValue.path(published.relative_file(path.name)),
                  "sha256": sha256,  # pattern_dcgan checks the .npy against it before training on it
                  "fingerprint": version.value, **lineage.folder_metadata(published)},
        data_version=version,
        check_results=[dg.AssetCheckResult(check_name="enough_patches", passed=len(images) >= 8,
                                           metadata={"category": category, "patches": len(images)})])


# ---------------------------------------------------------------- pattern DCGAN

PatternDCGANConfig = config_from_dataclass(
    gan_settings.TrainConfig,
    "PatternDCGANConfig",
    "The AI Fashion poster's settings are the defaults: image 64, batch 128, nz 10, ngf/ndf 64, lr 2e-4, 1000 epochs.",
    overrides={"nz": (int, 10), "epochs": (int, 1000), "device": (str, "")},
    resume=(bool, True),
    inception_weights_path=(Optional[str], None),  # else the best detector's backbone is the feature space
    feature_input_size=(int, 128),
    kid_fakes=(int, 256),
    kid_reals=(int, 1000),
    kid_subsets=(int, 100),
    # A per-category step budget: partition key -> steps, in place of ``steps`` for that category (others keep
    # ``steps``). Prints differ in how hard they are to learn; the demo gives dots and florals more steps.
    category_steps=(dict[str, int], {}),
)


def _feature_space(context, config, data_root: DataRoot, device):
    from fashion_pipeline.gan import quality

    if config.inception_weights_path:
        return quality.inception_space(config.inception_weights_path, device)
    best = lineage.latest(context.instance, "best_detector")
    if best is None:
        return None
    return quality.detector_backbone_space(best.path(data_root.path, "checkpoint"), device, config.feature_input_size)


def _quality(space, generator_path, reals: np.ndarray, config, device) -> dict:
    """How far the trained generator's patterns are from the patches, against an untrained generator of the
    same architecture (the ablation's baseline), in two spaces:

    - KID (and FID when both sets have at least as many samples as feature dimensions) in the feature
      space the ablation uses; it rewards the category's colours;
    - ``structure_MMD`` (``garments.pattern_quality``): power-spectrum bands and gradient orientations of
      the grey levels only, with a third baseline, the patches themselves blurred (their colours, no print).
      A generator of stripes in the right colours but no stripes scores like the blur.
    """
    from fashion_pipeline.gan import dcgan as gan_model, quality
    from fashion_pipeline.gan.report import untrained_like
    from fashion_pipeline.garments import pattern_quality

    fakes = gan_model.sample(gan_model.load_generator(generator_path, device), config.kid_fakes, seed=0, device=device)
    untrained = gan_model.sample(untrained_like(generator_path, device), config.kid_fakes, seed=0, device=device)
    out = {}
    structure = {name: pattern_quality.structure_mmd(images, reals, subsets=config.kid_subsets)
                 for name, images in (("trained", fakes), ("untrained", untrained),
                                      ("blurred_patches", pattern_quality.blurred(reals)))}
    for name, (value, spread) in structure.items():
        out[f"structure_MMD_{name}"] = round(value, 5)
        out[f"structure_MMD_{name}_std"] = round(spread, 5)
    if space is None:
        out["kid"] = "no feature space: materialize best_detector or set inception_weights_path"
        return out, fakes
    kid_reals = reals[np.sort(np.random.default_rng(0).choice(len(reals), min(config.kid_reals, len(reals)), replace=False))]
    a, u, b = space.features(fakes), space.features(untrained), space.features(kid_reals)
    kid, kid_std = quality.kernel_inception_distance(a, b, subsets=config.kid_subsets, subset_size=1000)
    base, base_std = quality.kernel_inception_distance(u, b, subsets=config.kid_subsets, subset_size=1000)
    out.update({"KID_vs_patches": round(kid, 6), "KID_std": round(kid_std, 6),
                "KID_untrained_vs_patches": round(base, 6), "KID_untrained_std": round(base_std, 6),
                "KID_untrained_over_trained": round(base / max(kid, 1e-9), 2),
                "feature_space": space.name, "kid_fakes": len(a), "kid_reals": len(b)})
    if min(len(a), len(b)) >= a.shape[1]:
        out["FID_vs_patches"] = round(quality.fid_from_features(a, b), 3)
    return out, fakes


@dg.asset(group_name=GROUP, partitions_def=pattern_partitions, deps=[pattern_patches], pool="gpu", kinds={"pytorch"},
          code_version="3", retry_policy=TRAINING_RETRY,
          check_specs=[lineage.partitioned_check("finite_losses", "pattern_dcgan", pattern_partitions,
                                                 "Every recorded epoch has finite losses.")])
def pattern_dcgan(context: dg.AssetExecutionContext, config: PatternDCGANConfig, data_root: DataRoot,
                  compute: ComputeDevice, pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    """The project's DCGAN trained on one pattern category's patches, launched as ``dcgan`` launches it: the
    CLI (``python -m fashion_pipeline.gan.dcgan``) through Pipes, holding the GPU lease, in a resume cache
    keyed by the patches' data version; divergence and a refused resume fail without retries. The result is
    hard-linked into ``pattern_dcgan/<category>/v/<generator's data version>/``."""
    from fashion_pipeline.gan import report
    from fashion_pipeline.gan.assets import FAKES_NAME, _train_command, loss_chart

    category, root = context.partition_key, data_root.path
    patches_record = lineage.require_latest(context.instance, "pattern_patches", category)
    lineage.require_checks_passed(context.instance, "pattern_patches", ("enough_patches",), category)
    # the recorded .npy, checked against its recorded sha256: patches rewritten since are refused, never used
    data_path = (lineage.verified_file(root, patches_record, "path", "sha256") if patches_record.get("sha256")
                 else patches_record.path(root, "path"))
    images = np.load(data_path, allow_pickle=False)
    work_dir = versions.resume_dir(root, "pattern_dcgan", category, key=patches_record.data_version or "unversioned")
    if not config.resume:
        (work_dir / gan_settings.CHECKPOINT_NAME).unlink(missing_ok=True)
    fields = {f.name for f in dataclasses.fields(gan_settings.TrainConfig)}
    train_config = gan_settings.TrainConfig(**{k: v for k, v in config.model_dump().items() if k in fields})
    train_config.steps = config.category_steps.get(category, config.steps)
    train_config.device = config.device or compute.device
    command = _train_command(train_config, data_path, work_dir, 1)
    context.log.info("training: " + " ".join(command))
    trained = run_trainer(context, pipes_subprocess_client, command, compute.training_env(1, log=context.log.info),
                          lease=compute.lease(1)).metadata
    history = json.loads((work_dir / gan_settings.HISTORY_NAME).read_text())
    finite = all(np.isfinite([row[name] for name in gan_settings.STAT_NAMES]).all() for row in history["epochs"])
    generator_sha256 = file_sha256(work_dir / gan_settings.GENERATOR_NAME)
    device = compute.torch_device()
    scores, fakes = _quality(_feature_space(context, config, data_root, device), work_dir / gan_settings.GENERATOR_NAME,
                             images, config, device)
    shown = images[np.sort(np.random.default_rng(0).choice(len(images), min(32, len(images)), replace=False))]
    grid = report.side_by_side({"patches": shown, "generated": fakes[:32]}, cell=48)
    with versions.staging(root, "pattern_dcgan", category) as out:
        for name in (gan_settings.GENERATOR_NAME, gan_settings.HISTORY_NAME, FAKES_NAME):
            out.link(work_dir / name)
        atomic.write_bytes(out.path("patches_vs_generated.png"), render.png_bytes(grid))
        published = out.publish(combine([generator_sha256]))  # an identical generator reuses its folder
    return dg.MaterializeResult(
        metadata={
            "category": category,
            **trained,  # what ``dcgan`` reports: best and final epochs' stats, timing, resumed_from_epoch, device
            "training_images": len(images), "patches_version": patches_record.data_version or "",
            "patches_verified": bool(patches_record.get("sha256")),  # the .npy matched the recorded sha256
            "nz": train_config.nz, "batch_size": train_config.batch_size, "ngf": train_config.ngf,
            "ndf": train_config.ndf, "flip": train_config.flip, "diff_augment": train_config.diff_augment,
            "lr": train_config.lr, "step_budget": train_config.steps,
            "optimizer_steps": len(history["step_losses"]), **scores,
            # restyled_garments prints the patterns back at the scale their patches were cut at
            **({"print_fraction": patches_record.get("patch_fraction")} if patches_record.get("patch_fraction") else {}),
            "loss_chart": dg.MetadataValue.md(loss_chart(history, category)),
            "generated": dg.MetadataValue.md(render.png_markdown(grid, alt="patches vs generated")),
            "generator": dg.MetadataValue.path(published.relative_file(gan_settings.GENERATOR_NAME)),
            "generator_sha256": generator_sha256,  # restyled_garments checks the generator against it
            "resume_checkpoint": dg.MetadataValue.path(lineage.relative(work_dir / gan_settings.CHECKPOINT_NAME, root)),
            **lineage.folder_metadata(published),
        },
        data_version=dg.DataVersion(combine([generator_sha256])),
        check_results=[dg.AssetCheckResult(check_name="finite_losses", passed=bool(finite),
                                           metadata={"category": category, "epochs": len(history["epochs"])})])


# ---------------------------------------------------------------- restyled garments

class RestyleConfig(dg.Config):
    crops: int = 8  # garments restyled with every category's patterns (the same ones, so rows compare)
    min_area_fraction: float = 0.08  # garments covering less of their crop are too small to show a print
    seed: int = 0
    # Tile side as a fraction of the crop's side for patterns whose scale is not known: a user's files, or a
    # generator trained on a folder. A generator trained on garment patches prints at its patches' scale.
    tile_fraction: float = restyle.RestyleSettings.tile_fraction
    seamless_fraction: float = restyle.RestyleSettings.seamless_fraction
    feather_px: float = restyle.RestyleSettings.feather_px
    # A folder with one subfolder per category: its files are printed directly (no GAN), in a row of their own
    # beside the generated patterns, for comparison. Works without any pattern_dcgan materialized.
    pattern_folder: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class _PatternSource:
    label: str  # the row's name in the picture
    category: str
    print_fraction: float
    patterns: Callable[[int], list]  # count -> that many H x W x 3 uint8 patterns
    version: str  # what the patterns come from: the generator's data version, or the user's files' sha256s

    @property
    def folder_name(self) -> str:
        return self.category if self.label.endswith("(generated)") else f"{self.category}_files"


def _generated_sources(instance, data_root: DataRoot, config: RestyleConfig) -> list[_PatternSource]:
    """One source per pattern_dcgan partition with finite losses, printing at its patches' scale; each
    generator checked against the sha256 pattern_dcgan recorded before it is used."""
    from fashion_pipeline.gan import dcgan as gan_model

    found = []
    for category in sorted(lineage.materialized_partitions(instance, "pattern_dcgan")):
        if lineage.failed_checks(instance, "pattern_dcgan", ("finite_losses",), category):
            continue
        recorded = lineage.require_latest(instance, "pattern_dcgan", category)
        path = (lineage.verified_file(data_root.path, recorded, "generator", "generator_sha256")
                if recorded.get("generator_sha256") else recorded.path(data_root.path, "generator"))
        found.append(_PatternSource(
            f"{category} (generated)", category, float(recorded.get("print_fraction") or config.tile_fraction),
            lambda count, path=path: list(gan_model.sample(gan_model.load_generator(path), count, seed=config.seed)),
            recorded.data_version or file_sha256(path)))
    return found


def _folder_sources(config: RestyleConfig) -> list[_PatternSource]:
    """One source per subfolder of ``pattern_folder``: the user's files as they are, cycled over the crops."""
    if not config.pattern_folder:
        return []
    folder = Path(config.pattern_folder)
    if not folder.is_dir():
        raise lineage.input_failure(f"pattern_folder {folder} does not exist (one subfolder per category is expected)")
    sources = []
    for directory in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            files = patches.pattern_images(folder, directory.name)
        except (FileNotFoundError, ValueError) as error:
            raise lineage.input_failure(str(error)) from error
        contents = combine(f"{p.name}:{file_sha256(p)}" for p in sorted(directory.iterdir()) if p.is_file())
        sources.append(_PatternSource(f"{directory.name} (your files)", directory.name, config.tile_fraction,
                                      lambda count, files=files: [files[i % len(files)] for i in range(count)], contents))
    if not sources:
        raise lineage.input_failure(f"pattern_folder {folder} has no subfolders (one per category is expected)")
    return sources


def _choose_garments(masks: pd.DataFrame, config: RestyleConfig) -> pd.DataFrame:
    made = masks[masks["mask_path"] != ""]
    large = made[made["area_fraction"] >= config.min_area_fraction]
    pool = large if len(large) >= config.crops else made
    return pool.sample(min(config.crops, len(pool)), random_state=config.seed)


def _restyle_row(source: _PatternSource, chosen: pd.DataFrame, root, out: versions.Staging, config: RestyleConfig) -> None:
    """Every chosen garment re-printed with one of the source's patterns; each written as a PNG into ``out``."""
    settings = restyle.RestyleSettings(tile_fraction=source.print_fraction, seamless_fraction=config.seamless_fraction,
                                       feather_px=config.feather_px)
    for pattern, row in zip(source.patterns(len(chosen)), chosen.itertuples()):
        made = restyle.restyle(grabcut.read_rgb(root / row.crop_path), grabcut.read_mask(root / row.mask_path),
                               pattern, settings)
        atomic.write_bytes(out.path(f"{source.folder_name}/{row.image_id}.png"), render.png_bytes(render.to_pil(made)))


def labelled_rows(rows: list[tuple[str, list]], cell: int = 128, label_width: int = 132) -> "Image.Image":
    """Rows of equal-size tiles with each row's name at its left (the before/after picture)."""
    from PIL import Image, ImageDraw

    pad = 2
    ncols = max((len(tiles) for _, tiles in rows), default=1)
    canvas = Image.new("RGB", (label_width + ncols * (cell + pad) + pad, len(rows) * (cell + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for index, (label, tiles) in enumerate(rows):
        top = pad + index * (cell + pad)
        draw.text((6, top + cell // 2 - 6), label, fill="black")
        canvas.paste(render.image_grid(tiles, ncols=ncols, cell=cell, pad=0), (label_width, top))
    return canvas


RESTYLE_CODE_VERSION = "3"


@dg.asset(group_name=GROUP, deps=[garment_masks, pattern_dcgan], kinds={"pytorch"}, code_version=RESTYLE_CODE_VERSION)
def restyled_garments(context: dg.AssetExecutionContext, config: RestyleConfig, data_root: DataRoot) -> dg.MaterializeResult:
    """The same sample of garments re-printed with each category's generated patterns (and, with
    ``pattern_folder``, with the user's own pattern files directly) inside their garment masks, at the
    print's scale, shading kept and edges feathered inwards; one picture, originals in the first row.

    Published as ``restyled_garments/v/<input key>/`` (masks, each source's generator or files, settings):
    a rerun with nothing new reuses the folder and prints nothing."""
    masks_record, masks = _usable_masks(context, data_root)
    sources = _generated_sources(context.instance, data_root, config) + _folder_sources(config)
    if not sources:
        raise lineage.input_failure("no pattern_dcgan partition is materialized with finite losses and no "
                                    "pattern_folder is set: materialize pattern_dcgan first")
    chosen = _choose_garments(masks, config)
    root = data_root.path
    key = versions.input_key(RESTYLE_CODE_VERSION, masks_record.data_version, masks_record.get("manifest_sha256"),
                             [(s.label, s.version, s.print_fraction) for s in sources], config.model_dump())
    published = versions.find(root, "restyled_garments", version=key)
    originals = [grabcut.read_rgb(root / row.crop_path) for row in chosen.itertuples()]
    if published is None:
        with versions.staging(root, "restyled_garments") as out:
            for source in sources:
                _restyle_row(source, chosen, root, out, config)
            rows = [("original", originals)] + [(s.label, _printed(out.dir, s, chosen)) for s in sources]
            atomic.write_bytes(out.path("before_after.png"), render.png_bytes(labelled_rows(rows)))
            published = out.publish(key)
    metadata = {}
    budget = min(render.MAX_INLINE_BYTES, 160 * 1024 // len(sources))  # the grids share the metadata budget
    for source in sources:
        grid = render.image_grid(originals + _printed(published.folder, source, chosen), ncols=len(chosen), cell=96)
        metadata[f"before_after_{source.folder_name}"] = dg.MetadataValue.md(
            render.inline_image_markdown(grid, alt=source.label, max_bytes=budget))
        metadata[f"print_fraction_{source.folder_name}"] = round(source.print_fraction, 4)
    picture_path = published.file("before_after.png")
    metadata.update(categories=", ".join(source.label for source in sources), crops=len(chosen),
                    picture=dg.MetadataValue.path(published.relative_file("before_after.png")),
                    **lineage.folder_metadata(published))
    return dg.MaterializeResult(metadata=metadata, data_version=lineage.file_data_version(picture_path))


def _printed(folder: Path, source: _PatternSource, chosen: pd.DataFrame) -> list[np.ndarray]:
    """The restyled garments of one source as they lie in ``folder`` (staged or published)."""
    return [grabcut.read_rgb(folder / source.folder_name / f"{row.image_id}.png") for row in chosen.itertuples()]


defs = dg.Definitions(assets=[garment_masks, pattern_patches, pattern_dcgan, restyled_garments])


def resources() -> dict:
    """pattern_dcgan trains in a child process launched through Pipes, as ``dcgan`` does."""
    return {"pipes_subprocess_client": dg.PipesSubprocessClient()}


# `make demo`: GrabCut on every crop (0.1-0.2 s each per core); up to 1,024 patches per category (16 windows per
# crop). The pattern DCGANs keep the poster's nz 10 but train a step budget on small networks, which is what the
# 2 cores allow: 1,000 steps at batch 16, ngf/ndf 16, lr 5e-4, with left-right flips and DiffAugment's
# translation (a texture is the same texture shifted, so D cannot memorise where the stripes lie). Measured
# on the demo's stripes (README, "The demo's patterns"): at 1,000 steps lr 5e-4 without translation still gave
# coloured blobs (KID 0.48), lr 1e-3 worse (0.97), this config 0.07 against 2.51 for an untrained generator.
# KID on 64 fakes against 128 patches at 64 px in the detector's feature space. Dots and florals get 2,400
# steps: at 1,000 they were faint spots and blobs; measured outside Dagster (trained on 75% of the patches,
# 2026-12-01) KID against the held-out 25% went 0.60 -> 0.13 (dots) and 0.79 -> 0.24 (florals) from 1,000 to
# 2,400 steps, and twice the width (ngf/ndf 32) at 1,000 steps cost more CPU (0.16 s a step) for less (0.17, 0.73).
# Checks get 2,400 too, chosen by eye on a fresh-clone demo's fixed-noise fakes (in-sample; README).
DEMO_RUN_CONFIG = {
    "ops": {
        # GrabCut at 384 px on the long side: the best work resolution on the embedded looks' tuning half
        # (bench/garment_masks.py); full resolution (the default, chosen for real photos) costs ~2.5x.
        "garment_masks": {"config": {"max_side": 384}},
        "pattern_patches": {"config": {"max_patches": 1024, "patches_per_crop": 16}},
        "pattern_dcgan": {"config": {"steps": 1000, "category_steps": {"dots": 2400, "florals": 2400, "checks": 2400},
                                     "batch_size": 16, "ngf": 16, "ndf": 16, "lr": 5e-4, "flip": True,
                                     "diff_augment": "translation", "kid_fakes": 64, "kid_reals": 128,
                                     "feature_input_size": 64, "kid_subsets": 50}},
        "restyled_garments": {"config": {"crops": 8}},
    }
}
