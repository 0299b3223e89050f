"""``make demo``: materialize the whole chain on the embedded default data.

Each step is a real Dagster run recorded in the instance at ``DAGSTER_HOME`` (the repo root
when started from the Makefile), so ``dagster dev`` shows every materialization afterwards.
Partitioned assets get one run per partition, as a backfill launched from the UI would.
Steps whose stage is not part of ``defs`` are skipped with a note.

On a machine without an accelerator the training steps' partitions run side by side, each in its
own process (``--jobs``, default: up to 8 at once, CPU threads shared out among them): the demo's
small trainers gain little from a second thread (a pattern DCGAN's wall time on 2 threads equals its
CPU time on one), so two one-thread trainers do about twice the work of one two-thread trainer, and
starting every partition at once leaves no long one running alone at the end. The ``gpu`` pool,
which holds training to one step at a time on an accelerator, is widened to the number running for
the step and put back afterwards. With CUDA, ``--jobs`` defaults to 1. A side-by-side step's
seconds in the summary are wall times of processes sharing the CPU.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg

from fashion_pipeline.common.lineage import METADATA_BUDGET_BYTES, metadata_bytes

REPO_ROOT = Path(__file__).resolve().parents[1]

# (asset name, which partitions: None = unpartitioned, "all" = every key, or a module constant)
# Training steps in PARALLEL run their partitions side by side (see the module docstring).
CHAIN: list[tuple[str, object]] = [
    ("deepfashion_coco", None),
    ("pinterest_images", "all"),
    ("pinterest_dataset", None),
    ("fashion_detector", ("fashion_pipeline.detector.assets", "DEMO_BACKBONE")),
    ("best_detector", None),
    ("pinterest_detections", None),
    ("fullbody_crops", None),
    ("dcgan_training_set", "all"),
    ("dcgan", ("fashion_pipeline.gan.assets", "DEMO_DCGAN_PARTITIONS")),  # seed 0 of each variant
    ("ablation_report", None),
    ("garment_masks", None),
    ("pattern_patches", "all"),
    ("pattern_dcgan", "all"),
    ("restyled_garments", None),
    ("tryon_pairs", None),
    ("tryon_model", "all"),  # one run per method, as a backfill from the UI
    ("tryon_report", None),
    ("tryon_showcase", None),  # the trained viton model on held-out persons and runway crops, generated prints
]
PARALLEL = {"dcgan", "pattern_dcgan", "tryon_model"}
TRAINING_POOL = "gpu"
MAX_SIDE_BY_SIDE = 8


def demo_run_config() -> dict:
    """Every stage's DEMO_RUN_CONFIG, merged (the same config as the UI's demo jobs)."""
    from fashion_pipeline.definitions import DEMO_RUN_CONFIG

    return DEMO_RUN_CONFIG


def _assets_and_checks(defs: dg.Definitions) -> list:
    return [*defs.assets, *(defs.asset_checks or [])]


def _partition_keys(assets_def, spec) -> list[str | None]:
    if spec is None:
        return [None]
    if spec == "all":
        return list(assets_def.partitions_def.get_partition_keys())
    module_name, constant = spec
    keys = getattr(importlib.import_module(module_name), constant)
    return [str(key) for key in keys] if isinstance(keys, (list, tuple)) else [keys]


def _config_for(asset_name: str, run_config: dict) -> dict:
    op_config = run_config.get("ops", {}).get(asset_name)
    return {"ops": {asset_name: op_config}} if op_config else {}


def _materialize_one(assets, asset_name: str, key: str | None, instance, resources, run_config) -> dict:
    label = asset_name + (f"[{key}]" if key else "")
    started = time.perf_counter()
    print(f"[demo] materializing {label} ...", flush=True)
    result = dg.materialize(
        assets,
        selection=[asset_name],
        partition_key=key,
        instance=instance,
        resources=resources,
        run_config=_config_for(asset_name, run_config),
        tags={"fashion_pipeline/demo": "true"},
    )
    seconds = time.perf_counter() - started
    sizes = [metadata_bytes(e.event_specific_data.materialization) for e in result.get_asset_materialization_events()]
    print(f"[demo] {label}: {'ok' if result.success else 'FAILED'} in {seconds:.1f}s", flush=True)
    return {"step": label, "success": result.success, "seconds": round(seconds, 1),
            "metadata_kb": round(max(sizes, default=0) / 1024, 1)}


def default_jobs() -> int:
    import torch

    return 1 if torch.cuda.is_available() else MAX_SIDE_BY_SIDE


def _child_step(asset_name: str, key: str, threads: int, summary_dir: Path) -> list[dict]:
    """One partition in its own process (its own Dagster run, as a backfill's run worker would be)."""
    out = summary_dir / f"{asset_name}-{key}.json".replace("|", "_")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "fashion_pipeline.demo", "--only", asset_name, "--partition", key,
               "--summary-out", str(out)]
    code = subprocess.run(command, env=env).returncode
    if code != 0 or not out.exists():
        return [{"step": f"{asset_name}[{key}]", "success": False, "seconds": 0.0, "metadata_kb": 0.0}]
    return json.loads(out.read_text())


