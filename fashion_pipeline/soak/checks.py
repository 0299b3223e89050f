"""The soak's end checks: plain functions of a Dagster instance, a data root and the harness's ledger.

Each returns a ``Check`` (passed, a one-line summary, details). What they hold the pipeline to:

- ``committed_pins``: every pin a recorded scrape committed (the ledger: the first ``manifest_rows``
  rows of the brand manifest, read when the scrape was recorded and checked against its data
  version) is in that brand's final manifest exactly once; ``lost`` counts those missing.
- ``no_half_written_files``: no ``*.part`` temp file under the data root, every Parquet file reads,
  every manifest row's image exists and hashes to its name.
- ``no_run_left_running``: no run QUEUED, STARTING, STARTED or CANCELING once the soak has drained.
- ``dataset_matches_clean_rebuild``: the latest ``pinterest_dataset`` data version equals that of a
  dedup run, on a clean data root, over the scrapes Dagster recorded.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd

from fashion_pipeline.common.fingerprint import combine

SCRAPE, DATASET = "pinterest_images", "pinterest_dataset"
UNFINISHED = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)


@dataclass
class Check:
    name: str
    passed: bool
    summary: str
    details: dict = field(default_factory=dict)

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.summary}"


# ---- the ledger of committed pins --------------------------------------------------------------

def scrape_records(instance: dg.DagsterInstance, after_storage_id: int = 0) -> list:
    """Every recorded ``pinterest_images`` materialization after ``after_storage_id``, oldest first."""
    records, cursor = [], None
    while True:
        result = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(SCRAPE),
                                                                      after_storage_id=after_storage_id or None),
                                                 limit=500, cursor=cursor, ascending=True)
        records += result.records
        if not result.has_more:
            return records
        cursor = result.cursor


def committed_pin_ids(data_root: Path, record) -> tuple[list[str] | None, str]:
    """The pin ids ``record``'s scrape committed: the manifest's first ``manifest_rows`` rows, when they
    hash to its recorded data version (``dedup.assets.committed_rows``); else None and why."""
    from fashion_pipeline.dedup.assets import _recorded, committed_rows
    from fashion_pipeline.dedup.dataset import read_manifest

    recorded = _recorded(record)
    part, problem = committed_rows(Path(data_root), recorded)
    if part is None:
        return None, problem
    return [str(pin) for pin in read_manifest(part)["pin_id"]], ""


def committed_pins(data_root: Path, ledger: dict[str, set[str]], unverified: list[str]) -> Check:
    """``ledger``: brand -> pin ids some recorded scrape committed; ``unverified``: scrapes whose rows
    did not hash to their recorded version when they were read (each one a loss of its own)."""
    missing, duplicated, rows = {}, {}, 0
    for brand, pins in sorted(ledger.items()):
        path = Path(data_root) / SCRAPE / brand / "manifest.parquet"
        final = pd.read_parquet(path, columns=["pin_id"])["pin_id"].astype(str) if path.is_file() else pd.Series([], dtype=str)
        counts = Counter(final)
        rows += len(final)
        gone = sorted(pin for pin in pins if counts[pin] == 0)
        twice = sorted(pin for pin, n in counts.items() if n > 1)
        if gone:
            missing[brand] = gone
        if twice:
            duplicated[brand] = twice
    lost = sum(len(v) for v in missing.values())
    committed = sum(len(v) for v in ledger.values())
    passed = not missing and not duplicated and not unverified
    summary = (f"{committed} pins committed by recorded scrapes of {len(ledger)} brands, {rows} manifest rows; "
               f"{lost} missing, {sum(len(v) for v in duplicated.values())} more than once, "
               f"{len(unverified)} recorded scrapes whose rows did not match their data version")
    return Check("committed_pins", passed, summary,
                 {"lost": lost, "missing": missing, "duplicated": duplicated, "unverified": unverified})


# ---- files ---------------------------------------------------------------------------------------

def no_half_written_files(data_root: Path) -> Check:
    data_root = Path(data_root)
    temps = sorted(str(p.relative_to(data_root)) for p in data_root.rglob("*.part"))
    unreadable, parquet_files = [], 0
    for path in sorted(data_root.rglob("*.parquet")):
        parquet_files += 1
        try:
            pd.read_parquet(path)
        except Exception as error:  # noqa: BLE001 - any reader error is the finding
            unreadable.append(f"{path.relative_to(data_root)}: {type(error).__name__}: {error}")
    images, bad_images = 0, []
    for manifest in sorted((data_root / SCRAPE).glob("*/manifest.parquet")):
        try:
            frame = pd.read_parquet(manifest, columns=["file_path", "sha256"])
        except Exception:  # noqa: BLE001 - already listed as unreadable
            continue
        for rel, digest in zip(frame["file_path"], frame["sha256"]):
            images += 1
            path = data_root / rel
            if not path.is_file():
                bad_images.append(f"{rel}: missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != digest or path.stem != digest:
                bad_images.append(f"{rel}: bytes do not hash to the recorded sha256")
    passed = not temps and not unreadable and not bad_images
    summary = (f"{parquet_files} parquet files read, {images} manifest images hashed; {len(temps)} *.part left, "
               f"{len(unreadable)} unreadable parquet, {len(bad_images)} bad images")
    return Check("no_half_written_files", passed, summary,
                 {"part_files": temps[:20], "unreadable": unreadable[:20], "bad_images": bad_images[:20]})


# ---- runs ----------------------------------------------------------------------------------------

def no_run_left_running(instance: dg.DagsterInstance) -> Check:
    left = instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED)))
    by_status = Counter(run.status.value for run in instance.get_runs())
    summary = f"{sum(by_status.values())} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
    return Check("no_run_left_running", not left, summary + (f"; left unfinished: {len(left)}" if left else ""),
                 {"unfinished": [f"{r.run_id} {r.job_name} {r.status.value} {r.tags.get('dagster/partition', '')}"
                                 for r in left], "by_status": dict(by_status)})


# ---- the dataset against a clean rebuild ---------------------------------------------------------

def _link_tree(source: Path, target: Path) -> None:
    """Hard links where the filesystem allows (no copy of the images), copies elsewhere."""
    for folder, _, files in os.walk(source):
        out = target / Path(folder).relative_to(source)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(folder) / name, out / name)
            except OSError:
                shutil.copy2(Path(folder) / name, out / name)


def dataset_matches_clean_rebuild(instance: dg.DagsterInstance, data_root: Path, scratch: Path) -> Check:
    """Rebuild ``pinterest_dataset`` from the scrapes Dagster recorded, on a clean data root holding only
    the scraped brand folders, and compare data versions with the latest recorded materialization."""
    from fashion_pipeline.dedup import dataset
    from fashion_pipeline.dedup.assets import DedupConfig, recorded_brand_inputs

    latest = instance.fetch_materializations(dg.AssetKey(DATASET), limit=1).records
    if not latest:
        return Check("dataset_matches_clean_rebuild", False, "pinterest_dataset was never materialized")
    latest_scrape = instance.fetch_materializations(dg.AssetKey(SCRAPE), limit=1).records
    recorded = latest[0].asset_materialization.tags.get("dagster/data_version")
    stale = bool(latest_scrape) and latest_scrape[0].storage_id > latest[0].storage_id
    inputs = recorded_brand_inputs(instance, Path(data_root))
    clean = Path(scratch) / "clean_root"
    shutil.rmtree(clean, ignore_errors=True)
    _link_tree(Path(data_root) / SCRAPE, clean / SCRAPE)
    manifests = [dataset.ManifestSlice(clean / m.path.relative_to(data_root), m.rows) for m in inputs.manifests]
    config = DedupConfig()
    settings = dataset.DedupSettings(config.threshold, config.match_mirrors, config.hash_workers or None,
                                     config.max_thumb_distance if config.verify_colour else None)
    result, _ = dataset.build_dataset(clean, settings, manifests)
    rebuilt = combine(result.manifest["sha256"].astype(str))
    served = {s.brand: f"{s.served} (run {s.run_id})" if s.run_id else s.served for s in inputs.sources}
    passed = rebuilt == recorded and not stale
    summary = (f"recorded {recorded[:12] if recorded else None} (run {latest[0].run_id[:8]}), clean rebuild {rebuilt[:12]} "
               f"from {len(manifests)} brands, {len(result.manifest)} images"
               + ("; a scrape was recorded after the latest dataset" if stale else ""))
    return Check("dataset_matches_clean_rebuild", passed, summary,
                 {"recorded": recorded, "rebuilt": rebuilt, "served": served, "stale": stale})
