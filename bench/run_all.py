"""Run every benchmark, then rebuild BENCHMARKS.md from their result files.

``python -m bench.run_all`` runs them all (tens of minutes on 2 cores);
``python -m bench.run_all --collect`` only rebuilds BENCHMARKS.md from ``bench/results/*.md``.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
BENCHMARKS_MD = BENCH_DIR.parent / "BENCHMARKS.md"

# Pipeline order; each is `python -m bench.<name>` and writes bench/results/<name>.md
BENCHMARKS = [
    "deepfashion_convert",
    "pinterest_site",
    "pinterest_scrape",
    "dedup_quality",
    "dedup_speed",
    "detector_throughput",
    "dcgan_throughput",
    "definitions_load",
    "garment_masks",
    "openmp_wait_policy",
]

HEADER = """# Benchmarks

Measured figures only: each section below is written by its benchmark script (`bench/<name>.py`)
into `bench/results/<name>.md` and collected here by `python -m bench.run_all --collect`.
Every benchmark runs our implementation side by side with a reference in the same run and
reports the ratio. Timings are not asserted in tests.

Measured on 2026-11-22 to 2026-11-24 (edit these dates in `bench/run_all.py` when re-measuring).
Device for every figure below unless a section says otherwise: the project's development
machine, {machine}, 2 CPU cores, no GPU. The machine was shared with other jobs while some of
these ran; sections give the load where it mattered. GPU figures come from `make gpu-check` on
a lent NVIDIA H100 80GB HBM3 (torch 2.11.0+cu130, the machine's own build) on 2026-11-24; its
full output is in `bench/results/gpu_check/`.
"""


def collect() -> None:
    sections = [HEADER.format(machine=f"{platform.system()} {platform.machine()}")]
    for name in BENCHMARKS:
        result = RESULTS / f"{name}.md"
        if result.exists():
            sections.append(result.read_text().strip())
        else:
            sections.append(f"## {name}\n\nNot run yet: `python -m bench.{name}`.")
    BENCHMARKS_MD.write_text("\n\n".join(sections) + "\n")
    print(f"wrote {BENCHMARKS_MD}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collect", action="store_true", help="only rebuild BENCHMARKS.md")
    args = parser.parse_args()
    if not args.collect:
        for name in BENCHMARKS:
            print(f"== bench.{name}", flush=True)
            subprocess.run([sys.executable, "-m", f"bench.{name}"], check=True)
    collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
