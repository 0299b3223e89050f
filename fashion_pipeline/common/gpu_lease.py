"""GPU leases: several GPU runs on one host, each on GPUs of its own.

Dagster's ``gpu`` pool bounds how many GPU steps run at once; it does not say *which* GPU a step
uses. A lease does: one lock file per GPU index (``gpu<i>.lock``), held with ``flock`` for as long
as the step runs. Two processes never hold the same index, and a holder that crashes (even
``kill -9``) loses its locks with its file descriptors, so no stale lease ever blocks a GPU.

- The number of GPUs is ``torch.cuda.device_count()`` at run time, or ``FASHION_PIPELINE_GPUS``
  (tests simulate 2 or 4 GPUs with it, no CUDA needed).
- The lock files live in ``FASHION_PIPELINE_GPU_LEASES``, else ``$DAGSTER_HOME/storage/gpu_leases``,
  else the temp folder: a host-local folder (flock on a network share is not reliable).
- With no GPU a lease is a no-op that returns the CPU.
- When the process already sees a subset (``CUDA_VISIBLE_DEVICES=2,3``), the leases are taken on those
  physical GPUs (lock files ``gpu2.lock``, ``gpu3.lock``) and the child's ``CUDA_VISIBLE_DEVICES`` names
  them, so two processes given different subsets never collide and never mistake one GPU for another.

Plain Python (no Dagster): the training code and its CLIs can use it too::

    with lease_gpus(2) as lease:
        subprocess.run(cmd, env={**os.environ, **lease.env})   # CUDA_VISIBLE_DEVICES=1,3
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

GPUS_ENV_VAR = "FASHION_PIPELINE_GPUS"
LEASE_DIR_ENV_VAR = "FASHION_PIPELINE_GPU_LEASES"


class GpuLeaseError(RuntimeError):
    """No lease: timed out waiting for free GPUs, or (``GpuLeaseRefused``) it could never be granted."""


class GpuLeaseRefused(GpuLeaseError):
    """More GPUs asked for than the host has: refused before anything is launched."""


def gpu_count() -> int:
    """GPUs on this host: ``FASHION_PIPELINE_GPUS`` when set, else what torch sees (0 without CUDA)."""
    override = os.environ.get(GPUS_ENV_VAR, "").strip()
    if override:
        try:
            count = int(override)
        except ValueError:
            raise GpuLeaseError(f"{GPUS_ENV_VAR}={override!r} is not a whole number of GPUs") from None
        if count < 0:
            raise GpuLeaseError(f"{GPUS_ENV_VAR}={override!r} is negative")
        return count
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def lease_dir() -> Path:
    if os.environ.get(LEASE_DIR_ENV_VAR):
        return Path(os.environ[LEASE_DIR_ENV_VAR])
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]) / "storage" / "gpu_leases"
    return Path(tempfile.gettempdir()) / "fashion_pipeline_gpu_leases"


def visible_ids(total: int) -> list[str]:
    """The physical ids of this process's ``total`` GPUs: its ``CUDA_VISIBLE_DEVICES`` entries, else 0..total-1."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible and len(visible) >= total:
        return visible[:total]
    return [str(i) for i in range(total)]


@dataclass
class Lease:
    """The GPUs held: ``indices`` as this process's torch numbers them, ``ids`` as the host does; empty = the CPU."""

    indices: tuple[int, ...] = ()
    ids: tuple[str, ...] = ()
    _files: list = field(default_factory=list, repr=False)

    @property
    def is_cpu(self) -> bool:
        return not self.indices

    @property
    def device(self) -> str:
        """The torch device for in-process training: ``cuda:<first index>`` or ``cpu``."""
        return f"cuda:{self.indices[0]}" if self.indices else "cpu"

    @property
    def env(self) -> dict[str, str]:
        """Environment for a child process: it sees only its GPUs (as ``cuda:0``..``cuda:n-1``)."""
        return {"CUDA_VISIBLE_DEVICES": ",".join(self.ids or map(str, self.indices))} if self.indices else {}

    @property
    def fds(self) -> list[int]:
        """The lock files' descriptors: a child given them (``pass_fds``) holds the lease too, so the GPU stays
        leased until the last process of the step, the trainer included, has exited (flock locks belong to
        the open file, which the kernel closes only with its last descriptor)."""
        return [handle.fileno() for handle in self._files]

    def release(self) -> None:
        for handle in self._files:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        self._files.clear()


