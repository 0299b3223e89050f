"""Dagster layer of the dedup stage: the ``pinterest_dataset`` asset and its two blocking checks.

The logic lives in ``dataset.py`` (runnable as ``python -m fashion_pipeline.dedup.dataset``);
this module passes config in and turns the result into metadata the UI can plot.
"""

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

import dagster as dg

from fashion_pipeline.common import lineage
from fashion_pipeline.common.automation import FOLLOWS_MATERIALIZED_PARTITIONS
from fashion_pipeline.common.fingerprint import combine
from fashion_pipeline.common.render import markdown_table
from fashion_pipeline.common.resources import DataRoot
from fashion_pipeline.dedup import dataset
from fashion_pipeline.pinterest.brands import load_brands

ASSET = dataset.OUTPUT_ASSET
SCRAPE = "pinterest_images"
SCRAPE_CHECKS = ("manifest_consistent", "scrape_health")


class DedupConfig(dg.Config):
    """Near-duplicate settings; the default threshold comes from bench/dedup_quality.py."""

    threshold: int = Field(default=dataset.DEFAULT_THRESHOLD, ge=0, le=32,
                           description="Hamming distance (bits of the 64-bit pHash) at or below which two images are duplicates")
    verify_colour: bool = Field(default=True, description="confirm every pHash pair on 16x16 colour thumbnails")
    max_thumb_distance: float = Field(default=dataset.DEFAULT_MAX_THUMB_DISTANCE, ge=0.0,
                                      description="largest standardised colour-thumbnail distance of a duplicate pair")
    match_mirrors: bool = Field(default=False, description="also merge left-right mirrored copies")
    hash_workers: int = Field(default=0, ge=0, description="processes decoding images; 0 = every core")
    sample_pairs: int = Field(default=4, ge=0, le=20, description="duplicate pairs shown side by side in metadata")


def _brand_metadata(result: dataset.DedupResult) -> dict:
    table = dataset.brand_contribution(result.mapping)
    metadata = {f"brand_kept/{row.brand}": dg.MetadataValue.int(int(row.kept)) for row in table.itertuples()}
    metadata["brand_contribution"] = dg.MetadataValue.md(markdown_table(list(table.columns), table.itertuples(index=False)))
    return metadata


def _planted_metadata(planted) -> dict:
    if planted is None:
        return {"planted_ground_truth": dg.MetadataValue.text("absent (real Pinterest scrape)")}
    kinds = planted["by_copy_kind"]
    rows = [(kind, v["planted"], v["found"]) for kind, v in sorted(kinds.items())]
    return {
        "planted_pairs": dg.MetadataValue.int(planted["planted_pairs"]),
        "planted_pairs_found": dg.MetadataValue.int(planted["true_pairs"]),
        "found_pairs_among_planted_pins": dg.MetadataValue.int(planted["found_pairs"]),
        "planted_recall": dg.MetadataValue.float(float(planted["recall"])),
        "planted_precision": dg.MetadataValue.float(float(planted["precision"])),
        "planted_by_copy_kind": dg.MetadataValue.md(markdown_table(["copy kind", "planted copies", "found"], rows)),
    }


# Metadata key -> the build's stat of the same meaning: numeric, so the UI plots them over runs.
COUNT_METADATA = {
    "input_count": "input_count",
    "unique_count": "unique_count",
    "exact_duplicates": "exact_duplicates",
    "near_duplicates": "near_duplicates",
    "clusters": "clusters_with_duplicates",
    "largest_cluster": "largest_cluster",
    "quarantined": "quarantined",
    "threshold_bits": "threshold",
    "candidate_pairs": "candidate_pairs",
    "pairs_rejected_by_colour": "pairs_rejected_by_colour",
    "files_hashed": "files_hashed",
    "files_from_cache": "files_from_cache",
}


@dataclass
class BrandInputs:
    """Which brands' scrapes the merge takes, from the brands file and Dagster's record."""

    manifests: list[Path]
    included: list[str]
    never_scraped: list[str]
    not_in_brands_file: list[str]


def recorded_brand_inputs(instance: dg.DagsterInstance, data_root: Path) -> BrandInputs:
    """The brands of the current brands file that have a recorded scrape whose checks passed."""
    current = [brand.slug for brand in load_brands()]
    scraped = lineage.materialized_partitions(instance, SCRAPE)
    included = [slug for slug in current if slug in scraped]
    manifests = []
    for slug in included:
        lineage.require_checks_passed(instance, SCRAPE, SCRAPE_CHECKS, slug)
        manifests.append(lineage.require_latest(instance, SCRAPE, slug).path(data_root, "manifest_path"))
    return BrandInputs(manifests, included, [s for s in current if s not in scraped], sorted(scraped - set(current)))


def _inputs_metadata(inputs: BrandInputs) -> dict:
    return {
        "brands_merged": dg.MetadataValue.int(len(inputs.included)),
        "brands_never_scraped": dg.MetadataValue.text(", ".join(inputs.never_scraped) or "none"),
        "brands_not_in_brands_file": dg.MetadataValue.text(", ".join(inputs.not_in_brands_file) or "none"),
    }


