"""Dagster layer of the dedup stage: the ``pinterest_dataset`` asset and its two blocking checks.

The logic lives in ``dataset.py`` (runnable as ``python -m fashion_pipeline.dedup.dataset``);
this module passes config in and turns the result into metadata the UI can plot.

Which scrape of each brand is merged comes from Dagster's record (``recorded_brand_inputs``): the
latest when its blocking checks passed on it, else the brand's last healthy scrape, else the brand
is left out; the other brands are merged either way, and the metadata names each brand so served.
A scrape's rows are read only after they are checked against its recorded data version.

Each build lies in a folder of its own (``pinterest_dataset/v/<input key>/``, see ``dataset.py``); the
metadata names it (``folder``, ``manifest``, ``mapping``) with the manifest's sha256, which consumers
check before reading it; the checks evaluate that folder. A rerun with nothing new reuses the folder.
"""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from pydantic import Field

from fashion_pipeline.common import lineage
from fashion_pipeline.common.automation import FOLLOWS_MATERIALIZED_PARTITIONS
from fashion_pipeline.common.fingerprint import combine, file_sha256
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
    "grey_links_refused": "grey_links_refused",
    "files_hashed": "files_hashed",
    "files_from_cache": "files_from_cache",
}


@dataclass
class BrandSource:
    """Where one brand's rows come from: its latest scrape, an earlier healthy one, or nowhere (left out)."""

    brand: str
    served: str  # SERVED_LATEST | SERVED_EARLIER | LEFT_OUT
    manifest: dataset.ManifestSlice | None = None
    run_id: str | None = None  # the scrape run whose rows are merged
    why: str = ""  # for an earlier scrape or a left-out brand: what is wrong with the latest one


SERVED_LATEST, SERVED_EARLIER, LEFT_OUT = "latest scrape", "last healthy scrape", "left out"
HEALTHY_SEARCH_LIMIT = 20  # earlier scrapes of a brand searched for a healthy one (newest first)


@dataclass
class BrandInputs:
    """Which brands' scrapes the merge takes, from the brands file and Dagster's record."""

    sources: list[BrandSource]
    never_scraped: list[str]
    not_in_brands_file: list[str]

    @property
    def merged(self) -> list[BrandSource]:
        return [source for source in self.sources if source.manifest is not None]

    @property
    def manifests(self) -> list[dataset.ManifestSlice]:
        return [source.manifest for source in self.merged]

    @property
    def included(self) -> list[str]:
        return [source.brand for source in self.merged]

    def by_kind(self, served: str) -> list[BrandSource]:
        return [source for source in self.sources if source.served == served]


def recorded_brand_inputs(instance: dg.DagsterInstance, data_root: Path) -> BrandInputs:
    """For each brand of the current brands file with a recorded scrape: its latest scrape when that
    scrape's blocking checks passed on it, else its last healthy scrape, else nothing (left out).

    One brand's failed scrape never stops the others (issue 19.3); which brands were served how is
    reported in the metadata.
    """
    current = [brand.slug for brand in load_brands()]
    scraped = lineage.materialized_partitions(instance, SCRAPE)
    sources = [brand_source(instance, Path(data_root), slug) for slug in current if slug in scraped]
    return BrandInputs(sources, [s for s in current if s not in scraped], sorted(scraped - set(current)))


def brand_source(instance: dg.DagsterInstance, data_root: Path, slug: str) -> BrandSource:
    """Which recorded scrape of ``slug`` to merge, with the rows it committed (verified), or why none."""
    latest = lineage.require_latest(instance, SCRAPE, slug)
    failed = lineage.failed_checks(instance, SCRAPE, SCRAPE_CHECKS, slug)
    if not failed:
        manifest, problem = committed_rows(data_root, latest)
        if manifest is not None:
            return BrandSource(slug, SERVED_LATEST, manifest, latest.run_id)
        failed = {"recorded rows": problem}
    why = "; ".join(f"{name} {reason}" for name, reason in failed.items())
    problems = []
    for earlier in healthy_scrapes(instance, slug, latest):
        manifest, problem = committed_rows(data_root, earlier)
        if manifest is not None:
            return BrandSource(slug, SERVED_EARLIER, manifest, earlier.run_id, why)
        problems.append(f"run {earlier.run_id}: {problem}")
    tail = f"; earlier healthy scrapes unusable: {'; '.join(problems)}" if problems else "; no earlier healthy scrape"
    return BrandSource(slug, LEFT_OUT, None, None, why + tail)


