"""Read what Dagster recorded about upstream assets, instead of globbing the data root.

An asset asks the instance for the upstream materialization that is current now (per partition
when partitioned), takes file paths and content fingerprints from its metadata, and refuses to
run on an upstream whose latest blocking check failed. This is how a model evaluated on an old
validation set, or a brand removed from the brands file, stays out of a downstream result.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus


def input_failure(description: str, **metadata) -> dg.Failure:
    """A problem with the inputs: retrying the step cannot fix it, so the retry policy skips it."""
    return dg.Failure(description=description, metadata=metadata or None, allow_retries=False)


@dataclass(frozen=True)
class Recorded:
    """One upstream materialization as the instance holds it."""

    asset: str
    partition: Optional[str]
    data_version: Optional[str]
    metadata: dict
    run_id: str
    storage_id: int
    timestamp: float = 0.0

    @property
    def label(self) -> str:
        return self.asset + (f"[{self.partition}]" if self.partition else "")

    def get(self, key: str, default=None):
        return self.metadata.get(key, default)

    def require(self, key: str):
        if key not in self.metadata:
            raise input_failure(f"{self.label}'s latest materialization (run {self.run_id}) has no '{key}' metadata: "
                             f"it predates this version of the pipeline; rematerialize {self.label}")
        return self.metadata[key]

    def path(self, data_root: Path, key: str) -> Path:
        """A path recorded relative to the data root, made absolute for this process."""
        return Path(data_root) / str(self.require(key))


def _value(entry):
    value = getattr(entry, "value", entry)
    return str(value) if isinstance(value, Path) else value


def latest(instance: dg.DagsterInstance, asset: str, partition: Optional[str] = None) -> Optional[Recorded]:
    """The latest materialization of ``asset`` (of one partition), or None when there is none."""
    records_filter = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset),
                                           asset_partitions=[partition] if partition is not None else None)
    records = instance.fetch_materializations(records_filter, limit=1).records
    if not records:
        return None
    record = records[0]
    materialization = record.asset_materialization
    return Recorded(
        asset=asset,
        partition=materialization.partition,
        data_version=(materialization.tags or {}).get("dagster/data_version"),
        metadata={key: _value(entry) for key, entry in materialization.metadata.items()},
        run_id=record.run_id,
        storage_id=record.storage_id,
        timestamp=record.timestamp,
    )


def require_latest(instance: dg.DagsterInstance, asset: str, partition: Optional[str] = None) -> Recorded:
    found = latest(instance, asset, partition)
    if found is None:
        label = asset + (f"[{partition}]" if partition else "")
        raise input_failure(f"{label} has never been materialized on this instance: materialize it first")
    return found


def materialized_partitions(instance: dg.DagsterInstance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


def failed_checks(instance: dg.DagsterInstance, asset: str, check_names: Iterable[str],
                  partition: Optional[str] = None) -> dict[str, str]:
    """check name -> why, for every named check that has not passed on the current materialization.

    A check passes only when its latest evaluation (of this partition) passed *and* targets the
    materialization that is current now. Failed, PLANNED by the run that made the current
    materialization (it crashed before the check ran), never evaluated, or evaluated on an older
    materialization: not passed. A PLANNED record of a run that materialized nothing is about no
    materialization and is skipped: the record before it decides. So a later crash neither hides an
    earlier failure nor discredits an earlier pass, and a pass on old data never vouches for new data.
    """
    current = latest(instance, asset, partition)
    keys = [dg.AssetCheckKey(dg.AssetKey(asset), name) for name in check_names]
    partition_filter = PartitionKeyFilter(key=partition) if partition is not None else None
    latest_records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys, partition_filter=partition_filter)
    failed = {}
    for key in keys:
        record = latest_records.get(key)
        if _planned_by_another_run(record, current):
            record = _latest_about(instance, key, current, partition_filter)
        why = _not_passed_reason(record, current)
        if why:
            failed[key.name] = why
    return failed


def _planned_by_another_run(record, current: Optional[Recorded]) -> bool:
    """A PLANNED record whose run did not produce the current materialization: that run stopped before it
    materialized anything, so the record says nothing about the current materialization."""
    return (record is not None and current is not None and record.status == AssetCheckExecutionRecordStatus.PLANNED
            and record.run_id != current.run_id)


def _latest_about(instance: dg.DagsterInstance, key: dg.AssetCheckKey, current: Recorded, partition_filter, scan: int = 100):
    """The latest record that is about the current materialization: PLANNED records of runs that never
    materialized are skipped, so a failure recorded before them still counts, and so does a pass."""
    history = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=scan, partition_filter=partition_filter)
    for record in history:  # newest first
        if not _planned_by_another_run(record, current):
            return record
    return None


def _not_passed_reason(record, current: Optional[Recorded]) -> Optional[str]:
    """None when ``record`` passed on ``current``; else why not, in words."""
    if record is None:
        return "was never evaluated"
    if record.status == AssetCheckExecutionRecordStatus.PLANNED:
        return f"was planned in run {record.run_id} but never evaluated (the run stopped before it)"
    if not _targets(record, current):
        return (f"was last evaluated in run {record.run_id} on an older materialization, not on the current one "
                f"(run {current.run_id if current else '?'})")
    if record.status == AssetCheckExecutionRecordStatus.FAILED:
        return _failure_reason(record)
    return None


def _targets(record, current: Optional[Recorded]) -> bool:
    """Whether the evaluation in ``record`` was made on the ``current`` materialization."""
    if current is None:
        return False
    evaluation = record.evaluation
    target = getattr(evaluation, "target_materialization_data", None) if evaluation is not None else None
    if target is not None:
        return target.storage_id == current.storage_id
    # No target recorded (a runless evaluation, or an old record): it targets what was current when it was
    # recorded, so it counts only when it came after the current materialization (Dagster's own fallback).
    return record.event is not None and record.event.timestamp >= current.timestamp


def _failure_reason(record) -> str:
    evaluation = record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event else None
    details = ""
    if evaluation is not None and evaluation.metadata:
        shown = {k: _value(v) for k, v in evaluation.metadata.items() if not isinstance(_value(v), (list, dict))}
        details = ", ".join(f"{k}={v}" for k, v in list(shown.items())[:6])
    return f"failed in run {record.run_id}" + (f" ({details})" if details else "")


def require_checks_passed(instance: dg.DagsterInstance, asset: str, check_names: Iterable[str],
                          partition: Optional[str] = None) -> None:
    """Refuse an upstream whose blocking checks did not pass on its current materialization (``failed_checks``),
    even when the failure was recorded in an earlier run."""
    failed = failed_checks(instance, asset, check_names, partition)
    if failed:
        label = asset + (f"[{partition}]" if partition else "")
        reasons = "; ".join(f"check '{name}' {why}" for name, why in failed.items())
        raise input_failure(f"upstream {label} is not usable: {reasons}. Fix the cause and rematerialize {label}.",
                            upstream=label, failed_checks=", ".join(sorted(failed)))


def relative(path: Path, data_root: Path) -> str:
    """How every path is stored: relative to the data root, so the root can move or be mounted elsewhere."""
    return str(Path(path).resolve().relative_to(Path(data_root).resolve()))


def partitioned_check(name: str, asset: str, partitions_def: dg.PartitionsDefinition, description: str,
                      blocking: bool = True) -> dg.AssetCheckSpec:
    """A check spec with one result per partition, so one brand's pass never hides another's failure.

    Partitioned check specs are a Dagster preview feature in 1.13 (a ``PreviewWarning``); the
    project pins Dagster, and the tests read per-partition results back from the instance.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")
        return dg.AssetCheckSpec(name, asset=asset, blocking=blocking, partitions_def=partitions_def,
                                 description=description)


