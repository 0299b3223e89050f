"""Where each injected fault shows in Dagster's record: a failed run, a failed step attempt, a failed
check, or download failures counted in a scrape's metadata (see ``harness.EXPECTED``).

A fault's runs are the runs of its brand that overlapped the time it was armed; a fault that fired
but left none of its expected marks there is *silent*, and fails the soak.
"""
from __future__ import annotations

import time

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from fashion_pipeline.soak.checks import Check

SCRAPE = "pinterest_images"


def window_runs(instance: dg.DagsterInstance, fault) -> list:
    """Run records of the fault's brand that ran while it was armed (retries of those runs included)."""
    end = fault.disarmed_at or time.time()
    records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/partition": fault.brand}))
    hit = [r for r in records if r.start_time is not None and r.start_time <= end
           and (r.end_time is None or r.end_time >= fault.armed_at)]
    ids = {r.dagster_run.run_id for r in hit}
    retries = [r for r in records if r.dagster_run.tags.get("dagster/parent_run_id") in ids and r.dagster_run.run_id not in ids]
    return hit + retries


def _counted(instance, fault, run_ids: set[str], keys) -> list[str]:
    found = []
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(SCRAPE), asset_partitions=[fault.brand]), limit=200).records
    for record in records:
        if record.run_id not in run_ids:
            continue
        metadata = record.asset_materialization.metadata
        counts = {key: getattr(metadata.get(key), "value", 0) or 0 for key in keys}
        shown = {k: v for k, v in counts.items() if v}
        if shown:
            found.append(f"run {record.run_id[:8]} counted " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    return found


def _failed_checks(instance, fault, run_ids: set[str]) -> list[str]:
    found = []
    for name in ("scrape_health", "manifest_consistent"):
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(SCRAPE), name), limit=200, partition_filter=PartitionKeyFilter(key=fault.brand))
        for record in history:
            if record.run_id in run_ids and record.status == AssetCheckExecutionRecordStatus.FAILED:
                found.append(f"run {record.run_id[:8]} check {name} failed")
    return found


def _step_failures(instance, run_ids: set[str]) -> list[str]:
    found = []
    for run_id in sorted(run_ids):
        # A failed attempt that its RetryPolicy retries is STEP_UP_FOR_RETRY; the last one, STEP_FAILURE.
        failures = [e for kind in (dg.DagsterEventType.STEP_UP_FOR_RETRY, dg.DagsterEventType.STEP_FAILURE)
                    for e in instance.all_logs(run_id, of_type=kind)]
        if failures:
            found.append(f"run {run_id[:8]}: {len(failures)} failed step attempt(s)")
    return found


def _failed_runs(records) -> list[str]:
    found = []
    by_parent = {r.dagster_run.tags.get("dagster/parent_run_id"): r.dagster_run for r in records}
    for record in records:
        run = record.dagster_run
        if run.status == dg.DagsterRunStatus.FAILURE:
            retry = by_parent.get(run.run_id)
            found.append(f"run {run.run_id[:8]} FAILURE" + (f", retried by run {retry.run_id[:8]} ({retry.status.value})"
                                                           if retry else ", not retried"))
    return found


def collect(instance: dg.DagsterInstance, fault, soak) -> None:
    """Fill ``fault.evidence`` with the marks it left, and whether the expected one is among them."""
    from fashion_pipeline.soak.harness import FAILURE_KEYS

    if fault.fired_at is None:
        fault.evidence = []
        return
    if fault.kind == "restart_daemon":
        later = [r for r in soak.soak_runs(instance) if (soak.tick_of(r) or 0) > fault.tick]
        fault.evidence = ([f"{len(later)} runs of later ticks launched after the restart"] if later else [])
        fault.expected_found = bool(later)
        return
    records = window_runs(instance, fault)
    run_ids = {r.dagster_run.run_id for r in records}
    marks = {
        "counted": _counted(instance, fault, run_ids, FAILURE_KEYS.get(fault.kind, ())),
        "check": _failed_checks(instance, fault, run_ids),
        "step": _step_failures(instance, run_ids),
        "run": _failed_runs(records),
    }
    fault.evidence = [mark for kind in marks.values() for mark in kind]
    expected = {"500": "counted", "slow": "counted", "truncated": "counted", "login_wall": "check",
                "zero_pins": "check", "kill_browser": "step", "kill_worker": "run", "kill_run_tree": "run"}[fault.kind]
    fault.expected_found = bool(marks[expected])
    if expected == "run":  # the run failed, and its work was finished: by the daemon's retry, or (worker
        # killed alone) by its orphaned step, which runs on and records its materialization in the failed run
        retried = any("retried by run" in m and "(SUCCESS)" in m for m in marks["run"])
        orphan = _orphan_finished(instance, fault.target_run) if fault.kind == "kill_worker" else False
        fault.evidence.append("work finished by " + ("the daemon's retry" if retried else
                                                     "the orphaned step" if orphan else "nobody"))
        target_failed = any(m.startswith(f"run {(fault.target_run or '?')[:8]} FAILURE") for m in marks["run"])
        fault.expected_found = target_failed and (retried or orphan)


def _orphan_finished(instance, run_id: str | None) -> bool:
    if run_id is None:
        return False
    return bool(instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS))


def faults_shown(faults) -> Check:
    from fashion_pipeline.soak.harness import EXPECTED

    not_fired = [f.label for f in faults if f.fired_at is None]
    silent = [f"{f.label} (expected {EXPECTED[f.kind]})" for f in faults
              if f.fired_at is not None and not getattr(f, "expected_found", False)]
    fired = len(faults) - len(not_fired)
    summary = f"{fired} of {len(faults)} planned faults fired; {len(silent)} without their expected mark"
    if not_fired:
        summary += f"; not fired: {', '.join(not_fired)}"
    if silent:
        summary += f"; silent: {', '.join(silent)}"
    return Check("every_fault_shows", not not_fired and not silent, summary, {"not_fired": not_fired, "silent": silent})
