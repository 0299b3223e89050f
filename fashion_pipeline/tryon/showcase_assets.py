"""Dagster layer of the try-on showcase (issue 22, item 6): ``tryon_showcase`` dresses held-out persons and the
scraped runway crops in held-out product garments printed with ``pattern_dcgan``'s generated patterns.

The domain logic is ``tryon.showcase`` (a plain module with a CLI). This asset reads what Dagster recorded: the
pairs ``tryon_pairs`` published, the model ``tryon_model[<method>]`` published (checked against its sha256), every
``pattern_dcgan`` partition with finite losses (through the garments stage's own ``_generated_sources``, which
checks each generator's sha256, as ``restyled_garments`` does) and ``garment_masks``' manifest (checked against
its sha256). It publishes ``tryon_showcase/v/<input key>/`` (``common.versions``): ``grid.png``, ``scores.json``
and ``rows/``; a rerun with the same inputs reuses the folder. Torch is imported inside the asset only.
"""

import json
import os

import dagster as dg

from fashion_pipeline.common import lineage, render, versions
from fashion_pipeline.common.fingerprint import file_sha256
from fashion_pipeline.common.resources import DataRoot

GROUP = "tryon"
ASSET = "tryon_showcase"
CODE_VERSION = "2"  # 2: the garment top skips a neck/hair strip; the two blocks side by side
PAIRS_CHECK = "tryon_pairs_valid"
MASKS_CHECK = "masks_not_degenerate"
SHOWN_METHODS = ("viton", "encoder_decoder")  # CAGAN needs the person's own product picture, which a crop lacks

TRANSFER_NOTE = (
    "Trained on synthetic figures only. Held-out persons get the inputs the models were trained on. Runway crops "
    "do not: they are aligned to the training persons' mean garment position, given the training persons' mean "
    "pose and a parse made from GrabCut's mask and skin colour (see tryon/showcase.py). Compare the person_ and "
    "runway_ numbers: warp_iou_old_garment (warped garment vs the person's own upper garment) and "
    "changed_in_garment (share of changed pixels inside it) say where the new garment went, not whether it looks "
    "right; there is no ground truth for a runway crop.")


class TryonShowcaseConfig(dg.Config):
    method: str = "viton"  # the tryon_model partition that dresses them (viton or encoder_decoder)
    persons: int = 6  # held-out synthetic test persons
    crops: int = 6  # runway crops (garment_masks); 0: persons only
    min_area_fraction: float = 0.08  # crops whose garment mask covers less are too small to show a print
    seed: int = 0


def _masks_manifest(context, data_root: DataRoot):
    recorded = lineage.require_latest(context.instance, "garment_masks")
    lineage.require_checks_passed(context.instance, "garment_masks", (MASKS_CHECK,))
    path = (lineage.verified_file(data_root.path, recorded, "manifest", "manifest_sha256")
            if recorded.get("manifest_sha256") else recorded.path(data_root.path, "manifest"))
    return recorded, path


def _pattern_sources(context, data_root: DataRoot, config: TryonShowcaseConfig) -> list:
    from fashion_pipeline.garments.assets import RestyleConfig, _generated_sources

    sources = _generated_sources(context.instance, data_root, RestyleConfig(seed=config.seed))
    if not sources:
        raise lineage.input_failure("no pattern_dcgan partition is materialized with finite losses: materialize "
                                    "pattern_dcgan first")
    return sources


def _model(context, data_root: DataRoot, method: str):
    from fashion_pipeline.tryon import model_assets

    if method not in SHOWN_METHODS:
        raise lineage.input_failure(f"method must be one of {SHOWN_METHODS}, got {method!r} (CAGAN needs the "
                                    "person's own product picture y_i, which a runway crop does not have)")
    found = model_assets.recorded_models(context.instance, data_root.path, [method])
    if method not in found:
        raise lineage.input_failure(f"tryon_model[{method}] is not materialized: materialize it first")
    return found[method]