METADATA_BUDGET_BYTES = 256 * 1024  # per materialization; the event log stores every byte, on every run


def metadata_bytes(materialization: dg.AssetMaterialization) -> int:
    """The serialized size of a materialization's metadata, as the event log stores it."""
    from dagster._serdes import serialize_value

    return len(serialize_value(dict(materialization.metadata)).encode("utf-8"))


def file_data_version(*paths) -> dg.DataVersion:
    """The data version of an output made of these files: their contents' combined sha256."""
    from fashion_pipeline.common.fingerprint import combine, file_sha256

    return dg.DataVersion(combine(file_sha256(path) for path in paths))


# ---------------------------------------------------------------- versioned folders (common.versions)

FOLDER_KEY = "folder"  # the metadata entry naming a materialization's own folder, relative to the data root


def folder_metadata(published) -> dict:
    """Metadata naming a ``versions.Published`` folder, and whether this run reused an identical earlier one."""
    return {FOLDER_KEY: dg.MetadataValue.path(published.relative),
            "folder_reused": dg.MetadataValue.bool(bool(published.reused))}


def verified_file(data_root: Path, recorded: Recorded, path_key: str, sha_key: str) -> Path:
    """The file ``recorded`` names under ``path_key``, after checking it against the sha256 recorded under
    ``sha_key``: a file changed or lost since it was recorded is refused, never used silently."""
    from fashion_pipeline.common.fingerprint import file_sha256

    path = recorded.path(data_root, path_key)
    if not path.is_file():
        raise input_failure(f"{path} is missing although {recorded.label} was materialized in run {recorded.run_id}: "
                            f"rematerialize {recorded.label}")
    if file_sha256(path) != recorded.require(sha_key):
        raise input_failure(f"{path} changed after {recorded.label} was materialized in run {recorded.run_id} "
                            f"(its sha256 differs from the recorded one): rematerialize {recorded.label}")
    return path


def last_passed_check(instance: dg.DagsterInstance, asset: str, check_name: str,
                      partition: Optional[str] = None, scan: int = 100) -> Optional[dict]:
    """The metadata of the latest evaluation of ``check_name`` that passed (of this partition), with ``run_id``;
    None when none passed among the latest ``scan``. A baseline to compare with: a failed run is never one."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), check_name)
    partition_filter = PartitionKeyFilter(key=partition) if partition is not None else None
    history = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=scan, status={AssetCheckExecutionRecordStatus.SUCCEEDED}, partition_filter=partition_filter)
    for record in history:  # newest first
        evaluation = record.evaluation
        if evaluation is not None and evaluation.passed:
            return {**{k: _value(v) for k, v in (evaluation.metadata or {}).items()}, "run_id": record.run_id}
    return None
