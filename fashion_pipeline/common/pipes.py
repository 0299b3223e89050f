"""Reporting from a training process to Dagster Pipes, shared by the detector's and the DCGAN's CLIs.

A training CLI prints its progress; when an asset launched it through ``PipesSubprocessClient``
(and only on rank 0 under torchrun) the same lines also go to the run's event log, and the final
numbers come back as the materialization's metadata. Run by hand, nothing here needs Dagster.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Mapping


class Reporter:
    """Prints lines; under Dagster Pipes also forwards them and the final metadata."""

    def __init__(self, pipes=None):
        self.pipes = pipes

    def log(self, message: str, to_pipes: bool = True) -> None:
        print(message, flush=True)
        if self.pipes is not None and to_pipes:
            self.pipes.log.info(message)

    def report_metadata(self, metadata: Mapping) -> None:
        """The materialization's metadata, as Pipes' JSON-able values (ints, floats, text, ``{"raw_value", "type"}``)."""
        if self.pipes is not None:
            self.pipes.report_asset_materialization(metadata=dict(metadata))


@contextlib.contextmanager
def open_reporter(rank: int = 0, reporter_class: type = Reporter, **kwargs) -> Iterator:
    """``reporter_class(pipes, **kwargs)``: connected to Pipes on rank 0 when Dagster launched us, else printing
    only (also where dagster-pipes is not installed, e.g. a bare GPU box running the CLI)."""
    try:
        from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes
    except ImportError:
        PipesEnvVarParamsLoader = None
    if rank == 0 and PipesEnvVarParamsLoader is not None and PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as pipes:
            yield reporter_class(pipes, **kwargs)
    else:
        yield reporter_class(None, **kwargs)


# ---------------------------------------------------------------- the Dagster side: launching a trainer

# A trainer exits with this code on a failure that the same inputs would only repeat (divergence, a
# refused resume, bad input), after writing its message to $FASHION_PIPELINE_FAILURE_FILE.
EXIT_NOT_RETRYABLE = 2
FAILURE_FILE_ENV_VAR = "FASHION_PIPELINE_FAILURE_FILE"


def write_failure(message: str) -> None:
    """Called by a trainer before it exits with ``EXIT_NOT_RETRYABLE``: the step raises this message."""
    import os

    path = os.environ.get(FAILURE_FILE_ENV_VAR)
    if path:
        from fashion_pipeline.common.atomic import write_text

        write_text(path, message)


def die_with_parent(parent_pid: int):
    """A ``preexec_fn``: the child gets SIGKILL when the process that launched it dies, even by ``kill -9``
    (Linux ``PR_SET_PDEATHSIG``), so a crashed step never leaves a trainer running on its GPU."""
    import ctypes
    import os
    import signal

    def set_death_signal() -> None:
        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:  # not Linux: the lease's file descriptor (inherited) still outlives the step
            return
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return set_death_signal


def describe_exit(code: int) -> str:
    import signal

    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def run_trainer(context, client, command: list[str], env: dict, lease=None):
    """Run a training CLI under Dagster Pipes; its ``MaterializeResult`` on success.

    - The trainer holds the step's GPU lease too (its lock files are passed down), and dies with the
      step (``die_with_parent``): the GPU is free only when no process of this step runs on it.
    - Exit ``EXIT_NOT_RETRYABLE``: ``Failure(allow_retries=False)`` with the trainer's message (a diverged
      run, a refused resume, bad input: the same inputs would fail the same way).
    - Any other failure (killed, CUDA out of memory, a crash): an ordinary ``Failure`` the retry policy retries.
    """
    import os
    import signal
    import subprocess
    import tempfile
    from pathlib import Path

    import dagster as dg
    from dagster._core.errors import DagsterExecutionInterruptedError
    from dagster._core.pipes.client import PipesClientCompletedInvocation
    from dagster._core.pipes.utils import open_pipes_session

    with tempfile.TemporaryDirectory(prefix="trainer-") as scratch:
        failure_file = Path(scratch) / "failure.txt"
        with open_pipes_session(context=context, context_injector=client.context_injector,
                                message_reader=client.message_reader) as session:
            process = subprocess.Popen(
                command, cwd=client.cwd,
                env={**os.environ, **client.env, **env, FAILURE_FILE_ENV_VAR: str(failure_file),
                     **session.get_bootstrap_env_vars()},
                pass_fds=tuple(lease.fds) if lease is not None else (),
                preexec_fn=die_with_parent(os.getpid()))
            try:
                process.wait()
            except DagsterExecutionInterruptedError:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=client.termination_timeout_seconds)
                raise
        if process.returncode == 0:
            return PipesClientCompletedInvocation(session).get_materialize_result()
        message = failure_file.read_text().strip() if failure_file.is_file() else ""
        how = describe_exit(process.returncode)
    if process.returncode == EXIT_NOT_RETRYABLE:
        raise dg.Failure(description=message or f"training failed ({how}); see the logs",
                         metadata={"exit": how}, allow_retries=False)
    raise dg.Failure(description=f"training process failed ({how})" + (f": {message}" if message else "")
                     + "; a transient failure (killed, out of memory, lost node), retried by the retry policy",
                     metadata={"exit": how}, allow_retries=True)