def _try_lock(path: Path, holder: str, write: bool = True):
    handle = open(path, "a+")  # not inherited by child processes (PEP 446)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    if write:  # who holds it, for a person looking at the folder
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder} pid={os.getpid()}\n")
        handle.flush()
    return handle


def acquire(count: int = 1, *, total: Optional[int] = None, directory: Optional[Path] = None, holder: str = "",
            timeout_s: Optional[float] = None, poll_s: float = 0.5,
            on_wait: Optional[Callable[[str], None]] = None) -> Lease:
    """Take ``count`` free GPU indices; wait (polling) while fewer are free. Release with ``Lease.release``.

    Refused at once when ``count`` exceeds the host's GPUs: that lease could never be granted.
    """
    if count < 1:
        raise GpuLeaseError(f"a lease needs at least 1 GPU, not {count}")
    total = gpu_count() if total is None else total
    if total == 0:
        return Lease()
    if count > total:
        raise GpuLeaseRefused(f"asked for {count} GPUs but this host has {total} ({GPUS_ENV_VAR} or "
                            f"torch.cuda.device_count()); lower nproc_per_node or run on a bigger host")
    directory = Path(directory) if directory is not None else lease_dir()
    directory.mkdir(parents=True, exist_ok=True)
    ids = visible_ids(total)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    waited = False
    while True:
        held: list = []
        indices: list[int] = []
        for index in range(total):
            handle = _try_lock(directory / f"gpu{ids[index]}.lock", holder)
            if handle is not None:
                held.append(handle)
                indices.append(index)
                if len(indices) == count:
                    return Lease(tuple(indices), tuple(ids[i] for i in indices), held)
        Lease((), (), held).release()  # not enough free: give back the partial set so two waiters never deadlock
        if deadline is not None and time.monotonic() >= deadline:
            raise GpuLeaseError(f"no {count} free GPU(s) of {total} after {timeout_s:.0f} s (leases in {directory}); "
                                "is the gpu pool limit higher than the number of GPUs?")
        if not waited and on_wait is not None:
            on_wait(f"waiting for {count} free GPU(s) of {total} (leases in {directory})")
        waited = True
        time.sleep(poll_s)


@contextlib.contextmanager
def lease_gpus(count: int = 1, **kwargs) -> Iterator[Lease]:
    """``acquire`` as a context manager: the lease is released on exit, and by the OS if the process dies."""
    lease = acquire(count, **kwargs)
    try:
        yield lease
    finally:
        lease.release()


def held_indices(directory: Optional[Path] = None, total: Optional[int] = None) -> list[int]:
    """Indices some process holds now (probes each lock without keeping it); for tests and diagnostics."""
    directory = Path(directory) if directory is not None else lease_dir()
    total = gpu_count() if total is None else total
    held = []
    for index, gpu_id in enumerate(visible_ids(total)):
        path = directory / f"gpu{gpu_id}.lock"
        if not path.exists():
            continue
        handle = _try_lock(path, "probe", write=False)
        if handle is None:
            held.append(index)
        else:
            Lease((), (), [handle]).release()
    return held


def main(argv: Optional[list[str]] = None) -> int:
    """``status``: which GPUs are leased; ``run --gpus N -- CMD...``: run CMD on N GPUs of its own."""
    import argparse
    import subprocess

    parser = argparse.ArgumentParser(prog="python -m fashion_pipeline.common.gpu_lease", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="print the GPUs some process holds now")
    run = commands.add_parser("run", help="lease GPUs (waiting for free ones), run a command on them, release")
    run.add_argument("--gpus", type=int, default=1)
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    if args.command == "status":
        print(f"{gpu_count()} GPU(s), leased: {held_indices() or 'none'} (leases in {lease_dir()})")
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("run needs a command after --")
    with lease_gpus(args.gpus, holder="cli", on_wait=print) as lease:
        print(f"leased {lease.env or 'no GPU (CPU)'}", flush=True)
        return subprocess.run(cmd, env={**os.environ, **lease.env}).returncode


if __name__ == "__main__":
    raise SystemExit(main())