def committed_rows(data_root: Path, scrape: lineage.Recorded) -> tuple[dataset.ManifestSlice | None, str]:
    """The manifest rows ``scrape`` committed, checked against its recorded data version.

    The data version of ``pinterest_images`` is the combined sha256 of its manifest's image
    contents (``pinterest.assets.manifest_version``). The manifest is append-only and keyed by pin,
    so when a later scrape (finished or not) appended rows, the recorded scrape's rows are its first
    ``manifest_rows``; they are served only when they still hash to the recorded version.
    """
    path = scrape.path(data_root, "manifest_path")
    if not path.is_file():
        return None, f"{path} is missing"
    frame = pd.read_parquet(path, columns=["sha256"])
    if scrape.data_version is None or _fingerprint(frame) == scrape.data_version:
        return dataset.ManifestSlice(path), ""
    rows = scrape.get("manifest_rows")
    if rows is not None and int(rows) <= len(frame) and _fingerprint(frame.iloc[: int(rows)]) == scrape.data_version:
        return dataset.ManifestSlice(path, int(rows)), ""
    return None, f"{path} no longer holds the rows this scrape recorded (its content differs from data version {scrape.data_version})"


def _fingerprint(frame: pd.DataFrame) -> str:
    return combine(sorted(frame["sha256"].astype(str)))


def healthy_scrapes(instance: dg.DagsterInstance, slug: str, latest: lineage.Recorded):
    """Earlier recorded scrapes of ``slug`` whose blocking checks all passed on *them*, newest first."""
    key = dg.AssetKey(SCRAPE)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[slug]), limit=HEALTHY_SEARCH_LIMIT + 1).records
    histories = {
        name: instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(key, name), limit=10 * (HEALTHY_SEARCH_LIMIT + 1), partition_filter=PartitionKeyFilter(key=slug))
        for name in SCRAPE_CHECKS
    }
    for newer, record in zip(records, records[1:]):  # each earlier record with the one recorded after it
        if record.storage_id == latest.storage_id:
            continue
        if all(_passed_on(history, record, newer) for history in histories.values()):
            yield _recorded(record)


def _passed_on(history, record, newer) -> bool:
    """Whether the latest evaluation of one check made on materialization ``record`` passed.

    An evaluation names its target materialization when Dagster ran it with the asset; one without a
    target (a runless report) targets what was current when it was recorded: the window from
    ``record`` to ``newer``. PLANNED entries evaluated nothing and are skipped.
    """
    for execution in history:  # newest first
        if execution.status == AssetCheckExecutionRecordStatus.PLANNED:
            continue
        evaluation = execution.evaluation
        target = getattr(evaluation, "target_materialization_data", None) if evaluation is not None else None
        if target is not None:
            hit = target.storage_id == record.storage_id
        else:
            when = execution.event.timestamp if execution.event is not None else execution.create_timestamp
            hit = record.timestamp <= when < newer.timestamp
        if hit:
            return execution.status == AssetCheckExecutionRecordStatus.SUCCEEDED
    return False


def _recorded(record) -> lineage.Recorded:
    materialization = record.asset_materialization
    return lineage.Recorded(
        asset=SCRAPE, partition=materialization.partition,
        data_version=(materialization.tags or {}).get("dagster/data_version"),
        metadata={key: getattr(entry, "value", entry) for key, entry in materialization.metadata.items()},
        run_id=record.run_id, storage_id=record.storage_id, timestamp=record.timestamp)


