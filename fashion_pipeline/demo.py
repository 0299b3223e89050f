"""``make demo``: materialize the whole chain on the embedded default data.

Each step is a real Dagster run recorded in the instance at ``DAGSTER_HOME`` (the repo root
when started from the Makefile), so ``dagster dev`` shows every materialization afterwards.
Partitioned assets get one run per partition, as a backfill launched from the UI would.
Steps whose stage is not part of ``defs`` are skipped with a note.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import dagster as dg

from fashion_pipeline.common.lineage import METADATA_BUDGET_BYTES, metadata_bytes

REPO_ROOT = Path(__file__).resolve().parents[1]

# (asset name, which partitions: None = unpartitioned, "all" = every key, or a module constant)
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


def run_chain(only: list[str] | None = None, instance: dg.DagsterInstance | None = None) -> list[dict]:
    from fashion_pipeline.definitions import defs

    instance = instance or dg.DagsterInstance.get()
    assets = _assets_and_checks(defs)
    by_name = {a.key.to_user_string(): a for a in defs.assets if isinstance(a, dg.AssetsDefinition)}
    run_config = demo_run_config()
    resources = defs.resources
    summary = []
    for asset_name, partitions in CHAIN:
        if only and asset_name not in only:
            continue
        assets_def = by_name.get(asset_name)
        if assets_def is None:
            print(f"[demo] {asset_name}: not defined yet, skipped", flush=True)
            continue
        for key in _partition_keys(assets_def, partitions):
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
            summary.append({"step": label, "success": result.success, "seconds": round(seconds, 1),
                            "metadata_kb": round(max(sizes, default=0) / 1024, 1)})
            print(f"[demo] {label}: {'ok' if result.success else 'FAILED'} in {seconds:.1f}s", flush=True)
            if not result.success:
                raise SystemExit(f"demo step {label} failed; see the run in `make dev`")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="materialize only these assets (in chain order)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT))
    started = time.perf_counter()
    from fashion_pipeline.pinterest.assets import kept_between_runs

    with kept_between_runs():  # one Chromium and one embedded site for all the brands, closed after the chain
        summary = run_chain(args.only)
    total = time.perf_counter() - started
    print("\n[demo] step                                   seconds  metadata KB")
    for row in summary:
        print(f"[demo] {row['step']:<38} {row['seconds']:>7}  {row['metadata_kb']:>10}")
    largest = max(summary, key=lambda row: row["metadata_kb"], default=None)
    if largest:
        print(f"[demo] largest metadata: {largest['metadata_kb']} KB ({largest['step']}); budget "
              f"{METADATA_BUDGET_BYTES // 1024} KB per materialization")
    print(f"[demo] whole chain: {total:.0f}s. Open the UI on the same instance with `make dev`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