def manifest_version(result: dataset.DedupResult) -> dg.DataVersion:
    """The kept images' contents, in image order: a re-scrape that adds nothing new keeps the version."""
    return dg.DataVersion(combine(result.manifest["sha256"].astype(str)))


@dg.asset(
    group_name="dedup",
    deps=[dg.AssetKey(SCRAPE)],
    kinds={"python", "parquet"},
    code_version="2",
    automation_condition=FOLLOWS_MATERIALIZED_PARTITIONS,
    check_specs=[
        dg.AssetCheckSpec("no_near_duplicates_in_result", asset=ASSET, blocking=True,
                          description="No two kept images are within the Hamming threshold or share a sha256."),
        dg.AssetCheckSpec("every_input_accounted_for", asset=ASSET, blocking=True,
                          description="Every scraped row is kept, mapped to a kept image, or quarantined with a reason."),
    ],
    description="The scraped images of the brands in the current brands file merged; exact and near-duplicate (pHash) "
    "copies removed, keeping the highest-resolution copy with the brands and pins it was seen in.",
)
def pinterest_dataset(context: dg.AssetExecutionContext, config: DedupConfig, data_root: DataRoot) -> dg.MaterializeResult:
    inputs = recorded_brand_inputs(context.instance, data_root.path)
    if inputs.not_in_brands_file:
        context.log.warning(f"left out, not in the brands file any more: {', '.join(inputs.not_in_brands_file)}")
    if inputs.never_scraped:
        context.log.warning(f"in the brands file but never scraped: {', '.join(inputs.never_scraped)}")
    if not inputs.included:
        raise lineage.input_failure("no brand of the brands file has been scraped: materialize pinterest_images first")
    settings = dataset.DedupSettings(config.threshold, config.match_mirrors, config.hash_workers or None,
                                     config.max_thumb_distance if config.verify_colour else None)
    result, info = dataset.build_dataset(data_root.path, settings, inputs.manifests)
    stats = result.stats
    context.log.info(f"{stats['input_count']} inputs -> {stats['unique_count']} unique images "
                     f"({stats['exact_duplicates']} exact, {stats['near_duplicates']} near, {stats['quarantined']} quarantined)")
    reasons = dataset.quarantine_reasons(result.quarantine)
    metadata = {
        **{key: dg.MetadataValue.int(stats[stat]) for key, stat in COUNT_METADATA.items()},
        **_inputs_metadata(inputs),
        "quarantine_reasons": dg.MetadataValue.json(reasons),
        "brand_manifests": dg.MetadataValue.int(len(info["manifests"])),
        "match_mirrors": dg.MetadataValue.bool(stats["match_mirrors"]),
        "hash_seconds": dg.MetadataValue.float(float(stats["hash_seconds"])),
        "seconds": dg.MetadataValue.float(float(stats["seconds"])),
        "manifest": dg.MetadataValue.path(lineage.relative(info["paths"]["manifest"], data_root.path)),
        "sample_duplicate_pairs": dg.MetadataValue.md(
            dataset.sample_pairs_markdown(result, data_root.path, limit=config.sample_pairs)),
        **_brand_metadata(result),
        **_planted_metadata(stats.get("planted")),
    }
    return dg.MaterializeResult(metadata=metadata, data_version=manifest_version(result),
                                check_results=[_no_near_duplicates(data_root), _accounted(data_root, inputs.manifests)])


def _no_near_duplicates(data_root: DataRoot) -> dg.AssetCheckResult:
    passed, details = dataset.check_no_near_duplicates(data_root.asset_dir(ASSET))
    return dg.AssetCheckResult(check_name="no_near_duplicates_in_result", passed=passed, metadata={
        "kept_images": details["kept_images"],
        "pairs_within_threshold": details["pairs_within_threshold"],
        "repeated_sha256": details["repeated_sha256"],
        "threshold_bits": details["threshold"],
        "examples": dg.MetadataValue.json(details["examples"]),
    })


def _accounted(data_root: DataRoot, manifests: list[Path]) -> dg.AssetCheckResult:
    passed, details = dataset.check_inputs_accounted(data_root.path, manifests)
    metadata = {key: value for key, value in details.items() if key != "examples"}
    metadata["examples"] = dg.MetadataValue.json(details["examples"])
    return dg.AssetCheckResult(check_name="every_input_accounted_for", passed=passed, metadata=metadata)


defs = dg.Definitions(assets=[pinterest_dataset])


def resources() -> dict:
    """Nothing beyond the shared ``data_root``."""
    return {}


# The demo's ~500 images hash in a few seconds; defaults are fine, fewer sample pairs keep metadata small.
DEMO_RUN_CONFIG = {"ops": {ASSET: {"config": {"sample_pairs": 4}}}}