def _inputs_metadata(inputs: BrandInputs) -> dict:
    earlier, left_out = inputs.by_kind(SERVED_EARLIER), inputs.by_kind(LEFT_OUT)
    rows = [(s.brand, s.served, s.run_id or "-", s.why or "-") for s in inputs.sources]
    return {
        "brands_merged": dg.MetadataValue.int(len(inputs.merged)),
        "brands_from_latest_scrape": dg.MetadataValue.int(len(inputs.by_kind(SERVED_LATEST))),
        "brands_from_earlier_scrape": dg.MetadataValue.text(", ".join(s.brand for s in earlier) or "none"),
        "brands_left_out": dg.MetadataValue.text(", ".join(s.brand for s in left_out) or "none"),
        "brand_sources": dg.MetadataValue.md(markdown_table(["brand", "served from", "scrape run", "why not the latest"], rows)),
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
    code_version=dataset.BUILD_VERSION,
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
    for source in inputs.by_kind(SERVED_EARLIER) + inputs.by_kind(LEFT_OUT):
        served = f"served from its last healthy scrape (run {source.run_id})" if source.manifest else "left out"
        context.log.warning(f"pinterest_images[{source.brand}] {served}: latest scrape not usable: {source.why}")
    if not inputs.sources:
        raise lineage.input_failure("no brand of the brands file has been scraped: materialize pinterest_images first")
    if not inputs.merged:
        reasons = "; ".join(f"{s.brand}: {s.why}" for s in inputs.sources)
        raise lineage.input_failure(f"no brand has a healthy recorded scrape to merge ({reasons})",
                                    brands_left_out=", ".join(s.brand for s in inputs.sources))
    settings = dataset.DedupSettings(config.threshold, config.match_mirrors, config.hash_workers or None,
                                     config.max_thumb_distance if config.verify_colour else None)
    result, info = dataset.build_dataset(data_root.path, settings, inputs.manifests)
    published = info["published"]
    if published.reused:
        context.log.info(f"same rows, files and settings as the build in {published.relative}: reused, nothing hashed")
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
        "manifest": dg.MetadataValue.path(published.relative_file(dataset.OUTPUT_FILES["manifest"])),
        "manifest_sha256": dg.MetadataValue.text(file_sha256(info["paths"]["manifest"])),
        "mapping": dg.MetadataValue.path(published.relative_file(dataset.OUTPUT_FILES["mapping"])),
        **lineage.folder_metadata(published),
        "sample_duplicate_pairs": dg.MetadataValue.md(
            dataset.sample_pairs_markdown(result, data_root.path, limit=config.sample_pairs)),
        **_brand_metadata(result),
        **_planted_metadata(stats.get("planted")),
    }
    return dg.MaterializeResult(metadata=metadata, data_version=manifest_version(result),
                                check_results=[_no_near_duplicates(published.folder),
                                               _accounted(data_root, published.folder, inputs.manifests)])


def _no_near_duplicates(folder: Path) -> dg.AssetCheckResult:
    passed, details = dataset.check_no_near_duplicates(folder)
    return dg.AssetCheckResult(check_name="no_near_duplicates_in_result", passed=passed, metadata={
        "kept_images": details["kept_images"],
        "pairs_within_threshold": details["pairs_within_threshold"],
        "repeated_sha256": details["repeated_sha256"],
        "threshold_bits": details["threshold"],
        "examples": dg.MetadataValue.json(details["examples"]),
    })


def _accounted(data_root: DataRoot, folder: Path, manifests: list[dataset.ManifestSlice]) -> dg.AssetCheckResult:
    passed, details = dataset.check_inputs_accounted(data_root.path, folder, manifests)
    metadata = {key: value for key, value in details.items() if key != "examples"}
    metadata["examples"] = dg.MetadataValue.json(details["examples"])
    return dg.AssetCheckResult(check_name="every_input_accounted_for", passed=passed, metadata=metadata)


defs = dg.Definitions(assets=[pinterest_dataset])


def resources() -> dict:
    """Nothing beyond the shared ``data_root``."""
    return {}


# The demo's ~500 images hash in a few seconds; defaults are fine, fewer sample pairs keep metadata small.
DEMO_RUN_CONFIG = {"ops": {ASSET: {"config": {"sample_pairs": 4}}}}
