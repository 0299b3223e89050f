"""Process-group set-up shared by the training CLIs that run under ``torchrun``.

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; a plain ``python -m`` run has none of them
and stays single-process. NCCL when there is a GPU, gloo otherwise (the CPU tests run 2 ranks on gloo).
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional


def launch_command(module: str, args: list[str], nproc_per_node: int = 1) -> list[str]:
    """``python -m <module> <args>``, or the same under torchrun with ``nproc_per_node`` processes."""
    if nproc_per_node > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc_per_node}",
                "-m", module, *args]
    return [sys.executable, "-m", module, *args]


def distributed_setup(use_cuda: Optional[bool] = None) -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; initialises the process group
    (``use_cuda`` False keeps a GPU host on the CPU's gloo)."""
    import torch

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 0, 1
    die_with_torchrun()
    use_cuda = torch.cuda.is_available() if use_cuda is None else use_cuda and torch.cuda.is_available()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    return torch.distributed.get_rank(), local_rank, world_size


class BadInput(ValueError):
    """The training data or arguments are unusable: retrying cannot help (the step fails without retries)."""


def die_with_torchrun() -> None:
    """A torchrun worker gets SIGKILL when its agent dies (the agent dies with the step, see
    ``common.pipes.die_with_parent``), so no rank keeps training on a GPU whose lease is gone."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def parse_fault(text):
    """``--inject-nan RANK:STEP`` (a test hook both trainers take) as ``(rank, step)``, or None when unset."""
    if not text:
        return None
    rank, _, step = text.partition(":")
    return int(rank), int(step)


def exit_not_retryable(error: BaseException) -> None:
    """Report a failure the same inputs would repeat (divergence, a refused resume, bad input) and exit
    with ``common.pipes.EXIT_NOT_RETRYABLE``: the asset raises ``Failure(allow_retries=False)`` with this message."""
    from fashion_pipeline.common.pipes import EXIT_NOT_RETRYABLE, write_failure

    write_failure(f"{rank_prefix()}{error}")
    report_failure(error)
    raise SystemExit(EXIT_NOT_RETRYABLE) from error


def wait_for_the_other_ranks() -> None:
    """Every rank raises the same error at the same step (the losses are all-reduced first), so a
    barrier here is safe; it keeps torchrun from killing a rank that has not printed its message yet."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        with contextlib.suppress(RuntimeError):
            torch.distributed.barrier()


def distributed_teardown() -> None:
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def rank_prefix() -> str:
    """``[rank r] `` under torchrun with more than one process, so interleaved stderr lines say who wrote them."""
    rank = os.environ.get("RANK")
    return f"[rank {rank}] " if rank is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""


def report_failure(error: BaseException) -> None:
    """One stderr line per rank, written in one call: the ranks share the pipe, and print's separate
    write of the newline let two ranks' lines run into one. Then wait for the others (see above)."""
    import sys

    sys.stderr.write(f"{rank_prefix()}training failed: {error}\n")
    sys.stderr.flush()
    wait_for_the_other_ranks()
