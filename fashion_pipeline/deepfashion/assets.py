"""Dagster layer of the DeepFashion stage: the ``deepfashion_coco`` asset and its blocking check.

The work is in ``convert`` (list files -> COCO) and ``sample`` (the embedded synthetic data); this
module passes config, picks the source and reports metadata. Each conversion is written into a
folder of its own, ``deepfashion_coco/v/<input key>/`` (``common.versions``), published by one rename;
the key is the root's content fingerprint, its path, the config and ``CODE_VERSION``, so a rerun on an
unchanged root reuses the folder and writes nothing, and a failed run never touches a recorded folder. (No ``from __future__ import annotations``:
Dagster reads the parameter annotations to find config and resources.)
"""

import contextlib
import io
import json
from pathlib import Path

import dagster as dg
from pydantic import Field

from fashion_pipeline.common import lineage, versions
from fashion_pipeline.common.fingerprint import combine, file_sha256
from fashion_pipeline.common.render import grid_markdown, markdown_table
from fashion_pipeline.common.resources import DataRoot
from fashion_pipeline.deepfashion import layout
from fashion_pipeline.deepfashion.convert import SKIP_REASONS, ConversionResult, ConvertOptions, convert, source_fingerprint
from fashion_pipeline.deepfashion.preview import boxed_samples
from fashion_pipeline.deepfashion.resources import DeepFashionSource, source_from_env
from fashion_pipeline.deepfashion.sample import SampleSpec

ASSET_NAME = "deepfashion_coco"
# Bump when a code change alters the JSON written for the same input: downstream turns stale.
CODE_VERSION = "4"  # 4: one folder per materialization (v/<input key>/); 3: any published layout, info.layout


class DeepFashionCocoConfig(dg.Config):
    """How to convert DeepFashion; the sample settings apply only to the embedded sample."""

    split: str = Field("official", description="'official' (Eval/list_eval_partition.txt) or 'random': the thesis's "
                                               "seeded 200,000/89,222 train/val split, as a ratio on smaller sets")
    seed: int = Field(0, description="seed of the random split and of the embedded sample")
    on_bad: str = Field("skip", description="'skip': leave out images with bad boxes/labels/files and count them; "
                                            "'fail': stop on the first such image")
    annotations: str = Field("auto", description="which list files when the root holds both: 'coarse' (Anno_coarse/ "
                                                 "or Anno/: 289,222 images, Eval/ partition) or 'fine' (Anno_fine/: "
                                                 "the fine-grained subset and its own train/val/test files); "
                                                 "'auto' = coarse when present, else fine")
    sample_images: int = Field(900, description="images in the embedded sample (~72% train, 14% val, 14% test)")
    preview_images: int = Field(12, description="train images drawn with their boxes in the metadata")


@dg.asset(
    name=ASSET_NAME,
    group_name="deepfashion",
    kinds={"python", "json"},
    code_version=CODE_VERSION,
    description="DeepFashion Category and Attribute Prediction as COCO detection JSON (upper/lower/full), "
                "one file per split. Reads DEEPFASHION_ROOT, or generates the synthetic sample when unset.",
)
def deepfashion_coco(
    context: dg.AssetExecutionContext, config: DeepFashionCocoConfig, data_root: DataRoot, deepfashion: DeepFashionSource
) -> dg.MaterializeResult:
    root = deepfashion.prepare(data_root.path, SampleSpec(images=config.sample_images, seed=config.seed))
    options = ConvertOptions(split=config.split, seed=config.seed, on_bad=config.on_bad, annotations=config.annotations)
    key = folder_key(root, config)
    published = versions.find(data_root.path, ASSET_NAME, version=key)
    if published is None:  # else: the same root content, config and code as an earlier run: reused, nothing written
        context.log.info(f"converting {deepfashion.kind} at {root}")
        with versions.staging(data_root.path, ASSET_NAME) as out:  # removed if the conversion raises
            convert(root, out.dir, options, relative_base=data_root.path)
            published = out.publish(key)
    else:
        context.log.info(f"{deepfashion.kind} at {root} unchanged since the conversion in {published.relative}: reused")
    result = published_result(published)
    context.log.info(f"layout: {result.summary['layout']['description']}")
    if result.summary["images_skipped"]:
        context.log.warning(f"skipped {result.summary['images_skipped']} images: {result.summary['skipped']}")
    metadata = conversion_metadata(result, data_root.path, deepfashion.kind, config.preview_images, config.seed)
    digests = split_digests(result.paths)
    metadata.update({f"{split}_sha256": digest for split, digest in digests.items()})
    metadata.update(lineage.folder_metadata(published))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(combine(digests.values())))


def folder_key(root: Path, config: DeepFashionCocoConfig) -> str:
    """The output folder's name: code version, the root (its path: an external root is stored absolute in
    ``info.image_root``) and its content fingerprint, and the config that changes the JSON (not the preview)."""
    settings = config.model_dump(exclude={"preview_images"})
    return versions.input_key(CODE_VERSION, str(root), source_fingerprint(root, config.annotations), settings)


def published_result(published: versions.Published) -> ConversionResult:
    """The conversion as its folder holds it (``summary.json`` and the split files), new or reused."""
    summary = json.loads(published.file("summary.json").read_text())
    paths = {split: published.file(f"{split}.json") for split in layout.SPLITS}
    paths["summary"] = published.file("summary.json")
    return ConversionResult(summary=summary, paths=paths)


