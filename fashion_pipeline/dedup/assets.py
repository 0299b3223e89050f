"""Dagster layer of the dedup stage: the ``pinterest_dataset`` asset and its two blocking checks.

The logic lives in ``dataset.py`` (runnable as ``python -m fashion_pipeline.dedup.dataset``);
this module passes config in and turns the result into metadata the UI can plot.
"""

from pydantic import Field

import dagster as dg

from fashion_pipeline.common.render import markdown_table
from fashion_pipeline.common.resources import DataRoot
from fashion_pipeline.dedup import dataset

ASSET = dataset.OUTPUT_ASSET


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


@dg.asset(
    group_name="dedup",
    deps=[dg.AssetKey("pinterest_images")],
    kinds={"python", "parquet"},
    description="Every brand's scraped images merged; exact and near-duplicate (pHash) copies removed, "
    "keeping the highest-resolution copy with the brands and pins it was seen in.",
)
def pinterest_dataset(context: dg.AssetExecutionContext, config: DedupConfig, data_root: DataRoot) -> dg.MaterializeResult:
    settings = dataset.DedupSettings(config.threshold, config.match_mirrors, config.hash_workers or None,
                                     config.max_thumb_distance if config.verify_colour else None)
    result, info = dataset.build_dataset(data_root.path, settings)
    stats = result.stats
    context.log.info(f"{stats['input_count']} inputs -> {stats['unique_count']} unique images "
                     f"({stats['exact_duplicates']} exact, {stats['near_duplicates']} near, {stats['quarantined']} quarantined)")
    reasons = dataset.quarantine_reasons(result.quarantine)
    metadata = {
        **{key: dg.MetadataValue.int(stats[stat]) for key, stat in COUNT_METADATA.items()},
        "quarantine_reasons": dg.MetadataValue.json(reasons),
        "brand_manifests": dg.MetadataValue.int(len(info["manifests"])),
        "match_mirrors": dg.MetadataValue.bool(stats["match_mirrors"]),
        "hash_seconds": dg.MetadataValue.float(float(stats["hash_seconds"])),
        "seconds": dg.MetadataValue.float(float(stats["seconds"])),
        "manifest": dg.MetadataValue.path(str(info["paths"]["manifest"])),
        "sample_duplicate_pairs": dg.MetadataValue.md(
            dataset.sample_pairs_markdown(result, data_root.path, limit=config.sample_pairs)),
        **_brand_metadata(result),
        **_planted_metadata(stats.get("planted")),
    }
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=pinterest_dataset, blocking=True,
                description="No two kept images are within the Hamming threshold or share a sha256.")
def no_near_duplicates_in_result(data_root: DataRoot) -> dg.AssetCheckResult:
    passed, details = dataset.check_no_near_duplicates(data_root.asset_dir(ASSET))
    return dg.AssetCheckResult(passed=passed, metadata={
        "kept_images": details["kept_images"],
        "pairs_within_threshold": details["pairs_within_threshold"],
        "repeated_sha256": details["repeated_sha256"],
        "threshold_bits": details["threshold"],
        "examples": dg.MetadataValue.json(details["examples"]),
    })


@dg.asset_check(asset=pinterest_dataset, blocking=True,
                description="Every scraped row is kept, mapped to a kept image, or quarantined with a reason.")
def every_input_accounted_for(data_root: DataRoot) -> dg.AssetCheckResult:
    passed, details = dataset.check_inputs_accounted(data_root.path)
    metadata = {key: value for key, value in details.items() if key != "examples"}
    metadata["examples"] = dg.MetadataValue.json(details["examples"])
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


defs = dg.Definitions(assets=[pinterest_dataset], asset_checks=[no_near_duplicates_in_result, every_input_accounted_for])


def resources() -> dict:
    """Nothing beyond the shared ``data_root``."""
    return {}


# The demo's ~500 images hash in a few seconds; defaults are fine, fewer sample pairs keep metadata small.
DEMO_RUN_CONFIG = {"ops": {ASSET: {"config": {"sample_pairs": 4}}}}
