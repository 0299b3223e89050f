"""``python -m fashion_pipeline.gc``: remove the materialization folders that no kept record names.

Each materialization writes a folder of its own (``<asset>/<partition>/v/<version>/``,
``fashion_pipeline.common.versions``); Dagster's record names it. This keeps, per asset and
partition, the folders named by the latest ``--keep`` materializations (``FASHION_PIPELINE_KEEP_VERSIONS``,
default 3), and every folder that any kept record of *any* asset names (``best_detector`` names a
``fashion_detector`` checkpoint), then removes the other ``v/`` folders, staging folders left by
killed runs, and all but the newest ``--keep-resume`` training resume caches per partition.

A folder younger than ``--min-age-s`` is never removed: a run may have published it and be about to
record it. ``--dry-run`` only lists. It reports what it freed (hard-linked files count only when
their last link goes).
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import dagster as dg

from fashion_pipeline.common import versions
from fashion_pipeline.common.paths import resolve_data_root

KEEP_ENV_VAR = "FASHION_PIPELINE_KEEP_VERSIONS"
DEFAULT_KEEP = 3
DEFAULT_MIN_AGE_S = 3600.0


@dataclass
class Plan:
    kept: set[str] = field(default_factory=set)  # version folders, relative to the data root
    remove: list[tuple[Path, str]] = field(default_factory=list)  # (folder, why)
    young: list[Path] = field(default_factory=list)  # unnamed but too recent to remove


def _records(instance: dg.DagsterInstance, key: dg.AssetKey):
    cursor = None
    while True:
        result = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=500, cursor=cursor)
        yield from result.records
        if not result.has_more:
            return
        cursor = result.cursor


def _named_folders(metadata) -> Iterable[str]:
    for entry in metadata.values():
        value = getattr(entry, "value", entry)
        if isinstance(value, (str, os.PathLike)):
            folder = versions.version_folder_of(str(value))
            if folder:
                yield folder


def kept_folders(instance: dg.DagsterInstance, keep: int) -> set[str]:
    """Every version folder named by one of the latest ``keep`` materializations of some asset (partition)."""
    kept: set[str] = set()
    for key in instance.get_asset_keys():
        seen: dict[Optional[str], int] = {}
        for record in _records(instance, key):  # newest first
            materialization = record.asset_materialization
            partition = materialization.partition
            seen[partition] = seen.get(partition, 0) + 1
            if seen[partition] <= keep:
                kept.update(_named_folders(materialization.metadata))
    return kept


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _staging_pid(name: str) -> Optional[int]:
    try:
        return int(name[len(versions.STAGING_PREFIX):].split("-")[0])
    except ValueError:
        return None


def plan(instance: dg.DagsterInstance, data_root: Path, keep: int = DEFAULT_KEEP, keep_resume: int = 1,
         min_age_s: float = DEFAULT_MIN_AGE_S, now: Optional[float] = None) -> Plan:
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the current materialization), not {keep}")
    data_root, now = Path(data_root), time.time() if now is None else now
    result = Plan(kept=kept_folders(instance, keep))
    for key in instance.get_asset_keys():
        asset_home = data_root.joinpath(*key.path)
        if not asset_home.is_dir():
            continue
        for folder in sorted(p for p in asset_home.rglob("*") if p.is_dir() and p.parent.name == versions.VERSIONS):
            _judge(result, folder, str(folder.relative_to(data_root)), now - folder.stat().st_mtime, min_age_s)
        for cache_root in sorted(p for p in asset_home.rglob(versions.RESUME) if p.is_dir()):
            caches = sorted((p for p in cache_root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
            for cache in caches[keep_resume:]:
                if now - cache.stat().st_mtime >= min_age_s:
                    result.remove.append((cache, f"resume cache older than the newest {keep_resume}"))
    return result


def _judge(result: Plan, folder: Path, relative: str, age_s: float, min_age_s: float) -> None:
    if folder.name.startswith(versions.STAGING_PREFIX):
        pid = _staging_pid(folder.name)
        if (pid is not None and not _pid_alive(pid)) or age_s >= min_age_s:
            result.remove.append((folder, "staging folder of a run that did not finish"))
        return
    if relative in result.kept:
        return
    if age_s < min_age_s:
        result.young.append(folder)
    else:
        result.remove.append((folder, "named by no kept materialization"))


def _freed_bytes(folders: Iterable[Path]) -> int:
    """Bytes the removal frees: a hard-linked file's only when all its links are among the removed."""
    inodes: dict[tuple[int, int], list[int]] = {}  # (dev, ino) -> [size, links, removed links]
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                stat = path.stat()
                entry = inodes.setdefault((stat.st_dev, stat.st_ino), [stat.st_size, stat.st_nlink, 0])
                entry[2] += 1
    return sum(size for size, links, removed in inodes.values() if removed >= links)


def collect(instance: dg.DagsterInstance, data_root: Path, keep: int = DEFAULT_KEEP, keep_resume: int = 1,
            min_age_s: float = DEFAULT_MIN_AGE_S, dry_run: bool = False, log=print) -> dict:
    """Remove what ``plan`` found; returns {"removed", "freed_bytes", "kept", "young"}."""
    found = plan(instance, data_root, keep, keep_resume, min_age_s)
    folders = [folder for folder, _ in found.remove]
    freed = _freed_bytes(folders)
    for folder, why in found.remove:
        log(f"{'would remove' if dry_run else 'removed'} {folder.relative_to(data_root)} ({why})")
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
    summary = {"removed": len(folders), "freed_bytes": freed, "kept": len(found.kept), "young": len(found.young)}
    log(f"gc: {'would free' if dry_run else 'freed'} {freed / 2**20:.1f} MiB in {len(folders)} folder(s); "
        f"{len(found.kept)} recorded folder(s) kept (latest {keep} per asset and partition), "
        f"{len(found.young)} unrecorded folder(s) younger than {min_age_s:.0f} s left")
    return summary


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fashion_pipeline.gc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=int, default=int(os.environ.get(KEEP_ENV_VAR, DEFAULT_KEEP)),
                        help=f"materializations kept per asset and partition (default ${KEEP_ENV_VAR} or {DEFAULT_KEEP})")
    parser.add_argument("--keep-resume", type=int, default=1, help="training resume caches kept per partition")
    parser.add_argument("--min-age-s", type=float, default=DEFAULT_MIN_AGE_S,
                        help="never remove an unrecorded folder younger than this (a run may be about to record it)")
    parser.add_argument("--data-root", default=None, help="default: $FASHION_PIPELINE_DATA or ./data")
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    args = parser.parse_args(argv)
    if args.keep < 1:
        parser.error("--keep must be at least 1")
    with dg.DagsterInstance.get() as instance:
        collect(instance, resolve_data_root(args.data_root), args.keep, args.keep_resume, args.min_age_s, args.dry_run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