def split_digests(paths: dict) -> dict[str, str]:
    """sha256 of each split's JSON: the detector's resume key and best_detector's filter use them."""
    return {split: file_sha256(paths[split]) for split in layout.SPLITS}


def conversion_metadata(result: ConversionResult, data_root: Path, source_kind: str, preview: int, seed: int) -> dict:
    """Counts as numbers (the UI plots them across materializations), plus a table, skips and a preview grid."""
    summary = result.summary
    metadata: dict = {
        "source": source_kind,
        # which published layout and which annotation set were read
        "layout": dg.MetadataValue.text(summary["layout"]["description"]),
        "annotation_set": dg.MetadataValue.text(summary["layout"]["annotation_set"]),
        "annotation_dir": dg.MetadataValue.text(summary["layout"]["annotation_dir"]),
        "image_dir": dg.MetadataValue.text(summary["layout"]["image_dir"]),
        "images_listed": int(summary["images_listed"]),
        # relative to the split files' folder for the embedded sample; absolute for an external DEEPFASHION_ROOT
        "image_root": dg.MetadataValue.text(summary["image_root"]),
        "split_mode": summary["split_mode"],
        "images_total": summary["images_kept"],
        "images_skipped": summary["images_skipped"],
        "seconds": float(summary["seconds"]),
    }
    rows = []
    for split, counts in summary["splits"].items():
        metadata[f"{split}_images"] = counts["images"]
        metadata[f"{split}_boxes"] = counts["boxes"]
        for type_name, count in counts["by_type"].items():
            metadata[f"{split}_{type_name}_boxes"] = count
        rows.append([split, counts["images"], counts["boxes"], *counts["by_type"].values()])
    for type_name in layout.CATEGORY_TYPE_NAMES.values():
        metadata[f"{type_name}_boxes"] = sum(c["by_type"][type_name] for c in summary["splits"].values())
    metadata["counts"] = dg.MetadataValue.md(markdown_table(["split", "images", "boxes", "upper", "lower", "full"], rows))
    for reason in SKIP_REASONS:  # every reason, zeros included, so each plots as a series in the UI
        metadata[f"skipped_{reason.replace(' ', '_')}"] = int(summary["skipped"].get(reason, 0))
    metadata["skipped_examples"] = dg.MetadataValue.json({"counts": summary["skipped"], "examples": summary["skipped_examples"]})
    for name, path in result.paths.items():
        metadata[f"{name}_path"] = dg.MetadataValue.path(str(Path(path).resolve().relative_to(Path(data_root).resolve())))
    if preview > 0:
        metadata["preview"] = dg.MetadataValue.md(grid_markdown(boxed_samples(result.paths["train"], preview, seed),
                                                                ncols=6, cell=128, alt="train images with boxes"))
    return metadata


@dg.asset_check(asset=deepfashion_coco, blocking=True,
                description="Each split loads in pycocotools; train is non-empty; boxes lie inside their images.")
def deepfashion_coco_valid(context: dg.AssetCheckExecutionContext, data_root: DataRoot) -> dg.AssetCheckResult:
    """Evaluates the files of the materialization it targets (the latest, which this run just recorded), read from
    its own folder: a failure refuses that materialization downstream and leaves earlier folders as they were."""
    from pycocotools.coco import COCO

    recorded = lineage.require_latest(context.instance, ASSET_NAME)
    problems, counts = [], {}
    for split in layout.SPLITS:
        path = recorded.path(data_root.path, f"{split}_path")
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            coco = COCO(str(path))
        counts[split] = len(coco.imgs)
        problems += _box_problems(coco, split)
    if counts.get("train", 0) == 0:
        problems.append("train split is empty")
    return dg.AssetCheckResult(passed=not problems, metadata={
        **{f"{split}_images": n for split, n in counts.items()},
        "folder": dg.MetadataValue.path(str(recorded.get(lineage.FOLDER_KEY, "?"))),
        "problems": dg.MetadataValue.json(problems[:20]),
    })


def _box_problems(coco, split: str) -> list[str]:
    problems = []
    for annotation in coco.anns.values():
        image = coco.imgs[annotation["image_id"]]
        x, y, w, h = annotation["bbox"]
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > image["width"] or y + h > image["height"]:
            problems.append(f"{split}: annotation {annotation['id']} box {annotation['bbox']} outside image {image['file_name']}")
    if {c["name"] for c in coco.cats.values()} != set(layout.CATEGORY_TYPE_NAMES.values()):
        problems.append(f"{split}: categories are {sorted(c['name'] for c in coco.cats.values())}")
    return problems


def resources() -> dict:
    return {"deepfashion": source_from_env()}


defs = dg.Definitions(assets=[deepfashion_coco], asset_checks=[deepfashion_coco_valid])

# The default sample (900 images: 648 train / 126 val / 126 test) is what the detector trains on; it fits the demo.
DEMO_RUN_CONFIG = {"ops": {ASSET_NAME: {"config": {"sample_images": 900, "preview_images": 12}}}}

__all__ = ["defs", "resources", "DEMO_RUN_CONFIG", "deepfashion_coco", "deepfashion_coco_valid"]