def _rows(context, config, data_root, pairs, model_path, sources, manifest_path):
    from fashion_pipeline.tryon import showcase
    from fashion_pipeline.tryon.models import Predictor

    stored = str(pairs.require("dataset_root"))
    dataset = stored if os.path.isabs(stored) else data_root.path / stored
    settings = showcase.ShowcaseSettings(config.persons, config.crops, config.min_area_fraction, config.seed)
    runway = (showcase.runway_choices(manifest_path, data_root.path, config.crops, config.min_area_fraction, config.seed)
              if manifest_path is not None else [])
    per_source = -(-(config.persons + len(runway)) // len(sources))
    patterns = [(s.category, pattern, s.print_fraction) for s in sources for pattern in s.patterns(per_source)]
    context.log.info(f"showcase: {config.persons} persons, {len(runway)} runway crops, {len(sources)} pattern sources")
    # on the CPU: a dozen small pictures, no reason to hold the GPU pool's slot
    return showcase.make_showcase(Predictor(model_path, "cpu"), dataset, int(pairs.require("height")), patterns,
                                  runway, settings)


@dg.asset(group_name=GROUP, deps=["tryon_pairs", "tryon_model", "pattern_dcgan", "garment_masks"],
          code_version=CODE_VERSION, kinds={"pytorch"})
def tryon_showcase(context: dg.AssetExecutionContext, config: TryonShowcaseConfig,
                   data_root: DataRoot) -> dg.MaterializeResult:
    """Held-out persons and runway crops dressed in held-out product garments printed with the generated
    patterns: person | pattern | printed product | try-on, and crop | GrabCut mask | printed product | try-on,
    with where the output changed (no ground truth exists for a printed garment or a crop)."""
    import torch

    from fashion_pipeline.tryon import showcase

    pairs = lineage.require_latest(context.instance, "tryon_pairs")
    lineage.require_checks_passed(context.instance, "tryon_pairs", (PAIRS_CHECK,))
    model_path = _model(context, data_root, config.method)
    model_sha256 = file_sha256(model_path)
    sources = _pattern_sources(context, data_root, config)
    masks, manifest_path = _masks_manifest(context, data_root) if config.crops else (None, None)
    key = versions.input_key(CODE_VERSION, pairs.data_version, model_sha256,
                             [(s.label, s.version, s.print_fraction) for s in sources],
                             masks.data_version if masks else None,
                             file_sha256(manifest_path) if manifest_path else None, config.model_dump())
    published = versions.find(data_root.path, ASSET, version=key)
    if published is None:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        rows = _rows(context, config, data_root, pairs, model_path, sources, manifest_path)
        with versions.staging(data_root.path, ASSET) as out:
            showcase.write(rows, out.dir)
            atomic_preview(rows, out)
            published = out.publish(key)
    result = json.loads(published.file("scores.json").read_text())
    return dg.MaterializeResult(
        metadata=_metadata(result, published, config, model_path, model_sha256, sources, masks, pairs, data_root),
        data_version=lineage.file_data_version(published.file("grid.png"), published.file("scores.json")))


def atomic_preview(rows, out: versions.Staging) -> None:
    """preview.png: the first two rows of each kind at 1x, small enough to show inline."""
    from fashion_pipeline.common import atomic
    from fashion_pipeline.tryon import showcase

    chosen = [row for kind in showcase.HEADERS for row in [r for r in rows if r.kind == kind][:2]]
    atomic.write_bytes(out.path("preview.png"), render.png_bytes(showcase.grid(chosen, scale=1)))


def _metadata(result, published, config, model_path, model_sha256, sources, masks, pairs, data_root) -> dict:
    from PIL import Image

    metadata = {"method": config.method, "model": dg.MetadataValue.path(lineage.relative(model_path, data_root.path)),
                "model_sha256": model_sha256, "tryon_pairs_version": pairs.data_version or "",
                "pattern_versions": dg.MetadataValue.json({s.category: s.version for s in sources}),
                "garment_masks_version": (masks.data_version or "") if masks else "not used (crops: 0)",
                "grid": dg.MetadataValue.path(published.relative_file("grid.png")),
                "scores": dg.MetadataValue.path(published.relative_file("scores.json")),
                "preview": dg.MetadataValue.md(render.inline_image_markdown(
                    Image.open(published.file("preview.png")), alt="person | pattern | printed product | try-on")),
                "transfer": TRANSFER_NOTE, **lineage.folder_metadata(published)}
    for kind, numbers in result["summary"].items():
        for name, value in numbers.items():
            metadata[f"{kind}_{name}"] = value
    return metadata


defs = dg.Definitions(assets=[tryon_showcase])


def resources() -> dict:
    return {}


# `make demo`: the defaults (6 held-out persons, 6 runway crops, the viton model)
DEMO_RUN_CONFIG = {"ops": {ASSET: {"config": {"persons": 6, "crops": 6}}}}
