"""Benchmark: OpenMP's wait policy for a 2-thread scoring step beside one-thread trainers on a shared CPU.

What it stands for: the run worker's in-process torch work (``tryon_report``, ``pinterest_detections``, the
scoring in ``pattern_dcgan`` and ``ablation_report``) while training subprocesses hold the cores, as in
``make demo`` on a CPU-only machine. ``fashion_pipeline`` sets ``OMP_WAIT_POLICY=PASSIVE`` on import;
libgomp's default (the reference here) lets idle threads spin before they sleep.

Both sides in one run, each in fresh processes (libgomp reads the policy once, when torch loads):
- the scorer: ResNet-18 forward passes (batches of 8 at 128x96, ``--batches`` of them) on 2 torch threads;
- beside it, ``--trainers`` processes each training a small conv net on 1 thread, always PASSIVE, for as long
  as the scorer runs, counting their steps.
Reported per policy: the scorer's wall and CPU seconds, the trainers' steps per second; then the ratios
(default / PASSIVE). Needs torch and torchvision only.

Run: ``python -m bench.openmp_wait_policy [--batches 60 --trainers 2 --out DIR]``
Writes ``openmp_wait_policy.json`` and ``.md`` to ``--out`` (default ``bench/results``).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from fashion_pipeline.common.atomic import write_json, write_text

RESULTS = Path(__file__).resolve().parent / "results"

SCORER = """
import resource, sys, time, torch, torchvision
torch.set_num_threads(2)
torch.manual_seed(0)
net = torchvision.models.resnet18(num_classes=10).eval()
batch = torch.rand(8, 3, 128, 96)
start = time.perf_counter()
with torch.no_grad():
    for _ in range(int(sys.argv[1])):
        net(batch)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - start, usage.ru_utime + usage.ru_stime)
"""

TRAINER = """
import os, sys, time, torch
torch.set_num_threads(1)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1),
                          torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 1))
optimizer = torch.optim.Adam(net.parameters())
batch = torch.rand(16, 3, 64, 64)
stop, steps, started = sys.argv[1], 0, None
while not os.path.exists(stop):
    if started is None and os.path.exists(stop + ".go"):
        started, steps = time.perf_counter(), 0
    optimizer.zero_grad()
    net(batch).mean().backward()
    optimizer.step()
    steps += 1
print(steps / (time.perf_counter() - started) if started else 0.0)
"""


def _python(code: str, args: list[str], policy: str | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True)


def measure(policy: str | None, batches: int, trainers: int, flag_dir: Path) -> dict:
    """The scorer under ``policy`` (None: libgomp's default) beside ``trainers`` PASSIVE trainers."""
    stop = flag_dir / f"stop-{policy or 'default'}"
    workers = [_python(TRAINER, [str(stop)], "PASSIVE") for _ in range(trainers)]
    time.sleep(5)  # the trainers' imports, so that they are busy when the scorer starts
    Path(str(stop) + ".go").touch()
    scorer = _python(SCORER, [str(batches)], policy)
    wall, cpu = (float(x) for x in scorer.communicate()[0].split())
    stop.touch()
    rates = [float(w.communicate()[0]) for w in workers]
    return {"policy": policy or "default (libgomp)", "scorer_wall_s": round(wall, 2), "scorer_cpu_s": round(cpu, 2),
            "trainer_steps_per_s": round(sum(rates), 2)}


def markdown(result: dict) -> str:
    rows = ["| OMP_WAIT_POLICY of the scorer | scorer wall s | scorer CPU s | trainers' steps/s (sum) |",
            "|---|---|---|---|"]
    rows += [f"| {r['policy']} | {r['scorer_wall_s']} | {r['scorer_cpu_s']} | {r['trainer_steps_per_s']} |"
             for r in result["rows"]]
    ratios = result["ratios_default_over_passive"]
    return "\n".join(["## OpenMP wait policy beside trainers (`bench/openmp_wait_policy.py`)", "",
                      "A 2-thread scoring step (as `tryon_report` or `pinterest_detections` in the run worker) beside "
                      "one-thread trainers, under libgomp's default wait policy (the reference) and under the "
                      "`OMP_WAIT_POLICY=PASSIVE` that `fashion_pipeline` sets on import.", "",
                      f"Device: {result['device']}; {result['date']}; {result['trainers']} one-thread trainers beside "
                      f"a 2-thread scorer ({result['batches']} ResNet-18 batches).", "", *rows, "",
                      f"default / PASSIVE: scorer CPU x{ratios['scorer_cpu_s']}, scorer wall x{ratios['scorer_wall_s']}, "
                      f"trainers' throughput x{ratios['trainer_steps_per_s']}.", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--trainers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    flag_dir = args.out / ".omp-flags"
    flag_dir.mkdir(exist_ok=True)
    try:
        rows = [measure(policy, args.batches, args.trainers, flag_dir) for policy in (None, "PASSIVE")]
    finally:
        for flag in flag_dir.iterdir():
            flag.unlink()
        flag_dir.rmdir()
    default, passive = rows
    result = {"device": f"CPU {platform.machine()} ({os.cpu_count()} cores)",
              "date": datetime.date.today().isoformat(), "batches": args.batches, "trainers": args.trainers,
              "rows": rows,
              "ratios_default_over_passive": {k: round(default[k] / passive[k], 2) if passive[k] else None
                                              for k in ("scorer_wall_s", "scorer_cpu_s", "trainer_steps_per_s")}}
    write_json(args.out / "openmp_wait_policy.json", result, indent=1)
    write_text(args.out / "openmp_wait_policy.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
