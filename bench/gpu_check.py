"""``make gpu-check``: the ``gpu``-marked tests and the GPU benchmarks, in one command.

Without CUDA it prints "no CUDA device: gpu-check skipped" and exits 0. With CUDA it prints the
device, torch version and date, then runs, each as its own process so one failure does not hide
the rest:

1. ``pytest -m gpu fashion_pipeline_tests/test_gpu_*.py`` (``-p no:cacheprovider``; the GPU test
   files import neither dagster nor, unless installed, pycocotools);
2. ``bench.detector_throughput --device cuda``;
3. ``bench.detector_throughput --device cuda --rows time_to_quality`` (issue 24): the fast recipe
   against the thesis's recipe and torchvision's reference loop at 800 px and equal images seen
   (images/s, projected hours for the thesis's 360,000 x 2 images, AP after equal images; writes
   ``detector_time_to_quality.{json,md}``);
4. ``bench.dcgan_throughput --device cuda``.

Everything goes to ``$GPU_CHECK_OUT`` (default ``bench/results/gpu_check``): each step's log,
the benchmarks' JSON/markdown, pytest's JUnit XML, and ``gpu_check.json`` / ``gpu_check.md``
with the device, versions, date, and each step's exit code and duration. Exits 1 if any step failed.

Needs torch, torchvision, numpy, PIL, pandas and pytest; run from the repository root with
``PYTHONPATH=.`` (the Makefile target does), no ``pip install``.
"""
from __future__ import annotations

import datetime
import glob
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "gpu_check"


def environment() -> dict:
    return {"device": torch.cuda.get_device_name(0), "device_count": torch.cuda.device_count(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "python": platform.python_version(), "host": platform.node(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def dcgan_command(out: Path) -> list[str]:
    """The DCGAN benchmark's CLI (another module; its output flag is read from its --help)."""
    base = [sys.executable, "-m", "bench.dcgan_throughput", "--device", "cuda"]
    usage = subprocess.run(base[:3] + ["--help"], capture_output=True, text=True, cwd=ROOT, env=child_env()).stdout
    if "--json" in usage:
        return base + ["--json", str(out / "dcgan_throughput.json")]
    if "--out" in usage:
        return base + ["--out", str(out)]
    return base


def child_env() -> dict:
    path = os.environ.get("PYTHONPATH", "")
    # cuBLAS's deterministic workspace: the resume tests compare runs, and the less float noise the sharper.
    return {"CUBLAS_WORKSPACE_CONFIG": ":4096:8", **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def steps(out: Path) -> list[tuple[str, list[str]]]:
    tests = sorted(glob.glob(str(ROOT / "fashion_pipeline_tests" / "test_gpu_*.py")))
    return [
        ("pytest -m gpu", [sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "-q", "-rs",
                           f"--junitxml={out / 'pytest_gpu.xml'}", *tests]),
        ("detector benchmark", [sys.executable, "-m", "bench.detector_throughput", "--device", "cuda", "--out", str(out)]),
        # 600 sample images: the fast recipe's batches of 16 then come from ~430 training images, not ~86.
        ("detector time to quality", [sys.executable, "-m", "bench.detector_throughput", "--device", "cuda",
                                      "--rows", "time_to_quality", "--sample-images", "600", "--out", str(out)]),
        ("DCGAN benchmark", dcgan_command(out)),
    ]


def run_step(name: str, command: list[str], out: Path) -> dict:
    """Run one step, its output both shown and saved to ``<out>/<name>.log``."""
    log_path = out / (name.replace(" ", "_").replace("-", "") + ".log")
    print(f"\n=== {name}: {' '.join(command)}", flush=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
        code = process.wait()
    return {"step": name, "command": command, "exit_code": code, "seconds": round(time.perf_counter() - started, 1),
            "log": log_path.name}


def summary_markdown(env: dict, results: list[dict], out: Path) -> str:
    lines = [f"# gpu-check: {env['device']}", "",
             f"torch {env['torch']} (CUDA {env['cuda']}, cuDNN {env['cudnn']}), Python {env['python']}, {env['date']}", "",
             "| step | exit code | seconds |", "|---|---|---|"]
    lines += [f"| {r['step']} | {r['exit_code']} | {r['seconds']} |" for r in results]
    for name in ("detector_throughput.md", "detector_time_to_quality.md", "dcgan_throughput.md"):
        if (out / name).is_file():
            lines += ["", (out / name).read_text()]
    return "\n".join(lines) + "\n"


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: gpu-check skipped")
        return 0
    out = Path(os.environ.get("GPU_CHECK_OUT", DEFAULT_OUT))
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    print(f"gpu-check on {env['device']} x{env['device_count']}, torch {env['torch']} (CUDA {env['cuda']}), {env['date']}")
    print(f"results go to {out}", flush=True)
    results = [run_step(name, command, out) for name, command in steps(out)]
    (out / "gpu_check.json").write_text(json.dumps({**env, "steps": results}, indent=2))
    (out / "gpu_check.md").write_text(summary_markdown(env, results, out))
    failed = [r["step"] for r in results if r["exit_code"] != 0]
    print(f"\ngpu-check: {'failed: ' + ', '.join(failed) if failed else 'all steps passed'}; summary in {out / 'gpu_check.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