@contextlib.contextmanager
def _training_pool_widened(instance: dg.DagsterInstance, slots: int):
    """The gpu pool at ``slots`` for the demo's parallel steps; its previous limit restored after."""
    storage = instance.event_log_storage
    configured = TRAINING_POOL in storage.get_concurrency_keys()
    previous = storage.get_concurrency_info(TRAINING_POOL).slot_count if configured else None
    storage.set_concurrency_slots(TRAINING_POOL, slots)
    try:
        yield
    finally:
        if previous is None:
            storage.delete_concurrency_limit(TRAINING_POOL)  # back to dagster.yaml's default_limit
        else:
            storage.set_concurrency_slots(TRAINING_POOL, previous)


def _run_side_by_side(asset_name: str, keys: list[str], jobs: int, instance) -> list[dict]:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    print(f"[demo] {asset_name}: {len(keys)} partitions, {jobs} at a time, {threads} thread(s) each", flush=True)
    with tempfile.TemporaryDirectory(prefix="demo-summary-") as tmp, _training_pool_widened(instance, jobs), \
            ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda key: _child_step(asset_name, key, threads, Path(tmp)), keys))
    return [row for rows in results for row in rows]


def run_chain(only: list[str] | None = None, instance: dg.DagsterInstance | None = None,
              partition: str | None = None, jobs: int = 1) -> list[dict]:
    from fashion_pipeline.definitions import defs

    instance = instance or dg.DagsterInstance.get()
    assets = _assets_and_checks(defs)
    by_name = {a.key.to_user_string(): a for a in defs.assets if isinstance(a, dg.AssetsDefinition)}
    run_config = demo_run_config()
    summary = []
    for asset_name, partitions in CHAIN:
        if only and asset_name not in only:
            continue
        assets_def = by_name.get(asset_name)
        if assets_def is None:
            print(f"[demo] {asset_name}: not defined yet, skipped", flush=True)
            continue
        keys = [partition] if partition else _partition_keys(assets_def, partitions)
        if jobs > 1 and asset_name in PARALLEL and len(keys) > 1:
            rows = _run_side_by_side(asset_name, keys, min(jobs, len(keys)), instance)
        else:
            rows = [_materialize_one(assets, asset_name, key, instance, defs.resources, run_config) for key in keys]
        summary.extend(rows)
        failed = [row["step"] for row in rows if not row["success"]]
        if failed:
            raise SystemExit(f"demo step {', '.join(failed)} failed; see the run in `make dev`")
    return summary


def _print_summary(summary: list[dict], total: float) -> None:
    print("\n[demo] step                                   seconds  metadata KB")
    for row in summary:
        print(f"[demo] {row['step']:<38} {row['seconds']:>7}  {row['metadata_kb']:>10}")
    largest = max(summary, key=lambda row: row["metadata_kb"], default=None)
    if largest:
        print(f"[demo] largest metadata: {largest['metadata_kb']} KB ({largest['step']}); budget "
              f"{METADATA_BUDGET_BYTES // 1024} KB per materialization")
    print(f"[demo] whole chain: {total:.0f}s. Open the UI on the same instance with `make dev`.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="materialize only these assets (in chain order)")
    parser.add_argument("--partition", help="with one --only asset: just this partition key")
    parser.add_argument("--jobs", type=int, default=None,
                        help=f"training partitions side by side (default: 1 with CUDA, else up to {MAX_SIDE_BY_SIDE})")
    parser.add_argument("--summary-out", type=Path, help=argparse.SUPPRESS)  # a parallel step's child
    args = parser.parse_args(argv)
    if args.partition and len(args.only or []) != 1:
        parser.error("--partition needs exactly one --only asset")
    os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT))
    started = time.perf_counter()
    if args.summary_out:
        summary = run_chain(args.only, partition=args.partition)
        args.summary_out.write_text(json.dumps(summary))
        return 0
    from fashion_pipeline.pinterest.assets import kept_between_runs

    with kept_between_runs():  # one Chromium and one embedded site for all the brands, closed after the chain
        summary = run_chain(args.only, partition=args.partition, jobs=args.jobs or default_jobs())
    _print_summary(summary, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
