"""``make demo``: materialize the whole chain on the embedded default data.

Each step is a real Dagster run recorded in the instance at ``DAGSTER_HOME`` (the repo root
when started from the Makefile), so ``dagster dev`` shows every materialization afterwards.
Partitioned assets get one run per partition, as a backfill launched from the UI would.
Steps whose stage is not part of ``defs`` are skipped with a note.

On a machine without an accelerator the training steps' partitions run side by side, each in its
own process (``--jobs``, default: up to 8 at once, CPU threads shared out among them): the demo's
small trainers gain little from a second thread (a pattern DCGAN's wall time on 2 threads equals its
CPU time on one), so two one-thread trainers do about twice the work of one two-thread trainer, and
starting every partition at once leaves no long one running alone at the end. The try-on branch
(``BACKGROUND``: synthetic pairs, models, report; it needs nothing else of the chain) runs in its
own process from the start, beside the scrape and the detector, which leave a core idle much of the
time; ``tryon_showcase`` waits for it. The ``gpu`` pool, which holds training to one step at a time
on an accelerator, is widened to ``--jobs`` for the chain and put back afterwards. With CUDA,
``--jobs`` defaults to 1: the pool keeps one training step at a time, and the branch's training
waits for the main chain's. Seconds in the summary are wall times of processes sharing the CPU.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
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
BACKGROUND = ["tryon_pairs", "tryon_model", "tryon_report"]
WAITS_FOR_BACKGROUND = {"tryon_showcase"}
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


def _child(arguments: list[str], out: Path, env: dict | None = None, own_group: bool = False) -> subprocess.Popen:
    command = [sys.executable, "-m", "fashion_pipeline.demo", *arguments, "--summary-out", str(out)]
    return subprocess.Popen(command, env={**os.environ, **(env or {})}, start_new_session=own_group)


def _child_rows(process: subprocess.Popen, out: Path, label: str) -> list[dict]:
    if process.wait() != 0 or not out.exists():
        return [{"step": label, "success": False, "seconds": 0.0, "metadata_kb": 0.0}]
    return json.loads(out.read_text())


def _child_step(asset_name: str, key: str, threads: int, summary_dir: Path) -> list[dict]:
    """One partition in its own process (its own Dagster run, as a backfill's run worker would be)."""
    out = summary_dir / f"{asset_name}-{key}.json".replace("|", "_")
    process = _child(["--only", asset_name, "--partition", key], out,
                     {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    return _child_rows(process, out, f"{asset_name}[{key}]")


class _Background:
    """The BACKGROUND branch in a child process, started at once and joined on demand."""

    def __init__(self, jobs: int, summary_dir: Path):
        self.out = summary_dir / "background.json"
        # its own process group, so that stopping it also stops the trainers it started
        self.process = _child(["--only", *BACKGROUND, "--jobs", str(jobs)], self.out, own_group=True)
        self.rows: list[dict] | None = None

    def join(self) -> list[dict]:
        if self.rows is None:
            print("[demo] waiting for the background branch (" + ", ".join(BACKGROUND) + ") ...", flush=True)
            self.rows = _child_rows(self.process, self.out, "background: " + ", ".join(BACKGROUND))
        return self.rows

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait()


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


def _run_side_by_side(asset_name: str, keys: list[str], jobs: int) -> list[dict]:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    print(f"[demo] {asset_name}: {len(keys)} partitions, {jobs} at a time, {threads} thread(s) each", flush=True)
    with tempfile.TemporaryDirectory(prefix="demo-summary-") as tmp, ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda key: _child_step(asset_name, key, threads, Path(tmp)), keys))
    return [row for rows in results for row in rows]


def _lookup(defs: dg.Definitions) -> dict:
    return {a.key.to_user_string(): a for a in defs.assets if isinstance(a, dg.AssetsDefinition)}


def _failed(rows: list[dict]) -> None:
    failed = [row["step"] for row in rows if not row["success"]]
    if failed:
        raise SystemExit(f"demo step {', '.join(failed)} failed; see the run in `make dev`")


def run_chain(only: list[str] | None = None, instance: dg.DagsterInstance | None = None,
              partition: str | None = None, jobs: int = 1, background: _Background | None = None) -> list[dict]:
    """The chain in order; with ``background``, its steps are left to that process, joined before
    the first step that needs them."""
    from fashion_pipeline.definitions import defs

    instance = instance or dg.DagsterInstance.get()
    assets = _assets_and_checks(defs)
    by_name = _lookup(defs)
    run_config = demo_run_config()
    summary = []
    for asset_name, partitions in CHAIN:
        if (only and asset_name not in only) or (background and asset_name in BACKGROUND):
            continue
        if background and asset_name in WAITS_FOR_BACKGROUND:
            _failed(background.join())
        assets_def = by_name.get(asset_name)
        if assets_def is None:
            print(f"[demo] {asset_name}: not defined yet, skipped", flush=True)
            continue
        keys = [partition] if partition else _partition_keys(assets_def, partitions)
        if jobs > 1 and asset_name in PARALLEL and len(keys) > 1:
            rows = _run_side_by_side(asset_name, keys, min(jobs, len(keys)))
        else:
            rows = [_materialize_one(assets, asset_name, key, instance, defs.resources, run_config) for key in keys]
        summary.extend(rows)
        _failed(rows)
    if background:
        summary.extend(background.join())
        _failed(background.rows)
    return summary


def _whole_chain(only: list[str] | None, jobs: int) -> list[dict]:
    """The chain with the gpu pool widened to ``jobs`` and, for the full chain, the try-on branch
    in the background."""
    from fashion_pipeline.pinterest.assets import kept_between_runs

    instance = dg.DagsterInstance.get()
    with tempfile.TemporaryDirectory(prefix="demo-summary-") as tmp, _training_pool_widened(instance, jobs), \
            kept_between_runs():  # one Chromium and one embedded site for all the brands, closed after the chain
        background = _Background(jobs, Path(tmp)) if jobs > 1 and not only else None
        try:
            return run_chain(only, instance=instance, jobs=jobs, background=background)
        finally:
            if background:
                background.stop()


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
    jobs = args.jobs or default_jobs()
    if args.summary_out:  # a child of a demo that holds the pool and the browser
        summary = run_chain(args.only, partition=args.partition, jobs=jobs)
        args.summary_out.write_text(json.dumps(summary))
        return 0
    if args.partition:
        summary = run_chain(args.only, partition=args.partition)
    else:
        summary = _whole_chain(args.only, jobs)
    _print_summary(summary, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
