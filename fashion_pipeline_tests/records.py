"""Upstream materializations and check results recorded on a test instance, as a real run records them.

The assets read their inputs from Dagster's record, so a test that materializes one stage on a
fixture data root first records what the upstream stage would have reported.
"""
from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from fashion_pipeline.common.fingerprint import combine


def record(instance: dg.DagsterInstance, asset: str, metadata: dict | None = None, partition: str | None = None,
           data_version: str | None = None) -> None:
    tags = {"dagster/data_version": data_version} if data_version else None
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=partition,
                                                                metadata=metadata or {}, tags=tags))


def record_check(instance: dg.DagsterInstance, asset: str, check: str, passed: bool, partition: str | None = None,
                 metadata: dict | None = None) -> None:
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset), check_name=check, passed=passed, partition=partition, metadata=metadata or {}))


def use_brands(monkeypatch, folder: Path, slugs: list[str]) -> Path:
    """A brands file holding exactly these brands, made current through FASHION_PIPELINE_BRANDS."""
    path = Path(folder) / "brands.yaml"
    path.write_text("brands:\n" + "".join(f"  - {{name: {slug}, slug: {slug}, query: {slug} runway}}\n" for slug in slugs))
    monkeypatch.setenv("FASHION_PIPELINE_BRANDS", str(path))
    return path


def record_brand_scrapes(instance: dg.DagsterInstance, data_root: Path, failing: dict[str, str] | None = None) -> list[str]:
    """``pinterest_images[<brand>]`` for every brand manifest under the data root; checks pass
    except ``failing`` (brand -> check name). A runless check result can be recorded once per partition."""
    slugs = []
    for manifest in sorted((Path(data_root) / "pinterest_images").glob("*/manifest.parquet")):
        slug = manifest.parent.name
        frame = pd.read_parquet(manifest)
        record(instance, "pinterest_images", {"manifest_path": str(manifest.relative_to(data_root)),
                                              "pins_found": len(frame)},
               partition=slug, data_version=combine(sorted(frame["sha256"].astype(str))))
        for check in ("manifest_consistent", "scrape_health"):
            failed = (failing or {}).get(slug) == check
            record_check(instance, "pinterest_images", check, not failed, partition=slug,
                         metadata={"reason": "the board yielded 0 pins"} if failed else None)
        slugs.append(slug)
    return slugs


def assert_light_metadata(result) -> int:
    """Every materialization of a run stays within the metadata budget; returns the largest size."""
    from fashion_pipeline.common.lineage import METADATA_BUDGET_BYTES, metadata_bytes

    sizes = [metadata_bytes(event.event_specific_data.materialization) for event in result.get_asset_materialization_events()]
    assert sizes and max(sizes) <= METADATA_BUDGET_BYTES, sizes
    return max(sizes)
